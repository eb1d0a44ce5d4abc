"""The Dataset base class, DataError, and the stateless, resumable batch sampler."""

import abc
import functools
from typing import Any

import torch
from torch import Tensor

from gancore.backbone import DataInfo

__all__ = [
    "DataError", "Dataset", "DatasetView", "EightBitImages", "FirstItems", "XFlipped", "as_images", "batch_indices",
    "epoch_of", "index_tensor", "mix_seed", "one_hot",
]

_MASK64 = (1 << 64) - 1


class DataError(ValueError):
    """A data set that cannot be built or read; the message names the file or config key at fault."""


class Dataset(abc.ABC):
    """A finite, indexable data set that hands out whole batches as float32 CPU tensors.

    Subclasses set ``info`` and implement ``__len__`` and ``get``.
    """

    info: DataInfo

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of items."""

    @abc.abstractmethod
    def get(self, indices: Tensor) -> tuple[Tensor, Tensor | None]:
        """Items ``indices`` as ``(x, c)``.

        ``x`` is ``[N, C, H, W]`` in [-1, 1] for images or ``[N, D]`` for points, float32 on the
        CPU; ``c`` is the one-hot float32 label ``[N, info.c_dim]``, or None when ``c_dim == 0``.
        """

    #: Whether :meth:`quality_metrics` measures anything (if not, no samples are drawn for it).
    has_quality_metrics: bool = False
    #: Whether :meth:`get` reads and decodes files (work for background workers, ``train.data_workers``).
    reads_files: bool = False
    #: Whether :meth:`get_levels` gives the images as 8-bit levels (decoded files): workers then
    #: ship the bytes, a quarter of the floats, and the conversion runs where training does.
    uint8_levels: bool = False

    def get_levels(self, indices: Tensor) -> tuple[Tensor, Tensor | None]:
        """Items ``indices`` as ``(u, c)`` with ``u`` uint8 ``[N, C, H, W]`` such that :meth:`get`'s
        images are ``u.float() * 2 / 255 - 1`` (:func:`~gancore.data.loader.as_images`). Only data
        sets with ``uint8_levels`` have it."""
        raise TypeError(f"{type(self).__name__} has no 8-bit images (uint8_levels is False): use get()")

    def quality_metrics(self, samples: Tensor) -> dict[str, float] | None:
        """Metrics of generated ``samples`` that this data set can measure (None: none).

        Keys are stats names (``Metrics/...``); the trainer logs them at every evaluation.
        """
        return None

    def describe(self) -> str:
        """One line for logs: name, size and shape."""
        shape = "x".join(str(s) for s in self.info.shape)
        labels = f", {self.info.c_dim} classes" if self.info.c_dim else ""
        return f"{self.info.name}: {len(self)} items of shape {shape}{labels}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


def as_images(x: Tensor) -> Tensor:
    """Images of 8-bit levels as ``u * 2 / 255 - 1`` in float32 (the one conversion every data set
    with ``uint8_levels`` uses, so results are bit for bit the same wherever it runs); floats pass."""
    if x.dtype != torch.uint8:
        return x
    return x.to(torch.float32).mul_(2.0 / 255.0).sub_(1.0)


class EightBitImages(Dataset):
    """A data set of decoded 8-bit images: :meth:`get` is :meth:`get_levels` scaled to [-1, 1]."""

    uint8_levels = True

    def get(self, indices: Tensor) -> tuple[Tensor, Tensor | None]:
        """Images ``[N, C, R, R]`` in [-1, 1] and, with labels, one-hot classes."""
        levels, c = self.get_levels(indices)
        return as_images(levels), c


class DatasetView(Dataset):
    """A data set seen through a change of its items (a subset, mirror images): same info and metrics."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset
        self.info = dataset.info
        self.has_quality_metrics = dataset.has_quality_metrics
        self.reads_files = dataset.reads_files
        self.uint8_levels = dataset.uint8_levels

    def quality_metrics(self, samples: Tensor) -> dict[str, float] | None:
        """The underlying data set's own metrics."""
        return self.dataset.quality_metrics(samples)


class FirstItems(DatasetView):
    """The first ``count`` items of another data set (``data.max_items``)."""

    def __init__(self, dataset: Dataset, count: int):
        if not 0 < count <= len(dataset):
            raise DataError(f"data.max_items: must be in [1, {len(dataset)}], got {count}")
        super().__init__(dataset)
        self.count = count

    def __len__(self) -> int:
        return self.count

    def get(self, indices: Tensor) -> tuple[Tensor, Tensor | None]:
        """Items of the underlying data set (``indices`` must be below ``count``)."""
        indices = index_tensor(indices, self.count)
        return self.dataset.get(indices)

    def get_levels(self, indices: Tensor) -> tuple[Tensor, Tensor | None]:
        """The underlying data set's 8-bit items (``indices`` must be below ``count``)."""
        return self.dataset.get_levels(index_tensor(indices, self.count))

    def describe(self) -> str:
        """The underlying data set's line, with the limit."""
        return f"{self.dataset.describe()}, first {self.count} used"


