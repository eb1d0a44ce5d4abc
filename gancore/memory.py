"""Running out of memory in training: recognised (GPU or CPU) and reported as one line that says what to try."""

__all__ = ["TrainingOutOfMemory", "is_out_of_memory"]


class TrainingOutOfMemory(RuntimeError):
    """A training step ran out of memory; the message names the phase, the batch, what to try and
    the newest checkpoint."""


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure: torch's OutOfMemoryError (CUDA), a MemoryError, or
    the RuntimeError a CPU or MPS allocator raises."""
    import torch

    if isinstance(exc, (MemoryError, getattr(torch, "OutOfMemoryError", MemoryError))):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text
                                              or "not enough memory" in text)
