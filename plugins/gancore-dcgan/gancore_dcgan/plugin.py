"""The entry point object that registers the ``mlp`` and ``dcgan`` backbones with gancore."""

from typing import Callable

from gancore import hookimpl
from gancore.backbone import BackboneSpec

from gancore_dcgan.dcgan import DCGANDiscriminator, DCGANGenerator
from gancore_dcgan.dcgan_config import DCGANConfig
from gancore_dcgan.mlp import MLPConfig, MLPDiscriminator, MLPGenerator

__all__ = ["CAPABILITIES", "DCGANBackbones"]

#: What both backbones implement: the whole backbone protocol.
CAPABILITIES = frozenset(
    {"d_features", "g_features", "resume_state", "adapters", "path_length", "conditioning"}
)


class DCGANBackbones:
    """gancore plugin providing the ``mlp`` (2-D toy) and ``dcgan`` (8-64 px images) backbones."""

    name = "dcgan"
    kind = "backbone"  # backbone providers are always registered by the core
    config_class = None

    @hookimpl
    def gancore_register_backbones(self, register: Callable[[BackboneSpec], None]) -> None:
        """Register the ``mlp`` and ``dcgan`` backbones."""
        register(
            BackboneSpec(
                name="mlp",
                config_class=MLPConfig,
                generator_class=MLPGenerator,
                discriminator_class=MLPDiscriminator,
                capabilities=CAPABILITIES,
                description="fully connected G and D for low-dimensional points (2-D toy data)",
            )
        )
        register(
            BackboneSpec(
                name="dcgan",
                config_class=DCGANConfig,
                generator_class=DCGANGenerator,
                discriminator_class=DCGANDiscriminator,
                capabilities=CAPABILITIES,
                description="small convolutional G and D for 8-64 px images (1 or 3 channels)",
            )
        )
