"""The decoder's layer: a 1x1 convolution with equalized learning rate and optional FIR up-sampling."""

import math

import torch
from torch import Tensor, nn

from gancore import ops

__all__ = ["Conv1x1"]


class Conv1x1(nn.Module):
    """``[N, C_in, H, W]`` -> ``[N, C_out, H * up, W * up]``: FIR up-sampling, then a 1x1 conv.

    Weights are drawn from N(0, 1) and scaled by ``1 / sqrt(C_in)`` at run time (equalized
    learning rate, as in StyleGAN2's ``Conv2dLayer``); the bias starts at zero.
    """

    def __init__(self, in_channels: int, out_channels: int, up: int = 1):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.up = up
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1.0 / math.sqrt(in_channels)
        self.register_buffer("resample_filter", ops.setup_filter([1, 3, 3, 1]), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """Up-sample (when ``up > 1``) and project to ``out_channels``."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"Conv1x1 expects [N, {self.in_channels}, H, W], got {list(x.shape)}")
        w = (self.weight * self.weight_gain).to(x.dtype)
        x = ops.conv2d_resample(x, w, f=self.resample_filter, up=self.up)
        return ops.bias_act(x, self.bias.to(x.dtype))

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, up={self.up}"
