"""Images from a Hugging Face ``datasets`` data set: a ``save_to_disk`` folder, parquet files or a Hub name.

An optional extra (``pip install 'gancore[hf]'``): the ``datasets`` package is imported only when
such a data set is built. Images are decoded per batch (in ``train.data_workers`` processes),
resized and centre-cropped like an image folder's; labels come from a ``ClassLabel`` column.
"""

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gancore.backbone import DataInfo
from gancore.config import DataConfig
from gancore.data.base import DataError, EightBitImages, index_tensor, one_hot
from gancore.data.folder import GRAY_MODES, load_square_image

__all__ = ["HuggingFaceDataset"]


def _datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise DataError(
            "data.name = 'huggingface' needs the datasets package: pip install 'gancore[hf]'"
        ) from None
    return datasets


def _open(source: str, split: str) -> Any:
    """The split of a ``save_to_disk`` folder, of parquet files (a file or a folder of them), or of a Hub data set."""
    import os

    datasets = _datasets()
    path = Path(source).expanduser()
    try:
        if path.is_dir() and ((path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file()):
            loaded = datasets.load_from_disk(str(path))
            if isinstance(loaded, datasets.DatasetDict):
                if split not in loaded:
                    raise DataError(f"data.split: {path} has splits {sorted(loaded)}, not {split!r}")
                loaded = loaded[split]
            return loaded
        if path.is_file() and path.suffix == ".parquet" or path.is_dir():
            files = [str(path)] if path.is_file() else sorted(str(p) for p in path.rglob("*.parquet"))
            if not files:
                raise DataError(f"data.path: {path} holds neither a save_to_disk data set nor parquet files")
            return datasets.load_dataset("parquet", data_files=files, split="train")
        if path.exists():
            raise DataError(f"data.path: {path} is neither a save_to_disk folder nor parquet files")
        if os.environ.get("GANCORE_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
            raise DataError(f"data.path: {source!r} is no local data set, and downloads are off (GANCORE_OFFLINE)")
        return datasets.load_dataset(source, split=split)
    except DataError:
        raise
    except Exception as exc:  # datasets raises many kinds (missing repo, offline, bad files)
        raise DataError(f"data.path: cannot open Hugging Face data set {source!r}: {type(exc).__name__}: {exc}") from None


def _column(source: str, features: Any, given: str | None, kind: type, key: str) -> str:
    """The column named ``given``, else the first of feature type ``kind``; a DataError naming ``data.<key>``."""
    if given is None:
        found = next((name for name, feature in features.items() if isinstance(feature, kind)), None)
        if found is None:
            raise DataError(f"data.{key}: {source} has no {kind.__name__} column (columns: {sorted(features)}); name one")
        return found
    if given not in features:
        raise DataError(f"data.{key}: {source} has no column {given!r} (columns: {sorted(features)})")
    return given


class HuggingFaceDataset(EightBitImages):
    """A ``datasets`` split's images ``[N, C, R, R]`` in [-1, 1] (and one-hot labels).

    ``image_column`` defaults to the first ``Image`` column, ``label_column`` (with ``labels``) to
    the first ``ClassLabel`` column; ``resolution`` to the first image's shorter side, ``channels``
    to 1 when it is grayscale, else 3.
    """

    reads_files = True

    def __init__(
        self,
        source: str,
        split: str = "train",
        image_column: str | None = None,
        label_column: str | None = None,
        resolution: int | None = None,
        channels: int | None = None,
        num_samples: int | None = None,
        labels: bool = False,
    ):
        datasets = _datasets()
        self.source = source
        data = _open(source, split)
        features = data.features
        image_column = _column(source, features, image_column, datasets.Image, "image_column")
        self.class_names: list[str] = []
        self.classes: Tensor | None = None
        if labels:
            label_column = _column(source, features, label_column, datasets.ClassLabel, "label_column")
            values = torch.tensor(data[label_column], dtype=torch.int64)
            feature = features[label_column]
            count = feature.num_classes if isinstance(feature, datasets.ClassLabel) else int(values.max()) + 1
            if values.numel() and int(values.min()) < 0:
                raise DataError(f"data.label_column: {label_column!r} holds negative class indices")
            self.class_names = list(feature.names) if isinstance(feature, datasets.ClassLabel) else [str(i) for i in range(count)]
            self.classes = values
        if num_samples is not None:
            if num_samples > len(data):
                raise DataError(f"data.num_samples: asked for {num_samples} images, {source} holds only {len(data)}")
            data = data.select(range(num_samples))
            self.classes = None if self.classes is None else self.classes[:num_samples]
        if len(data) == 0:
            raise DataError(f"data.path: {source} ({split}) holds no images")
        self.data = data.select_columns([image_column])
        self.image_column = image_column
        first = self.data[0][image_column]
        resolution = resolution if resolution is not None else min(first.size)
        channels = channels if channels is not None else (1 if first.mode in GRAY_MODES else 3)
        if channels not in (1, 3):
            raise DataError(f"data.channels: must be 1 or 3, got {channels}")
        self.resolution, self.channels = resolution, channels
        self.info = DataInfo(name="huggingface", shape=(channels, resolution, resolution), c_dim=len(self.class_names))

    @classmethod
    def from_config(cls, config: DataConfig) -> "HuggingFaceDataset":
        """Build from ``[data]``: path (a folder, parquet files or a Hub name), split, image_column,
        label_column, resolution, channels, num_samples, labels."""
        if config.path is None:
            raise DataError("data.path: required for data set 'huggingface' (a save_to_disk folder, parquet files or a Hub name)")
        return cls(config.path, split=config.split, image_column=config.image_column, label_column=config.label_column,
                   resolution=config.resolution, channels=config.channels, num_samples=config.num_samples,
                   labels=config.labels)

    def __len__(self) -> int:
        """Number of images in the split."""
        return len(self.data)


    def get_levels(self, indices: Tensor) -> tuple[Tensor, Tensor | None]:
        """The decoded images as uint8 ``[N, C, R, R]``."""
        idx = index_tensor(indices, len(self))
        rows = self.data[idx.tolist()][self.image_column]
        batch = np.stack([load_square_image(image, self.resolution, self.channels) for image in rows])
        c = one_hot(self.classes[idx], len(self.class_names)) if self.classes is not None else None
        return torch.from_numpy(batch), c

    def describe(self) -> str:
        """One line for logs."""
        r = self.resolution
        labels = f", {len(self.class_names)} classes" if self.classes is not None else ""
        return f"huggingface {self.source}: {len(self)} images {self.channels}x{r}x{r}{labels}"
