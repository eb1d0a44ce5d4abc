"""The names of the class-conditional metrics and of the data sets with a shipped classifier (imported by the config, which must not load the metrics)."""

__all__ = ["CLASSIFIERS", "CONDITIONAL_METRICS"]

#: Metrics of a class-conditional generator, by the names ``train.metrics`` and ``gancore eval`` use.
CONDITIONAL_METRICS: tuple[str, ...] = ("class_accuracy", "intra_fid")
#: Data sets with a shipped classifier (for ``class_accuracy``).
CLASSIFIERS: tuple[str, ...] = ("fmnist",)
