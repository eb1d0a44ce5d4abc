"""Fixtures of the stylegan2 backbone tests: a cond-driven adapter and a cond encoder."""

from typing import Callable, Mapping

import pytest
import torch
from torch import Tensor, nn


class ScaledBias(nn.Module):
    """Test adapter: ``x + cond[key] * bias`` with a learned per-channel bias."""

    def __init__(self, channels: int, key: str = "scale"):
        super().__init__()
        self.channels = channels
        self.key = key
        self.bias = nn.Parameter(torch.linspace(0.5, 1.0, channels))
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x: Tensor, cond: Mapping[str, Tensor]) -> Tensor:
        assert x.shape[1] == self.channels
        self.shapes.append(tuple(x.shape))
        return x + cond[self.key].view(-1, 1, 1, 1) * self.bias.view(1, -1, 1, 1)


class CountingEncoder(nn.Module):
    """Test cond encoder: ``2 * cond["scale"]``, counting its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, cond: Mapping[str, Tensor]) -> Tensor:
        self.calls += 1
        return 2.0 * cond["scale"]


@pytest.fixture
def adapter_factory() -> Callable[..., Callable[[str, int, int], nn.Module | None]]:
    """``make(key="scale", only=None)``: a factory giving a ScaledBias to every (or the named) layer."""

    def make(key: str = "scale", only: set[str] | None = None) -> Callable[[str, int, int], nn.Module | None]:
        def factory(name: str, channels: int, resolution: int) -> nn.Module | None:
            if only is not None and name not in only:
                return None
            return ScaledBias(channels, key)

        return factory

    return make


@pytest.fixture
def counting_encoder() -> CountingEncoder:
    """A fresh CountingEncoder."""
    return CountingEncoder()
