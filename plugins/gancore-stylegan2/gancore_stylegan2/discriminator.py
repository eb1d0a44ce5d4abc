"""D's parts: the residual DiscriminatorBlock, MinibatchStdLayer and DiscriminatorEpilogue."""

import math

import torch
from torch import Tensor, nn

from gancore.backbone import assert_shape

from gancore.layers import Conv2dLayer, FullyConnectedLayer

__all__ = ["DiscriminatorBlock", "DiscriminatorEpilogue", "MinibatchStdLayer"]


class DiscriminatorBlock(nn.Module):
    """Block ``b{r}`` of the residual D: ``[N, C_r, r, r]`` -> ``[N, C_{r/2}, r/2, r/2]``.

    ``fromrgb`` (1x1 conv, top block only) -> ``conv0`` (3x3) -> ``conv1`` (3x3, FIR down-sampling),
    plus a 1x1 down-sampling ``skip`` without bias; both branches are scaled by sqrt(0.5).
    """

    def __init__(
        self,
        in_channels: int,
        tmp_channels: int,
        out_channels: int,
        resolution: int,
        img_channels: int,
        conv_clamp: float | None = None,
    ):
        super().__init__()
        if in_channels not in (0, tmp_channels):
            raise ValueError(f"in_channels must be 0 (top block) or {tmp_channels}, got {in_channels}")
        self.in_channels = in_channels
        self.tmp_channels = tmp_channels
        self.out_channels = out_channels
        self.resolution = resolution
        self.img_channels = img_channels
        self.name = f"b{resolution}"
        self.fromrgb = (
            Conv2dLayer(img_channels, tmp_channels, 1, activation="lrelu", conv_clamp=conv_clamp)
            if in_channels == 0
            else None
        )
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, activation="lrelu", conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, activation="lrelu", down=2, conv_clamp=conv_clamp)
        self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, down=2)

    def forward(self, x: Tensor | None, img: Tensor) -> Tensor:
        """The previous block's ``x`` (None for the top block, which reads ``img``) -> ``x``."""
        r = self.resolution
        if self.fromrgb is not None:
            assert_shape(img, [None, self.img_channels, r, r], f"D {self.name} input image")
            x = self.fromrgb(img)
        else:
            assert x is not None, f"D {self.name} needs the previous block's output"
            assert_shape(x, [None, self.in_channels, r, r], f"D {self.name} input x")
        y = self.skip(x, gain=math.sqrt(0.5))
        x = self.conv0(x)
        x = self.conv1(x, gain=math.sqrt(0.5))
        return y + x


class MinibatchStdLayer(nn.Module):
    """Append the standard deviation over groups of ``group_size`` samples, averaged over channel
    groups and pixels, as ``num_channels`` extra feature maps."""

    def __init__(self, group_size: int, num_channels: int = 1):
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: Tensor) -> Tensor:
        """``[N, C, H, W]`` -> ``[N, C + num_channels, H, W]``."""
        N, C, H, W = x.shape
        G = min(self.group_size, N)
        F = self.num_channels
        if N % G != 0:
            raise ValueError(
                f"minibatch stddev: batch size {N} is not divisible by the group size {G} "
                f"(mbstd_group_size = {self.group_size}); use a batch size that is a multiple of it"
            )
        c = C // F
        y = x.reshape(G, -1, F, c, H, W)  # [G, n, F, c, H, W]: n groups of G samples
        y = y - y.mean(dim=0)
        y = y.square().mean(dim=0)
        y = (y + 1e-8).sqrt()  # [n, F, c, H, W]
        y = y.mean(dim=[2, 3, 4])  # [n, F]
        y = y.reshape(-1, F, 1, 1).repeat(G, 1, H, W)  # [N, F, H, W]
        return torch.cat([x, y], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"


class DiscriminatorEpilogue(nn.Module):
    """D's ``b4``: minibatch stddev -> 3x3 conv -> fc -> out, with projection conditioning
    ``<out, cmap> / sqrt(cmap_dim)`` when ``cmap_dim > 0``."""

    def __init__(
        self,
        in_channels: int,
        cmap_dim: int,
        resolution: int = 4,
        mbstd_group_size: int = 4,
        mbstd_num_channels: int = 1,
        conv_clamp: float | None = None,
    ):
        super().__init__()
        if mbstd_num_channels > 0 and in_channels % mbstd_num_channels != 0:
            raise ValueError(
                f"mbstd_num_channels = {mbstd_num_channels} must divide D's width at 4x4 ({in_channels})"
            )
        self.in_channels = in_channels
        self.cmap_dim = cmap_dim
        self.resolution = resolution
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(
            in_channels + mbstd_num_channels, in_channels, 3, activation="lrelu", conv_clamp=conv_clamp
        )
        self.fc = FullyConnectedLayer(in_channels * resolution**2, in_channels, activation="lrelu")
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x: Tensor, cmap: Tensor | None = None) -> Tensor:
        """``[N, C_4, 4, 4]`` (and mapped labels ``[N, cmap_dim]``) -> logits ``[N]``."""
        r = self.resolution
        assert_shape(x, [None, self.in_channels, r, r], "D epilogue input")
        x = x.to(torch.float32)
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.fc(x.flatten(1))
        x = self.out(x)
        if self.cmap_dim > 0:
            assert cmap is not None, "a conditional D epilogue needs mapped labels"
            assert_shape(cmap, [None, self.cmap_dim], "D mapped labels")
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / math.sqrt(self.cmap_dim))
        return x.squeeze(1)
