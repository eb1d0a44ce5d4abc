"""Metrics for samples of a 2-D Gaussian mixture: modes covered, high-quality share, KL from uniform."""

import math

import attrs
import torch
from torch import Tensor

__all__ = ["COVERED_SHARE", "HIGH_QUALITY_STDS", "MixtureMetrics", "mixture_metrics"]

#: A sample is high quality when it lies within this many standard deviations of its nearest mode.
HIGH_QUALITY_STDS = 4.0
#: A mode is covered when it holds at least this fraction of the samples an even split over the
#: modes would give it (N / M): 0.2 * 10,000 / 25 = 80 high-quality samples at the usual 10k.
COVERED_SHARE = 0.2


@attrs.frozen(kw_only=True)
class MixtureMetrics:
    """The mode-coverage metrics of the top-k paper's 2-D analysis."""

    #: Modes holding at least ``COVERED_SHARE`` of an even split of the samples, as high-quality
    #: samples (a stray sample does not cover a mode).
    modes_covered: int
    #: Modes with at least one high-quality sample: the lenient count of the published toy code
    #: (PacGAN's ``MetricLogger``, the top-k reproductions), for comparison with published tables.
    modes_hit: int
    #: Number of modes of the mixture.
    modes_total: int
    #: Share of samples within ``HIGH_QUALITY_STDS`` std of their nearest mode.
    high_quality: float
    #: KL divergence of the histogram of high-quality samples over modes from the uniform
    #: distribution (0 = all modes equally covered; log(modes) = one mode). NaN without any
    #: high-quality sample.
    kl_uniform: float
    #: Number of samples measured.
    samples: int

    def as_stats(self, prefix: str = "Metrics/") -> dict[str, float]:
        """The metrics as stats entries (``Metrics/modes_covered``, ...)."""
        return {
            f"{prefix}modes_covered": float(self.modes_covered),
            f"{prefix}modes_hit": float(self.modes_hit),
            f"{prefix}high_quality": self.high_quality,
            f"{prefix}kl_uniform": self.kl_uniform,
        }


def mixture_metrics(samples: Tensor, centers: Tensor, std: float) -> MixtureMetrics:
    """Measure ``samples`` ``[N, D]`` against a mixture with ``centers`` ``[M, D]`` and ``std``.

    Each sample is assigned to its nearest centre; it is high quality when that distance is below
    ``HIGH_QUALITY_STDS * std``. Non-finite samples count as low quality. A mode is covered when it
    holds at least ``max(1, COVERED_SHARE * N / M)`` high-quality samples, and hit when it holds one.
    """
    if samples.ndim != 2 or samples.shape[1] != centers.shape[1]:
        raise ValueError(f"samples must be [N, {centers.shape[1]}], got {list(samples.shape)}")
    samples = samples.detach().to(torch.float64).cpu()
    centers = centers.detach().to(torch.float64).cpu()
    finite = torch.isfinite(samples).all(dim=1)
    distance, nearest = torch.cdist(samples[finite], centers).min(dim=1)
    good = distance < HIGH_QUALITY_STDS * std
    counts = torch.bincount(nearest[good], minlength=len(centers)).to(torch.float64)
    total = counts.sum()
    if total > 0:
        p = counts / total
        nonzero = p > 0
        kl = float((p[nonzero] * torch.log(p[nonzero] * len(centers))).sum())
    else:
        kl = math.nan
    return MixtureMetrics(
        modes_covered=int((counts >= max(1.0, COVERED_SHARE * len(samples) / len(centers))).sum()),
        modes_hit=int((counts > 0).sum()),
        modes_total=len(centers),
        high_quality=float(good.sum()) / len(samples),
        kl_uniform=kl,
        samples=len(samples),
    )
