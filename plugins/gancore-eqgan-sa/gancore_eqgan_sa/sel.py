"""The spatial encoding layer (SEL): modulates a synthesis layer's input with the encoded heatmap."""

import re
from typing import Mapping

import torch.nn.functional as F
from torch import Tensor, nn

from gancore.layers import Conv2dLayer

from gancore_eqgan_sa.encoders import ENCODED_KEYS

__all__ = ["SpatialEncodingLayer", "block_of", "encoded_key_for"]


def block_of(layer_name: str, resolution: int) -> int:
    """The resolution of the block a synthesis layer belongs to (``b16.conv0`` -> 16), else its input size."""
    match = re.match(r"^b(\d+)\.", layer_name)
    return int(match.group(1)) if match else resolution


def encoded_key_for(block: int) -> str:
    """Which encoded heatmap a block reads: level 1 at 4 px, 2 at 8 px, 3 at 16 px, all levels from 32 px."""
    if block <= 4:
        return ENCODED_KEYS[0]
    if block == 8:
        return ENCODED_KEYS[1]
    if block == 16:
        return ENCODED_KEYS[2]
    return ENCODED_KEYS[3]


class SpatialEncodingLayer(nn.Module):
    """``x + strength · conv3x3(lrelu(IN(x) · (1 + σ(h)) + μ(h)))`` with ``h = lrelu(conv3x3(heatmap features))``.

    σ and μ are single-channel maps (broadcast over x's channels); the heatmap features are
    resized bilinearly (align_corners) to x's size.
    """

    def __init__(self, channels: int, key: str, map_channels: int, hidden: int = 64, strength: float = 0.1):
        super().__init__()
        self.channels = channels
        self.key = key
        self.strength = strength
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.shared = Conv2dLayer(map_channels, hidden, kernel_size=3, activation="lrelu")
        self.sigma = Conv2dLayer(hidden, 1, kernel_size=3)
        self.mu = Conv2dLayer(hidden, 1, kernel_size=3)
        self.out = Conv2dLayer(channels, channels, kernel_size=3)

    def forward(self, x: Tensor, cond: Mapping[str, Tensor]) -> Tensor:
        """Modulate ``x`` ``[N, C, H, W]`` with ``cond[self.key]``."""
        features = cond[self.key]
        if features.shape[2:] != x.shape[2:]:
            features = F.interpolate(features, size=x.shape[2:], mode="bilinear", align_corners=True)
        h = self.shared(features.to(x.dtype))
        modulated = self.norm(x) * (1 + self.sigma(h)) + self.mu(h)
        return x + self.strength * self.out(F.leaky_relu(modulated, 0.2))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, key={self.key}"
