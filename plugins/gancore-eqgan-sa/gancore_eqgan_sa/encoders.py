"""G's heatmap encoders: per level, two 3x3 convs with leaky ReLU at image resolution (cond encoders)."""

import math
from typing import Mapping

import torch
from torch import Tensor, nn

from gancore.backbone import assert_shape
from gancore.layers import Conv2dLayer

from gancore_eqgan_sa.heatmaps import LEVEL_CHANNELS, level

__all__ = ["ENCODED_KEYS", "HeatmapEncoder", "LevelConcat", "missing_heatmap_message"]

#: The cond keys the encoders fill: one per level, then their concatenation.
ENCODED_KEYS: tuple[str, str, str, str] = ("eqgan_sa_level1", "eqgan_sa_level2", "eqgan_sa_level3", "eqgan_sa_levels")


def missing_heatmap_message(resolution: int) -> str:
    """What a generator with EqGAN-SA's encoders says when it gets no heatmap."""
    return (
        f"this generator uses EqGAN-SA heatmaps: give cond['heatmap'] of shape [N, 7, {resolution}, {resolution}] "
        "(the eqgan_sa plugin draws them during training and sampling; run.sample(cond=...) or "
        "`gancore sample --cond` take your own, e.g. from gancore-eqgan-sa-heatmap)"
    )


class HeatmapEncoder(nn.Module):
    """Level ``index`` of ``cond['heatmap']`` ``[N, 7, R, R]`` -> ``[N, out_channels, R, R]``."""

    def __init__(self, index: int, resolution: int, hidden: int, out_channels: int):
        super().__init__()
        self.index = index
        self.resolution = resolution
        self.conv0 = Conv2dLayer(LEVEL_CHANNELS[index - 1], hidden, kernel_size=3, activation="lrelu")
        self.conv1 = Conv2dLayer(hidden, out_channels, kernel_size=3, activation="lrelu")

    def forward(self, cond: Mapping[str, Tensor]) -> Tensor:
        """Encode this level of the heatmap."""
        if "heatmap" not in cond:
            raise ValueError(missing_heatmap_message(self.resolution))
        heatmap = cond["heatmap"]
        assert_shape(heatmap, [None, sum(LEVEL_CHANNELS), self.resolution, self.resolution], "EqGAN-SA heatmap")
        x = self.conv0(level(heatmap, self.index).to(self.conv0.weight.dtype))
        return self.conv1(x, gain=math.sqrt(0.5))


class LevelConcat(nn.Module):
    """The three encoded levels concatenated along channels (the input of blocks from 32 px up)."""

    def forward(self, cond: Mapping[str, Tensor]) -> Tensor:
        """``[N, 3 * C, R, R]``."""
        return torch.cat([cond[key] for key in ENCODED_KEYS[:3]], dim=1)
