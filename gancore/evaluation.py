"""Evaluation of a run's G_ema: the data set's own metrics, FID/KID/precision-recall, and the best checkpoint."""

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Sequence

from gancore.data import Dataset

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from gancore.backbone import DataInfo
    from gancore.config import DataConfig, RunConfig
    from gancore.metrics.evaluate import Evaluation

__all__ = ["EvaluatedRun", "evaluate", "keep_best", "measure", "measure_conditional", "reference_data", "split_config"]


class EvaluatedRun(Protocol):
    """What evaluation uses of a run (a :class:`gancore.Run` has all of it)."""

    config: "RunConfig"
    dataset: Dataset | None
    data_info: "DataInfo"
    device: "torch.device"
    #: The discriminator (read by the ``memorisation`` metric only).
    D: "torch.nn.Module"
    out_dir: Path | None
    #: Anything with ``feature_extractor(name, device)`` (the run's plugin manager).
    manager: Any
    extractor: "tuple[str, torch.nn.Module] | None"
    #: The data the metrics compare against, with its config, once built (see :func:`reference_data`).
    reference: "tuple[DataConfig, Dataset] | None"
    metrics: dict[str, float]
    metrics_protocol: dict[str, Any]
    best_fid: float | None

    def sample(self, n: int, seed: int = 0) -> "torch.Tensor":
        """``n`` samples of G_ema from the latents of ``seed``."""

    def save_checkpoint(self, name: str | None = None) -> Path:
        """Write a checkpoint (``name``: ``best``)."""

#: Offset of the seed of the evaluation latents from the run's seed.
EVAL_SEED_OFFSET = 0xE7A1


def evaluate(run: EvaluatedRun) -> dict[str, float]:
    """Measure ``train.eval_samples`` samples of G_ema: the data set's own metrics (if any) and
    ``train.metrics`` (FID, KID, precision/recall with ``train.metrics_extractor``).

    The results become ``run.metrics`` (and how they were measured ``run.metrics_protocol``).
    """
    if run.dataset is None:
        return {}
    from gancore.metrics.names import CONDITIONAL_METRICS
    from gancore.metrics.generative import METRICS
    from gancore.metrics.memorisation import D_METRICS, memorisation

    config = run.config.train
    seed = config.seed + EVAL_SEED_OFFSET
    results: dict[str, float] = {}
    if run.dataset.has_quality_metrics:
        results.update(run.dataset.quality_metrics(run.sample(config.eval_samples, seed=seed)) or {})
    of_samples = [m for m in config.metrics if m in METRICS]
    if of_samples and run.data_info.is_image:
        evaluation = measure(run, of_samples, config.eval_samples, seed)
        results.update(evaluation.metrics)
        run.metrics_protocol = evaluation.protocol
    conditional = [m for m in config.metrics if m in CONDITIONAL_METRICS]
    if conditional:
        figures, per_class = measure_conditional(run, conditional, config.eval_samples, seed)
        results.update(figures)
        run.metrics_protocol = {**run.metrics_protocol, **per_class}
    if any(m in D_METRICS for m in config.metrics):
        reference_config, held_out = reference_data(run)
        results.update(memorisation(run.D, run.dataset, held_out, config.eval_samples, run.device))
        run.metrics_protocol = {**run.metrics_protocol, "memorisation": (
            f"D's mean score on up to {config.eval_samples} of its training images minus on as many of the "
            f"{reference_config.split} split")}
    if results:
        run.metrics = dict(results)
    return results


def measure(
    run: EvaluatedRun,
    metrics: Sequence[str],
    n: int,
    seed: int = 0,
    extractor: str | None = None,
    dataset: Dataset | None = None,
    cache_dir: Path | None = None,
    data_config: "DataConfig | None" = None,
) -> "Evaluation":
    """FID, KID and/or precision/recall of ``n`` G_ema samples (latents of ``seed``) against the
    first ``n`` items of ``dataset`` (default: :func:`reference_data`), with the features of
    ``extractor`` (default: ``train.metrics_extractor``, else the data set's default). Reference
    features are cached in ``cache_dir`` (default: ``<run>/reference``, or the user cache folder),
    under ``data_config``, the settings ``dataset`` was built from (default: the run's ``[data]``)."""
    from gancore.metrics.evaluate import default_cache_dir, evaluate as evaluate_features

    if dataset is None:
        data_config, dataset = reference_data(run)
    data_config = data_config if data_config is not None else run.config.data
    name = _load_extractor(run, extractor)
    if cache_dir is None:
        cache_dir = run.out_dir / "reference" if run.out_dir is not None else default_cache_dir()
    return evaluate_features(
        lambda count, s: run.sample(count, seed=s), dataset, data_config, name, run.extractor[1],
        tuple(metrics), n, seed, cache_dir,
    )


