"""Shift: a differentiable augmentation that translates every image D scores by a random whole number of pixels."""

import attrs
import torch
import torch.nn.functional as F
from gancore import hookimpl
from gancore.config import ge, le


@attrs.frozen(kw_only=True)
class ShiftConfig:
    """Settings of [[plugins]] name = "shift"."""

    #: The largest shift, as a fraction of the image size.
    fraction: float = attrs.field(default=0.125, validator=[ge(0.0), le(0.5)])


class Shift:
    """Translates each image D scores by up to ``fraction`` of its size, filling with zeros
    (DiffAugment's translation), in every phase: D's main step, its R1 step and G's step."""

    name = "shift"
    config_class = ShiftConfig

    def __init__(self, config: ShiftConfig):
        self.config = config

    @hookimpl
    def gancore_augment(self, run, images):
        if images.ndim != 4:  # 2-D points: nothing to shift
            return None
        n, c, h, w = images.shape
        s = max(1, round(self.config.fraction * h))
        # Per-sample draws come from run.rand: different on every rank's rows, the same for any
        # number of processes, and replayed exactly when top-k scores a batch before training on it.
        dy, dx = (run.rand(n, 2) * (2 * s + 1)).floor().long().sub(s).unbind(1)
        return shift_images(images, dy, dx, s)


def shift_images(images: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, limit: int) -> torch.Tensor:
    """Move image ``i`` of ``[N, C, H, W]`` down by ``dy[i]`` and right by ``dx[i]`` pixels (each at
    most ``limit`` either way), filling with zeros; gradients flow to the pixels that stay."""
    n, c, h, w = images.shape
    assert dy.shape == dx.shape == (n,), (dy.shape, dx.shape)
    padded = F.pad(images, (limit, limit, limit, limit))
    rows = (torch.arange(h, device=images.device) + limit - dy.view(n, 1)).view(n, 1, h, 1)
    cols = (torch.arange(w, device=images.device) + limit - dx.view(n, 1)).view(n, 1, 1, w)
    picked = padded.gather(2, rows.expand(n, c, h, w + 2 * limit))
    return picked.gather(3, cols.expand(n, c, h, w))
