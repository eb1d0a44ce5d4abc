"""The dispatched ops: each call goes to the fastest registered implementation that can take it (the reference by default)."""

from typing import Sequence

from torch import Tensor

from gancore.ops.bias_act import bias_act_ref
from gancore.ops.dispatch import IMPL_REFERENCE, choose
from gancore.ops.registry import REGISTRY
from gancore.ops.upfirdn2d import filter_size, parse_padding, parse_scaling, upfirdn2d_ref

__all__ = ["bias_act", "downsample2d", "filter2d", "upfirdn2d", "upsample2d"]

REGISTRY.register("bias_act", IMPL_REFERENCE, bias_act_ref, priority=0)
REGISTRY.register("upfirdn2d", IMPL_REFERENCE, upfirdn2d_ref, priority=0)


def bias_act(
    x: Tensor,
    b: Tensor | None = None,
    dim: int = 1,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
    impl: str = "auto",
) -> Tensor:
    """Add bias ``b`` along axis ``dim``, apply ``act``, scale by ``gain``, clamp to ``±clamp``.

    ``act`` is one of :data:`ACTIVATIONS` (``lrelu``: slope 0.2 and gain sqrt(2) by default).
    ``impl``: ``"auto"`` (fastest available, the reference on CPU tensors), ``"ref"``, or a
    registered implementation's name.
    """
    return choose("bias_act", impl, x, b)(x, b, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp)


def upfirdn2d(
    x: Tensor,
    f: Tensor | None,
    up: int | Sequence[int] = 1,
    down: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    flip_filter: bool = False,
    gain: float = 1.0,
    impl: str = "auto",
) -> Tensor:
    """Upsample (zero insertion), pad, FIR-filter and downsample ``[N, C, H, W]`` images.

    ``f`` comes from :func:`setup_filter`; ``padding`` is ``x0, x1, y0, y1`` (negative crops).
    """
    return choose("upfirdn2d", impl, x, f)(x, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain)


def filter2d(
    x: Tensor, f: Tensor | None, padding: int | Sequence[int] = 0, flip_filter: bool = False, gain: float = 1.0,
    impl: str = "auto",
) -> Tensor:
    """Filter with ``f`` keeping the image size (plus ``padding``)."""
    x0, x1, y0, y1 = parse_padding(padding)
    fw, fh = filter_size(f)
    pad = [x0 + fw // 2, x1 + (fw - 1) // 2, y0 + fh // 2, y1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=pad, flip_filter=flip_filter, gain=gain, impl=impl)


def upsample2d(
    x: Tensor, f: Tensor | None, up: int | Sequence[int] = 2, padding: int | Sequence[int] = 0,
    flip_filter: bool = False, gain: float = 1.0, impl: str = "auto",
) -> Tensor:
    """Upsample by ``up`` with FIR filter ``f`` (interpolation; the gain keeps the DC level)."""
    upx, upy = parse_scaling(up)
    x0, x1, y0, y1 = parse_padding(padding)
    fw, fh = filter_size(f)
    pad = [x0 + (fw + upx - 1) // 2, x1 + (fw - upx) // 2, y0 + (fh + upy - 1) // 2, y1 + (fh - upy) // 2]
    return upfirdn2d(x, f, up=up, padding=pad, flip_filter=flip_filter, gain=gain * upx * upy, impl=impl)


def downsample2d(
    x: Tensor, f: Tensor | None, down: int | Sequence[int] = 2, padding: int | Sequence[int] = 0,
    flip_filter: bool = False, gain: float = 1.0, impl: str = "auto",
) -> Tensor:
    """Downsample by ``down`` after FIR filtering with ``f`` (anti-aliasing)."""
    downx, downy = parse_scaling(down)
    x0, x1, y0, y1 = parse_padding(padding)
    fw, fh = filter_size(f)
    pad = [x0 + (fw - downx + 1) // 2, x1 + (fw - downx) // 2, y0 + (fh - downy + 1) // 2, y1 + (fh - downy) // 2]
    return upfirdn2d(x, f, down=down, padding=pad, flip_filter=flip_filter, gain=gain, impl=impl)
