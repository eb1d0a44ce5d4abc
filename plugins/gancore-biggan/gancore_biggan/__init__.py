"""gancore-biggan: the BigGAN backbone (residual G with class-conditional batch norm, projection D, spectral norm)."""

from gancore_biggan.config import PRESETS, BigGANConfig
from gancore_biggan.networks import BigGANDiscriminator, BigGANGenerator

__all__ = ["PRESETS", "BigGANConfig", "BigGANDiscriminator", "BigGANGenerator"]
