"""Which fakes to keep: the k that D scores most realistic, within a rank or across all ranks."""

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["global_topk_mask", "topk_mask"]


def topk_mask(scores: Tensor, k: int) -> Tensor:
    """A 0/1 float mask ``[N]`` keeping the ``k`` highest scores (higher logit = more realistic).

    Every loss convention gancore offers (non-saturating, hinge) scores real images high, so the
    most realistic fakes are those with the highest D logits. Ties go to the lower index.
    """
    if scores.ndim != 1:
        raise ValueError(f"scores must be [N], got {list(scores.shape)}")
    if not 1 <= k <= scores.numel():
        raise ValueError(f"k must be in [1, {scores.numel()}], got {k}")
    order = torch.sort(scores.detach(), descending=True, stable=True).indices
    mask = torch.zeros_like(scores, dtype=torch.float32)
    mask[order[:k]] = 1.0
    return mask


def global_topk_mask(scores: Tensor, k_per_rank_fraction: float) -> Tensor:
    """Keep the top ``floor(fraction * N * world)`` scores (at least 1) of all ranks; return this rank's mask.

    Every rank gathers all scores, ranks them the same way and keeps the entries of its own slice,
    so the ranks together keep exactly the global top k. Without an initialised process group
    this is :func:`topk_mask` on the local batch.
    """
    from gancore_topk.schedule import kept_count

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return topk_mask(scores, kept_count(k_per_rank_fraction, scores.numel()))
    world, rank = dist.get_world_size(), dist.get_rank()
    gathered = [torch.empty_like(scores) for _ in range(world)]
    dist.all_gather(gathered, scores.detach().contiguous())
    everything = torch.cat(gathered)
    mask = topk_mask(everything, kept_count(k_per_rank_fraction, everything.numel()))
    n = scores.numel()
    return mask[rank * n : (rank + 1) * n]
