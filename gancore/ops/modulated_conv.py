"""Convolution with FIR up/down-sampling and StyleGAN2's modulated convolution, in pure PyTorch."""

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from gancore.ops.functions import upfirdn2d
from gancore.ops.upfirdn2d import filter_size, parse_padding

__all__ = ["conv2d_resample", "modulated_conv2d"]


def _conv2d(
    x: Tensor,
    w: Tensor,
    stride: int = 1,
    padding: int | Sequence[int] = 0,
    groups: int = 1,
    transpose: bool = False,
    flip_weight: bool = True,
) -> Tensor:
    """``conv2d`` (or ``conv_transpose2d``); ``flip_weight=False`` makes it a true convolution."""
    if not flip_weight:
        w = w.flip([2, 3])
    if transpose:
        return F.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)


def conv2d_resample(
    x: Tensor,
    w: Tensor,
    f: Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: int | Sequence[int] = 0,
    groups: int = 1,
    flip_weight: bool = True,
    flip_filter: bool = False,
) -> Tensor:
    """2-D convolution of ``x`` ``[N, C_in, H, W]`` with ``w`` ``[C_out, C_in / groups, kh, kw]``,
    with optional up-sampling (before) and down-sampling (after) through the FIR filter ``f``.

    Same semantics as NVIDIA's ``conv2d_resample``: ``padding`` (int, ``[x, y]`` or
    ``[x0, x1, y0, y1]``) is relative to the up-sampled image, ``f`` comes from
    :func:`gancore.ops.setup_filter`, ``flip_weight=True`` is a correlation (like ``F.conv2d``)
    and False a true convolution. Each combination takes the cheapest exact route (1x1 kernels
    resample on the cheaper side, down-sampling uses a strided conv, up-sampling a transposed
    strided conv). First and second derivatives come from autograd.
    """
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"conv2d_resample expects 4-D x and w, got {list(x.shape)} and {list(w.shape)}")
    if not (isinstance(up, int) and up >= 1 and isinstance(down, int) and down >= 1):
        raise ValueError(f"up and down must be integers >= 1, got up={up!r}, down={down!r}")
    if not (isinstance(groups, int) and groups >= 1):
        raise ValueError(f"groups must be an integer >= 1, got {groups!r}")
    out_channels, in_channels_per_group, kh, kw = w.shape
    fw, fh = filter_size(f)
    px0, px1, py0, py1 = parse_padding(padding)

    # Padding that keeps the filter centred after up- and before down-sampling.
    if up > 1:
        px0 += (fw + up - 1) // 2
        px1 += (fw - up) // 2
        py0 += (fh + up - 1) // 2
        py1 += (fh - up) // 2
    if down > 1:
        px0 += (fw - down + 1) // 2
        px1 += (fw - down) // 2
        py0 += (fh - down + 1) // 2
        py1 += (fh - down) // 2

    # 1x1 kernel, down-sampling only: down-sample first, then convolve.
    if kw == 1 and kh == 1 and down > 1 and up == 1:
        x = upfirdn2d(x, f, down=down, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return _conv2d(x, w, groups=groups, flip_weight=flip_weight)

    # 1x1 kernel, up-sampling only: convolve first, then up-sample.
    if kw == 1 and kh == 1 and up > 1 and down == 1:
        x = _conv2d(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d(x, f, up=up, padding=[px0, px1, py0, py1], gain=up**2, flip_filter=flip_filter)

    # Down-sampling only: filter, then a strided convolution.
    if down > 1 and up == 1:
        x = upfirdn2d(x, f, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
        return _conv2d(x, w, stride=down, groups=groups, flip_weight=flip_weight)

    # Up-sampling (and maybe down-sampling): a transposed strided convolution, then filter.
    if up > 1:
        if groups == 1:
            w = w.transpose(0, 1)
        else:
            w = w.reshape(groups, out_channels // groups, in_channels_per_group, kh, kw)
            w = w.transpose(1, 2)
            w = w.reshape(groups * in_channels_per_group, out_channels // groups, kh, kw)
        px0 -= kw - 1
        px1 -= kw - up
        py0 -= kh - 1
        py1 -= kh - up
        pxt = max(min(-px0, -px1), 0)
        pyt = max(min(-py0, -py1), 0)
        x = _conv2d(x, w, stride=up, padding=[pyt, pxt], groups=groups, transpose=True, flip_weight=not flip_weight)
        x = upfirdn2d(
            x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up**2, flip_filter=flip_filter
        )
        if down > 1:
            x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
        return x

    # No resampling and symmetric non-negative padding: a plain convolution.
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
        return _conv2d(x, w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)

    # General case (asymmetric or negative padding).
    x = upfirdn2d(x, None, padding=[px0, px1, py0, py1], flip_filter=flip_filter)
    return _conv2d(x, w, groups=groups, flip_weight=flip_weight)


def modulated_conv2d(
    x: Tensor,
    weight: Tensor,
    styles: Tensor,
    noise: Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: int | Sequence[int] = 0,
    resample_filter: Tensor | None = None,
    demodulate: bool = True,
    flip_weight: bool = True,
    fused_modconv: bool = True,
) -> Tensor:
    """StyleGAN2's modulated convolution: scale ``weight``'s input channels by ``styles`` per
    sample, (optionally) demodulate each output channel to unit norm, convolve, add ``noise``.

    ``x`` is ``[N, C_in, H, W]``, ``weight`` ``[C_out, C_in, kh, kw]``, ``styles`` ``[N, C_in]``;
    ``noise`` broadcasts against the output (``[N, 1, H', W']`` or ``[H', W']``). ``fused_modconv``
    runs one grouped convolution with per-sample weights; otherwise the activations are scaled
    before and after a shared convolution (the same result up to rounding). The remaining
    arguments are those of :func:`conv2d_resample`. NVIDIA semantics throughout.
    """
    batch_size = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    if x.ndim != 4 or x.shape[1] != in_channels:
        raise ValueError(f"modulated_conv2d: x must be [N, {in_channels}, H, W], got {list(x.shape)}")
    if styles.shape != (batch_size, in_channels):
        raise ValueError(
            f"modulated_conv2d: styles must be [{batch_size}, {in_channels}], got {list(styles.shape)}"
        )

    # Pre-normalize to avoid float16 overflow (demodulation undoes the scale).
    if x.dtype == torch.float16 and demodulate:
        weight = weight * (1 / (in_channels * kh * kw) ** 0.5 / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)

    # Per-sample weights and demodulation coefficients.
    w = None
    dcoefs = None
    if demodulate or fused_modconv:
        w = weight.unsqueeze(0) * styles.reshape(batch_size, 1, -1, 1, 1)  # [N, O, I, kh, kw]
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [N, O]
    if demodulate and fused_modconv:
        w = w * dcoefs.reshape(batch_size, -1, 1, 1, 1)

    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(batch_size, -1, 1, 1)
        x = conv2d_resample(
            x, weight.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding, flip_weight=flip_weight
        )
        if demodulate:
            x = x * dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1)
        if noise is not None:
            x = x + noise.to(x.dtype)
        return x

    # One grouped convolution: the batch becomes the groups.
    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, in_channels, kh, kw)
    x = conv2d_resample(
        x, w.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding, groups=batch_size,
        flip_weight=flip_weight,
    )
    x = x.reshape(batch_size, -1, *x.shape[2:])
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x
