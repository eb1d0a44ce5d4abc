"""FID, KID and improved precision/recall of two feature sets (torchmetrics for FID and KID)."""

import warnings

import torch
from torch import Tensor, nn

__all__ = ["METRICS", "compute_metrics", "fid", "kid", "kid_subset", "precision_recall"]

#: The metrics :func:`compute_metrics` knows, by the names the CLI and configs use.
METRICS: tuple[str, ...] = ("fid", "kid", "pr")


class _Precomputed(nn.Module):
    """The identity, as torchmetrics' ``feature`` module: we hand it features, not images."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: Tensor) -> Tensor:
        return features


def _check(real: Tensor, fake: Tensor) -> None:
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"expected features [N, D] of equal D, got {list(real.shape)} and {list(fake.shape)}")


def fid(real: Tensor, fake: Tensor) -> float:
    """Fréchet distance between Gaussians fitted to ``real`` and ``fake`` features ``[N, D]`` (float64)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    _check(real, fake)
    metric = FrechetInceptionDistance(feature=_Precomputed(real.shape[1]), reset_real_features=False)
    metric.set_dtype(torch.float64)
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    return float(metric.compute())


def kid_subset(n: int, subset_size: int = 1000) -> int:
    """The KID subset size for ``n`` samples: ``subset_size`` (torchmetrics' and the paper's 1000), or
    half the samples when there are no more than that, so that the subsets differ and the std means
    something (subsets of all ``n`` samples would all be the same set)."""
    return subset_size if n > subset_size else max(2, n // 2)


def kid(real: Tensor, fake: Tensor, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Kernel distance: the unbiased MMD² with the cubic polynomial kernel ``(x·y / d + 1)³``, in the
    features' own units (not multiplied by 10³ as some papers print it). Mean and std over
    ``subsets`` random subsets of ``min(subset_size, N)`` samples, drawn from ``seed`` (see
    :func:`kid_subset` for a size that keeps the subsets different)."""
    from torchmetrics.image.kid import KernelInceptionDistance

    _check(real, fake)
    size = min(subset_size, real.shape[0], fake.shape[0])
    with warnings.catch_warnings():  # it warns that it keeps all features: so do we, they are given
        warnings.simplefilter("ignore", UserWarning)
        metric = KernelInceptionDistance(feature=_Precomputed(real.shape[1]), subsets=subsets, subset_size=size)
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    state = torch.get_rng_state()
    torch.manual_seed(seed)
    try:
        mean, std = metric.compute()
    finally:
        torch.set_rng_state(state)
    return float(mean), float(std)


def _knn_radii(features: Tensor, k: int, batch: int) -> Tensor:
    """Distance of every feature to its k-th nearest neighbour in the set (itself excluded)."""
    radii = []
    for start in range(0, features.shape[0], batch):
        d = torch.cdist(features[start : start + batch], features)
        radii.append(d.kthvalue(k + 1, dim=1).values)  # k + 1: the point itself is at distance 0
    return torch.cat(radii)


def _coverage(points: Tensor, support: Tensor, radii: Tensor, batch: int) -> float:
    """Share of ``points`` inside at least one ball (``support``, ``radii``)."""
    inside = []
    for start in range(0, points.shape[0], batch):
        d = torch.cdist(points[start : start + batch], support)
        inside.append((d <= radii[None]).any(dim=1))
    return float(torch.cat(inside).float().mean())


def precision_recall(real: Tensor, fake: Tensor, k: int = 3, batch: int = 1000) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019): the share of fakes inside the real
    manifold (balls to each real feature's k-th nearest real neighbour), and of reals inside the
    fake manifold."""
    _check(real, fake)
    real, fake = real.double(), fake.double()
    precision = _coverage(fake, real, _knn_radii(real, k, batch), batch)
    recall = _coverage(real, fake, _knn_radii(fake, k, batch), batch)
    return precision, recall


def compute_metrics(
    real: Tensor, fake: Tensor, metrics: tuple[str, ...] | list[str] = METRICS, kid_subset_size: int = 1000
) -> dict[str, float]:
    """``{"Metrics/fid": ..., "Metrics/kid": ..., "Metrics/kid_std": ..., "Metrics/precision": ...,
    "Metrics/recall": ...}`` for the requested ``metrics``."""
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; known: {', '.join(METRICS)}")
    results: dict[str, float] = {}
    if "fid" in metrics:
        results["Metrics/fid"] = fid(real, fake)
    if "kid" in metrics:
        results["Metrics/kid"], results["Metrics/kid_std"] = kid(real, fake, subset_size=kid_subset_size)
    if "pr" in metrics:
        results["Metrics/precision"], results["Metrics/recall"] = precision_recall(real, fake)
    return results
