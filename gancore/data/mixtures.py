"""2-D Gaussian mixture data sets: mog25 (5x5 grid) and ring8 (8 modes on a circle)."""

import math

import torch
from torch import Tensor

from gancore.backbone import DataInfo
from gancore.config import DataConfig
from gancore.data.base import Dataset, index_tensor, mix_seed, one_hot

__all__ = ["MixtureDataset", "grid_centers", "mog25", "ring8", "ring_centers"]

#: Points drawn when ``data.num_samples`` is not set.
DEFAULT_NUM_SAMPLES = 65536
#: Purpose tag mixed into the seed of the test split, so that it is an independent draw.
_TEST_SPLIT_TAG = 0x7E57


def grid_centers(side: int = 5, spacing: float = 2.0) -> Tensor:
    """Centres of a ``side x side`` grid with ``spacing`` between neighbours, centred on 0: ``[side**2, 2]``."""
    coords = (torch.arange(side, dtype=torch.float64) - (side - 1) / 2) * spacing
    xs, ys = torch.meshgrid(coords, coords, indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1).to(torch.float32)


def ring_centers(modes: int = 8, radius: float = 2.0) -> Tensor:
    """Centres of ``modes`` points evenly spaced on a circle of ``radius``: ``[modes, 2]``."""
    angles = torch.arange(modes, dtype=torch.float64) * (2 * math.pi / modes)
    return (radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)).to(torch.float32)


class MixtureDataset(Dataset):
    """A finite sample of an isotropic Gaussian mixture with equally likely modes.

    ``centers`` ``[M, 2]`` and ``std`` describe the mixture (metrics use them); ``points`` ``[N, 2]``
    and ``modes`` ``[N]`` (the mode index of each point) are the sample, drawn once from ``seed``.
    """

    has_quality_metrics = True

    def __init__(
        self,
        name: str,
        centers: Tensor,
        std: float,
        num_samples: int = DEFAULT_NUM_SAMPLES,
        seed: int = 0,
        labels: bool = False,
    ):
        self.centers = centers.to(torch.float32)
        self.std = float(std)
        generator = torch.Generator().manual_seed(seed & ((1 << 64) - 1))
        self.modes = torch.randint(len(self.centers), (num_samples,), generator=generator)
        noise = torch.randn(num_samples, self.centers.shape[1], generator=generator)
        self.points = self.centers[self.modes] + self.std * noise
        self.labels = labels
        self.info = DataInfo(name=name, shape=(int(self.centers.shape[1]),), c_dim=len(self.centers) if labels else 0)

    def __len__(self) -> int:
        """Number of points."""
        return len(self.points)

    def get(self, indices: Tensor) -> tuple[Tensor, Tensor | None]:
        """Points ``[N, 2]`` and, with labels, the one-hot mode index ``[N, M]``."""
        idx = index_tensor(indices, len(self))
        c = one_hot(self.modes[idx], len(self.centers)) if self.labels else None
        return self.points[idx], c

    def quality_metrics(self, samples: Tensor) -> dict[str, float]:
        """Modes covered, share of high-quality samples and KL of the mode histogram from uniform."""
        from gancore.metrics import mixture_metrics

        return mixture_metrics(samples, self.centers, self.std).as_stats()

    def describe(self) -> str:
        """One line for logs."""
        labels = ", mode labels" if self.labels else ""
        return f"{self.info.name}: {len(self)} points, {len(self.centers)} modes, std {self.std:g}{labels}"


def _from_config(config: DataConfig, name: str, centers: Tensor, default_std: float) -> MixtureDataset:
    seed = config.seed if config.split == "train" else mix_seed(config.seed, _TEST_SPLIT_TAG)
    return MixtureDataset(
        name=name,
        centers=centers,
        std=config.std if config.std is not None else default_std,
        num_samples=config.num_samples if config.num_samples is not None else DEFAULT_NUM_SAMPLES,
        seed=seed,
        labels=config.labels,
    )


def mog25(config: DataConfig) -> MixtureDataset:
    """25 Gaussians on the grid {-4, -2, 0, 2, 4}^2, std 0.05 unless ``data.std`` is set.

    The ``train`` split is drawn from ``data.seed``; ``test`` is an independent draw.
    """
    return _from_config(config, "mog25", grid_centers(5, 2.0), 0.05)


def ring8(config: DataConfig) -> MixtureDataset:
    """8 Gaussians evenly on a circle of radius 2, std 0.02 unless ``data.std`` is set.

    The ``train`` split is drawn from ``data.seed``; ``test`` is an independent draw.
    """
    return _from_config(config, "ring8", ring_centers(8, 2.0), 0.02)
