"""Data-parallel training with torch.distributed, launched by torchrun: process group, gradient averaging, helpers.

Every rank draws the *global* batch's random inputs from the same seeded generator and keeps its
own slice, so a run's randomness does not depend on the number of processes: N processes give the
weights of one process with the same global batch (up to float summation order), and a run can
resume on a different world size.
"""

import os
from typing import Any, Iterable

import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = [
    "all_reduce_mean",
    "average_gradients",
    "init_from_environment",
    "is_distributed",
    "leave_process_group",
    "mean_over_ranks",
    "rank",
    "rank_slice",
    "world_size",
]


def is_distributed() -> bool:
    """Whether a process group with more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def init_from_environment(device: str = "auto") -> torch.device | None:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1): NCCL on GPUs, gloo on the CPU.

    Returns this rank's device (``cuda:LOCAL_RANK`` when CUDA is used), or None when not launched by
    torchrun with several processes.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def leave_process_group(wait_for_peers: bool = True) -> None:
    """Tear down the process group :func:`init_from_environment` joined (nothing without one).

    Call it when a rank is done: with ``wait_for_peers`` every rank first waits at a barrier until
    all have finished (rank 0 writes checkpoints and the summary after the others' last step). A
    rank that exits while its peers still hold their gloo connections aborts now and then
    ("terminate called without an active exception"), failing the whole torchrun. Pass False on an
    error path, where a peer may never arrive.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    if wait_for_peers and dist.get_world_size() > 1:
        dist.barrier()
    dist.destroy_process_group()


def rank_slice(size: int) -> slice:
    """This rank's rows of a global batch of ``size`` (``size`` divisible by the world size)."""
    world = world_size()
    per_rank = size // world
    return slice(rank() * per_rank, (rank() + 1) * per_rank)


def average_gradients(parameters: Iterable[nn.Parameter]) -> None:
    """Average the gradients of ``parameters`` over all ranks (after a backward pass).

    Works for any sequence of partial backward passes (D's and G's phases alternate): only
    parameters that received a gradient in this pass take part, in a fixed order, flattened into
    one all-reduce.
    """
    if not is_distributed():
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def all_reduce_mean(value: Tensor) -> Tensor:
    """The mean of ``value`` over all ranks (``value`` itself without a process group)."""
    if not is_distributed():
        return value
    value = value.detach().clone()
    dist.all_reduce(value)
    return value / world_size()


class _MeanOverRanks(torch.autograd.Function):
    """All-reduce mean whose backward all-reduces the gradient too (each rank's loss depends on every rank's input)."""

    @staticmethod
    def forward(ctx: Any, value: Tensor) -> Tensor:
        value = value.detach().clone()
        dist.all_reduce(value)
        return value / world_size()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        grad = grad.detach().clone()
        dist.all_reduce(grad)
        return grad / world_size()


def mean_over_ranks(value: Tensor) -> Tensor:
    """The mean of ``value`` over all ranks, differentiably: gradients of every rank's loss reach every rank's input.

    With the gradient averaging after each phase, a loss built on it has the gradients the same
    loss has in one process over the global batch. ``value`` itself without a process group.
    """
    if not is_distributed():
        return value
    return _MeanOverRanks.apply(value)
