"""The ``biggan`` backbone's networks: ``BigGANGenerator`` and ``BigGANDiscriminator``."""

from functools import partial
from typing import Mapping

import torch
from torch import Tensor, nn

from gancore.backbone import Discriminator, Generator, SynthesisLayer, assert_shape, hub_coders, one_hot_check
from gancore.losses import LossTerm

from gancore_biggan.blocks import Attention, DBlock, GBlock
from gancore_biggan.config import BigGANConfig
from gancore_biggan.layers import ClassBatchNorm, Embedding, GainBatchNorm, SNConv2d, SNEmbedding, SNLinear, init_weights

__all__ = ["BigGANDiscriminator", "BigGANGenerator", "ortho_penalty"]

Cond = Mapping[str, Tensor] | None
Features = dict[int, Tensor]


def _require_resolved(config: BigGANConfig, owner: str) -> BigGANConfig:
    if config.resolution is None or config.channels is None or config.c_dim is None:
        raise ValueError(f"{owner} needs resolution, channels and c_dim; fill them with config.with_data(info)")
    return config.resolved()


def ortho_penalty(G: "BigGANGenerator") -> Tensor:
    """``1/2 sum ||W W^T * (1 - I)||^2`` over G's parameters of two or more dimensions (each viewed
    as ``[out, -1]``) except the shared embedding and plugins' modules: BigGAN's "modified"
    orthogonal regularisation, which leaves each filter's norm free. Its gradient,
    ``2 (W W^T * (1 - I)) W``, is what BigGAN-PyTorch's ``utils.ortho`` adds to the gradients."""
    skip = {id(p) for p in G.shared.parameters()} if G.shared is not None else set()
    skip |= {id(p) for part in (G.adapters, G.cond_encoders, G.attachments) for p in part.parameters()}
    total = G.linear.weight.new_zeros(())
    for p in G.parameters():
        if p.ndim < 2 or id(p) in skip:
            continue
        w = p.view(p.shape[0], -1)
        if w.shape[0] > w.shape[1]:  # ||W W^T||^2 = ||W^T W||^2: the small Gram matrix, less its diagonal's share
            total = total + (w.t() @ w).pow(2).sum() - w.pow(2).sum(1).pow(2).sum()
        else:
            gram = w @ w.t()
            total = total + (gram * (1 - torch.eye(w.shape[0], device=w.device, dtype=w.dtype))).pow(2).sum()
    return total / 2


