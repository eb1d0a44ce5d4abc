"""Reconstruction distances of GLeaD: per-sample MSE, L1 or LPIPS."""

from typing import Callable

from torch import Tensor

from gancore.config import ConfigError

from gancore_glead.config import GLeaDConfig
from gancore_glead.lpips import ALEXNET_FILE, default_weights_path, load_lpips

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
    """The distance ``config.distance`` names, on ``device`` (LPIPS only from a local file:
    ``lpips_weights``, else :func:`~gancore_glead.lpips.default_weights_path`)."""
    if config.distance == "mse":
        return mse
    if config.distance == "l1":
        return l1
    if config.lpips_weights is not None:
        return load_lpips(config.lpips_weights, min_size=config.lpips_min_size).to(device)
    path = default_weights_path()
    if not path.is_file():
        raise ConfigError(
            "the run config",
            [
                f"plugins.glead.lpips_weights: distance = 'lpips' (the default, as in the official GLeaD code) needs "
                f"the LPIPS AlexNet weights as a local file, and {path} does not exist. Nothing "
                f"is downloaded at run time: get torchvision's {ALEXNET_FILE} and the lpips package's "
                "lpips/weights/v0.1/alex.pth, then run `gancore-glead-convert-lpips --alexnet "
                f"{ALEXNET_FILE} --lin alex.pth` (it writes that file), or set lpips_weights to a file it wrote; "
                "or choose distance = 'mse' or 'l1' (not the paper's distance)"
            ],
        )
    return load_lpips(path, min_size=config.lpips_min_size).to(device)
