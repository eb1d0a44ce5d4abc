"""EqGAN-SA: G gets spatial awareness from random heatmaps, and D's attention on fakes is aligned with them."""

from typing import Any

import torch
from torch import Tensor

from gancore import LossTerm, hookimpl
from gancore.config import ConfigError

from gancore_eqgan_sa.alignment import alignment_loss, cam_weights
from gancore_eqgan_sa.config import EqGANSAConfig
from gancore_eqgan_sa.encoders import ENCODED_KEYS, HeatmapEncoder, LevelConcat
from gancore_eqgan_sa.heatmaps import sample_heatmaps
from gancore_eqgan_sa.nvidia_import import import_eqgan_sa_modules
from gancore_eqgan_sa.sel import SpatialEncodingLayer, block_of, encoded_key_for

__all__ = ["EqGANSA"]


class EqGANSA:
    """EqGAN-SA (Wang et al., CVPR 2022): heatmap-driven spatial encoding in G, aligned with D's Grad-CAM."""

    name = "eqgan_sa"
    config_class = EqGANSAConfig

    def __init__(self, config: EqGANSAConfig):
        self.config = config
        self.requires = (("backbone.adapters",) if config.sel else ()) + (
            ("backbone.d_features",) if config.align else ()
        )
        self.resolution: int | None = None
        #: The D feature sizes the alignment loss uses (those of cam_resolutions that D has).
        self.cam_resolutions: list[int] = []

    @hookimpl
    def gancore_import_modules(self, checkpoint: Any, model: Any) -> Any:
        """EqGAN-SA's heat-map encoders and SEL layers in an official EqGAN-SA checkpoint (``gancore import``)."""
        return import_eqgan_sa_modules(checkpoint, model)

    @hookimpl
    def gancore_setup(self, run: Any) -> None:
        """Add the heatmap encoders and an SEL before every synthesis layer of G; check D's features."""
        c = self.config
        if len(run.G.img_shape) != 3:
            raise ConfigError(
                "the run config",
                [f"plugins: eqgan_sa draws image heatmaps, but backbone {run.config.backbone.name!r} generates "
                 f"samples of shape {tuple(run.G.img_shape)}; use an image backbone (dcgan, stylegan2)"],
            )
        self.resolution = run.G.img_shape[-1]
        if c.align:
            available = set(run.D.feature_channels())
            self.cam_resolutions = [r for r in c.cam_resolutions if r in available]
            if not self.cam_resolutions:
                raise ConfigError("the run config", [
                    f"plugins.eqgan_sa.cam_resolutions: D has no feature maps of sizes {list(c.cam_resolutions)} "
                    f"(it has {sorted(available)})"
                ])
        if c.sel:
            for index in (1, 2, 3):
                run.G.add_cond_encoder(
                    ENCODED_KEYS[index - 1],
                    HeatmapEncoder(index, self.resolution, c.encoder_hidden, c.encoder_channels).to(run.device),
                )
            run.G.add_cond_encoder(ENCODED_KEYS[3], LevelConcat())

            def make_sel(layer_name: str, channels: int, resolution: int) -> SpatialEncodingLayer:
                key = encoded_key_for(block_of(layer_name, resolution))
                map_channels = c.encoder_channels * (3 if key == ENCODED_KEYS[3] else 1)
                return SpatialEncodingLayer(channels, key, map_channels, c.sel_hidden, c.sel_strength).to(run.device)

            run.G.add_adapter(make_sel)

    @hookimpl
    def gancore_generator_inputs(self, run: Any, batch_size: int, rng: torch.Generator) -> dict[str, Tensor]:
        """Random three-level heatmaps ``[N, 7, R, R]`` for every G forward (training and sampling)."""
        assert self.resolution is not None, "gancore_setup has not run"
        return {"heatmap": sample_heatmaps(batch_size, self.resolution, self.config, rng, run.device).heatmap}

    @hookimpl
    def gancore_g_loss(
        self, run: Any, fake: Tensor, inputs: dict[str, Any], d_fake_features: dict[int, Tensor]
    ) -> LossTerm | None:
        """The alignment loss: D's Grad-CAM on the fake vs. the heatmap that made it (weight ``align_weight``)."""
        if not self.config.align:
            return None
        weights = cam_weights(run.D, fake, inputs["c"], self.cam_resolutions)
        loss = alignment_loss(
            weights, d_fake_features, inputs["cond"]["heatmap"], self.config.cam_resolutions, self.config.align_threshold
        )
        return LossTerm("align", loss, weight=self.config.align_weight)

    @hookimpl
    def gancore_model_card(self, run: Any) -> str:
        """What EqGAN-SA did in this run."""
        c = self.config
        parts = []
        if c.sel:
            parts.append(
                "G encodes a random three-level heatmap (1 + 2 + 4 Gaussian channels) and modulates every "
                "synthesis layer with it (spatial encoding layers); sample with `cond={'heatmap': ...}` to "
                "place content"
            )
        if c.align:
            parts.append(
                f"G's loss adds the L1 (threshold {c.align_threshold}, weight {c.align_weight}) between D's "
                f"Grad-CAM at {self.cam_resolutions} px and the heatmap levels"
            )
        return "EqGAN-SA (Wang et al., CVPR 2022): " + "; ".join(parts or ["both parts switched off"]) + "."
