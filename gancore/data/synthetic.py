"""Seeded synthetic images (smooth blobs on gradients) for tests and throughput benchmarks."""

import torch
from torch import Tensor

from gancore.backbone import DataInfo
from gancore.config import DataConfig
from gancore.data.base import DataError, Dataset, index_tensor, one_hot

__all__ = ["SyntheticImages"]

DEFAULT_RESOLUTION = 32
DEFAULT_CHANNELS = 3
DEFAULT_NUM_SAMPLES = 1024
#: Classes of the random labels.
NUM_CLASSES = 10
#: Gaussian blobs per image.
BLOBS = 4
#: Rendered images (uint8) are kept when all of them fit in this many bytes; else each batch is rendered anew.
CACHE_BYTES = 512 * 2**20


class SyntheticImages(Dataset):
    """``num_samples`` smooth random images, a pure function of ``seed``, in [-1, 1].

    Each image is a class-coloured background with a random linear gradient plus ``BLOBS``
    Gaussian blobs of random position, size and colour, squashed by tanh and quantised to 8 bits
    like a real image. Images are rendered on first use and cached. Every image has a
    random class label in ``range(10)``; its background colour depends on it, so conditional
    models have something to learn. Labels are handed out only when ``labels`` is true.
    """

    def __init__(
        self,
        resolution: int = DEFAULT_RESOLUTION,
        channels: int = DEFAULT_CHANNELS,
        num_samples: int = DEFAULT_NUM_SAMPLES,
        seed: int = 0,
        labels: bool = False,
    ):
        if resolution < 1:
            raise DataError(f"data.resolution: must be >= 1, got {resolution}")
        if channels not in (1, 3):
            raise DataError(f"data.channels: must be 1 or 3, got {channels}")
        if num_samples < 1:
            raise DataError(f"data.num_samples: must be >= 1, got {num_samples}")
        self.resolution = resolution
        self.channels = channels
        self.labels = labels
        self.info = DataInfo(
            name="synthetic-images", shape=(channels, resolution, resolution), c_dim=NUM_CLASSES if labels else 0
        )
        g = torch.Generator().manual_seed(seed & ((1 << 64) - 1))
        n, c = num_samples, channels
        palette = torch.rand(NUM_CLASSES, c, generator=g) * 1.6 - 0.8
        self.classes = torch.randint(NUM_CLASSES, (n,), generator=g)
        self._base = palette[self.classes] + 0.1 * torch.randn(n, c, generator=g)
        self._grad = 0.5 * torch.randn(n, 2, c, generator=g)
        self._centers = torch.rand(n, BLOBS, 2, generator=g) * 2 - 1
        self._sigmas = 0.08 + 0.3 * torch.rand(n, BLOBS, generator=g)
        self._amps = (torch.rand(n, BLOBS, c, generator=g) * 2 - 1) * 1.5
        coords = (torch.arange(resolution, dtype=torch.float32) + 0.5) / resolution * 2 - 1
        self._coords = coords
        self._cache: Tensor | None = None
        self._cached = torch.zeros(n, dtype=torch.bool)
        if n * c * resolution * resolution <= CACHE_BYTES:
            self._cache = torch.empty((n, c, resolution, resolution), dtype=torch.uint8)

    def _render(self, idx: Tensor) -> Tensor:
        x = self._coords.view(1, 1, 1, -1)  # along W
        y = self._coords.view(1, 1, -1, 1)  # along H
        grad = self._grad[idx]
        img = self._base[idx][:, :, None, None] + grad[:, 0, :, None, None] * x + grad[:, 1, :, None, None] * y
        centers, sigmas, amps = self._centers[idx], self._sigmas[idx], self._amps[idx]
        for k in range(BLOBS):
            inv = 1.0 / (2 * sigmas[:, k] ** 2)
            gx = torch.exp(-((self._coords[None, :] - centers[:, k, 0:1]) ** 2) * inv[:, None])  # [N, W]
            gy = torch.exp(-((self._coords[None, :] - centers[:, k, 1:2]) ** 2) * inv[:, None])  # [N, H]
            blob = gy[:, :, None] * gx[:, None, :]  # [N, H, W]
            img = img + amps[:, k, :, None, None] * blob[:, None]
        return torch.tanh(img).mul_(127.5).add_(127.5).round_().to(torch.uint8)

    @classmethod
    def from_config(cls, config: DataConfig) -> "SyntheticImages":
        """Build from ``[data]``: resolution (32), channels (3), num_samples (1024), seed, labels."""
        return cls(
            resolution=config.resolution if config.resolution is not None else DEFAULT_RESOLUTION,
            channels=config.channels if config.channels is not None else DEFAULT_CHANNELS,
            num_samples=config.num_samples if config.num_samples is not None else DEFAULT_NUM_SAMPLES,
            seed=config.seed,
            labels=config.labels,
        )

    def __len__(self) -> int:
        """Number of images."""
        return len(self.classes)

    def get(self, indices: Tensor) -> tuple[Tensor, Tensor | None]:
        """Images ``[N, C, R, R]`` in [-1, 1] and, with labels, one-hot classes ``[N, 10]``."""
        idx = index_tensor(indices, len(self))
        if self._cache is None:
            pixels = self._render(idx)
        else:
            missing = idx[~self._cached[idx]].unique()
            if missing.numel():
                self._cache[missing] = self._render(missing)
                self._cached[missing] = True
            pixels = self._cache[idx]
        x = pixels.to(torch.float32).mul_(2.0 / 255.0).sub_(1.0)
        c = one_hot(self.classes[idx], NUM_CLASSES) if self.labels else None
        return x, c

    def describe(self) -> str:
        """One line for logs."""
        labels = f", {NUM_CLASSES} classes" if self.labels else ""
        r = self.resolution
        return f"synthetic-images: {len(self)} images {self.channels}x{r}x{r}{labels}"
