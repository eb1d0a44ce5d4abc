"""DiffAugment (Zhao et al. 2020): colour, translation and cutout on every image D scores, with the paper's constants."""

import torch
import torch.nn.functional as F
from torch import Tensor

from gancore_augment.draws import Draws

__all__ = ["POLICY_OPS", "diffaugment", "random_brightness", "random_contrast", "random_cutout",
           "random_saturation", "random_translation"]

#: The paper's constants: translation up to 1/8 of the image size, a cutout square of half its size.
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def random_brightness(x: Tensor, draws: Draws) -> Tensor:
    """Add a uniform offset in [-0.5, 0.5) per image."""
    return x + (draws.uniform(x.shape[0], 1, 1, 1).to(x.dtype) - 0.5)


def random_saturation(x: Tensor, draws: Draws) -> Tensor:
    """Scale each pixel's distance from its channel mean by a uniform factor in [0, 2) (no effect on one channel)."""
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (draws.uniform(x.shape[0], 1, 1, 1).to(x.dtype) * 2) + mean


def random_contrast(x: Tensor, draws: Draws) -> Tensor:
    """Scale each image's distance from its mean by a uniform factor in [0.5, 1.5)."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (draws.uniform(x.shape[0], 1, 1, 1).to(x.dtype) + 0.5) + mean


def _offsets(draws: Draws, n: int, low: int, high: int) -> Tensor:
    """Uniform integers in [low, high] per image, ``[N]`` (long)."""
    return (low + torch.floor(draws.uniform(n) * (high - low + 1))).long().clamp(max=high)


def random_translation(x: Tensor, draws: Draws, ratio: float = TRANSLATION_RATIO) -> Tensor:
    """Shift each image by whole pixels, up to ``ratio`` of its size each way; uncovered pixels are zero."""
    n, c, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy, dx = _offsets(draws, n, -sy, sy), _offsets(draws, n, -sx, sx)
    rows = (torch.arange(h, device=x.device) + sy - dy[:, None]).view(n, 1, h, 1).expand(n, c, h, w + 2 * sx)
    cols = (torch.arange(w, device=x.device) + sx - dx[:, None]).view(n, 1, 1, w).expand(n, c, h, w)
    return F.pad(x, (sx, sx, sy, sy)).gather(2, rows).gather(3, cols)


def random_cutout(x: Tensor, draws: Draws, ratio: float = CUTOUT_RATIO) -> Tensor:
    """Zero a square of ``ratio`` of the image size per image, centred anywhere (clipped at the borders)."""
    n, _, h, w = x.shape
    size_y, size_x = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = _offsets(draws, n, 0, h - size_y % 2)
    cx = _offsets(draws, n, 0, w - size_x % 2)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    top, left = (cy - size_y // 2).view(n, 1, 1), (cx - size_x // 2).view(n, 1, 1)
    inside = (ys >= top) & (ys < top + size_y) & (xs >= left) & (xs < left + size_x)
    return x * (~inside).unsqueeze(1).to(x.dtype)


#: The ops of each policy word, in the order the paper applies them.
POLICY_OPS = {
    "color": (random_brightness, random_saturation, random_contrast),
    "translation": (random_translation,),
    "cutout": (random_cutout,),
}


def diffaugment(x: Tensor, policy: tuple[str, ...], draws: Draws) -> Tensor:
    """Apply the policy's ops to every image ``[N, C, H, W]`` (saturation skipped for one channel)."""
    unknown = sorted(set(policy) - set(POLICY_OPS))
    if unknown:
        raise ValueError(f"unknown DiffAugment policy {unknown}; known: {', '.join(POLICY_OPS)}")
    if x.ndim != 4:
        raise ValueError(f"DiffAugment augments images [N, C, H, W], got {list(x.shape)}")
    for word in policy:
        for op in POLICY_OPS[word]:
            if op is random_saturation and x.shape[1] == 1:
                continue
            x = op(x, draws)
    return x
