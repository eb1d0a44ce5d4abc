"""Images from a directory tree or a .zip of PNG/JPEG files, resized and centre-cropped to squares, with
class labels from NVIDIA's ``dataset.json`` or from class sub-folders."""

import io
import json
import os
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor

from gancore.backbone import DataInfo
from gancore.config import DataConfig
from gancore.data.base import DataError, EightBitImages, index_tensor, one_hot

__all__ = ["IMAGE_EXTENSIONS", "FolderDataset", "load_square_image"]

#: File name endings read as images (compared case-insensitively).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
#: PIL modes treated as grayscale when ``data.channels`` is not set.
GRAY_MODES = ("1", "L", "LA", "I", "F", "I;16", "I;16L", "I;16B", "I;16N")
#: Decoded images are kept in memory up to this many bytes (least recently used go first).
CACHE_BYTES = 256 * 2**20
#: NVIDIA's dataset_tool.py writes the labels here, at the top of the folder or zip.
LABELS_FILE = "dataset.json"


def _to_8bit(image: Image.Image) -> Image.Image:
    """Integer / float grayscale modes (16-bit PNGs) scaled to 8-bit "L" instead of clipped."""
    if image.mode not in ("I", "F") and not image.mode.startswith("I;16"):
        return image
    arr = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        peak = 1.0 if arr.size and arr.max() <= 1.0 else 255.0
    else:
        peak = 65535.0 if image.mode.startswith("I;16") or (arr.size and arr.max() > 255) else 255.0
    return Image.fromarray(np.clip(np.rint(arr * (255.0 / peak)), 0, 255).astype(np.uint8), "L")


