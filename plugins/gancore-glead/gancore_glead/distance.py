"""Reconstruction distances of GLeaD: per-sample MSE, L1 or LPIPS."""

from typing import Callable

from torch import Tensor

from gancore.config import ConfigError

from gancore_glead.config import GLeaDConfig
from gancore_glead.lpips import load_lpips

__all__ = ["Distance", "make_distance"]

#: ``distance(reconstruction, target) -> [N]``.
Distance = Callable[[Tensor, Tensor], Tensor]


def mse(a: Tensor, b: Tensor) -> Tensor:
    """Mean squared error per sample."""
    return (a - b).square().flatten(1).mean(dim=1)


def l1(a: Tensor, b: Tensor) -> Tensor:
    """Mean absolute error per sample."""
    return (a - b).abs().flatten(1).mean(dim=1)


def make_distance(config: GLeaDConfig, device) -> Distance:
    """The distance ``config.distance`` names, on ``device`` (LPIPS only from a local file)."""
    if config.distance == "mse":
        return mse
    if config.distance == "l1":
        return l1
    if config.lpips_weights is None:
        raise ConfigError(
            "the run config",
            [
                "plugins.glead.lpips_weights: distance = 'lpips' needs the LPIPS AlexNet weights as a local "
                "safetensors file (nothing is downloaded at run time; make one with "
                "gancore-glead-convert-lpips), or choose distance = 'mse' or 'l1'"
            ],
        )
    return load_lpips(config.lpips_weights, min_size=config.lpips_min_size).to(device)
