"""EqGAN-SA (Wang et al., CVPR 2022) as a gancore plugin: spatial awareness for G, aligned with D's attention."""

from gancore_eqgan_sa.config import EqGANSAConfig
from gancore_eqgan_sa.plugin import EqGANSA

__all__ = ["EqGANSA", "EqGANSAConfig"]
