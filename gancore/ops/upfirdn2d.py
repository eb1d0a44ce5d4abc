"""Upsample, FIR-filter and downsample 2-D images: the reference op and its helpers."""

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["filter_size", "parse_padding", "parse_scaling", "setup_filter", "upfirdn2d_ref"]

Padding = int | Sequence[int]


def parse_scaling(scaling: int | Sequence[int]) -> tuple[int, int]:
    """``up`` or ``down`` as ``(x, y)`` factors (an int means both)."""
    if isinstance(scaling, int):
        scaling = [scaling, scaling]
    sx, sy = (int(s) for s in scaling)
    if sx < 1 or sy < 1:
        raise ValueError(f"scaling factors must be >= 1, got {[sx, sy]}")
    return sx, sy


def parse_padding(padding: Padding) -> tuple[int, int, int, int]:
    """Padding as ``(x0, x1, y0, y1)``: an int pads all sides, ``[x, y]`` both ends of each axis."""
    if isinstance(padding, int):
        padding = [padding, padding]
    padding = [int(p) for p in padding]
    if len(padding) == 2:
        px, py = padding
        padding = [px, px, py, py]
    if len(padding) != 4:
        raise ValueError(f"padding must be an int, [x, y] or [x0, x1, y0, y1], got {padding}")
    x0, x1, y0, y1 = padding
    return x0, x1, y0, y1


def filter_size(f: Tensor | None) -> tuple[int, int]:
    """Width and height of a filter (1-D filters are separable: the same along both axes)."""
    if f is None:
        return 1, 1
    if f.ndim not in (1, 2):
        raise ValueError(f"a filter must be 1-D (separable) or 2-D, got shape {list(f.shape)}")
    return (f.shape[-1], f.shape[0]) if f.ndim == 2 else (f.shape[0], f.shape[0])


def setup_filter(
    f: Sequence[float] | Tensor | None,
    normalize: bool = True,
    flip_filter: bool = False,
    gain: float = 1.0,
    separable: bool | None = None,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Turn filter taps into the float32 tensor the ops take.

    1-D taps stay separable when ``separable`` (default: 8 taps or more), otherwise they become
    their outer product. ``normalize`` makes the taps sum to one; ``gain`` scales the overall
    response (applied per axis for separable filters).
    """
    f = torch.ones(1) if f is None else torch.as_tensor(f, dtype=torch.float32)
    if f.ndim == 0:
        f = f[None]
    if f.ndim not in (1, 2) or f.numel() == 0:
        raise ValueError(f"filter taps must be a non-empty 1-D or 2-D array, got shape {list(f.shape)}")
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f * (gain ** (f.ndim / 2))
    return f.to(device=device)


def upfirdn2d_ref(
    x: Tensor,
    f: Tensor | None,
    up: int | Sequence[int] = 1,
    down: int | Sequence[int] = 1,
    padding: Padding = 0,
    flip_filter: bool = False,
    gain: float = 1.0,
) -> Tensor:
    """Upsample by zero insertion, pad (negative pads crop), convolve with ``f``, downsample.

    ``x`` is ``[N, C, H, W]``; ``f`` a 1-D (separable) or 2-D filter (None: identity). The
    convolution is a true convolution unless ``flip_filter`` (then a correlation). Computed
    polyphase, without the inserted zeros or the dropped outputs: a transposed convolution of
    stride ``up`` when up-sampling, a convolution of stride ``down`` otherwise, depthwise and
    vectorised (one pass per axis for a separable filter); autograd gives first and second
    derivatives.
    """
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d expects [N, C, H, W], got {list(x.shape)}")
    if f is None:
        f = torch.ones(1, 1, dtype=x.dtype, device=x.device)
    upx, upy = parse_scaling(up)
    downx, downy = parse_scaling(down)
    x0, x1, y0, y1 = parse_padding(padding)
    f = (f * (gain ** (f.ndim / 2))).to(x.dtype)
    if flip_filter:
        f = f.flip(list(range(f.ndim)))  # a correlation is a convolution with the flipped taps
    if f.ndim == 2:
        return _resample(x, f, (upy, upx), (y0, y1, x0, x1), (downy, downx))
    x = _resample(x, f[None, :], (1, upx), (0, 0, x0, x1), (1, downx))
    return _resample(x, f[:, None], (upy, 1), (y0, y1, 0, 0), (downy, 1))


def _resample(x: Tensor, kernel: Tensor, up: tuple[int, int], pad: tuple[int, int, int, int],
              down: tuple[int, int]) -> Tensor:
    """One depthwise pass of upfirdn with a 2-D true-convolution ``kernel`` ``[kh, kw]``.

    ``up``, ``down`` are ``(y, x)``; ``pad`` is ``(y0, y1, x0, x1)``.
    """
    c = x.shape[1]
    kh, kw = kernel.shape
    y0, y1, x0, x1 = pad
    weight = kernel[None, None].repeat(c, 1, 1, 1)
    if up == (1, 1):
        x = _pad_crop(x, (x0, x1, y0, y1))
        return F.conv2d(x, weight.flip(2, 3), stride=down, groups=c)
    # The transposed convolution is the full convolution of the zero-inserted image (less its
    # all-zero tail); pad and crop it to the window the padded valid convolution would give.
    x = F.conv_transpose2d(x, weight, stride=up, groups=c)
    (uy, ux) = up
    x = _pad_crop(x, (x0 - (kw - 1), ux + x1 - kw, y0 - (kh - 1), uy + y1 - kh))
    return x[:, :, :: down[0], :: down[1]]


def _pad_crop(x: Tensor, pad: tuple[int, int, int, int]) -> Tensor:
    """Zero-pad the positive sides of ``(x0, x1, y0, y1)``, then crop the negative ones (a crop
    larger than the image is fine as long as the padding on the other side makes up for it)."""
    x0, x1, y0, y1 = pad
    x = F.pad(x, [max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)])
    return x[:, :, max(-y0, 0) : x.shape[2] - max(-y1, 0), max(-x0, 0) : x.shape[3] - max(-x1, 0)]
