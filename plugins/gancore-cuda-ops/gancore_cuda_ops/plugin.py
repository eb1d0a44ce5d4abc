"""The ``cuda_ops`` plugin: registers the Triton kernels as implementations ``triton`` of gancore's ops."""

from typing import Callable

from gancore import hookimpl

from gancore_cuda_ops.availability import unavailable_reason

__all__ = ["CudaOps", "PRIORITY"]

#: Above the reference (0): ``impl="auto"`` prefers the kernels wherever they can run.
PRIORITY = 10


def _available() -> bool:
    reason = unavailable_reason()
    if reason is not None:
        raise RuntimeError(reason)  # the dispatcher's fallback warning quotes this
    return True


def _bias_act(*args, **kwargs):
    from gancore_cuda_ops.bias_act import bias_act_triton

    return bias_act_triton(*args, **kwargs)


def _upfirdn2d(*args, **kwargs):
    from gancore_cuda_ops.upfirdn2d import upfirdn2d_triton

    return upfirdn2d_triton(*args, **kwargs)


class CudaOps:
    """Triton kernels for ``bias_act`` and ``upfirdn2d`` (compiled lazily on first use, cached by Triton)."""

    name = "cuda_ops"
    kind = "ops"

    @hookimpl
    def gancore_register_ops(self, register: Callable[..., None]) -> None:
        """Register ``triton`` implementations of ``bias_act`` and ``upfirdn2d``."""
        register("bias_act", "triton", _bias_act, priority=PRIORITY, available=_available)
        register("upfirdn2d", "triton", _upfirdn2d, priority=PRIORITY, available=_available)
