"""The entry point object that registers the ``stylegan2`` backbone with gancore."""

from typing import Callable

from gancore import hookimpl
from gancore.backbone import BackboneSpec

from gancore.importing import ImportedModel, PublishedCheckpoint

from gancore_stylegan2.config import StyleGAN2Config
from gancore_stylegan2.nvidia_import import import_nvidia_stylegan2
from gancore_stylegan2.tf_import import import_tf_stylegan2
from gancore_stylegan2.networks import StyleGAN2Discriminator, StyleGAN2Generator

__all__ = ["CAPABILITIES", "StyleGAN2Backbone"]

#: The whole backbone protocol.
CAPABILITIES = frozenset(
    {"d_features", "g_features", "resume_state", "adapters", "path_length", "conditioning"}
)


class StyleGAN2Backbone:
    """gancore plugin providing the ``stylegan2`` backbone (8-1024 px, 1 or 3 channels)."""

    name = "stylegan2"
    kind = "backbone"  # backbone providers are always registered by the core
    config_class = None

    @hookimpl
    def gancore_register_backbones(self, register: Callable[[BackboneSpec], None]) -> None:
        """Register the ``stylegan2`` backbone."""
        register(
            BackboneSpec(
                name="stylegan2",
                config_class=StyleGAN2Config,
                generator_class=StyleGAN2Generator,
                discriminator_class=StyleGAN2Discriminator,
                capabilities=CAPABILITIES,
                description="StyleGAN2 (Karras et al. 2020): mapping + modulated-conv skip G, residual D; 8-1024 px",
            )
        )

    @hookimpl
    def gancore_import_networks(self, checkpoint: PublishedCheckpoint) -> ImportedModel | None:
        """Map NVIDIA's StyleGAN2 networks (stylegan2-ada-pytorch, StyleGAN3 repo, TF-era config-f) onto ``stylegan2``."""
        return import_nvidia_stylegan2(checkpoint) or import_tf_stylegan2(checkpoint)
