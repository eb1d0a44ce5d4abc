"""Fashion-MNIST read from its idx files (plain or gzipped), held in memory as uint8; found in Debian's
package, else in the gancore cache, where it is downloaded from the canonical source on first use."""

import gzip
import hashlib
import math
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from gancore.backbone import DataInfo
from gancore.config import DataConfig
from gancore.data.base import DataError, Dataset, index_tensor, one_hot

__all__ = ["CLASSES", "CONTENT_SHA256", "DEFAULT_PATH", "SOURCE_URL", "FashionMNIST", "find_idx_file", "locate", "read_idx"]

#: Where Debian's package dataset-fashion-mnist installs the files.
DEFAULT_PATH = "/usr/share/datasets/fashion-mnist"
#: The canonical source (the one torchvision downloads from): ``<SOURCE_URL><stem>.gz``.
SOURCE_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
#: sha256 of each file's decompressed content. Pinned from Debian's package: its ``.gz`` files
#: hold the same idx bytes compressed anew, so the compressed files differ from the source's
#: while their content does not.
CONTENT_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
DEFAULT_RESOLUTION = 32
#: The ten class names, by label.
CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
_PREFIX = {"train": "train", "test": "t10k"}
#: idx type code 0x08: unsigned bytes (the only type Fashion-MNIST uses).
_UBYTE = 0x08


