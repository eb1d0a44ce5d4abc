"""Quality metrics of generated samples: FID, KID, precision/recall over feature extractors, and 2-D mixture metrics."""

from gancore.metrics.evaluate import Evaluation, evaluate, reference_features
from gancore.metrics.extractors import ExtractorUnavailableError, FeatureExtractor
from gancore.metrics.generative import METRICS, compute_metrics, fid, kid, precision_recall
from gancore.metrics.mixture import MixtureMetrics, mixture_metrics

__all__ = [
    "METRICS",
    "Evaluation",
    "ExtractorUnavailableError",
    "FeatureExtractor",
    "MixtureMetrics",
    "compute_metrics",
    "evaluate",
    "fid",
    "kid",
    "mixture_metrics",
    "precision_recall",
    "reference_features",
]
