"""The ``stylegan2`` backbone's networks: ``StyleGAN2Generator`` and ``StyleGAN2Discriminator``."""

from typing import Mapping

import torch
from torch import Tensor, nn

from gancore.backbone import (
    Discriminator,
    Generator,
    SynthesisLayer as LayerInfo,
    assert_shape,
    hub_coders,
    one_hot_check,
)

from gancore_stylegan2.config import StyleGAN2Config, require_resolved
from gancore_stylegan2.discriminator import DiscriminatorBlock, DiscriminatorEpilogue
from gancore_stylegan2.mapping import MappingNetwork
from gancore_stylegan2.synthesis import NOISE_MODES, SynthesisBlock

__all__ = ["StyleGAN2Discriminator", "StyleGAN2Generator"]

Cond = Mapping[str, Tensor] | None
Features = dict[int, Tensor]


class StyleGAN2Generator(Generator, coders=hub_coders(StyleGAN2Config)):
    """G of the ``stylegan2`` backbone: mapping network + skip synthesis network.

    ``mapping(z, c)`` returns the broadcast ``ws`` ``[N, num_ws, w_dim]`` (``num_ws =
    2 log2(R) - 2``), truncated towards ``w_avg`` by ``truncation_psi`` in eval mode. ``forward``
    adds style mixing in training mode. Synthesis runs blocks ``b4 .. b{R}`` (see
    :class:`~gancore_stylegan2.synthesis.SynthesisBlock`); the output is the sum of the blocks'
    up-sampled RGB images. Adapters sit before every ``b{r}.conv0``, ``b{r}.conv1`` and
    ``b{r}.torgb``; the state after ``b{r}`` is its feature map ``x``, the RGB image ``img`` and
    the ws the later blocks consume.

    ``noise_mode`` and ``truncation_psi`` start from the config and may be changed on the
    instance (e.g. ``G.noise_mode = "const"`` for reproducible samples).
    """

    def __init__(self, config: StyleGAN2Config):
        super().__init__()
        require_resolved(config, "StyleGAN2Generator")
        self.config = config
        self.z_dim = config.z_dim
        self.c_dim = config.c_dim
        self.w_dim = config.w_dim
        self.img_shape = (config.channels, config.resolution, config.resolution)
        self.num_ws = config.num_ws
        self.resolutions = config.block_resolutions
        self.noise_mode = config.noise_mode
        self.truncation_psi = config.truncation_psi
        blocks = {}
        for res in self.resolutions:
            in_channels = config.width_at(res // 2) if res > 4 else 0
            blocks[f"b{res}"] = SynthesisBlock(
                in_channels, config.width_at(res), config.w_dim, res, config.channels, config.conv_clamp
            )
        self.synthesis_blocks = nn.ModuleDict(blocks)
        self.mapping_network = MappingNetwork(
            config.z_dim, config.c_dim, config.w_dim, self.num_ws, config.mapping_layers,
            config.mapping_lr_multiplier, config.w_avg_beta,
        )

    # -- mapping ------------------------------------------------------------------------------

    def mapping(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        """``ws`` ``[N, num_ws, w_dim]``; updates ``w_avg`` in training, truncates in eval."""
        assert_shape(z, [None, self.z_dim], "StyleGAN2Generator latents z")
        one_hot_check(c, z.shape[0], self.c_dim, "StyleGAN2Generator")
        psi = 1.0 if self.training else self.truncation_psi
        return self.mapping_network(z, c, truncation_psi=psi, truncation_cutoff=self.config.truncation_cutoff)

    def mix_styles(self, ws: Tensor, z: Tensor, c: Tensor | None = None) -> Tensor:
        """Style mixing regularisation (training mode only): with probability ``style_mixing``
        the ws from a random crossover index (1 .. num_ws - 1) on come from a second latent."""
        prob = self.config.style_mixing
        if not self.training or prob <= 0:
            return ws
        # Drawn in NVIDIA's order, the second latent whether or not it is used, so that a seed
        # gives the same cut-offs and noise inputs as the official training code.
        cutoff = int(torch.randint(1, self.num_ws, ()))
        mix = float(torch.rand(())) < prob
        other_z = torch.randn_like(z)
        if not mix:
            return ws
        other = self.mapping_network(other_z, c, update_w_avg=False)
        return torch.cat([ws[:, :cutoff], other[:, cutoff:]], dim=1)

    def _ws(self, z: Tensor, c: Tensor | None) -> Tensor:
        """Mapping plus (in training) style mixing: what ``forward`` synthesizes from."""
        return self.mix_styles(self.mapping(z, c), z, c)

    # -- synthesis ----------------------------------------------------------------------------

    def forward(
        self, z: Tensor, c: Tensor | None = None, cond: Cond = None, features: bool = False
    ) -> Tensor | tuple[Tensor, Features]:
        """Images ``[N, C, R, R]`` (about [-1, 1]); with ``features`` also ``{r: output x of b{r}}``."""
        return self.synthesis(self._ws(z, c), cond=cond, features=features)

    def synthesis(
        self, w: Tensor, cond: Cond = None, features: bool = False
    ) -> Tensor | tuple[Tensor, Features]:
        """Synthesize from ``ws`` ``[N, num_ws, w_dim]`` (a ``[N, w_dim]`` w is broadcast)."""
        if w.ndim == 2:
            w = w.unsqueeze(1).repeat([1, self.num_ws, 1])
        assert_shape(w, [None, self.num_ws, self.w_dim], "StyleGAN2Generator ws")
        cond = self.encode_cond(cond)
        feats: Features = {}
        _, img, _ = self._blocks(None, None, w, cond, after=None, until=None, feats=feats)
        assert_shape(img, [None, *self.img_shape], "StyleGAN2Generator output")
        return (img, feats) if features else img

    def block_resolutions(self) -> list[int]:
        """``[4, 8, ..., resolution]``: the outputs of blocks ``b4`` .. ``b{resolution}``."""
        return list(self.resolutions)

    def synthesis_layers(self) -> list[LayerInfo]:
        """``b4.conv1, b4.torgb, b8.conv0, b8.conv1, b8.torgb, ...`` (input channels and size)."""
        return [
            LayerInfo(name=name, channels=channels, resolution=res)
            for block in self.synthesis_blocks.values()
            for name, channels, res in block.layer_inputs()
        ]

    def resume_state(self, resolution: int) -> dict[str, tuple[int, ...]]:
        """The state after ``b{r}``: ``x`` ``(C_r, r, r)``, ``img`` ``(channels, r, r)`` and the
        ``ws`` ``(num_ws_remaining, w_dim)`` of the blocks after it (none after the last)."""
        self.check_resolution(resolution)
        r = resolution
        return {
            "x": (self.config.width_at(r), r, r),
            "img": (self.img_shape[0], r, r),
            "ws": (self.config.ws_remaining(r), self.w_dim),
        }

    def state_at(self, resolution: int, z: Tensor, c: Tensor | None = None, cond: Cond = None) -> dict[str, Tensor]:
        """Run mapping (with style mixing in training) and blocks ``b4 .. b{resolution}``."""
        self.check_resolution(resolution)
        ws = self._ws(z, c)
        cond = self.encode_cond(cond)
        x, img, _ = self._blocks(None, None, ws, cond, after=None, until=resolution)
        rest = ws[:, ws.shape[1] - self.config.ws_remaining(resolution) :]
        return {"x": x, "img": img, "ws": rest}

    def synthesize_from(self, resolution: int, state: Mapping[str, Tensor], cond: Cond = None) -> Tensor:
        """Run the blocks after ``b{resolution}`` from ``state`` and return the images."""
        shapes = self.resume_state(resolution)
        missing = sorted(set(shapes) - set(state))
        if missing:
            raise ValueError(f"StyleGAN2Generator state at resolution {resolution} lacks {missing}")
        for key, shape in shapes.items():
            assert_shape(state[key], [None, *shape], f"StyleGAN2Generator state {key} at resolution {resolution}")
        cond = self.encode_cond(cond)
        _, img, _ = self._blocks(state["x"], state["img"], state["ws"], cond, after=resolution, until=None)
        assert_shape(img, [None, *self.img_shape], "StyleGAN2Generator output")
        return img

    def _blocks(
        self,
        x: Tensor | None,
        img: Tensor | None,
        ws: Tensor,
        cond: Mapping[str, Tensor],
        after: int | None,
        until: int | None,
        feats: Features | None = None,
    ) -> tuple[Tensor, Tensor, int]:
        """Run the blocks with ``after < r <= until`` (None: from the first, to the last).

        ``ws`` starts at the first block's first w. Returns ``(x, img, ws used)``.
        """
        fused = self.config.fused_modconv

        def adapt(name: str, h: Tensor) -> Tensor:
            return self.adapt(name, h, cond)

        idx = 0
        for res in self.resolutions:
            if after is not None and res <= after:
                continue
            if until is not None and res > until:
                break
            block = self.synthesis_blocks[f"b{res}"]
            x, img = block(x, img, ws.narrow(1, idx, block.num_ws), adapt, self.noise_mode, fused)
            idx += block.num_conv
            if feats is not None:
                feats[res] = x
        assert x is not None and img is not None
        return x, img, idx

    def __setattr__(self, name: str, value: object) -> None:
        if name == "noise_mode" and value not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {value!r}")
        super().__setattr__(name, value)


class StyleGAN2Discriminator(Discriminator, coders=hub_coders(StyleGAN2Config)):
    """D of the ``stylegan2`` backbone: the residual discriminator of StyleGAN2 (or, with
    ``d_architecture``, NVIDIA's ``skip`` and ``orig`` variants).

    ``img -> b{R}`` (fromRGB + residual block) ``-> ... -> b8 -> epilogue`` (minibatch stddev,
    conv, fc, out). Block ``b{r}`` halves the size, so ``features[r]`` is the output of
    ``b{2r}``, for ``r = R/2 .. 4``. Conditional D projects its output on a mapped label
    (a mapping network of ``c``), as in the official code.
    """

    def __init__(self, config: StyleGAN2Config):
        super().__init__()
        require_resolved(config, "StyleGAN2Discriminator")
        self.config = config
        self.c_dim = config.c_dim
        self.img_shape = (config.channels, config.resolution, config.resolution)
        R = config.resolution
        blocks = {}
        for res in reversed(config.block_resolutions[1:]):
            blocks[f"b{res}"] = DiscriminatorBlock(
                config.width_at(res, "D") if res < R else 0, config.width_at(res, "D"), config.width_at(res // 2, "D"),
                res, config.channels, config.conv_clamp, config.d_architecture,
            )
        self.blocks = nn.ModuleDict(blocks)
        cmap_dim = 0
        self.label_mapping = None
        if config.c_dim > 0:
            cmap_dim = config.cmap_dim if config.cmap_dim is not None else config.width_at(4, "D")
            lr_multiplier = config.d_mapping_lr_multiplier
            self.label_mapping = MappingNetwork(
                0, config.c_dim, cmap_dim, None, config.d_mapping_layers,
                config.mapping_lr_multiplier if lr_multiplier is None else lr_multiplier, None,
            )
        self.epilogue = DiscriminatorEpilogue(
            config.width_at(4, "D"), cmap_dim, 4, config.mbstd_group_size, config.mbstd_num_channels,
            config.conv_clamp, config.d_architecture, config.channels,
        )

    def forward(
        self, x: Tensor, c: Tensor | None = None, features: bool = False
    ) -> Tensor | tuple[Tensor, Features]:
        """Logits ``[N]`` for images ``[N, C, R, R]``; with ``features`` also ``{r: feature map at r}``."""
        assert_shape(x, [None, *self.img_shape], "StyleGAN2Discriminator input")
        one_hot_check(c, x.shape[0], self.c_dim, "StyleGAN2Discriminator")
        feats: Features = {}
        h, img = None, x
        for block in self.blocks.values():
            h, img = block(h, img)
            feats[block.resolution // 2] = h
        assert h is not None
        cmap = self.label_mapping(None, c) if self.label_mapping is not None else None
        logits = self.epilogue(h, cmap, img)
        return (logits, feats) if features else logits

    def feature_channels(self) -> dict[int, int]:
        """``{r: C_r}`` for ``r = R/2 .. 4``: the outputs of blocks ``b{R} .. b8``."""
        return {block.resolution // 2: block.out_channels for block in self.blocks.values()}
