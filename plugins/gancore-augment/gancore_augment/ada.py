"""ADA's augmentation pipeline (Karras et al. 2020): NVIDIA's geometric and colour ops, each applied per sample with probability p.

The geometric ops are composed into one inverse transform per image and executed at once: the image
is padded by reflection, up-sampled 2x with the sym6 wavelet low-pass filter, resampled through the
transform (bilinear) and down-sampled 2x with the same filter, so rotations and fractional
shifts do not alias. The colour ops are composed into one 4x4 matrix on (r, g, b, 1). Everything
is differentiable with respect to the images (R1 is taken through it).
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from gancore.ops import downsample2d, setup_filter, upsample2d

from gancore_augment.draws import Draws
from gancore_augment.matrices import rotate2d, rotate3d, scale2d, scale3d, translate2d, translate3d

__all__ = ["COLOR_OPS", "GEOMETRIC_OPS", "GRAYSCALE_SKIPPED", "PRESETS", "ada_augment"]

#: Pixel blitting and general geometric ops, in the order they are composed.
GEOMETRIC_OPS = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac")
#: Colour ops, in the order they are composed.
COLOR_OPS = ("brightness", "contrast", "lumaflip", "hue", "saturation")
#: Colour ops without effect on one-channel images (a rotation about, or a scaling away from, the
#: grey axis leaves grey unchanged): skipped for grayscale data, as NVIDIA's pipeline does.
GRAYSCALE_SKIPPED = ("hue", "saturation")

#: NVIDIA's presets (``--augpipe``); ``bgc`` is the default of StyleGAN2-ADA.
PRESETS: dict[str, tuple[str, ...]] = {
    "blit": GEOMETRIC_OPS[:3],
    "geom": GEOMETRIC_OPS[3:],
    "color": COLOR_OPS,
    "bg": GEOMETRIC_OPS,
    "bgc": GEOMETRIC_OPS + COLOR_OPS,
}

# The ops' strengths, as published with ADA.
XINT_MAX = 0.125  # integer translation: uniform, up to this fraction of the image size
SCALE_STD = 0.2  # isotropic scaling: log2-normal
ROTATE_MAX = 1.0  # arbitrary rotation: uniform, this fraction of a full turn either way
ANISO_STD = 0.2  # anisotropic scaling: log2-normal
XFRAC_STD = 0.125  # fractional translation: normal, in fractions of the image size
BRIGHTNESS_STD = 0.2  # brightness: normal offset
CONTRAST_STD = 0.5  # contrast: log2-normal
HUE_MAX = 1.0  # hue rotation: uniform, this fraction of a full turn either way
SATURATION_STD = 1.0  # saturation: log2-normal

#: Low-pass filter of the geometric ops: the sym6 wavelet's decomposition taps.
SYM6 = (
    0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
    0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
    -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148,
)


def ada_augment(images: Tensor, p: float, ops: tuple[str, ...], draws: Draws) -> Tensor:
    """Augment ``images`` ``[N, C, H, W]`` (C = 1 or 3, values about [-1, 1]) with ``ops``, each
    applied to each image with probability ``p``; the identity at ``p = 0``."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"ADA augments images [N, 1 or 3, H, W], got {list(images.shape)}")
    unknown = sorted(set(ops) - set(GEOMETRIC_OPS + COLOR_OPS))
    if unknown:
        raise ValueError(f"unknown ADA ops {unknown}; known: {', '.join(GEOMETRIC_OPS + COLOR_OPS)}")
    if p <= 0:
        return images
    n, channels, height, width = images.shape
    inverse = _geometric(n, p, ops, draws, width, height)
    if inverse is not None:
        images = _resample(images, inverse.to(images.dtype))
    colour = _colour(n, p, ops, draws, channels, images.device)
    if colour is not None:
        images = _recolour(images, colour.to(images.dtype))
    return images


def _chosen(draws: Draws, n: int, probability: float | Tensor) -> Tensor:
    """Which of ``n`` samples an op applies to."""
    return draws.uniform(n) < probability


def _geometric(n: int, p: float, ops: tuple[str, ...], draws: Draws, width: int, height: int) -> Tensor | None:
    """The composed inverse transform ``[N, 3, 3]`` (output pixel -> input pixel), None if no op is on."""
    steps: list[Tensor] = []
    if "xflip" in ops:
        i = torch.where(_chosen(draws, n, p), torch.floor(draws.uniform(n) * 2), 0.0)
        steps.append(scale2d(1 / (1 - 2 * i), torch.ones_like(i)))
    if "rotate90" in ops:
        i = torch.where(_chosen(draws, n, p), torch.floor(draws.uniform(n) * 4), 0.0)
        steps.append(rotate2d(math.pi / 2 * i))
    if "xint" in ops:
        t = torch.where(_chosen(draws, n, p)[:, None], (draws.uniform(n, 2) * 2 - 1) * XINT_MAX, 0.0)
        steps.append(translate2d(-torch.round(t[:, 0] * width), -torch.round(t[:, 1] * height)))
    if "scale" in ops:
        s = torch.where(_chosen(draws, n, p), torch.exp2(draws.normal(n) * SCALE_STD), 1.0)
        steps.append(scale2d(1 / s, 1 / s))
    # Two rotations (before and after the anisotropic scaling), each with p_rot: P(either) = p.
    p_rot = 1 - math.sqrt(min(max(1 - p, 0.0), 1.0))
    if "rotate" in ops:
        steps.append(rotate2d(torch.where(_chosen(draws, n, p_rot), _angle(draws, n, ROTATE_MAX), 0.0)))
    if "aniso" in ops:
        s = torch.where(_chosen(draws, n, p), torch.exp2(draws.normal(n) * ANISO_STD), 1.0)
        steps.append(scale2d(1 / s, s))
    if "rotate" in ops:
        steps.append(rotate2d(torch.where(_chosen(draws, n, p_rot), _angle(draws, n, ROTATE_MAX), 0.0)))
    if "xfrac" in ops:
        t = torch.where(_chosen(draws, n, p)[:, None], draws.normal(n, 2) * XFRAC_STD, 0.0)
        steps.append(translate2d(-t[:, 0] * width, -t[:, 1] * height))
    if not steps:
        return None
    inverse = steps[0]
    for step in steps[1:]:
        inverse = inverse @ step
    return inverse


