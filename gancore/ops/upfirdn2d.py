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
    convolution is a true convolution unless ``flip_filter`` (then a correlation). Depthwise
    grouped convolutions keep it vectorised; autograd gives first and second derivatives.
    """
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d expects [N, C, H, W], got {list(x.shape)}")
    if f is None:
        f = torch.ones(1, 1, dtype=x.dtype, device=x.device)
    upx, upy = parse_scaling(up)
    downx, downy = parse_scaling(down)
    x0, x1, y0, y1 = parse_padding(padding)
    n, c, h, w = x.shape
    if upx > 1 or upy > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
        x = x.reshape(n, c, h * upy, w * upx)
    x = F.pad(x, [max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)])
    x = x[:, :, max(-y0, 0) : x.shape[2] - max(-y1, 0), max(-x0, 0) : x.shape[3] - max(-x1, 0)]
    f = (f * (gain ** (f.ndim / 2))).to(x.dtype)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    if f.ndim == 2:
        x = F.conv2d(x, f[None, None].repeat(c, 1, 1, 1), groups=c)
    else:
        taps = f[None, None].repeat(c, 1, 1)
        x = F.conv2d(x, taps.unsqueeze(2), groups=c)
        x = F.conv2d(x, taps.unsqueeze(3), groups=c)
    return x[:, :, ::downy, ::downx]
