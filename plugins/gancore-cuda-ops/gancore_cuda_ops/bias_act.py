"""Fused bias + activation + gain + clamp in Triton, with a fused gradient kernel and double backward.

Covers what StyleGAN2 uses (``linear``, ``relu``, ``lrelu`` with a positive gain); other settings
run on gancore's reference implementation. Triton is imported on first use, never at import time.
"""

import functools
from typing import Any

import torch
from torch import Tensor

from gancore.ops.bias_act import bias_act_ref, resolve_activation

__all__ = ["bias_act_triton", "supports"]

_ACT_CODES = {"linear": 0, "relu": 1, "lrelu": 2}
_BLOCK = 1024


@functools.cache
def _kernels() -> Any:
    import triton
    import triton.language as tl

    @triton.jit
    def forward(x_ptr, b_ptr, y_ptr, n, channels, inner, alpha, gain, clamp,
                HAS_BIAS: tl.constexpr, ACT: tl.constexpr, CLAMP: tl.constexpr, BLOCK: tl.constexpr):
        offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offsets < n
        x = tl.load(x_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
        if HAS_BIAS:
            x += tl.load(b_ptr + (offsets // inner) % channels, mask=mask, other=0.0).to(tl.float32)
        if ACT == 1:
            x = tl.maximum(x, 0.0)
        if ACT == 2:
            x = tl.where(x >= 0.0, x, x * alpha)
        x = x * gain
        if CLAMP:
            x = tl.minimum(tl.maximum(x, -clamp), clamp)
        tl.store(y_ptr + offsets, x.to(y_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def gradient(dy_ptr, y_ptr, dx_ptr, n, alpha, gain, clamp,
                 ACT: tl.constexpr, CLAMP: tl.constexpr, BLOCK: tl.constexpr):
        offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offsets < n
        dy = tl.load(dy_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
        y = tl.load(y_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
        d = dy * gain
        if ACT == 1:
            d = tl.where(y > 0.0, d, 0.0)
        if ACT == 2:
            d = tl.where(y >= 0.0, d, d * alpha)
        if CLAMP:
            d = tl.where(tl.abs(y) < clamp, d, 0.0)
        tl.store(dx_ptr + offsets, d.to(dx_ptr.dtype.element_ty), mask=mask)

    return forward, gradient


def _grid(n: int) -> tuple[int]:
    return ((n + _BLOCK - 1) // _BLOCK,)


def _gradient(dy: Tensor, y: Tensor, act: int, alpha: float, gain: float, clamp: float | None) -> Tensor:
    dy = dy.contiguous()
    dx = torch.empty_like(dy)
    n = dy.numel()
    if n:
        _kernels()[1][_grid(n)](dy, y, dx, n, alpha, gain, clamp or 0.0,
                                ACT=act, CLAMP=clamp is not None, BLOCK=_BLOCK)
    return dx


class _Gradient(torch.autograd.Function):
    """``dx = dy · act'(·) · gain · clamp-mask``, linear in ``dy``: its own derivative is itself."""

    @staticmethod
    def forward(ctx: Any, dy: Tensor, y: Tensor, act: int, alpha: float, gain: float, clamp: float | None) -> Tensor:
        ctx.save_for_backward(y)
        ctx.settings = (act, alpha, gain, clamp)
        return _gradient(dy, y, act, alpha, gain, clamp)

    @staticmethod
    def backward(ctx: Any, ddx: Tensor) -> tuple:
        (y,) = ctx.saved_tensors
        # The activations here are piecewise linear: the gradient does not depend on y smoothly.
        return _Gradient.apply(ddx, y, *ctx.settings), None, None, None, None, None


class _BiasAct(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, b: Tensor | None, dim: int, act: int, alpha: float, gain: float,
                clamp: float | None) -> Tensor:
        x = x.contiguous()
        y = torch.empty_like(x)
        n = x.numel()
        channels = x.shape[dim] if x.ndim else 1
        inner = 1
        for size in x.shape[dim + 1:]:
            inner *= size
        if n:
            _kernels()[0][_grid(n)](x, b if b is not None else x, y, n, channels, inner, alpha, gain, clamp or 0.0,
                                    HAS_BIAS=b is not None, ACT=act, CLAMP=clamp is not None, BLOCK=_BLOCK)
        ctx.save_for_backward(y)
        ctx.settings = (act, alpha, gain, clamp)
        ctx.dim = dim
        ctx.has_bias = b is not None
        return y

    @staticmethod
    def backward(ctx: Any, dy: Tensor) -> tuple:
        (y,) = ctx.saved_tensors
        dx = _Gradient.apply(dy, y, *ctx.settings)
        db = None
        if ctx.has_bias and ctx.needs_input_grad[1]:
            db = dx.sum([i for i in range(dx.ndim) if i != ctx.dim])
        return dx, db, None, None, None, None, None


def supports(x: Tensor, b: Tensor | None, act: str, gain: float, clamp: float | None) -> bool:
    """Whether the kernel covers these arguments (else the reference runs)."""
    return (
        act in _ACT_CODES
        and gain > 0
        and x.dtype in (torch.float32, torch.float16, torch.bfloat16)
        and (b is None or (b.ndim == 1 and b.dtype == x.dtype))
        and (clamp is None or clamp >= 0)
    )


def bias_act_triton(
    x: Tensor,
    b: Tensor | None = None,
    dim: int = 1,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
) -> Tensor:
    """``clamp(act(x + b) * gain)`` in one Triton kernel (same signature and results as the reference)."""
    _, alpha_value, gain_value = resolve_activation(act, alpha, gain)
    if not supports(x, b, act, gain_value, clamp):
        return bias_act_ref(x, b, dim=dim, act=act, alpha=alpha, gain=gain, clamp=clamp)
    if b is not None and b.shape[0] != x.shape[dim]:
        raise ValueError(f"bias must be [{x.shape[dim]}] for axis {dim} of {list(x.shape)}, got {list(b.shape)}")
    return _BiasAct.apply(x, b, dim % x.ndim, _ACT_CODES[act], alpha_value, gain_value, clamp)