def _angle(draws: Draws, n: int, fraction: float) -> Tensor:
    return (draws.uniform(n) * 2 - 1) * math.pi * fraction


def _constant(n: int, value: float, like: Tensor) -> Tensor:
    return torch.full((n,), float(value), dtype=like.dtype, device=like.device)


def _resample(images: Tensor, inverse: Tensor) -> Tensor:
    """Execute the inverse transform: reflect-pad, 2x up-sample, bilinear resampling, 2x down-sample."""
    n, channels, height, width = images.shape
    taps = setup_filter(SYM6, device=images.device).to(images.dtype)
    pad = len(SYM6) // 4
    cx, cy = (width - 1) / 2, (height - 1) / 2
    corners = torch.tensor([[-cx, -cy, 1], [cx, -cy, 1], [cx, cy, 1], [-cx, cy, 1]], dtype=inverse.dtype,
                           device=images.device)
    reached = (inverse @ corners.t())[:, :2, :].permute(1, 0, 2).flatten(1)  # [xy, N * corners]
    margin = torch.cat([-reached, reached]).amax(dim=1)  # how far beyond each side the input is read
    margin = margin + torch.tensor([pad * 2 - cx, pad * 2 - cy] * 2, dtype=margin.dtype, device=margin.device)
    limit = torch.tensor([width - 1, height - 1] * 2, dtype=margin.dtype, device=margin.device)
    mx0, my0, mx1, my1 = (int(v) for v in margin.clamp_min(0).minimum(limit).ceil().tolist())
    images = F.pad(images, [mx0, mx1, my0, my1], mode="reflect")
    one = _constant(n, 1.0, inverse)
    inverse = translate2d(one * (mx0 - mx1) / 2, one * (my0 - my1) / 2) @ inverse
    images = upsample2d(images, taps, up=2)
    inverse = scale2d(one * 2, one * 2) @ inverse @ scale2d(one / 2, one / 2)
    inverse = translate2d(-one / 2, -one / 2) @ inverse @ translate2d(one / 2, one / 2)
    size = [n, channels, (height + pad * 2) * 2, (width + pad * 2) * 2]
    to_unit = scale2d(one * 2 / images.shape[3], one * 2 / images.shape[2])
    from_unit = scale2d(one * size[3] / 2, one * size[2] / 2)
    grid = F.affine_grid((to_unit @ inverse @ from_unit)[:, :2, :], size, align_corners=False)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return downsample2d(images, taps, down=2, padding=-pad * 2, flip_filter=True)


def _colour(n: int, p: float, ops: tuple[str, ...], draws: Draws, channels: int, device: torch.device) -> Tensor | None:
    """The composed colour transform ``[N, 4, 4]`` on (r, g, b, 1), None if no op is on."""
    matrix: Tensor | None = None
    luma = torch.tensor([1.0, 1.0, 1.0, 0.0], device=device) / math.sqrt(3)
    along = torch.outer(luma, luma)
    identity = torch.eye(4, device=device)

    def then(step: Tensor) -> None:
        nonlocal matrix
        matrix = step if matrix is None else step @ matrix

    if "brightness" in ops:
        b = torch.where(_chosen(draws, n, p), draws.normal(n) * BRIGHTNESS_STD, 0.0)
        then(translate3d(b, b, b))
    if "contrast" in ops:
        c = torch.where(_chosen(draws, n, p), torch.exp2(draws.normal(n) * CONTRAST_STD), 1.0)
        then(scale3d(c, c, c))
    if "lumaflip" in ops:
        i = torch.where(_chosen(draws, n, p), torch.floor(draws.uniform(n) * 2), 0.0)
        then(identity - 2 * along * i[:, None, None])  # reflection through the plane across the grey axis
    if "hue" in ops and channels > 1:
        then(rotate3d(luma, torch.where(_chosen(draws, n, p), _angle(draws, n, HUE_MAX), 0.0)))
    if "saturation" in ops and channels > 1:
        s = torch.where(_chosen(draws, n, p), torch.exp2(draws.normal(n) * SATURATION_STD), 1.0)
        then(along + (identity - along) * s[:, None, None])
    return matrix


def _recolour(images: Tensor, matrix: Tensor) -> Tensor:
    """Apply ``[N, 4, 4]`` colour transforms; a grey image takes the mean of the three output rows."""
    n, channels, height, width = images.shape
    flat = images.reshape(n, channels, height * width)
    if channels == 3:
        flat = matrix[:, :3, :3] @ flat + matrix[:, :3, 3:]
    else:
        rows = matrix[:, :3, :].mean(dim=1, keepdim=True)
        flat = flat * rows[:, :, :3].sum(dim=2, keepdim=True) + rows[:, :, 3:]
    return flat.reshape(n, channels, height, width)
