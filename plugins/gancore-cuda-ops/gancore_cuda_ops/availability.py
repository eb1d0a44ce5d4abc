"""Whether the Triton kernels can run here: CUDA present and Triton importable (or its CPU interpreter on)."""

import importlib.util
import os

import torch

__all__ = ["interpreting", "kernels_available", "unavailable_reason"]


def interpreting() -> bool:
    """Whether Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``, used by the tests)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def unavailable_reason() -> str | None:
    """Why the kernels cannot run here, or None when they can."""
    if importlib.util.find_spec("triton") is None:
        return "Triton is not installed (pip install triton)"
    if not torch.cuda.is_available() and not interpreting():
        return "no CUDA device"
    return None


def kernels_available() -> bool:
    """True when :func:`unavailable_reason` finds nothing in the way."""
    return unavailable_reason() is None
