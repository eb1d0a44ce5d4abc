"""Equalized-learning-rate building blocks (fully connected and resampling convolution layers) for backbones and plugins."""

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gancore import ops
from gancore.ops import conv2d_resample

__all__ = [
    "RESAMPLE_FILTER",
    "Conv2dLayer",
    "FullyConnectedLayer",
    "activation_gain",
    "is_resample_filter",
    "normalize_2nd_moment",
    "register_filter",
]

#: The FIR low-pass filter of every up- and down-sampling (outer product of the taps, normalized).
RESAMPLE_FILTER: tuple[int, ...] = (1, 3, 3, 1)


def normalize_2nd_moment(x: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """Scale ``x`` to unit mean square along ``dim`` (StyleGAN's pixel norm of z)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def activation_gain(activation: str) -> float:
    """The default output gain of ``activation`` (sqrt(2) for (leaky) ReLU, else 1)."""
    return ops.ACTIVATIONS[activation].default_gain


def is_resample_filter(filter_2d: Tensor) -> bool:
    """Whether a stored 2-D filter (e.g. a ``resample_filter`` buffer of an imported network) is
    the one :func:`register_filter` sets up from :data:`RESAMPLE_FILTER`."""
    return torch.equal(filter_2d.float().cpu(), ops.setup_filter(list(RESAMPLE_FILTER)))


def register_filter(module: nn.Module, taps: Sequence[int] = RESAMPLE_FILTER) -> None:
    """Give ``module`` a non-persistent ``resample_filter`` buffer prepared by ``setup_filter``."""
    module.register_buffer("resample_filter", ops.setup_filter(list(taps)), persistent=False)


class FullyConnectedLayer(nn.Module):
    """Linear layer with equalized learning rate: weights ~ N(0, 1/lr_multiplier), scaled at runtime
    by ``lr_multiplier / sqrt(in_features)``; the bias by ``lr_multiplier``; then ``activation``."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        activation: str = "linear",
        lr_multiplier: float = 1.0,
        bias_init: float = 0.0,
    ):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: Tensor) -> Tensor:
        """``[N, in_features]`` -> ``[N, out_features]``."""
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear":
            return F.linear(x, w, b)
        return ops.bias_act(x.matmul(w.t()), b, act=self.activation)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


class Conv2dLayer(nn.Module):
    """Convolution with equalized learning rate, optional FIR up/down-sampling by 2, bias,
    activation (with its gain) and optional output clamping."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool = True,
        activation: str = "linear",
        up: int = 1,
        down: int = 1,
        conv_clamp: float | None = None,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        register_filter(self)
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.act_gain = activation_gain(activation)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels])) if bias else None

    def forward(self, x: Tensor, gain: float = 1.0) -> Tensor:
        """``[N, C_in, H, W]`` -> ``[N, C_out, H * up / down, W * up / down]``, output scaled by ``gain``."""
        w = (self.weight * self.weight_gain).to(x.dtype)
        b = self.bias.to(x.dtype) if self.bias is not None else None
        x = conv2d_resample(
            x, w, f=self.resample_filter, up=self.up, down=self.down, padding=self.padding,
            flip_weight=self.up == 1,
        )
        act_gain = self.act_gain * gain
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return ops.bias_act(x, b, act=self.activation, gain=act_gain, clamp=act_clamp)

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, kernel_size={self.weight.shape[-1]}, "
            f"activation={self.activation}, up={self.up}, down={self.down}"
        )
