"""gancore-augment: ADA and DiffAugment for the images D scores, through the ``gancore_augment`` hook."""

from gancore_augment.ada import PRESETS, ada_augment
from gancore_augment.adaptive import AdaptiveP
from gancore_augment.config import AugmentConfig
from gancore_augment.diffaugment import POLICY_OPS, diffaugment
from gancore_augment.draws import Draws, GeneratorDraws
from gancore_augment.plugin import Augment

__all__ = [
    "POLICY_OPS",
    "PRESETS",
    "AdaptiveP",
    "Augment",
    "AugmentConfig",
    "Draws",
    "GeneratorDraws",
    "ada_augment",
    "diffaugment",
]
