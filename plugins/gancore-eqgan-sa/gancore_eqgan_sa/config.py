"""Settings of the ``eqgan_sa`` plugin, with the paper's and official code's constants."""

import attrs

from gancore.config import ge, gt, le

__all__ = ["EqGANSAConfig"]


def _cam_resolutions(instance, attribute, value):
    if len(value) != 3 or any(r < 1 or r & (r - 1) for r in value):
        raise ValueError(f"must be three powers of two (D's feature map sizes for levels 1-3), got {list(value)}")


def _at_least_sigma_min(instance, attribute, value):
    if value < instance.sigma_min:
        raise ValueError(f"must be >= sigma_min ({instance.sigma_min}), got {value}")


@attrs.frozen(kw_only=True)
class EqGANSAConfig:
    """Settings of the ``eqgan_sa`` plugin (defaults from Wang et al. 2022 and genforce/eqgan-sa)."""

    #: Spatial encoding: heatmap encoders and an SEL before every synthesis layer of G.
    sel: bool = True
    #: The alignment loss between D's Grad-CAM on fakes and the heatmaps G was given.
    align: bool = True
    #: Weight of the alignment loss (the three levels summed).
    align_weight: float = attrs.field(default=1.0, validator=ge(0.0))
    #: Only differences above this enter the alignment loss (all, if at most one does).
    align_threshold: float = attrs.field(default=0.25, validator=[ge(0.0), le(1.0)])
    #: D's feature map sizes whose Grad-CAM is compared with heatmap levels 1, 2 and 3.
    cam_resolutions: tuple[int, ...] = attrs.field(default=(4, 8, 16), converter=tuple, validator=_cam_resolutions)
    #: Added to every heatmap value.
    eps: float = attrs.field(default=0.01, validator=ge(0.0))
    #: Level 1's centre: N(0, center_std²) per coordinate, clamped to ±center_clamp.
    center_std: float = attrs.field(default=0.33, validator=ge(0.0))
    center_clamp: float = attrs.field(default=0.75, validator=gt(0.0))
    #: Level 1's σ: U(sigma_min, sigma_max), one value per batch.
    sigma_min: float = attrs.field(default=0.5, validator=gt(0.0))
    sigma_max: float = attrs.field(default=1.0, validator=_at_least_sigma_min)
    #: Level 2: two centres at c + U(-level2_offset, level2_offset)², σ = (U(0, 1) + shift) / div per sample and centre.
    level2_offset: float = attrs.field(default=0.4, validator=ge(0.0))
    level2_sigma_shift: float = attrs.field(default=0.1, validator=gt(0.0))
    level2_sigma_div: float = attrs.field(default=1.4, validator=gt(0.0))
    #: Level 3: four centres at c + U(-level3_offset, level3_offset)², σ as for level 2.
    level3_offset: float = attrs.field(default=0.8, validator=ge(0.0))
    level3_sigma_shift: float = attrs.field(default=0.1, validator=gt(0.0))
    level3_sigma_div: float = attrs.field(default=2.0, validator=gt(0.0))
    #: Channels of the heatmap encoders' two 3x3 convs (per level).
    encoder_hidden: int = attrs.field(default=16, validator=gt(0))
    encoder_channels: int = attrs.field(default=32, validator=gt(0))
    #: Hidden channels of an SEL's shared conv, and the strength of its residual.
    sel_hidden: int = attrs.field(default=64, validator=gt(0))
    sel_strength: float = attrs.field(default=0.1, validator=ge(0.0))
