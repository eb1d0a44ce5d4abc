"""Helpers of the stylegan2 backbone tests: tiny configs, labels, cond dicts, noise strengths."""

import torch
from torch import Tensor, nn

from gancore.backbone import DataInfo
from gancore.testing import TINY_BACKBONES
from gancore_stylegan2.config import StyleGAN2Config

#: Tiny widths for CPU tests (gancore.testing's preset): channels 32 at 4-8 px, 16 at 16 px, 8 at 32 px.
TINY = {key: value for key, value in TINY_BACKBONES["stylegan2"]["backbone"].items() if key != "name"}


def make_config(resolution: int = 16, c_dim: int = 0, channels: int = 3, **kw) -> StyleGAN2Config:
    """A resolved tiny StyleGAN2Config."""
    info = DataInfo(name="tiny", shape=(channels, resolution, resolution), c_dim=c_dim)
    return StyleGAN2Config(**{**TINY, **kw}).with_data(info)


def labels(c_dim: int, n: int) -> Tensor:
    """One-hot labels ``[n, c_dim]`` cycling through the classes."""
    return torch.nn.functional.one_hot(torch.arange(n) % c_dim, c_dim).float()


def scale(n: int, value: float | None = None) -> dict[str, Tensor]:
    """A ``cond`` dict with a per-sample ``scale``."""
    return {"scale": torch.full((n,), value) if value is not None else torch.linspace(0.0, 1.0, n)}


def set_noise_strength(G: nn.Module, value: float = 0.5) -> None:
    """Make the noise inputs matter (their strengths start at zero)."""
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(value)
