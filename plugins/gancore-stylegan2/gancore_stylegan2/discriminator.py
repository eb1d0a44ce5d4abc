"""D's parts: the DiscriminatorBlock (residual, skip or plain), MinibatchStdLayer and DiscriminatorEpilogue."""

import math

import torch
from torch import Tensor, nn

from gancore import ops
from gancore.backbone import assert_shape
from gancore.layers import Conv2dLayer, FullyConnectedLayer, register_filter

__all__ = ["D_ARCHITECTURES", "DiscriminatorBlock", "DiscriminatorEpilogue", "MinibatchStdLayer"]

#: D's block architectures, as NVIDIA's code names them: residual (StyleGAN2's default), skip
#: (fromRGB at every resolution) and orig (plain convolutions, as the conditional CIFAR-10 model).
D_ARCHITECTURES = ("resnet", "skip", "orig")


class DiscriminatorBlock(nn.Module):
    """Block ``b{r}`` of D: ``[N, C_r, r, r]`` -> ``[N, C_{r/2}, r/2, r/2]``.

    ``fromrgb`` (1x1 conv; top block only, or every block in ``skip``, added to ``x``) -> ``conv0``
    (3x3) -> ``conv1`` (3x3, FIR down-sampling). ``resnet`` adds a 1x1 down-sampling ``skip``
    without bias, both branches scaled by sqrt(0.5); ``skip`` also down-samples the image for the
    next block.
    """

    def __init__(
        self,
        in_channels: int,
        tmp_channels: int,
        out_channels: int,
        resolution: int,
        img_channels: int,
        conv_clamp: float | None = None,
        architecture: str = "resnet",
    ):
        super().__init__()
        if in_channels not in (0, tmp_channels):
            raise ValueError(f"in_channels must be 0 (top block) or {tmp_channels}, got {in_channels}")
        if architecture not in D_ARCHITECTURES:
            raise ValueError(f"architecture must be one of {D_ARCHITECTURES}, got {architecture!r}")
        self.in_channels = in_channels
        self.tmp_channels = tmp_channels
        self.out_channels = out_channels
        self.resolution = resolution
        self.img_channels = img_channels
        self.architecture = architecture
        self.name = f"b{resolution}"
        register_filter(self)
        self.fromrgb = (
            Conv2dLayer(img_channels, tmp_channels, 1, activation="lrelu", conv_clamp=conv_clamp)
            if in_channels == 0 or architecture == "skip"
            else None
        )
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, activation="lrelu", conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, activation="lrelu", down=2, conv_clamp=conv_clamp)
        self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, down=2) if architecture == "resnet" else None

    def forward(self, x: Tensor | None, img: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """The previous block's ``x`` (None for the top block) and ``img`` -> ``(x, img)``.

        ``img`` is the input image for the top block and, in ``skip``, the down-sampled image
        every later block reads too; other architectures pass None on.
        """
        r = self.resolution
        if x is not None:
            assert_shape(x, [None, self.in_channels, r, r], f"D {self.name} input x")
        if self.fromrgb is not None:
            assert img is not None, f"D {self.name} needs the image"
            assert_shape(img, [None, self.img_channels, r, r], f"D {self.name} input image")
            y = self.fromrgb(img)
            x = x + y if x is not None else y
            img = ops.downsample2d(img, self.resample_filter) if self.architecture == "skip" else None
        assert x is not None, f"D {self.name} needs the previous block's output"
        if self.skip is not None:
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x)
            x = y + self.conv1(x, gain=math.sqrt(0.5))
        else:
            x = self.conv1(self.conv0(x))
        return x, img


class MinibatchStdLayer(nn.Module):
    """Append the standard deviation over groups of ``group_size`` samples (None: the whole batch),
    averaged over channel groups and pixels, as ``num_channels`` extra feature maps."""

    def __init__(self, group_size: int | None, num_channels: int = 1):
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: Tensor) -> Tensor:
        """``[N, C, H, W]`` -> ``[N, C + num_channels, H, W]``."""
        N, C, H, W = x.shape
        G = N if self.group_size is None else min(self.group_size, N)
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
    """D's ``b4``: (``fromrgb`` added, in ``skip``) minibatch stddev -> 3x3 conv -> fc -> out, with
    projection conditioning ``<out, cmap> / sqrt(cmap_dim)`` when ``cmap_dim > 0``."""

    def __init__(
        self,
        in_channels: int,
        cmap_dim: int,
        resolution: int = 4,
        mbstd_group_size: int | None = 4,
        mbstd_num_channels: int = 1,
        conv_clamp: float | None = None,
        architecture: str = "resnet",
        img_channels: int = 3,
    ):
        super().__init__()
        if mbstd_num_channels > 0 and in_channels % mbstd_num_channels != 0:
            raise ValueError(
                f"mbstd_num_channels = {mbstd_num_channels} must divide D's width at 4x4 ({in_channels})"
            )
        self.in_channels = in_channels
        self.cmap_dim = cmap_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.fromrgb = (
            Conv2dLayer(img_channels, in_channels, 1, activation="lrelu") if architecture == "skip" else None
        )
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(
            in_channels + mbstd_num_channels, in_channels, 3, activation="lrelu", conv_clamp=conv_clamp
        )
        self.fc = FullyConnectedLayer(in_channels * resolution**2, in_channels, activation="lrelu")
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x: Tensor, cmap: Tensor | None = None, img: Tensor | None = None) -> Tensor:
        """``[N, C_4, 4, 4]`` (mapped labels ``[N, cmap_dim]``; in ``skip`` the 4x4 image) -> logits ``[N]``."""
        r = self.resolution
        assert_shape(x, [None, self.in_channels, r, r], "D epilogue input")
        x = x.to(torch.float32)
        if self.fromrgb is not None:
            assert img is not None, "a skip D epilogue needs the down-sampled image"
            assert_shape(img, [None, self.img_channels, r, r], "D epilogue image")
            x = x + self.fromrgb(img.to(torch.float32))
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
