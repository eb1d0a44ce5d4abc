"""Data sets: 2-D mixtures, synthetic images, image folders, Fashion-MNIST and Hugging Face data sets, plus the batch sampler."""

from typing import Callable

from gancore.backbone import DataInfo
from gancore.config import DATASET_NAMES, DataConfig
from gancore.data.base import DataError, Dataset, FirstItems, XFlipped, batch_indices, epoch_of
from gancore.data.fmnist import FashionMNIST
from gancore.data.folder import FolderDataset
from gancore.data.huggingface import HuggingFaceDataset
from gancore.data.mixtures import mog25, ring8
from gancore.data.synthetic import SyntheticImages

__all__ = ["DATASET_NAMES", "DataError", "Dataset", "batch_indices", "build_dataset", "declared_info", "epoch_of"]

_BUILDERS: dict[str, Callable[[DataConfig], Dataset]] = {
    "mog25": mog25,
    "ring8": ring8,
    "synthetic-images": SyntheticImages.from_config,
    "folder": FolderDataset.from_config,
    "fmnist": FashionMNIST.from_config,
    "huggingface": HuggingFaceDataset.from_config,
}


def build_dataset(config: DataConfig) -> Dataset:
    """The data set that ``config`` (the ``[data]`` table) describes; DataError if it cannot be built.

    With ``max_items`` only the first that many items are used (training on limited data); with
    ``xflip`` those are doubled with their mirror images.
    """
    builder = _BUILDERS.get(config.name)
    if builder is None:
        raise DataError(f"data.name: unknown data set {config.name!r}; known: {', '.join(DATASET_NAMES)}")
    dataset = builder(config)
    if config.labels and config.num_classes is not None and dataset.info.c_dim != config.num_classes:
        raise DataError(f"data.num_classes: {config.num_classes} declared, but {dataset.describe()} has "
                        f"{dataset.info.c_dim} classes")
    if config.max_items is not None:
        if config.max_items > len(dataset):
            raise DataError(f"data.max_items: {config.max_items} exceeds the {len(dataset)} items of {dataset.describe()}")
        dataset = FirstItems(dataset, config.max_items)
    return XFlipped(dataset) if config.xflip else dataset


def declared_info(config: DataConfig) -> DataInfo | None:
    """What the ``[data]`` table itself says of an image data set's shape, without opening it.

    ``(channels, resolution, resolution)`` (and ``num_classes`` with labels) when they are set,
    else None (the shape or the label count is known only from the files).
    """
    if config.resolution is None or config.channels is None or (config.labels and config.num_classes is None):
        return None
    c_dim = config.num_classes if config.labels else 0
    return DataInfo(name=config.name, shape=(config.channels, config.resolution, config.resolution), c_dim=c_dim)