def _load_extractor(run: EvaluatedRun, extractor: str | None) -> str:
    """Load the feature extractor ``extractor`` (default: ``train.metrics_extractor``, else the data
    set's) into ``run.extractor`` unless it is there; its name."""
    from gancore.metrics.extractors import default_extractor

    name = extractor or run.config.train.metrics_extractor or default_extractor(run.config.data.name)
    if run.extractor is None or run.extractor[0] != name:
        run.extractor = (name, run.manager.feature_extractor(name, run.device))
    return name


def measure_conditional(
    run: EvaluatedRun, metrics: Sequence[str], n: int, seed: int = 0, extractor: str | None = None,
    reference: Dataset | None = None,
) -> tuple[dict[str, float], dict[str, Any]]:
    """``class_accuracy`` and/or ``intra_fid`` of G_ema with ``n // c_dim`` samples per class
    (latents of ``seed``): the means over classes as ``Metrics/...``, and each class's value with
    how it was measured (for the protocol). ``reference`` (default: :func:`reference_data`) must
    return labels; ``extractor`` as in :func:`measure`."""
    from gancore.metrics.conditional import class_accuracy, intra_fid, load_classifier

    c_dim = run.data_info.c_dim
    if c_dim == 0:
        raise ValueError(f"{', '.join(metrics)}: the model is unconditional (no classes)")
    per_class = max(2, n // c_dim)

    def sample(labels: "torch.Tensor", s: int) -> "torch.Tensor":
        # Classes mixed in a fixed order, then put back: with batch statistics (train.sample_bn) a
        # chunk of one class only would be normalised unlike the samples FID sees.
        import torch

        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(s))
        images = run.sample(len(labels), seed=s, c=labels[order])
        return images[torch.argsort(order)]

    figures: dict[str, float] = {}
    protocol: dict[str, Any] = {}
    if "class_accuracy" in metrics:
        mean, each = class_accuracy(sample, load_classifier(run.config.data.name, run.device), c_dim, per_class, seed)
        figures["Metrics/class_accuracy"] = round(mean, 6)
        protocol["class_accuracy"] = {"per_class": each, "samples_per_class": per_class,
                                      "classifier": f"the shipped {run.config.data.name} classifier"}
    if "intra_fid" in metrics:
        name = _load_extractor(run, extractor)
        reference = reference if reference is not None else reference_data(run)[1]
        mean, each = intra_fid(sample, run.extractor[1], reference, c_dim, per_class, seed)
        figures["Metrics/intra_fid"] = round(mean, 6)
        protocol["intra_fid"] = {"per_class": each, "samples_per_class": per_class, "extractor": name,
                                 "reference": f"up to {per_class} items of each class, in data set order"}
    return figures, protocol


def split_config(data: "DataConfig", split: str) -> "DataConfig":
    """The ``[data]`` settings of split ``split`` of the same data set, whole: ``max_items`` and
    ``xflip`` apply to what a run trains on, not to what it is measured against."""
    import attrs

    return attrs.evolve(data, split=split, max_items=None, xflip=False)


def reference_data(run: EvaluatedRun) -> "tuple[DataConfig, Dataset]":
    """The data the run's metrics compare against, with its config: the whole ``train.metrics_split``
    split of the data set when one is set (built once, kept in ``run.reference``), else the
    training data as configured. ValueError when the run has no data set."""
    from gancore.data import build_dataset

    split = run.config.train.metrics_split
    if split is None:
        if run.dataset is None:
            raise ValueError("this run has no data set to measure against; pass one")
        return run.config.data, run.dataset
    if run.reference is None:
        config = split_config(run.config.data, split)
        run.reference = (config, build_dataset(config))
    return run.reference


def keep_best(run: EvaluatedRun) -> None:
    """Save ``checkpoints/best`` when the newest FID is the lowest so far."""
    fid = run.metrics.get("Metrics/fid")
    if fid is None or (run.best_fid is not None and fid >= run.best_fid):
        return
    run.best_fid = fid
    if run.out_dir is not None:
        run.save_checkpoint(name="best")
