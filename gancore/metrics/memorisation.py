"""D's memorisation of its training images: its mean score on them minus its mean score on images it never saw."""

from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:  # pragma: no cover
    from gancore.data import Dataset

__all__ = ["D_METRICS", "MEMORISATION", "memorisation"]

#: The metric's name in ``train.metrics`` and ``gancore eval --metrics``.
MEMORISATION = "memorisation"
#: Metrics that measure D rather than G's samples.
D_METRICS: tuple[str, ...] = (MEMORISATION,)


@torch.no_grad()
def _mean_score(D: nn.Module, dataset: "Dataset", count: int, device: torch.device, batch: int) -> float:
    total = 0.0
    for indices in torch.arange(count).split(batch):
        x, c = dataset.get(indices)
        scores = D(x.to(device), None if c is None else c.to(device)).float()
        assert scores.shape[0] == len(indices), f"D scored {scores.shape[0]} of {len(indices)} images"
        total += scores.sum().item()
    return total / count


def memorisation(
    D: nn.Module, trained_on: "Dataset", held_out: "Dataset", count: int, device: torch.device, batch: int = 250
) -> dict[str, float]:
    """D's mean raw score (logit) on the first ``count`` images of ``trained_on`` (those it trained
    on) and of ``held_out`` (images of the same distribution it never saw), un-augmented and in eval
    mode: ``{"Metrics/memorisation": score on trained_on - score on held_out}``.

    The ADA paper's sign of an overfitting D: the two scores part as D learns its training images
    by heart, while on a D that generalises they stay together. ``count`` is capped at the smaller
    data set's length.
    """
    count = min(count, len(trained_on), len(held_out))
    if count < 1:
        raise ValueError("memorisation needs at least one training and one held-out image")
    was_training = D.training
    D.eval()
    try:
        on_train = _mean_score(D, trained_on, count, device, batch)
        on_held_out = _mean_score(D, held_out, count, device, batch)
    finally:
        D.train(was_training)
    return {"Metrics/memorisation": round(on_train - on_held_out, 6)}
