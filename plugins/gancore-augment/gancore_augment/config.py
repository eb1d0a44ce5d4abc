"""Settings of ``[[plugins]] name = "augment"``: the mode, ADA's preset and adaptive p, DiffAugment's policy."""

from typing import Any

import attrs

from gancore.config import ge, gt, le, one_of

from gancore_augment.ada import PRESETS
from gancore_augment.diffaugment import POLICY_OPS

__all__ = ["AugmentConfig"]


def _known_policy(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    words = [w.strip() for w in value.split(",") if w.strip()]
    unknown = [w for w in words if w not in POLICY_OPS]
    if unknown or not words:
        raise ValueError(f"must list ops among {', '.join(POLICY_OPS)} separated by commas, got {value!r}")


@attrs.frozen(kw_only=True)
class AugmentConfig:
    """Settings of the ``augment`` plugin (defaults: ADA as in StyleGAN2-ADA)."""

    #: "ada" (NVIDIA's pipeline, probability p) or "diffaugment" (every op, every image).
    mode: str = attrs.field(default="ada", validator=one_of("ada", "diffaugment"))
    #: ADA: which ops (NVIDIA's presets: blit, geom, color, bg, bgc).
    preset: str = attrs.field(default="bgc", validator=one_of(*PRESETS))
    #: ADA: the starting p (adaptive) or the fixed p.
    p: float = attrs.field(default=0.0, validator=[ge(0.0), le(1.0)])
    #: ADA: adjust p from D's real scores (false: p stays fixed).
    adaptive: bool = True
    #: ADA: the r_t that p is steered towards.
    target: float = attrs.field(default=0.6, validator=[ge(-1.0), le(1.0)])
    #: ADA: steps between adjustments of p.
    interval: int = attrs.field(default=4, validator=ge(1))
    #: ADA: thousands of images over which p can move by one.
    ada_kimg: float = attrs.field(default=500.0, validator=gt(0.0))
    #: DiffAugment: the ops, comma-separated (the paper's policy).
    policy: str = attrs.field(default="color,translation,cutout", validator=_known_policy)

    @property
    def policy_ops(self) -> tuple[str, ...]:
        """The DiffAugment policy as a tuple of words."""
        return tuple(w.strip() for w in self.policy.split(",") if w.strip())