def load_square_image(image: Image.Image, resolution: int, channels: int) -> np.ndarray:
    """An image as uint8 ``[channels, resolution, resolution]``: converted to L or RGB, resized so its
    shorter side is ``resolution`` (LANCZOS down, BICUBIC up), then centre-cropped to a square."""
    image = ImageOps.exif_transpose(image)
    image = _to_8bit(image)
    image = image.convert("L" if channels == 1 else "RGB")
    w, h = image.size
    if min(w, h) != resolution:
        scale = resolution / min(w, h)
        size = (max(resolution, round(w * scale)), max(resolution, round(h * scale)))
        resample = Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC
        image = image.resize(size, resample=resample)
        w, h = image.size
    left, top = (w - resolution) // 2, (h - resolution) // 2
    image = image.crop((left, top, left + resolution, top + resolution))
    arr = np.asarray(image, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


class FolderDataset(EightBitImages):
    """The PNG/JPEG files under a directory (recursively) or inside a .zip, in sorted order.

    Files are decoded lazily in ``get`` and kept in a small LRU cache. ``resolution`` defaults to
    the shorter side of the first image, ``channels`` to 1 when it is grayscale, else 3.
    Decoding is the work ``train.data_workers`` moves to background processes (``reads_files``).

    With ``labels``, each image gets a class: from ``dataset.json`` at the top (NVIDIA's
    dataset_tool.py format: ``{"labels": [[file, class index], ...]}``, so StyleGAN2-ADA data
    trains as it is), else from the sub-folder it sits in (``root/<class>/...``, classes in
    sorted order, as torchvision's ImageFolder).
    """

    reads_files = True

    def __init__(
        self,
        path: str | Path,
        resolution: int | None = None,
        channels: int | None = None,
        num_samples: int | None = None,
        labels: bool = False,
    ):
        self.path = Path(path)
        if not self.path.exists():
            raise DataError(f"data.path: no such file or directory: {self.path}")
        self._is_zip = self.path.is_file()
        if self._is_zip and not zipfile.is_zipfile(self.path):
            raise DataError(f"data.path: {self.path} is neither a directory nor a .zip file")
        self._zip: zipfile.ZipFile | None = None
        self._zip_pid: int | None = None
        self.files = self._list_files()
        if not self.files:
            raise DataError(f"data.path: no images ({', '.join(IMAGE_EXTENSIONS)}) found in {self.path}")
        if num_samples is not None:
            if num_samples > len(self.files):
                raise DataError(
                    f"data.num_samples: asked for {num_samples} images, {self.path} holds only {len(self.files)}"
                )
            self.files = self.files[:num_samples]
        self._check_headers()
        if resolution is None or channels is None:
            with self._open(0) as first:
                if resolution is None:
                    resolution = min(first.size)
                if channels is None:
                    channels = 1 if first.mode in GRAY_MODES else 3
        if resolution < 1:
            raise DataError(f"data.resolution: must be >= 1, got {resolution}")
        if channels not in (1, 3):
            raise DataError(f"data.channels: must be 1 or 3, got {channels}")
        self.resolution = resolution
        self.channels = channels
        self.classes: torch.Tensor | None = None
        self.class_names: list[str] = []
        self.label_source = ""
        if labels:
            self.classes, self.class_names, self.label_source = self._read_labels()
        self.info = DataInfo(name="folder", shape=(channels, resolution, resolution), c_dim=len(self.class_names))
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_items = max(1, CACHE_BYTES // (channels * resolution * resolution))

    @classmethod
    def from_config(cls, config: DataConfig) -> "FolderDataset":
        """Build from ``[data]``: path (required), resolution, channels, num_samples (first N files), labels."""
        if config.path is None:
            raise DataError("data.path: required for data set 'folder' (a directory or a .zip of PNG/JPEG files)")
        return cls(config.path, resolution=config.resolution, channels=config.channels, num_samples=config.num_samples,
                   labels=config.labels)

    # -- files ----------------------------------------------------------------------------------

    def _list_files(self) -> list[str]:
        if self._is_zip:
            try:
                names = self._archive().namelist()
            except (OSError, zipfile.BadZipFile) as exc:
                raise DataError(f"data.path: cannot read the zip file {self.path}: {exc}") from None
            return sorted(
                name
                for name in names
                if name.lower().endswith(IMAGE_EXTENSIONS)
                and not name.endswith("/")
                and not name.startswith("__MACOSX/")
                and not name.rsplit("/", 1)[-1].startswith("._")
            )
        files = []
        for root, _dirs, names in os.walk(self.path, followlinks=True):
            for name in names:
                if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith("._"):
                    files.append(Path(root, name).relative_to(self.path).as_posix())
        return sorted(files)

    def _read_labels(self) -> tuple[torch.Tensor, list[str], str]:
        """``(class index per file, class names, where they came from)``."""
        raw = self._read_member(LABELS_FILE)
        if raw is not None:
            return self._labels_from_json(raw)
        parts = [name.split("/") for name in self.files]
        loose = [self.file_name(i) for i, p in enumerate(parts) if len(p) < 2]
        if loose:
            raise DataError(
                f"data.labels: {self.path} has no {LABELS_FILE}, so classes are its sub-folders, but "
                f"{len(loose)} image(s) sit at its top, in no class folder (e.g. {loose[0]})"
            )
        names = sorted({p[0] for p in parts})
        index = {name: i for i, name in enumerate(names)}
        return torch.tensor([index[p[0]] for p in parts], dtype=torch.int64), names, "class sub-folders"

    def _labels_from_json(self, raw: bytes) -> tuple[torch.Tensor, list[str], str]:
        where = f"{self.path}:{LABELS_FILE}" if self._is_zip else str(self.path / LABELS_FILE)
        try:
            pairs = json.loads(raw)["labels"]
            table = {str(name).replace("\\", "/"): label for name, label in pairs}
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{where}: not NVIDIA's labels file ({{\"labels\": [[file, class], ...]}}): {exc}") from None
        missing = [name for name in self.files if name not in table]
        if missing:
            raise DataError(f"{where}: no label for {len(missing)} image(s), e.g. {missing[0]}")
        values = [table[name] for name in self.files]
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
            bad = next(v for v in values if not (isinstance(v, int) and not isinstance(v, bool) and v >= 0))
            raise DataError(f"{where}: labels must be class indices (integers >= 0), got {bad!r}")
        count = max(values) + 1
        return torch.tensor(values, dtype=torch.int64), [str(i) for i in range(count)], LABELS_FILE

    def _read_member(self, name: str) -> bytes | None:
        """The bytes of ``name`` at the top of the folder or zip, or None if it has none."""
        if self._is_zip:
            try:
                return self._archive().read(name)
            except KeyError:
                return None
        path = self.path / name
        return path.read_bytes() if path.is_file() else None

    def _check_headers(self) -> None:
        """Read every file's image header (not its pixels) before training: a file that is no image
        is a DataError now, not when training reaches it."""
        bad = []
        for index in range(len(self.files)):
            try:
                source: Any = (io.BytesIO(self._archive().read(self.files[index])) if self._is_zip
                               else self.path / self.files[index])
                with Image.open(source) as image:
                    if min(image.size) < 1:
                        raise ValueError(f"size {image.size}")
            except (OSError, ValueError, SyntaxError, zipfile.BadZipFile, Image.DecompressionBombError) as exc:
                bad.append(f"{self.file_name(index)} ({exc})")
        if bad:
            more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
            raise DataError(f"data.path: {len(bad)} file(s) are not readable images: {'; '.join(bad[:3])}{more}")

    def _archive(self) -> zipfile.ZipFile:
        # One handle per process: a handle inherited over fork must not be shared.
        if self._zip is None or self._zip_pid != os.getpid():
            self._zip = zipfile.ZipFile(self.path)
            self._zip_pid = os.getpid()
        return self._zip

    def file_name(self, index: int) -> str:
        """Where item ``index`` comes from: a file path, or ``archive.zip:member``."""
        if self._is_zip:
            return f"{self.path}:{self.files[index]}"
        return str(self.path / self.files[index])

    def _open(self, index: int) -> Image.Image:
        try:
            if self._is_zip:
                data = self._archive().read(self.files[index])
                image = Image.open(io.BytesIO(data))
            else:
                image = Image.open(self.path / self.files[index])
            image.load()
        except (OSError, ValueError, SyntaxError, zipfile.BadZipFile, Image.DecompressionBombError) as exc:
            raise DataError(f"cannot read image {self.file_name(index)}: {exc}") from None
        return image

    def _load(self, index: int) -> np.ndarray:
        cached = self._cache.get(index)
        if cached is not None:
            self._cache.move_to_end(index)
            return cached
        with self._open(index) as image:
            try:
                arr = load_square_image(image, self.resolution, self.channels)
            except (OSError, ValueError) as exc:
                raise DataError(f"cannot read image {self.file_name(index)}: {exc}") from None
        self._cache[index] = arr
        if len(self._cache) > self._cache_items:
            self._cache.popitem(last=False)
        return arr

    # -- Dataset --------------------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of image files."""
        return len(self.files)


    def get_levels(self, indices: Tensor) -> tuple[Tensor, Tensor | None]:
        """The decoded images as uint8 ``[N, C, R, R]`` (what :meth:`get` scales to [-1, 1])."""
        idx = index_tensor(indices, len(self))
        batch = np.empty((len(idx), self.channels, self.resolution, self.resolution), dtype=np.uint8)
        for row, i in enumerate(idx.tolist()):
            batch[row] = self._load(i)
        c = one_hot(self.classes[idx], len(self.class_names)) if self.classes is not None else None
        return torch.from_numpy(batch), c

    def describe(self) -> str:
        """One line for logs."""
        r = self.resolution
        labels = f", {len(self.class_names)} classes from {self.label_source}" if self.classes is not None else ""
        return f"folder {self.path}: {len(self)} images {self.channels}x{r}x{r}{labels}"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_zip"] = None
        state["_zip_pid"] = None
        state["_cache"] = OrderedDict()
        return state
