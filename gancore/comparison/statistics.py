"""Paired comparisons over seeds: mean and spread, a bootstrap interval, a paired t-test, and the reading of both."""

import math
import random
import statistics as stats
from typing import Sequence

import attrs

__all__ = ["LOWER_IS_BETTER", "PairedDifference", "bootstrap_interval", "mean_std", "paired_difference", "paired_t_test"]

#: Metrics for which a smaller value is better (every other one: larger is better).
LOWER_IS_BETTER = frozenset({"fid", "kid", "kl_uniform", "memorisation", "intra_fid"})
#: The significance level of the reading, and the coverage of its interval (1 - ALPHA).
ALPHA = 0.05


def mean_std(values: Sequence[float]) -> str:
    """``mean ± std`` of the finite values (``n/a`` when none)."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return "n/a"
    spread = stats.stdev(finite) if len(finite) > 1 else 0.0
    return f"{stats.fmean(finite):.4g} ± {spread:.2g}"


def _betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b) (Lentz's continued fraction)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1) / (a + b + 2):
        return 1.0 - _betainc(b, a, 1.0 - x)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)) / a
    tiny = 1e-300
    f, c, d = 1.0, 1.0, 0.0
    for i in range(400):
        m = i // 2
        if i == 0:
            numerator = 1.0
        elif i % 2 == 0:
            numerator = (m * (b - m) * x) / ((a + 2 * m - 1) * (a + 2 * m))
        else:
            numerator = -((a + m) * (a + b + m) * x) / ((a + 2 * m) * (a + 2 * m + 1))
        d = 1.0 + numerator * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + numerator / (c if abs(c) > tiny else tiny)
        f *= c * d
        if abs(1.0 - c * d) < 1e-14:
            break
    return front * (f - 1.0)


def paired_t_test(differences: Sequence[float]) -> float:
    """The two-sided p-value of a paired t-test that the mean of ``differences`` is zero (nan for
    fewer than two; 1 or 0 when they do not vary)."""
    n = len(differences)
    if n < 2:
        return math.nan
    mean, sd = stats.fmean(differences), stats.stdev(differences)
    if sd == 0:
        return 1.0 if mean == 0 else 0.0
    t = mean / (sd / math.sqrt(n))
    df = n - 1
    return _betainc(df / 2, 0.5, df / (df + t * t))


def bootstrap_interval(differences: Sequence[float], resamples: int = 10000, seed: int = 0) -> tuple[float, float]:
    """The (1 - ALPHA) percentile bootstrap interval of the mean of ``differences`` (seeds resampled
    with replacement, a fixed seed so a report is reproducible)."""
    if not differences:
        return (math.nan, math.nan)
    rng = random.Random(seed)
    n = len(differences)
    means = sorted(stats.fmean(rng.choices(differences, k=n)) for _ in range(resamples))
    low = means[int(math.floor(ALPHA / 2 * (resamples - 1)))]
    high = means[int(math.ceil((1 - ALPHA / 2) * (resamples - 1)))]
    return (low, high)


@attrs.frozen
class PairedDifference:
    """A variant minus the baseline, seed by seed, for one metric, and what it says."""

    metric: str
    differences: tuple[float, ...]
    mean: float
    interval: tuple[float, float]
    p_value: float
    #: ``better``, ``worse`` or ``within noise`` (see :func:`paired_difference`).
    reading: str


def paired_difference(metric: str, baseline: Sequence[float], variant: Sequence[float]) -> PairedDifference:
    """Compare ``variant`` with ``baseline`` over the same seeds (the i-th value of each comes from
    seed i). The reading is ``better`` or ``worse`` when the paired t-test gives p < ALPHA *and* the
    bootstrap interval of the mean difference excludes zero; otherwise ``within noise``. Which
    direction is better depends on the metric (:data:`LOWER_IS_BETTER`)."""
    if len(baseline) != len(variant):
        raise ValueError(f"{metric}: {len(baseline)} baseline values but {len(variant)} variant values")
    differences = tuple(v - b for b, v in zip(baseline, variant) if math.isfinite(v - b))
    mean = stats.fmean(differences) if differences else math.nan
    interval = bootstrap_interval(differences)
    p = paired_t_test(differences)
    reading = "within noise"
    if differences and p < ALPHA and not (interval[0] <= 0.0 <= interval[1]):
        improved = (mean < 0) if metric in LOWER_IS_BETTER else (mean > 0)
        reading = "better" if improved else "worse"
    return PairedDifference(metric, differences, mean, interval, p, reading)