def find_idx_file(directory: Path, stem: str) -> Path | None:
    """``directory/stem`` or ``directory/stem.gz``, whichever exists (plain first), else None."""
    for name in (stem, stem + ".gz"):
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Parse an idx file of unsigned bytes with ``ndim`` dimensions (gzipped when named ``.gz``).

    Raises DataError naming the file when it cannot be read, its magic number is not
    ``0x0000 08 <ndim>``, or its data is shorter or longer than the header says.
    """
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    header = 4 + 4 * ndim
    if len(raw) < 4:
        raise DataError(f"{path}: truncated idx file ({len(raw)} bytes, no magic number)")
    magic = int.from_bytes(raw[:4], "big")
    expected = (_UBYTE << 8) | ndim
    if magic != expected:
        raise DataError(
            f"{path}: not an idx file of unsigned bytes with {ndim} dimensions "
            f"(magic number 0x{magic:08x}, expected 0x{expected:08x})"
        )
    if len(raw) < header:
        raise DataError(f"{path}: truncated idx header ({len(raw)} of {header} bytes)")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    size = math.prod(dims)
    if len(raw) - header != size:
        what = "truncated" if len(raw) - header < size else "trailing bytes after the"
        raise DataError(
            f"{path}: {what} data: header says {'x'.join(map(str, dims))} = {size} bytes, "
            f"file holds {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


def _content_check(stem: str):
    """A check of a downloaded ``<stem>.gz``: its decompressed bytes have the pinned sha256."""

    def check(path: Path) -> None:
        digest = hashlib.sha256()
        try:
            with gzip.open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"not a readable gzip file ({exc})") from None
        if digest.hexdigest() != CONTENT_SHA256[stem]:
            raise ValueError(f"content sha256 {digest.hexdigest()} is not Fashion-MNIST's {CONTENT_SHA256[stem]}")

    return check


def locate(split: str = "train") -> Path:
    """The folder holding a split's idx files: Debian's package (:data:`DEFAULT_PATH`) when
    installed, else ``$GANCORE_CACHE/fashion-mnist``, where missing files are downloaded from
    :data:`SOURCE_URL` and checked against :data:`CONTENT_SHA256` first. Offline, a DataError
    names each file, its URL and where to put it."""
    from gancore.download import DownloadError, cache_dir, download

    stems = [f"{_PREFIX[split]}-images-idx3-ubyte", f"{_PREFIX[split]}-labels-idx1-ubyte"]
    debian = Path(DEFAULT_PATH)
    if all(find_idx_file(debian, stem) for stem in stems):
        return debian
    folder = cache_dir() / "fashion-mnist"
    for stem in stems:
        if find_idx_file(folder, stem) is None:
            try:
                download(SOURCE_URL + stem + ".gz", dest=folder / f"{stem}.gz", check=_content_check(stem))
            except DownloadError as exc:
                raise DataError(
                    f"Fashion-MNIST: {exc} (or `apt-get install dataset-fashion-mnist`, or set data.path to a "
                    "folder holding the idx files)"
                ) from None
    return folder


#: Side of the original Fashion-MNIST images.
NATIVE_SIZE = 28


class FashionMNIST(Dataset):
    """Fashion-MNIST images ``[N, C, R, R]`` in [-1, 1], bilinearly resized (antialiased) per batch.

    ``path`` None finds the files (:func:`locate`: Debian's package, else the cache, downloading
    them on first use); a given path is read as it is.

    The whole split is kept as uint8 ``images`` ``[N, H, W]`` and ``classes`` ``[N]``;
    ``channels=3`` repeats the gray channel; with ``labels`` the one-hot class ``[N, 10]`` is returned.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        split: str = "train",
        resolution: int = DEFAULT_RESOLUTION,
        channels: int = 1,
        labels: bool = False,
        num_samples: int | None = None,
        fit: str = "resize",
    ):
        if fit not in ("resize", "pad"):
            raise DataError(f"data.fit: must be 'resize' or 'pad', got {fit!r}")
        if fit == "pad" and resolution < NATIVE_SIZE:
            raise DataError(f"data.fit: 'pad' needs data.resolution >= {NATIVE_SIZE}, got {resolution}")
        if split not in _PREFIX:
            raise DataError(f"data.split: must be 'train' or 'test', got {split!r}")
        if resolution < 1:
            raise DataError(f"data.resolution: must be >= 1, got {resolution}")
        if channels not in (1, 3):
            raise DataError(f"data.channels: must be 1 or 3, got {channels}")
        self.path = Path(path) if path is not None else locate(split)
        self.split = split
        prefix = _PREFIX[split]
        image_stem, label_stem = f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"
        image_file = find_idx_file(self.path, image_stem) if self.path.is_dir() else None
        label_file = find_idx_file(self.path, label_stem) if self.path.is_dir() else None
        if image_file is None or label_file is None:
            missing = [s for s, f in ((image_stem, image_file), (label_stem, label_file)) if f is None]
            raise DataError(
                f"data.path: Fashion-MNIST {split} files not found in {self.path} "
                f"(missing {' and '.join(m + '[.gz]' for m in missing)}); "
                f"run `apt-get install dataset-fashion-mnist` (installs to {DEFAULT_PATH}) "
                f"or set data.path to the directory holding them"
            )
        images = read_idx(image_file, 3)
        classes = read_idx(label_file, 1)
        if len(images) != len(classes):
            raise DataError(f"{label_file}: {len(classes)} labels for {len(images)} images in {image_file}")
        if classes.size and int(classes.max()) >= len(CLASSES):
            raise DataError(f"{label_file}: label {int(classes.max())} out of range 0..{len(CLASSES) - 1}")
        if len(images) == 0:
            raise DataError(f"{image_file}: holds no images")
        if num_samples is not None:
            if num_samples > len(images):
                raise DataError(f"data.num_samples: asked for {num_samples}, the {split} split holds {len(images)}")
            images, classes = images[:num_samples], classes[:num_samples]
        self.images = torch.from_numpy(images)
        self.classes = torch.from_numpy(classes.astype(np.int64))
        self.files = (image_file, label_file)
        self.resolution = resolution
        self.fit = fit
        self.channels = channels
        self.labels = labels
        self.info = DataInfo(
            name="fmnist", shape=(channels, resolution, resolution), c_dim=len(CLASSES) if labels else 0
        )

    @classmethod
    def from_config(cls, config: DataConfig) -> "FashionMNIST":
        """Build from ``[data]``: path (None: found or downloaded), split, resolution (32), channels (1),
        labels, num_samples (first N)."""
        return cls(
            path=config.path,
            split=config.split,
            resolution=config.resolution if config.resolution is not None else DEFAULT_RESOLUTION,
            channels=config.channels if config.channels is not None else 1,
            labels=config.labels,
            num_samples=config.num_samples,
            fit=config.fit,
        )

    def __len__(self) -> int:
        """Number of images in the split."""
        return len(self.images)

    def get(self, indices: Tensor) -> tuple[Tensor, Tensor | None]:
        """Images ``[N, C, R, R]`` in [-1, 1] and, with labels, one-hot classes ``[N, 10]``."""
        idx = index_tensor(indices, len(self))
        x = self.images[idx].unsqueeze(1).to(torch.float32).div_(255.0)
        if self.fit == "pad" and self.resolution != NATIVE_SIZE:
            before = (self.resolution - NATIVE_SIZE) // 2
            after = self.resolution - NATIVE_SIZE - before
            x = F.pad(x, [before, after, before, after])  # black (0) border, like the images' background
        elif x.shape[-2:] != (self.resolution, self.resolution):
            size = (self.resolution, self.resolution)
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
            x = x.clamp_(0.0, 1.0)
        x = x.mul_(2.0).sub_(1.0)
        if self.channels == 3:
            x = x.expand(-1, 3, -1, -1).contiguous()
        c = one_hot(self.classes[idx], len(CLASSES)) if self.labels else None
        return x, c

    def describe(self) -> str:
        """One line for logs."""
        r = self.resolution
        labels = f", {len(CLASSES)} classes" if self.labels else ""
        return f"fmnist {self.split} ({self.path}): {len(self)} images {self.channels}x{r}x{r}{labels}"
