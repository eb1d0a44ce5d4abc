"""Evaluating a generator against its data set: reference features (cached), generated features, metrics, protocol."""

import hashlib
import json
from pathlib import Path
from typing import Any, Callable

import attrs
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from gancore.download import cache_dir
from gancore.files import write_atomically
from gancore.metrics.generative import compute_metrics, kid_subset

__all__ = ["Evaluation", "cache_root", "default_cache_dir", "extract_features", "reference_features", "evaluate"]

def cache_root() -> Path:
    """gancore's cache folder: ``$GANCORE_CACHE``, or ``~/.cache/gancore``."""
    return cache_dir()


def default_cache_dir() -> Path:
    """``$GANCORE_CACHE/reference``, or ``~/.cache/gancore/reference``."""
    return cache_root() / "reference"


@torch.no_grad()
def extract_features(extractor: nn.Module, images: Tensor, batch: int = 250) -> Tensor:
    """Features ``[N, D]`` (float64, CPU) of images ``[N, C, H, W]`` in [-1, 1], in batches."""
    device = next(iter(extractor.parameters()), torch.empty(0)).device
    parts = [extractor(images[i : i + batch].to(device)).double().cpu() for i in range(0, images.shape[0], batch)]
    return torch.cat(parts)


def _reference_key(data_config: Any, shape: tuple[int, ...], extractor: str, count: int) -> str:
    fields = {k: v for k, v in attrs.asdict(data_config).items() if k != "path"}
    text = json.dumps({"data": fields, "shape": list(shape), "extractor": extractor, "count": count}, sort_keys=True)
    digest = hashlib.sha1(text.encode()).hexdigest()[:12]
    return f"{data_config.name}-{shape[-1]}-{extractor}-{count}-{digest}"


def reference_features(
    dataset: Any, data_config: Any, extractor_name: str, extractor: nn.Module, count: int,
    cache_dir: Path | None = None, batch: int = 250,
) -> tuple[Tensor, bool]:
    """Features of the first ``count`` items of ``dataset`` (all, if it has fewer), and whether they
    came from the cache. Cached per (data settings, extractor, count) under ``cache_dir``."""
    count = min(count, len(dataset))
    path = None
    if cache_dir is not None:
        key = _reference_key(data_config, tuple(dataset.info.shape), extractor_name, count)
        path = Path(cache_dir) / f"{key}.safetensors"
        if path.is_file():
            return load_file(str(path))["features"], True
    images = dataset.get(torch.arange(count))[0]
    features = extract_features(extractor, images, batch)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, lambda tmp: save_file({"features": features.contiguous()}, str(tmp)))
    return features, False


@attrs.frozen
class Evaluation:
    """Metrics of a generator, and the protocol that produced them."""

    metrics: dict[str, float]
    protocol: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        """``{"metrics": ..., "protocol": ...}``."""
        return {"metrics": self.metrics, "protocol": self.protocol}


def evaluate(
    sample: Callable[[int, int], Tensor],
    dataset: Any,
    data_config: Any,
    extractor_name: str,
    extractor: nn.Module,
    metrics: tuple[str, ...] | list[str] = ("fid", "kid", "pr"),
    n: int = 10000,
    seed: int = 0,
    cache_dir: Path | None = None,
    batch: int = 250,
) -> Evaluation:
    """Measure ``n`` samples (``sample(count, seed)`` returns images in [-1, 1]) against the first
    ``n`` items of ``dataset``, with the features of ``extractor``."""
    real, cached = reference_features(dataset, data_config, extractor_name, extractor, n, cache_dir, batch)
    fake_parts = []
    for start in range(0, n, 1000):
        fake_parts.append(extract_features(extractor, sample(min(1000, n - start), seed + start), batch))
    fake = torch.cat(fake_parts)
    results = compute_metrics(real, fake, tuple(metrics), kid_subset_size=kid_subset(min(real.shape[0], n)))
    protocol = {
        "extractor": extractor_name,
        "feature_dim": int(real.shape[1]),
        "fake_samples": n,
        "fake_seed": seed,
        "real_samples": int(real.shape[0]),
        "reference": (
            f"{data_config.name} {data_config.split} split, first {real.shape[0]} items, "
            f"resolution {dataset.info.shape[-1]}, fit {data_config.fit}"
        ),
        "kid": f"unbiased MMD², cubic polynomial kernel, raw (not x10³), 100 subsets of "
               f"{kid_subset(min(real.shape[0], n))}",
        "pr": "improved precision/recall, k = 3",
        "reference_cached": cached,
    }
    return Evaluation({k: round(v, 6) for k, v in results.items()}, protocol)
