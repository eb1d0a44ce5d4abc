"""The ``dcgan`` backbone's networks: ``DCGANGenerator`` and ``DCGANDiscriminator``."""

from typing import Mapping

from torch import Tensor, nn

from gancore.backbone import (
    Discriminator,
    Generator,
    SynthesisLayer,
    assert_shape,
    hub_coders,
    one_hot_check,
)

from gancore_dcgan.layers import LabelEmbedding, ProjectionOutput
from gancore_dcgan.resolved import require_resolved
from gancore_dcgan.dcgan_blocks import DownBlock, FromRGB, InputBlock, ToRGB, UpBlock
from gancore_dcgan.dcgan_config import DCGANConfig

__all__ = ["DCGANDiscriminator", "DCGANGenerator"]

Cond = Mapping[str, Tensor] | None
Features = dict[int, Tensor]


class DCGANGenerator(Generator, coders=hub_coders(DCGANConfig)):
    """G of the ``dcgan`` backbone.

    ``w -> b4`` (linear to ``[N, C_4, 4, 4]``) ``-> b8 -> ... -> b{R}`` (each doubles the
    resolution) ``-> torgb -> tanh``. ``w`` is ``z``, or ``[z, embed(c)]`` when conditional.
    Adapters sit before every up block's conv (``b{r}.conv``, at resolution ``r/2``) and before
    ``torgb`` (at ``R``); the state at resolution ``r`` is the output of ``b{r}``.
    """

    def __init__(self, config: DCGANConfig):
        super().__init__()
        require_resolved(config, "DCGANGenerator")
        self.config = config
        self.latent = LabelEmbedding(config.z_dim, config.c_dim, "DCGANGenerator")
        self.z_dim = config.z_dim
        self.c_dim = config.c_dim
        self.w_dim = self.latent.w_dim
        self.img_shape = (config.channels, config.resolution, config.resolution)
        self.resolutions = config.block_resolutions
        self.blocks = nn.ModuleDict({"b4": InputBlock(self.w_dim, config.width_at(4), config.g_norm)})
        for res in self.resolutions[1:]:
            self.blocks[f"b{res}"] = UpBlock(
                config.width_at(res // 2), config.width_at(res), res, config.g_norm, config.resample
            )
        self.torgb = ToRGB(config.width_at(config.resolution), config.channels, config.resolution)

    def mapping(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        """``w = z``, or ``[z, embed(c)]`` when conditional: ``[N, w_dim]``."""
        return self.latent(z, c)

    def block_resolutions(self) -> list[int]:
        """``[4, 8, ..., resolution]``: the outputs of blocks ``b4`` .. ``b{resolution}``."""
        return list(self.resolutions)

    def synthesis_layers(self) -> list[SynthesisLayer]:
        """``b{r}.conv`` for ``r = 8..R`` (input channels, input resolution), then ``torgb``."""
        layers = [
            SynthesisLayer(name=f"b{res}.conv", channels=self.config.width_at(res // 2), resolution=res // 2)
            for res in self.resolutions[1:]
        ]
        R = self.config.resolution
        layers.append(SynthesisLayer(name="torgb", channels=self.config.width_at(R), resolution=R))
        return layers

    def synthesis(
        self, w: Tensor, cond: Cond = None, features: bool = False
    ) -> Tensor | tuple[Tensor, Features]:
        """Images ``[N, C, R, R]`` in [-1, 1]; with ``features`` also ``{r: output of b{r}}``."""
        cond = self.encode_cond(cond)
        feats: Features = {}
        x = self._blocks(self._input(w), cond, start=4, stop=None, feats=feats)
        img = self._output(x, cond)
        return (img, feats) if features else img

    def resume_state(self, resolution: int) -> dict[str, tuple[int, ...]]:
        """The state after ``b{resolution}``: ``{"x": (C_r, r, r)}``."""
        self.check_resolution(resolution)
        return {"x": (self.config.width_at(resolution), resolution, resolution)}

    def state_at(
        self, resolution: int, z: Tensor, c: Tensor | None = None, cond: Cond = None
    ) -> dict[str, Tensor]:
        """Run mapping and blocks ``b4 .. b{resolution}``; return ``{"x": feature map}``."""
        self.check_resolution(resolution)
        w = self.mapping(z, c)
        cond = self.encode_cond(cond)
        return {"x": self._blocks(self._input(w), cond, start=4, stop=resolution)}

    def synthesize_from(self, resolution: int, state: Mapping[str, Tensor], cond: Cond = None) -> Tensor:
        """Run the blocks after ``b{resolution}`` and ``torgb`` from ``state["x"]``."""
        shape = self.resume_state(resolution)["x"]
        x = state["x"]
        assert_shape(x, [None, *shape], f"DCGANGenerator state x at resolution {resolution}")
        cond = self.encode_cond(cond)
        x = self._blocks(x, cond, start=resolution, stop=None)
        return self._output(x, cond)

    def _input(self, w: Tensor) -> Tensor:
        """``b4``: ``w`` -> ``[N, C_4, 4, 4]``."""
        assert_shape(w, [None, self.w_dim], "DCGANGenerator w")
        return self.blocks["b4"](w)

    def _blocks(
        self,
        x: Tensor,
        cond: Mapping[str, Tensor],
        start: int,
        stop: int | None,
        feats: Features | None = None,
    ) -> Tensor:
        """From the output of ``b{start}``, run up blocks through ``b{stop}`` (the last if None)."""
        if feats is not None:
            feats[start] = x
        for res in self.resolutions:
            if res <= start:
                continue
            if stop is not None and res > stop:
                break
            x = self.blocks[f"b{res}"](self.adapt(f"b{res}.conv", x, cond))
            if feats is not None:
                feats[res] = x
        return x

    def _output(self, x: Tensor, cond: Mapping[str, Tensor]) -> Tensor:
        """``torgb`` (after its adapters) -> images in [-1, 1]."""
        img = self.torgb(self.adapt("torgb", x, cond))
        assert_shape(img, [None, *self.img_shape], "DCGANGenerator output")
        return img


class DCGANDiscriminator(Discriminator, coders=hub_coders(DCGANConfig)):
    """D of the ``dcgan`` backbone.

    ``x -> b{R}`` (fromRGB 3x3 conv at ``R``) ``-> b{R/2} -> ... -> b4`` (each halves the
    resolution; leaky ReLU, no batch norm, optional spectral norm) ``-> flatten -> linear``,
    plus a projection ``<embed(c), h>`` of the flattened ``b4`` output when conditional.
    ``features[r]`` is the output of ``b{r}``, for ``r = R .. 4``.
    """

    def __init__(self, config: DCGANConfig):
        super().__init__()
        require_resolved(config, "DCGANDiscriminator")
        self.config = config
        self.c_dim = config.c_dim
        self.img_shape = (config.channels, config.resolution, config.resolution)
        R, sn = config.resolution, config.spectral_norm
        self.blocks = nn.ModuleDict({f"b{R}": FromRGB(config.channels, config.width_at(R, "D"), R, sn)})
        for res in reversed(config.block_resolutions[:-1]):
            self.blocks[f"b{res}"] = DownBlock(
                config.width_at(res * 2, "D"), config.width_at(res, "D"), res, sn, config.resample
            )
        self.out = ProjectionOutput(config.width_at(4, "D") * 16, config.c_dim, sn, "DCGANDiscriminator")

    def forward(
        self, x: Tensor, c: Tensor | None = None, features: bool = False
    ) -> Tensor | tuple[Tensor, Features]:
        """Logits ``[N]`` for images ``[N, C, R, R]``; with ``features`` also ``{r: b{r} output}``."""
        assert_shape(x, [None, *self.img_shape], "DCGANDiscriminator input")
        one_hot_check(c, x.shape[0], self.c_dim, "DCGANDiscriminator")
        feats: Features = {}
        for name, block in self.blocks.items():
            x = block(x)
            feats[block.resolution] = x
        logits = self.out(x.flatten(1), c)
        return (logits, feats) if features else logits

    def feature_channels(self) -> dict[int, int]:
        """``{r: C_r}`` for ``r = R .. 4``."""
        return {res: self.config.width_at(res, "D") for res in reversed(self.config.block_resolutions)}
