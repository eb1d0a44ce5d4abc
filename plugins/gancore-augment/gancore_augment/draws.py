"""Where the augmentations' random numbers come from: a torch generator, or a run's per-sample noise."""

from typing import Any, Protocol

import torch
from torch import Tensor

__all__ = ["Draws", "GeneratorDraws", "RunDraws"]


class Draws(Protocol):
    """Per-sample random numbers on the images' device; every shape starts with the batch size."""

    def uniform(self, *shape: int) -> Tensor:
        """Uniform in [0, 1)."""

    def normal(self, *shape: int) -> Tensor:
        """Standard normal."""


class GeneratorDraws:
    """Draws from a seeded ``torch.Generator`` (tests, standalone use)."""

    def __init__(self, generator: torch.Generator):
        self.generator = generator

    def uniform(self, *shape: int) -> Tensor:
        """Uniform in [0, 1) on the generator's device."""
        return torch.rand(shape, generator=self.generator, device=self.generator.device)

    def normal(self, *shape: int) -> Tensor:
        """Standard normal on the generator's device."""
        return torch.randn(shape, generator=self.generator, device=self.generator.device)


class RunDraws:
    """Draws from a run's per-sample noise (``run.rand`` / ``run.randn``).

    Checkpointed with the run, independent of the number of processes (the global batch is drawn
    and each rank keeps its rows), and replayed exactly in the accumulation scoring pass.
    """

    def __init__(self, run: Any):
        self.run = run

    def uniform(self, *shape: int) -> Tensor:
        """Uniform in [0, 1) from ``run.rand``."""
        return self.run.rand(*shape)

    def normal(self, *shape: int) -> Tensor:
        """Standard normal from ``run.randn``."""
        return self.run.randn(*shape)
