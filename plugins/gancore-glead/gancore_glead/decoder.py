"""D's decoder for GLeaD: a light U-Net over D's block outputs and one head per entry of G's state."""

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gancore.backbone import assert_shape
from gancore.layers import Conv2dLayer

__all__ = ["StateDecoder"]


def _width(channels: Mapping[int, int], resolution: int) -> int:
    """D's channel count at ``resolution``, or at the nearest resolution D has."""
    if resolution in channels:
        return channels[resolution]
    nearest = min(channels, key=lambda res: (abs(res.bit_length() - resolution.bit_length()), -res))
    return channels[nearest]


class StateDecoder(nn.Module):
    """Predict G's synthesis state at resolution r from D's features.

    Stages go from D's smallest feature map up to ``decoder_resolution``: stage ``t`` concatenates
    the previous stage's output with D's feature at ``t/2`` (when D has one), up-samples by 2 and
    projects with a 1x1 conv to D's width at ``t``. Then one 1x1 head per entry of
    ``state_shapes`` (``G.resume_state(r)``):

    - ``(C, H, W)``: a map (G's feature map, its RGB skip image), resized bilinearly to ``H x W``;
    - ``(L, D)``: one vector (global average pool), repeated ``L`` times (G's remaining ``ws``);
    - ``(D,)``: one vector.
    """

    def __init__(
        self, d_channels: Mapping[int, int], state_shapes: Mapping[str, tuple[int, ...]], decoder_resolution: int
    ):
        super().__init__()
        if not d_channels:
            raise ValueError("D reports no feature maps (feature_channels() is empty)")
        self.d_channels = {int(res): int(c) for res, c in d_channels.items()}
        self.state_shapes = {name: tuple(shape) for name, shape in state_shapes.items()}
        self.start = min(self.d_channels)
        if decoder_resolution <= self.start:
            raise ValueError(
                f"decoder_resolution {decoder_resolution} must exceed D's smallest feature map ({self.start})"
            )
        self.decoder_resolution = decoder_resolution
        self.stages = nn.ModuleDict()
        previous = 0
        res = self.start * 2
        while res <= decoder_resolution:
            in_channels = previous + self.d_channels.get(res // 2, 0)
            out_channels = _width(self.d_channels, res)
            self.stages[f"b{res}"] = Conv2dLayer(in_channels, out_channels, kernel_size=1, up=2)
            previous = out_channels
            res *= 2
        self.out_channels = previous
        self.heads = nn.ModuleDict()
        for name, shape in self.state_shapes.items():
            if len(shape) == 3:
                self.heads[name] = Conv2dLayer(previous, shape[0], kernel_size=1)
            elif len(shape) in (1, 2):
                self.heads[name] = Conv2dLayer(previous, shape[-1], kernel_size=1)
            else:
                raise ValueError(f"cannot predict state entry {name!r} of shape {shape}: expected (C, H, W), (L, D) or (D,)")

    def decode(self, features: Mapping[int, Tensor]) -> Tensor:
        """The U-Net's output ``[N, C, decoder_resolution, decoder_resolution]``."""
        missing = sorted(set(self.d_channels) - set(features))
        if missing:
            raise ValueError(f"D's features lack resolutions {missing} (has {sorted(features)})")
        for res, c in self.d_channels.items():
            assert_shape(features[res], [None, c, res, res], f"D feature at {res}")
        y = None
        for name, stage in self.stages.items():
            res = int(name[1:])
            parts = [] if y is None else [y]
            if res // 2 in self.d_channels:
                parts.append(features[res // 2].to(torch.float32))
            y = stage(torch.cat(parts, dim=1) if len(parts) > 1 else parts[0])
        assert y is not None
        return y

    def forward(self, features: Mapping[int, Tensor]) -> dict[str, Tensor]:
        """``{name: [N, *shape]}`` for every entry of the state, from D's ``{resolution: feature}``."""
        y = self.decode(features)
        n = y.shape[0]
        state = {}
        for name, shape in self.state_shapes.items():
            out = self.heads[name](y)
            if len(shape) == 3:
                if tuple(out.shape[2:]) != tuple(shape[1:]):
                    out = F.interpolate(out, size=tuple(shape[1:]), mode="bilinear", align_corners=False)
            else:
                out = out.mean(dim=(2, 3))
                if len(shape) == 2:
                    out = out.unsqueeze(1).repeat(1, shape[0], 1)
            assert_shape(out, [n, *shape], f"predicted state {name}")
            state[name] = out
        return state
