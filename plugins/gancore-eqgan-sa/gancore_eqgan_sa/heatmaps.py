"""EqGAN-SA's random multi-level heatmaps (1 + 2 + 4 channels at image resolution), and a CLI to make them.

Coordinates run over [-1, 1] (both ends included) in (y, x) order; a centre c with width σ gives
``exp(-||p - c||² / σ) + eps`` (σ divides the squared distance directly, as in the official code).
"""

import argparse
import sys
from typing import Sequence

import attrs
import torch
from safetensors.torch import save_file
from torch import Tensor

from gancore_eqgan_sa.config import EqGANSAConfig

__all__ = ["LEVEL_CHANNELS", "HeatmapSample", "gaussian_maps", "level", "main", "sample_heatmaps"]

#: Channels of heatmap levels 1, 2 and 3; the ``heatmap`` input holds them in this order (7 in all).
LEVEL_CHANNELS: tuple[int, int, int] = (1, 2, 4)


@attrs.frozen
class HeatmapSample:
    """Heatmaps ``[N, 7, R, R]`` and the parameters they were drawn with (for tests and editing)."""

    heatmap: Tensor
    #: Level 1's centres ``[N, 2]``, and levels 2 and 3's ``[N, 2, 2]`` and ``[N, 4, 2]`` (y, x).
    centers: tuple[Tensor, Tensor, Tensor]
    #: Level 1's σ (one per batch, ``[N]`` all equal), levels 2 and 3's ``[N, 2]`` and ``[N, 4]``.
    sigmas: tuple[Tensor, Tensor, Tensor]


def level(heatmap: Tensor, index: int) -> Tensor:
    """Channels of level ``index`` (1, 2 or 3) of a ``[N, 7, R, R]`` heatmap."""
    start = sum(LEVEL_CHANNELS[: index - 1])
    return heatmap[:, start : start + LEVEL_CHANNELS[index - 1]]


def gaussian_maps(centers: Tensor, sigmas: Tensor, resolution: int, eps: float) -> Tensor:
    """``[N, K, R, R]`` maps ``exp(-||p - c_k||² / σ_k) + eps`` for centres ``[N, K, 2]`` and σ ``[N, K]``."""
    coords = torch.linspace(-1.0, 1.0, resolution, device=centers.device)
    grid = torch.stack(torch.meshgrid(coords, coords, indexing="ij"), dim=-1)  # [R, R, 2] as (y, x)
    squared = (grid[None, None] - centers[:, :, None, None, :]).square().sum(-1)  # [N, K, R, R]
    return torch.exp(-squared / sigmas[:, :, None, None]) + eps


def sample_heatmaps(
    n: int,
    resolution: int,
    config: EqGANSAConfig | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> HeatmapSample:
    """Draw ``n`` three-level heatmaps as EqGAN-SA does (from ``generator`` on the CPU, then moved).

    Level 1: a centre c ~ N(0, center_std²) clamped to ±center_clamp, σ ~ U(sigma_min, sigma_max)
    shared by the batch. Level 2: centres c + U(-level2_offset, level2_offset)² with σ =
    (U(0, 1) + shift) / div per sample and centre. Level 3 likewise with its own constants.
    """
    c = config or EqGANSAConfig()
    g = generator

    def uniform(*shape: int) -> Tensor:
        return torch.rand(*shape, generator=g)

    center = (torch.randn(n, 2, generator=g) * c.center_std).clamp(-c.center_clamp, c.center_clamp)
    sigma1 = torch.full((n, 1), c.sigma_min + (c.sigma_max - c.sigma_min) * float(uniform(1)))
    centers2 = center[:, None] + (uniform(n, 2, 2) * 2 - 1) * c.level2_offset
    sigma2 = (uniform(n, 2) + c.level2_sigma_shift) / c.level2_sigma_div
    centers3 = center[:, None] + (uniform(n, 4, 2) * 2 - 1) * c.level3_offset
    sigma3 = (uniform(n, 4) + c.level3_sigma_shift) / c.level3_sigma_div
    maps = [
        gaussian_maps(center[:, None], sigma1, resolution, c.eps),
        gaussian_maps(centers2, sigma2, resolution, c.eps),
        gaussian_maps(centers3, sigma3, resolution, c.eps),
    ]
    return HeatmapSample(
        heatmap=torch.cat(maps, dim=1).to(device),
        centers=(center, centers2, centers3),
        sigmas=(sigma1[:, 0], sigma2, sigma3),
    )


def _pair(text: str) -> tuple[float, float]:
    try:
        y, x = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'y,x' in [-1, 1], got {text!r}") from None
    return y, x


def main(argv: Sequence[str] | None = None) -> int:
    """``gancore-eqgan-sa-heatmap``: write heatmaps for ``gancore sample --cond`` (editing the layout)."""
    parser = argparse.ArgumentParser(
        prog="gancore-eqgan-sa-heatmap",
        description="Write EqGAN-SA heatmaps [N, 7, R, R] to a safetensors file for `gancore sample --cond`.",
    )
    parser.add_argument("--n", type=int, default=16, help="number of heatmaps (default 16)")
    parser.add_argument("--resolution", type=int, required=True, help="the generator's image size")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random parts (default 0)")
    parser.add_argument("--center", type=_pair, help="put level 1's centre here, as 'y,x' in [-1, 1]; the "
                        "other levels keep their random offsets around it")
    parser.add_argument("--out", required=True, help="safetensors file to write")
    args = parser.parse_args(argv)
    if args.n <= 0 or args.resolution <= 0:
        print("gancore-eqgan-sa-heatmap: --n and --resolution must be > 0", file=sys.stderr)
        return 2
    config = EqGANSAConfig()
    sample = sample_heatmaps(args.n, args.resolution, config, torch.Generator().manual_seed(args.seed))
    heatmap = sample.heatmap
    if args.center is not None:
        shift = torch.tensor(args.center) - sample.centers[0]  # move every level with the main centre
        centers = [sample.centers[0][:, None] + shift[:, None], sample.centers[1] + shift[:, None],
                   sample.centers[2] + shift[:, None]]
        sigmas = [sample.sigmas[0][:, None], sample.sigmas[1], sample.sigmas[2]]
        heatmap = torch.cat([gaussian_maps(ce, s, args.resolution, config.eps) for ce, s in zip(centers, sigmas)], 1)
    save_file({"heatmap": heatmap.contiguous()}, args.out)
    print(f"wrote {args.n} heatmaps of {args.resolution}x{args.resolution} to {args.out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
