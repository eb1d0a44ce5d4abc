"""Reconstruction distances of GLeaD: per-sample MSE, L1 or LPIPS."""

from typing import Callable

from torch import Tensor

from gancore.config import ConfigError
from gancore.download import DownloadError

from gancore_glead.config import GLeaDConfig
from gancore_glead.lpips import ALEXNET_FILE, ALEXNET_URL, LIN_URL, default_weights_path, fetch_default_weights, load_lpips

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
    """The distance ``config.distance`` names, on ``device`` (LPIPS from ``lpips_weights``, else
    from :func:`~gancore_glead.lpips.default_weights_path`, fetched and converted on first use)."""
    if config.distance == "mse":
        return mse
    if config.distance == "l1":
        return l1
    if config.lpips_weights is not None:
        return load_lpips(config.lpips_weights, min_size=config.lpips_min_size).to(device)
    try:
        path = fetch_default_weights()
    except DownloadError as exc:
        raise ConfigError(
            "the run config",
            [
                f"plugins.glead.lpips_weights: distance = 'lpips' (the default, as in the official GLeaD code) needs "
                f"the LPIPS AlexNet weights, and {default_weights_path()} does not exist; fetching them failed: {exc}. "
                f"By hand: get torchvision's {ALEXNET_FILE} ({ALEXNET_URL}) and the lpips package's "
                f"lpips/weights/v0.1/alex.pth ({LIN_URL}), then run `gancore-glead-convert-lpips --alexnet "
                f"{ALEXNET_FILE} --lin alex.pth` (it writes that file), or set lpips_weights to a file it wrote; "
                "or choose distance = 'mse' or 'l1' (not the paper's distance)"
            ],
        ) from None
    return load_lpips(path, min_size=config.lpips_min_size).to(device)
