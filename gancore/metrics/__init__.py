"""Quality metrics of generated samples."""

from gancore.metrics.mixture import MixtureMetrics, mixture_metrics

__all__ = ["MixtureMetrics", "mixture_metrics"]
