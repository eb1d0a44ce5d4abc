"""The real batches of a run, step after step, decoded ahead in background worker processes.

Batch ``step`` holds the same items as without workers (:func:`~gancore.data.base.batch_indices`
of the step and seed, this process's slice), so a run gives the same results with any number of
workers and resumes exactly. Workers pay off for data sets that read and decode files
(``Dataset.reads_files``); in-memory data sets are served in the training process.
"""

import itertools
import os
from typing import Iterator

import torch
from torch import Tensor

from gancore.data.base import DataError, Dataset, as_images, batch_indices

__all__ = ["BatchStream", "as_images", "default_workers"]

#: How many batches each worker decodes ahead.
PREFETCH = 2


def default_workers(dataset: Dataset) -> int:
    """Workers for ``train.data_workers = "auto"``: none for in-memory data, else up to 3 (NVIDIA's
    loader uses 3), leaving one core to the training process."""
    if not getattr(dataset, "reads_files", False):
        return 0
    return max(1, min(3, (os.cpu_count() or 1) - 1))


class _StepBatches(torch.utils.data.Dataset):
    """Item ``step`` is the real batch of that step (what the trainer would read itself); images of
    8-bit levels travel as bytes (:func:`as_images` restores them)."""

    def __init__(self, dataset: Dataset, batch: int, seed: int, rows: slice):
        self.dataset = dataset
        self.batch = batch
        self.seed = seed
        self.rows = rows

    def __getitem__(self, step: int) -> "tuple[Tensor, Tensor | None] | _Failure":
        indices = batch_indices(len(self.dataset), self.batch, step, self.seed)[self.rows]
        try:
            return self.dataset.get_levels(indices) if self.dataset.uint8_levels else self.dataset.get(indices)
        except DataError as exc:  # sent back as a value: the loader would wrap it in a worker traceback
            return _Failure(str(exc))


class _Failure:
    """A data set's error in a worker, carried to the training process to be raised there as it was."""

    def __init__(self, message: str):
        self.message = message


class _StepsFrom(torch.utils.data.Sampler):
    """Steps ``start, start + 1, ...`` (without end: the stream is read as far as training goes)."""

    def __init__(self, start: int):
        self.start = start

    def __iter__(self) -> Iterator[int]:
        return itertools.count(self.start)


class BatchStream:
    """Real batches by step, ``workers`` processes decoding up to ``workers * 2`` batches ahead.

    :meth:`get` is called with consecutive steps; asked for another step (a test, a replay), the
    stream starts again there. ``pin_memory`` pins the batches for asynchronous copies to a GPU.
    """

    def __init__(self, dataset: Dataset, batch: int, seed: int, rows: slice, workers: int, pin_memory: bool = False):
        if workers < 1:
            raise ValueError(f"a BatchStream needs at least one worker, got {workers}")
        self.source = _StepBatches(dataset, batch, seed, rows)
        self.workers = workers
        self.pin_memory = pin_memory
        self._iterator: Iterator[tuple[Tensor, Tensor | None]] | None = None
        self._next_step: int | None = None

    def _start(self, step: int) -> None:
        self.close()
        loader = torch.utils.data.DataLoader(
            self.source, batch_size=None, sampler=_StepsFrom(step), num_workers=self.workers,
            pin_memory=self.pin_memory, prefetch_factor=PREFETCH, persistent_workers=False,
        )
        self._iterator = iter(loader)
        self._next_step = step

    def get(self, step: int) -> tuple[Tensor, Tensor | None]:
        """The real batch of ``step`` ``(x, c)``, as :class:`_StepBatches` gives it (8-bit images as
        bytes: pass ``x`` through :func:`as_images`, after the copy to the GPU)."""
        if self._iterator is None or step != self._next_step:
            self._start(step)
        assert self._iterator is not None
        batch = next(self._iterator)
        self._next_step = step + 1
        if isinstance(batch, _Failure):
            self.close()
            raise DataError(batch.message)
        return batch

    def close(self) -> None:
        """Stop the workers (they are started again on the next :meth:`get`)."""
        iterator, self._iterator = self._iterator, None
        shutdown = getattr(iterator, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
