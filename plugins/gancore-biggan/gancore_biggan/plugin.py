"""The entry point object that registers the ``biggan`` backbone with gancore."""

from typing import Callable

from gancore import hookimpl
from gancore.backbone import BackboneSpec

from gancore.import_types import ImportedModel, PublishedCheckpoint

from gancore_biggan.config import BigGANConfig
from gancore_biggan.convert import import_biggan_pytorch
from gancore_biggan.networks import BigGANDiscriminator, BigGANGenerator

__all__ = ["CAPABILITIES", "BigGANBackbone"]

#: What the backbone implements (no path length: BigGAN has no intermediate latent to regularise).
CAPABILITIES = frozenset({"d_features", "g_features", "resume_state", "adapters", "conditioning"})


class BigGANBackbone:
    """gancore plugin providing the ``biggan`` backbone (32-256 px, any class count or none)."""

    name = "biggan"
    kind = "backbone"
    config_class = None

    @hookimpl
    def gancore_register_backbones(self, register: Callable[[BackboneSpec], None]) -> None:
        """Register the ``biggan`` backbone."""
        register(BackboneSpec(
            name="biggan",
            config_class=BigGANConfig,
            generator_class=BigGANGenerator,
            discriminator_class=BigGANDiscriminator,
            capabilities=CAPABILITIES,
            description="BigGAN: residual G with class-conditional batch norm, projection D, spectral norm (32-256 px)",
        ))

    @hookimpl
    def gancore_import_networks(self, checkpoint: PublishedCheckpoint) -> ImportedModel | None:
        """Map BigGAN-PyTorch's state dicts (``G.pth``, ``G_ema.pth``, ``D.pth``) onto ``biggan``."""
        return import_biggan_pytorch(checkpoint)
