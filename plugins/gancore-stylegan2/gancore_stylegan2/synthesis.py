"""G's synthesis layers: modulated conv with noise (SynthesisLayer), ToRGBLayer, SynthesisBlock."""

import math
from typing import Callable

import torch
from torch import Tensor, nn

from gancore import ops
from gancore.backbone import assert_shape
from gancore.ops.modulated_conv import modulated_conv2d

from gancore.layers import FullyConnectedLayer, activation_gain, register_filter

__all__ = ["NOISE_MODES", "Adapt", "SynthesisBlock", "SynthesisLayer", "ToRGBLayer"]

#: How the noise inputs are drawn: fresh per call, the stored ``noise_const``, or not at all.
NOISE_MODES = ("random", "const", "none")

#: ``adapt(layer_name, x) -> x``: the generator's adapters for one synthesis call.
Adapt = Callable[[str, Tensor], Tensor]


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally up-sampling by 2) with demodulation, per-pixel noise with a
    learned strength, bias and leaky ReLU; its style is an affine map of one w (bias init 1)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        kernel_size: int = 3,
        up: int = 1,
        conv_clamp: float | None = None,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.up = up
        self.conv_clamp = conv_clamp
        self.padding = kernel_size // 2
        self.act_gain = activation_gain("lrelu")
        register_filter(self)
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.register_buffer("noise_const", torch.randn([resolution, resolution]))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x: Tensor, w: Tensor, noise_mode: str = "random", fused_modconv: bool = True) -> Tensor:
        """``[N, C_in, r / up, r / up]`` and ``w`` ``[N, w_dim]`` -> ``[N, C_out, r, r]``."""
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        size = self.resolution // self.up
        assert_shape(x, [None, self.in_channels, size, size], f"synthesis layer input at {size}x{size}")
        styles = self.affine(w)
        noise = None
        if noise_mode == "random":
            size = [x.shape[0], 1, self.resolution, self.resolution]
            noise = torch.randn(size, device=x.device) * self.noise_strength
        elif noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        x = modulated_conv2d(
            x, self.weight, styles, noise=noise, up=self.up, padding=self.padding,
            resample_filter=self.resample_filter, flip_weight=self.up == 1, fused_modconv=fused_modconv,
        )
        return ops.bias_act(x, self.bias.to(x.dtype), act="lrelu", gain=self.act_gain, clamp=self.conv_clamp)

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
            f"resolution={self.resolution}, up={self.up}"
        )


class ToRGBLayer(nn.Module):
    """Modulated 1x1 conv to image channels, without demodulation, plus bias (linear)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, conv_clamp: float | None = None):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, 1, 1]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def forward(self, x: Tensor, w: Tensor, fused_modconv: bool = True) -> Tensor:
        """``[N, C_in, r, r]`` and ``w`` ``[N, w_dim]`` -> ``[N, channels, r, r]``."""
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)
        return ops.bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """Block ``b{r}`` of the skip generator.

    ``b4``: learned constant ``[C_4, 4, 4]`` -> ``conv1``. ``b{r}``, ``r > 4``: ``conv0``
    (up-sampling by 2) -> ``conv1``. Then ``torgb``, whose image is added to the FIR-up-sampled
    image of the previous block. Consumes ``num_conv + 1`` ws; its ``torgb`` w is the next block's
    first, so consecutive blocks overlap by one w (as in the official code).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        conv_clamp: float | None = None,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.w_dim = w_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.name = f"b{resolution}"
        register_filter(self)
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
            self.conv0 = None
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2, conv_clamp=conv_clamp)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp)
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
        self.num_conv = 1 if in_channels == 0 else 2
        self.num_ws = self.num_conv + 1

    def layer_inputs(self) -> list[tuple[str, int, int]]:
        """``(layer name, input channels, input resolution)`` for conv0 (if any), conv1, torgb."""
        r = self.resolution
        layers = [] if self.conv0 is None else [(f"{self.name}.conv0", self.in_channels, r // 2)]
        layers += [(f"{self.name}.conv1", self.out_channels, r), (f"{self.name}.torgb", self.out_channels, r)]
        return layers

    def forward(
        self,
        x: Tensor | None,
        img: Tensor | None,
        ws: Tensor,
        adapt: Adapt,
        noise_mode: str = "random",
        fused_modconv: bool | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Run the block on the previous block's ``x`` and ``img`` (None for ``b4``).

        ``ws`` is ``[N, num_ws, w_dim]``. Returns ``(x [N, C_r, r, r], img [N, channels, r, r])``.
        """
        assert_shape(ws, [None, self.num_ws, self.w_dim], f"{self.name} ws")
        w_iter = iter(ws.unbind(dim=1))
        if fused_modconv is None:
            fused_modconv = not self.training
        r = self.resolution
        if self.conv0 is None:
            x = self.const.unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
        else:
            assert x is not None and img is not None, f"{self.name} needs the previous block's x and img"
            assert_shape(x, [None, self.in_channels, r // 2, r // 2], f"{self.name} input x")
            x = self.conv0(adapt(f"{self.name}.conv0", x), next(w_iter), noise_mode, fused_modconv)
        x = self.conv1(adapt(f"{self.name}.conv1", x), next(w_iter), noise_mode, fused_modconv)

        y = self.torgb(adapt(f"{self.name}.torgb", x), next(w_iter), fused_modconv).to(torch.float32)
        if img is not None:
            assert_shape(img, [None, self.img_channels, r // 2, r // 2], f"{self.name} input img")
            img = ops.upsample2d(img, self.resample_filter) + y
        else:
            img = y
        return x, img
