"""BigGAN's residual blocks (G's up block, D's down block) and its self-attention block."""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gancore.backbone import assert_shape

from gancore_biggan.layers import SNConv2d

__all__ = ["Attention", "DBlock", "GBlock"]


class GBlock(nn.Module):
    """``x -> bn1(y) -> relu -> 2x nearest -> conv1 -> bn2(y) -> relu -> conv2``, plus ``x`` upsampled
    through a 1x1 conv. ``bn1``/``bn2`` are class-conditional (or plain) batch norms."""

    def __init__(self, in_channels: int, out_channels: int, resolution: int, make_bn, sn_eps: float):
        super().__init__()
        self.in_channels, self.out_channels, self.resolution = in_channels, out_channels, resolution
        self.bn1 = make_bn(in_channels)
        self.conv1 = SNConv2d(in_channels, out_channels, eps=sn_eps)
        self.bn2 = make_bn(out_channels)
        self.conv2 = SNConv2d(out_channels, out_channels, eps=sn_eps)
        self.shortcut = SNConv2d(in_channels, out_channels, kernel_size=1, padding=0, eps=sn_eps)

    def forward(self, x: Tensor, y: Tensor | None) -> Tensor:
        """``[N, in, r/2, r/2]`` -> ``[N, out, r, r]``."""
        r = self.resolution
        assert_shape(x, [None, self.in_channels, r // 2, r // 2], f"GBlock {r} input")
        h = F.interpolate(F.relu(self.bn1(x, y)), scale_factor=2)
        h = self.conv2(F.relu(self.bn2(self.conv1(h), y)))
        return h + self.shortcut(F.interpolate(x, scale_factor=2))


class DBlock(nn.Module):
    """``(relu) -> conv1 -> relu -> conv2 -> (2x2 average pool)``, plus a 1x1-conv shortcut.

    The first block of D sees the image: no ReLU before it, and its shortcut pools before the
    1x1 conv; later blocks pre-activate and convolve before pooling. ``wide``: conv1 already
    has the output width.
    """

    def __init__(self, in_channels: int, out_channels: int, downsample: bool, first: bool, wide: bool,
                 sn_eps: float):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.downsample, self.first = downsample, first
        hidden = out_channels if wide else in_channels
        self.conv1 = SNConv2d(in_channels, hidden, eps=sn_eps)
        self.conv2 = SNConv2d(hidden, out_channels, eps=sn_eps)
        self.learnable_shortcut = in_channels != out_channels or downsample
        self.shortcut = (SNConv2d(in_channels, out_channels, kernel_size=1, padding=0, eps=sn_eps)
                         if self.learnable_shortcut else None)

    def _pool(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, 2) if self.downsample else x

    def _skip(self, x: Tensor) -> Tensor:
        if self.shortcut is None:
            return self._pool(x)
        return self.shortcut(self._pool(x)) if self.first else self._pool(self.shortcut(x))

    def forward(self, x: Tensor) -> Tensor:
        """``[N, in, r, r]`` -> ``[N, out, r/2, r/2]`` (or ``r`` without downsampling)."""
        assert_shape(x, [None, self.in_channels, None, None], "DBlock input")
        h = self.conv1(x if self.first else F.relu(x))
        h = self._pool(self.conv2(F.relu(h)))
        return h + self._skip(x)


class Attention(nn.Module):
    """SAGAN's self-attention: queries at every position, keys and values 2x2 max-pooled, added back
    with a learned ``gamma`` (0 at first)."""

    def __init__(self, channels: int, sn_eps: float):
        super().__init__()
        self.channels = channels
        self.theta = SNConv2d(channels, channels // 8, 1, padding=0, bias=False, eps=sn_eps)
        self.phi = SNConv2d(channels, channels // 8, 1, padding=0, bias=False, eps=sn_eps)
        self.g = SNConv2d(channels, channels // 2, 1, padding=0, bias=False, eps=sn_eps)
        self.o = SNConv2d(channels // 2, channels, 1, padding=0, bias=False, eps=sn_eps)
        self.gamma = nn.Parameter(torch.tensor(0.0))

    def forward(self, x: Tensor) -> Tensor:
        """``[N, C, H, W]`` -> the same shape."""
        n, c, h, w = x.shape
        assert c == self.channels, f"Attention: expected {self.channels} channels, got {c}"
        theta = self.theta(x).view(n, c // 8, h * w)
        phi = F.max_pool2d(self.phi(x), 2).view(n, c // 8, h * w // 4)
        g = F.max_pool2d(self.g(x), 2).view(n, c // 2, h * w // 4)
        beta = F.softmax(theta.transpose(1, 2) @ phi, dim=-1)
        o = self.o((g @ beta.transpose(1, 2)).view(n, c // 2, h, w))
        return self.gamma * o + x
