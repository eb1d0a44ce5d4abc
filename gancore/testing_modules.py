"""Small modules for tests of the backbone protocol: a cond-driven adapter and a counting cond encoder."""

from typing import Mapping

import torch
from torch import Tensor, nn

__all__ = ["CountingEncoder", "ScaledBias"]


class ScaledBias(nn.Module):
    """Test adapter: ``x + cond[key] * bias`` with a learned per-channel bias; records the shapes it saw."""

    def __init__(self, channels: int, key: str = "scale"):
        super().__init__()
        self.channels = channels
        self.key = key
        self.bias = nn.Parameter(torch.linspace(0.5, 1.0, channels))
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x: Tensor, cond: Mapping[str, Tensor]) -> Tensor:
        """Add the per-sample ``cond[key]`` times the bias to every channel."""
        assert x.shape[1] == self.channels
        self.shapes.append(tuple(x.shape))
        extra = [1] * (x.ndim - 2)
        return x + cond[self.key].view(-1, 1, *extra) * self.bias.view(1, -1, *extra)


class CountingEncoder(nn.Module):
    """Test cond encoder: ``2 * cond["scale"]``, counting its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, cond: Mapping[str, Tensor]) -> Tensor:
        """Double ``cond["scale"]``."""
        self.calls += 1
        return 2.0 * cond["scale"]