class BigGANGenerator(Generator, coders=hub_coders(BigGANConfig)):
    """G of the ``biggan`` backbone.

    ``w = [z, e]``: the latents and the class's embedding (``shared(c)`` with ``shared_dim > 0``,
    the one-hot label itself otherwise, nothing when unconditional). Synthesis: ``linear(z_0)`` ->
    ``[N, 16 ch, 4, 4]`` -> up blocks ``b8 .. b{R}`` (each conditioned on ``y_i = [e, z_i]`` with
    ``hier``, else on ``e``; self-attention after the blocks in ``g_attn``) -> batch norm -> ReLU
    -> 3x3 conv -> tanh. Adapters sit before every block (``b{r}``, at ``r/2``) and before the
    output layer (``torgb``, at ``R``). The state after ``b{r}`` is its output and ``w``.
    """

    def __init__(self, config: BigGANConfig):
        super().__init__()
        config = _require_resolved(config, "BigGANGenerator")
        self.config = config
        self.c_dim = config.c_dim
        self.z_dim = config.z_used
        self.img_shape = (config.channels, config.resolution, config.resolution)
        if config.hier and config.c_dim > 0 and config.shared_dim == 0:
            raise ValueError("biggan: hier needs a shared class embedding (shared_dim > 0) in a conditional G")
        self.shared = Embedding(config.c_dim, config.shared_dim) if config.c_dim > 0 and config.shared_dim > 0 else None
        self.e_dim = config.shared_dim if self.shared is not None else config.c_dim
        self.w_dim = self.z_dim + self.e_dim
        y_dim = self.e_dim + config.z_chunk
        if y_dim == 0:
            make_bn = partial(GainBatchNorm, eps=config.bn_eps)
        else:
            make_bn = partial(ClassBatchNorm, y_dim=y_dim, per_class=self.shared is None and config.c_dim > 0,
                              eps=config.bn_eps, sn_eps=config.sn_eps)
        channels = config.g_channels()
        self.bottom_channels = channels[0][0]
        self.linear = SNLinear(config.z_chunk if config.hier else config.z_used, self.bottom_channels * 16,
                               eps=config.sn_eps)
        self.blocks = nn.ModuleDict()
        self.attention = nn.ModuleDict()
        self.widths = {4: self.bottom_channels}
        for c_in, c_out, res in channels:
            self.blocks[f"b{res}"] = GBlock(c_in, c_out, res, make_bn, config.sn_eps)
            self.widths[res] = c_out
            if res in config.g_attn:
                self.attention[f"b{res}"] = Attention(c_out, config.sn_eps)
        self.resolutions = [4, *(res for _, _, res in channels)]
        unused = sorted(set(config.g_attn) - set(self.resolutions[1:]))
        if unused:
            raise ValueError(f"biggan: g_attn {unused}: G has blocks at {self.resolutions[1:]}")
        top = channels[-1][1]
        self.output_bn = GainBatchNorm(top, eps=config.bn_eps)
        self.torgb = SNConv2d(top, config.channels, eps=config.sn_eps)
        init_weights(self, config.init)

    def loss_terms(self) -> list[LossTerm]:
        """With ``ortho_reg > 0``: the orthogonal regularisation (see :func:`ortho_penalty`)."""
        if self.config.ortho_reg == 0:
            return []
        return [LossTerm("ortho", ortho_penalty(self), weight=self.config.ortho_reg)]

    def mapping(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        """``w = [z, e]`` ``[N, w_dim]``: ``e`` is the class embedding (or the label)."""
        assert_shape(z, [None, self.z_dim], "BigGANGenerator latents z")
        one_hot_check(c, z.shape[0], self.c_dim, "BigGANGenerator")
        if self.c_dim == 0:
            return z
        c = c.to(z.dtype)
        return torch.cat([z, self.shared(c) if self.shared is not None else c], dim=1)

    def block_resolutions(self) -> list[int]:
        """``[4, 8, ..., R]``: the input map, then the outputs of ``b8 .. b{R}``."""
        return list(self.resolutions)

    def synthesis_layers(self) -> list[SynthesisLayer]:
        """``b{r}`` for each block (its input: channels at ``r/2``), then ``torgb``."""
        layers = [SynthesisLayer(name=f"b{r}", channels=self.widths[r // 2], resolution=r // 2)
                  for r in self.resolutions[1:]]
        R = self.config.resolution
        return layers + [SynthesisLayer(name="torgb", channels=self.widths[R], resolution=R)]

    def synthesis(self, w: Tensor, cond: Cond = None, features: bool = False) -> Tensor | tuple[Tensor, Features]:
        """Images ``[N, C, R, R]`` in [-1, 1]; with ``features`` also ``{r: output of b{r}}`` (4: the input map)."""
        cond = self.encode_cond(cond)
        feats: Features = {}
        x = self._blocks(self._input(w), w, cond, start=4, stop=None, feats=feats)
        img = self._output(x, cond)
        return (img, feats) if features else img

    def resume_state(self, resolution: int) -> dict[str, tuple[int, ...]]:
        """The state after ``b{resolution}``: ``{"x": (C_r, r, r), "w": (w_dim,)}``."""
        self.check_resolution(resolution)
        return {"x": (self.widths[resolution], resolution, resolution), "w": (self.w_dim,)}

    def state_at(self, resolution: int, z: Tensor, c: Tensor | None = None, cond: Cond = None) -> dict[str, Tensor]:
        """Run mapping and the blocks through ``b{resolution}``; return the state."""
        self.check_resolution(resolution)
        w = self.mapping(z, c)
        cond = self.encode_cond(cond)
        return {"x": self._blocks(self._input(w), w, cond, start=4, stop=resolution), "w": w}

    def synthesize_from(self, resolution: int, state: Mapping[str, Tensor], cond: Cond = None) -> Tensor:
        """Run the blocks after ``b{resolution}`` and the output layer from ``state``."""
        shapes = self.resume_state(resolution)
        for name, shape in shapes.items():
            assert_shape(state[name], [None, *shape], f"BigGANGenerator state {name} at resolution {resolution}")
        cond = self.encode_cond(cond)
        x = self._blocks(state["x"], state["w"], cond, start=resolution, stop=None)
        return self._output(x, cond)

    def _split(self, w: Tensor) -> tuple[Tensor, list[Tensor | None]]:
        """The input layer's latents and each block's conditioning ``y`` from ``w``."""
        assert_shape(w, [None, self.w_dim], "BigGANGenerator w")
        z, e = w[:, : self.z_dim], w[:, self.z_dim:]
        n = len(self.blocks)
        if self.config.hier:
            first, *rest = z.split(self.config.z_chunk, dim=1)
            return first, [torch.cat([e, chunk], dim=1) for chunk in rest]
        return z, [e if self.e_dim else None] * n

    def _input(self, w: Tensor) -> Tensor:
        z, _ = self._split(w)
        return self.linear(z).view(w.shape[0], self.bottom_channels, 4, 4)

    def _blocks(self, x: Tensor, w: Tensor, cond: Mapping[str, Tensor], start: int, stop: int | None,
                feats: Features | None = None) -> Tensor:
        """From the map at ``start``, run the blocks through ``b{stop}`` (the last if None)."""
        _, ys = self._split(w)
        if feats is not None:
            feats[start] = x
        for index, res in enumerate(self.resolutions[1:]):
            if res <= start:
                continue
            if stop is not None and res > stop:
                break
            name = f"b{res}"
            x = self.blocks[name](self.adapt(name, x, cond), ys[index])
            if name in self.attention:
                x = self.attention[name](x)
            if feats is not None:
                feats[res] = x
        return x

    def _output(self, x: Tensor, cond: Mapping[str, Tensor]) -> Tensor:
        x = self.adapt("torgb", x, cond)
        img = torch.tanh(self.torgb(torch.relu(self.output_bn(x))))
        assert_shape(img, [None, *self.img_shape], "BigGANGenerator output")
        return img


class BigGANDiscriminator(Discriminator, coders=hub_coders(BigGANConfig)):
    """D of the ``biggan`` backbone.

    ``x`` -> residual down blocks (self-attention after the blocks in ``d_attn``) -> ReLU -> sum
    over positions ``h`` -> ``linear(h) + <embed(c), h>`` (projection; no embedding when
    unconditional). ``features[r]`` is the last block output at resolution ``r``.
    """

    def __init__(self, config: BigGANConfig):
        super().__init__()
        config = _require_resolved(config, "BigGANDiscriminator")
        self.config = config
        self.c_dim = config.c_dim
        self.img_shape = (config.channels, config.resolution, config.resolution)
        self.blocks = nn.ModuleList()
        self.attention = nn.ModuleDict()
        self.block_resolutions: list[int] = []
        for index, (c_in, c_out, res, down) in enumerate(config.d_channels()):
            self.blocks.append(DBlock(c_in, c_out, down, index == 0, config.d_wide, config.sn_eps))
            self.block_resolutions.append(res)
            if res in config.d_attn:  # after every block at that resolution, as the reference
                self.attention[str(index)] = Attention(c_out, config.sn_eps)
        unused = sorted(set(config.d_attn) - set(self.block_resolutions))
        if unused:
            raise ValueError(f"biggan: d_attn {unused}: D has blocks at {sorted(set(self.block_resolutions))}")
        top = config.d_channels()[-1][1]
        self.top_channels = top
        self.linear = SNLinear(top, 1, eps=config.sn_eps)
        self.embed = SNEmbedding(config.c_dim, top, eps=config.sn_eps) if config.c_dim > 0 else None
        init_weights(self, config.init)

    def forward(self, x: Tensor, c: Tensor | None = None, features: bool = False) -> Tensor | tuple[Tensor, Features]:
        """Logits ``[N]`` for images ``[N, C, R, R]``; with ``features`` also ``{r: block output}``."""
        assert_shape(x, [None, *self.img_shape], "BigGANDiscriminator input")
        one_hot_check(c, x.shape[0], self.c_dim, "BigGANDiscriminator")
        feats: Features = {}
        h = x
        for index, block in enumerate(self.blocks):
            h = block(h)
            if str(index) in self.attention:
                h = self.attention[str(index)](h)
            feats[self.block_resolutions[index]] = h
        h = torch.relu(h).sum(dim=(2, 3))
        logits = self.linear(h).squeeze(1)
        if self.embed is not None:
            logits = logits + (self.embed(c.to(h.dtype)) * h).sum(dim=1)
        return (logits, feats) if features else logits

    def feature_channels(self) -> dict[int, int]:
        """``{r: channels}`` of the block outputs ``features=True`` returns."""
        return {res: c_out for (_, c_out, res, _) in self.config.d_channels()}
