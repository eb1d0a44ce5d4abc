"""upfirdn2d in Triton: zero-insertion up-sampling, padding (negative crops), FIR filtering and
down-sampling in one pass per output pixel; its gradient is upfirdn2d again (so is the gradient's).

Same semantics as gancore's reference. Triton is imported on first use, never at import time.
"""

import functools
from typing import Any, Sequence

import torch
from torch import Tensor

from gancore.ops.upfirdn2d import parse_padding, parse_scaling, upfirdn2d_ref

__all__ = ["upfirdn2d_triton"]

_BLOCK = 256


@functools.cache
def _kernel() -> Any:
    import triton
    import triton.language as tl

    @triton.jit
    def forward(x_ptr, f_ptr, y_ptr, total, H, W, OH, OW, upx, upy, downx, downy, padx0, pady0, gain,
                FH: tl.constexpr, FW: tl.constexpr, BLOCK: tl.constexpr):
        offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offsets < total
        ox = offsets % OW
        rest = offsets // OW
        oy = rest % OH
        plane = rest // OH
        acc = tl.full([BLOCK], 0.0, tl.float32)
        for i in tl.static_range(FH):
            uy = oy * downy + i - pady0
            row_ok = (uy >= 0) & (uy < H * upy) & (uy % upy == 0)
            iy = tl.where(row_ok, uy // upy, 0)
            for j in tl.static_range(FW):
                ux = ox * downx + j - padx0
                ok = row_ok & (ux >= 0) & (ux < W * upx) & (ux % upx == 0)
                ix = tl.where(ok, ux // upx, 0)
                value = tl.load(x_ptr + (plane * H + iy) * W + ix, mask=mask & ok, other=0.0).to(tl.float32)
                acc += value * tl.load(f_ptr + i * FW + j).to(tl.float32)
        tl.store(y_ptr + offsets, (acc * gain).to(y_ptr.dtype.element_ty), mask=mask)

    return forward


def _run(x: Tensor, f: Tensor, up: tuple[int, int], down: tuple[int, int], pad: tuple[int, int, int, int],
         flip_filter: bool, gain: float) -> Tensor:
    upx, upy = up
    downx, downy = down
    x0, x1, y0, y1 = pad
    n, c, h, w = x.shape
    taps = f if f.ndim == 2 else f[:, None] * f[None, :]
    if not flip_filter:
        taps = taps.flip([0, 1])
    fh, fw = taps.shape
    out_h = (h * upy + y0 + y1 - fh) // downy + 1
    out_w = (w * upx + x0 + x1 - fw) // downx + 1
    if out_h <= 0 or out_w <= 0:
        raise ValueError(f"upfirdn2d: empty output ({out_h}x{out_w}) for input {h}x{w}")
    x = x.contiguous()
    y = torch.empty(n, c, out_h, out_w, dtype=x.dtype, device=x.device)
    total = y.numel()
    if total:
        grid = ((total + _BLOCK - 1) // _BLOCK,)
        _kernel()[grid](x, taps.to(torch.float32).contiguous(), y, total, h, w, out_h, out_w, upx, upy, downx, downy,
                        x0, y0, float(gain), FH=fh, FW=fw, BLOCK=_BLOCK)
    return y


class _UpFirDn2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, f: Tensor, up: tuple[int, int], down: tuple[int, int],
                pad: tuple[int, int, int, int], flip_filter: bool, gain: float) -> Tensor:
        y = _run(x, f, up, down, pad, flip_filter, gain)
        ctx.save_for_backward(f)
        ctx.settings = (up, down, pad, flip_filter, gain, tuple(x.shape), tuple(y.shape))
        return y

    @staticmethod
    def backward(ctx: Any, dy: Tensor) -> tuple:
        (f,) = ctx.saved_tensors
        (upx, upy), (downx, downy), (x0, _, y0, _), flip_filter, gain, x_shape, y_shape = ctx.settings
        fh, fw = (f.shape[0], f.shape[-1]) if f.ndim == 2 else (f.shape[0], f.shape[0])
        in_h, in_w = x_shape[2:]
        out_h, out_w = y_shape[2:]
        pad = (
            fw - x0 - 1,
            in_w * upx - out_w * downx + x0 - upx + 1,
            fh - y0 - 1,
            in_h * upy - out_h * downy + y0 - upy + 1,
        )
        dx = _UpFirDn2d.apply(dy, f, (downx, downy), (upx, upy), pad, not flip_filter, gain)
        assert tuple(dx.shape) == x_shape, f"upfirdn2d gradient shape {tuple(dx.shape)} != {x_shape}"
        return dx, None, None, None, None, None, None


def upfirdn2d_triton(
    x: Tensor,
    f: Tensor | None,
    up: int | Sequence[int] = 1,
    down: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    flip_filter: bool = False,
    gain: float = 1.0,
) -> Tensor:
    """The Triton upfirdn2d (same signature and results as the reference; a filter that needs a
    gradient, or an unusual dtype, runs on the reference)."""
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d expects [N, C, H, W], got {list(x.shape)}")
    if f is None:
        f = torch.ones(1, 1, dtype=torch.float32, device=x.device)
    if f.requires_grad or x.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        return upfirdn2d_ref(x, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=gain)
    return _UpFirDn2d.apply(x, f, parse_scaling(up), parse_scaling(down), parse_padding(padding), flip_filter, gain)
