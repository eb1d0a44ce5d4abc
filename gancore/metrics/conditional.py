"""Class-conditional metrics: a classifier's accuracy on each class's samples, and FID within each class (intra-FID)."""

import math
from typing import TYPE_CHECKING, Callable

import torch
from torch import Tensor, nn

from gancore.metrics.evaluate import extract_features
from gancore.metrics.generative import fid
from gancore.metrics.names import CLASSIFIERS, CONDITIONAL_METRICS

if TYPE_CHECKING:  # pragma: no cover
    from gancore.data import Dataset

__all__ = ["CLASSIFIERS", "CONDITIONAL_METRICS", "class_accuracy", "class_labels", "grid_classes", "intra_fid",
           "load_classifier"]


#: ``sample(labels, seed) -> images``: the generator's samples for one-hot ``labels`` ``[N, c_dim]``.
Sampler = Callable[[Tensor, int], Tensor]


def class_labels(c_dim: int, per_class: int, classes: list[int] | None = None) -> Tensor:
    """One-hot labels ``[len(classes) * per_class, c_dim]``, class by class (``classes``: all by default)."""
    classes = list(range(c_dim)) if classes is None else classes
    bad = [k for k in classes if not 0 <= k < c_dim]
    if bad:
        raise ValueError(f"classes {bad} out of range: the model has {c_dim} classes (0 to {c_dim - 1})")
    return torch.nn.functional.one_hot(torch.tensor(classes).repeat_interleave(per_class), c_dim).float()


def grid_classes(c_dim: int, n: int) -> tuple[list[int], int]:
    """The classes a grid of about ``n`` samples shows, one row each, and the samples per row: every
    class when there are no more than ``n``, else ``sqrt(n)`` classes spread evenly over them."""
    if c_dim <= n:
        return list(range(c_dim)), max(1, n // c_dim)
    rows = max(1, math.isqrt(n))
    return sorted({i * c_dim // rows for i in range(rows)}), max(1, n // rows)


def load_classifier(data_name: str, device: torch.device | str = "cpu") -> nn.Module:
    """The shipped classifier of data set ``data_name`` (logits ``[N, classes]`` of images in [-1, 1])."""
    if data_name != "fmnist":
        raise ValueError(f"class_accuracy: no classifier ships for data set {data_name!r} (only for "
                         f"{', '.join(CLASSIFIERS)})")
    from gancore.metrics.fmnist_cnn import load_fmnist_cnn

    return load_fmnist_cnn(device=device)


@torch.no_grad()
def class_accuracy(sample: Sampler, classifier: nn.Module, c_dim: int, per_class: int, seed: int = 0,
                   batch: int = 250) -> tuple[float, list[float]]:
    """The share of ``per_class`` samples of each class that ``classifier`` assigns to the class
    they were drawn for: the mean over classes, and each class's."""
    labels = class_labels(c_dim, per_class)
    images = sample(labels, seed)
    device = next(classifier.parameters()).device
    predicted = torch.cat([classifier(images[i : i + batch].to(device)).argmax(1).cpu()
                           for i in range(0, len(images), batch)])
    correct = (predicted == labels.argmax(1)).float().view(c_dim, per_class).mean(1)
    return float(correct.mean()), [round(float(v), 6) for v in correct]


def intra_fid(sample: Sampler, extractor: nn.Module, reference: "Dataset", c_dim: int, per_class: int,
              seed: int = 0) -> tuple[float, list[float]]:
    """FID between ``per_class`` samples of each class and up to ``per_class`` reference items of
    that class (``reference`` must return labels); the mean over classes, and each class's."""
    labels = class_labels(c_dim, per_class)
    fake = extract_features(extractor, sample(labels, seed)).view(c_dim, per_class, -1)
    real_by_class: list[list[Tensor]] = [[] for _ in range(c_dim)]
    for indices in torch.arange(len(reference)).split(1000):
        if all(sum(len(p) for p in parts) >= per_class for parts in real_by_class):
            break
        images, c = reference.get(indices)
        if c is None:
            raise ValueError("intra_fid needs the reference set's labels (data.labels = true)")
        for k in range(c_dim):
            real_by_class[k].append(images[c.argmax(1) == k])
    values = []
    for k in range(c_dim):
        real = torch.cat(real_by_class[k])[:per_class]
        if len(real) < 2:
            raise ValueError(f"intra_fid: the reference set holds {len(real)} image(s) of class {k}; it needs 2 or more")
        values.append(fid(extract_features(extractor, real), fake[k]))
    return float(sum(values) / c_dim), [round(v, 6) for v in values]