class XFlipped(DatasetView):
    """An image data set doubled with its mirror images (``data.xflip``, NVIDIA's ``--mirror``).

    Item ``i`` is item ``i`` of the data set, item ``len + i`` the same image flipped left to right.
    """

    def __init__(self, dataset: Dataset):
        if not dataset.info.is_image:
            raise DataError(f"data.xflip: {dataset.describe()} holds points, not images; x-flips need images")
        super().__init__(dataset)

    def __len__(self) -> int:
        return 2 * len(self.dataset)

    def get(self, indices: Tensor) -> tuple[Tensor, Tensor | None]:
        """Items of the underlying data set; those from the second half flipped along the width."""
        return self._flipped(self.dataset.get, indices)

    def get_levels(self, indices: Tensor) -> tuple[Tensor, Tensor | None]:
        """The 8-bit items, flipped as :meth:`get` flips them."""
        return self._flipped(self.dataset.get_levels, indices)

    def _flipped(self, read: Any, indices: Tensor) -> tuple[Tensor, Tensor | None]:
        indices = index_tensor(indices, len(self))
        n = len(self.dataset)
        images, labels = read(indices % n)
        flip = (indices >= n).to(images.device).view(-1, 1, 1, 1)
        return torch.where(flip, images.flip(3), images), labels

    def describe(self) -> str:
        """The underlying data set's line, with the mirror images."""
        return f"{self.dataset.describe()}, doubled with x-flips"


def mix_seed(*parts: int) -> int:
    """Mix integers (a seed, an epoch, a purpose tag) into one well-spread 64-bit seed (splitmix64)."""
    state = 0x9E3779B97F4A7C15
    for part in parts:
        state = (state ^ (int(part) & _MASK64)) & _MASK64
        state = (state + 0x9E3779B97F4A7C15) & _MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        state = z ^ (z >> 31)
    return state


def index_tensor(indices: Any, length: int) -> Tensor:
    """``indices`` as a 1-D int64 CPU tensor, checked to lie in ``[0, length)`` (IndexError if not)."""
    idx = torch.as_tensor(indices, dtype=torch.long, device="cpu").reshape(-1)
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= length):
        raise IndexError(f"indices must lie in [0, {length}), got min {int(idx.min())}, max {int(idx.max())}")
    return idx


def one_hot(labels: Tensor, c_dim: int) -> Tensor:
    """Integer class labels ``[N]`` as one-hot float32 ``[N, c_dim]``."""
    return torch.nn.functional.one_hot(labels.long(), c_dim).to(torch.float32)


@functools.lru_cache(maxsize=4)
def _epoch_permutation(num_items: int, seed: int, epoch: int) -> Tensor:
    generator = torch.Generator().manual_seed(mix_seed(seed, epoch))
    return torch.randperm(num_items, generator=generator)


def epoch_of(num_items: int, batch: int, step: int) -> int:
    """The epoch in which batch ``step`` starts: ``(step * batch) // num_items``."""
    return (step * batch) // num_items


def batch_indices(num_items: int, batch: int, step: int, seed: int) -> Tensor:
    """The item indices of batch ``step``, as a LongTensor ``[batch]``.

    The index stream is the concatenation of one permutation of ``range(num_items)`` per epoch;
    epoch ``e``'s permutation comes from ``torch.Generator().manual_seed(mix_seed(seed, e))``.
    Batch ``step`` is stream positions ``[step * batch, (step + 1) * batch)``, so it may span two
    (or, when ``batch > num_items``, more) epochs. Stateless: resuming at any step needs no state.
    """
    if num_items <= 0:
        raise ValueError(f"num_items must be > 0, got {num_items}")
    if batch <= 0:
        raise ValueError(f"batch must be > 0, got {batch}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    start = step * batch
    stop = start + batch
    pieces = []
    pos = start
    while pos < stop:
        epoch, offset = divmod(pos, num_items)
        take = min(num_items - offset, stop - pos)
        pieces.append(_epoch_permutation(num_items, seed, epoch)[offset : offset + take])
        pos += take
    return pieces[0].clone() if len(pieces) == 1 else torch.cat(pieces)
