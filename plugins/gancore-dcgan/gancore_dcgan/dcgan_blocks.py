"""The ``dcgan`` backbone's blocks: G's input, up and toRGB blocks; D's fromRGB and down blocks."""

from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gancore.backbone import assert_shape

from gancore_dcgan.layers import LREL_SLOPE, maybe_spectral_norm

__all__ = ["DownBlock", "FromRGB", "InputBlock", "ToRGB", "UpBlock"]


_Conv = TypeVar("_Conv", nn.Conv2d, nn.ConvTranspose2d)


def _init(conv: _Conv) -> _Conv:
    """DCGAN initialisation of a conv (before any spectral norm): weight ~ N(0, 0.02), zero bias."""
    nn.init.normal_(conv.weight, 0.0, 0.02)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


def _norm(kind: str, channels: int) -> nn.Module:
    """G's normalisation: ``"batch"`` (scale ~ N(1, 0.02), as in DCGAN) or ``"none"``."""
    if kind == "none":
        return nn.Identity()
    norm = nn.BatchNorm2d(channels)
    nn.init.normal_(norm.weight, 1.0, 0.02)
    return norm


class InputBlock(nn.Module):
    """G's ``b4``: ``w [N, w_dim]`` -> linear -> ``[N, C, 4, 4]`` -> norm -> ReLU."""

    def __init__(self, w_dim: int, out_channels: int, norm: str):
        super().__init__()
        self.w_dim = w_dim
        self.out_channels = out_channels
        self.fc = nn.Linear(w_dim, out_channels * 16, bias=norm != "batch")
        self.norm = _norm(norm, out_channels)

    def forward(self, w: Tensor) -> Tensor:
        """``[N, w_dim]`` -> ``[N, C, 4, 4]``."""
        assert_shape(w, [None, self.w_dim], "b4 input w")
        x = self.fc(w).view(-1, self.out_channels, 4, 4)
        return F.relu(self.norm(x))


class UpBlock(nn.Module):
    """G's ``b{r}``: ``[N, C_in, r/2, r/2]`` -> upsample x2 -> norm -> ReLU -> ``[N, C_out, r, r]``."""

    def __init__(self, in_channels: int, out_channels: int, resolution: int, norm: str, resample: str):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.resolution = resolution
        self.resample = resample
        bias = norm != "batch"
        if resample == "stride":
            conv = nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=bias)
            self.conv = _init(conv)
        else:
            self.conv = _init(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias))
        self.norm = _norm(norm, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        """``[N, C_in, r/2, r/2]`` -> ``[N, C_out, r, r]``."""
        half = self.resolution // 2
        assert_shape(x, [None, self.in_channels, half, half], f"b{self.resolution} input")
        if self.resample == "nearest":
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        x = F.relu(self.norm(self.conv(x)))
        r = self.resolution
        assert_shape(x, [None, self.out_channels, r, r], f"b{r} output")
        return x


class ToRGB(nn.Module):
    """G's ``torgb``: 3x3 conv to image channels, then tanh into [-1, 1]."""

    def __init__(self, in_channels: int, img_channels: int, resolution: int):
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.conv = _init(nn.Conv2d(in_channels, img_channels, 3, padding=1))

    def forward(self, x: Tensor) -> Tensor:
        """``[N, C, R, R]`` -> ``[N, img_channels, R, R]`` in [-1, 1]."""
        assert_shape(x, [None, self.in_channels, self.resolution, self.resolution], "torgb input")
        return torch.tanh(self.conv(x))


class FromRGB(nn.Module):
    """D's ``b{R}``: 3x3 conv from image channels -> leaky ReLU, at the image resolution."""

    def __init__(self, img_channels: int, out_channels: int, resolution: int, spectral_norm: bool):
        super().__init__()
        self.img_channels = img_channels
        self.resolution = resolution
        conv = nn.Conv2d(img_channels, out_channels, 3, padding=1)
        self.conv = maybe_spectral_norm(_init(conv), spectral_norm)

    def forward(self, x: Tensor) -> Tensor:
        """``[N, img_channels, R, R]`` -> ``[N, C_R, R, R]``."""
        assert_shape(x, [None, self.img_channels, self.resolution, self.resolution], "fromrgb input")
        return F.leaky_relu(self.conv(x), LREL_SLOPE)


class DownBlock(nn.Module):
    """D's ``b{r}``: ``[N, C_in, 2r, 2r]`` -> downsample x2 -> leaky ReLU -> ``[N, C_out, r, r]``."""

    def __init__(
        self, in_channels: int, out_channels: int, resolution: int, spectral_norm: bool, resample: str
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.resolution = resolution
        self.resample = resample
        if resample == "stride":
            conv = nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1)
        else:
            conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.conv = maybe_spectral_norm(_init(conv), spectral_norm)

    def forward(self, x: Tensor) -> Tensor:
        """``[N, C_in, 2r, 2r]`` -> ``[N, C_out, r, r]``."""
        double = self.resolution * 2
        assert_shape(x, [None, self.in_channels, double, double], f"D b{self.resolution} input")
        x = self.conv(x)
        if self.resample == "nearest":
            x = F.avg_pool2d(x, 2)
        x = F.leaky_relu(x, LREL_SLOPE)
        r = self.resolution
        assert_shape(x, [None, self.out_channels, r, r], f"D b{r} output")
        return x
