"""The ``mlp`` backbone: fully connected G and D for low-dimensional points (2-D toy data)."""

from typing import Mapping

import attrs
from torch import Tensor, nn

from gancore.backbone import (
    DataInfo,
    Discriminator,
    Generator,
    SynthesisLayer,
    assert_shape,
    hub_coders,
    one_hot_check,
)
from gancore.config import ge, gt

from gancore_dcgan.layers import LabelEmbedding, ProjectionOutput
from gancore_dcgan.resolved import require_resolved

__all__ = ["MLPConfig", "MLPDiscriminator", "MLPGenerator"]

Cond = Mapping[str, Tensor] | None
Features = dict[int, Tensor]


@attrs.frozen(kw_only=True)
class MLPConfig:
    """Settings of the ``mlp`` backbone; ``dim`` and ``c_dim`` come from the data when None."""

    #: Dimension of a point (``DataInfo.shape == (dim,)``).
    dim: int | None = attrs.field(default=None, validator=gt(0))
    z_dim: int = attrs.field(default=8, validator=gt(0))
    #: Number of classes (0: unconditional).
    c_dim: int | None = attrs.field(default=None, validator=ge(0))
    #: Units of every hidden layer.
    width: int = attrs.field(default=256, validator=gt(0))
    #: Hidden layers of G and of D.
    g_layers: int = attrs.field(default=3, validator=ge(1))
    d_layers: int = attrs.field(default=3, validator=ge(1))
    #: Negative slope of the leaky ReLU after every hidden layer.
    lrelu_slope: float = attrs.field(default=0.2, validator=ge(0.0))

    def with_data(self, info: DataInfo) -> "MLPConfig":
        """Fill ``dim`` and ``c_dim`` from the data set; raise if the data does not fit an MLP."""
        if len(info.shape) != 1:
            raise ValueError(
                f"the mlp backbone models flat points of shape (dim,), but data set {info.name!r} "
                f"has samples of shape {tuple(info.shape)}; use an image backbone such as dcgan"
            )
        _check_match("dim", self.dim, info.shape[0], info)
        _check_match("c_dim", self.c_dim, info.c_dim, info)
        return attrs.evolve(self, dim=info.shape[0], c_dim=info.c_dim)


def _check_match(field: str, value: int | None, data_value: int, info: DataInfo) -> None:
    """Raise if a field set in the config disagrees with the data set."""
    if value is not None and value != data_value:
        raise ValueError(
            f"{field} = {value} does not match data set {info.name!r}, which has {field} = "
            f"{data_value}; leave {field} unset to take it from the data"
        )


class HiddenLayer(nn.Module):
    """One fully connected layer followed by a leaky ReLU."""

    def __init__(self, in_features: int, out_features: int, slope: float):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.fc = nn.Linear(in_features, out_features)
        self.act = nn.LeakyReLU(slope)

    def forward(self, x: Tensor) -> Tensor:
        """``[N, in_features]`` -> ``[N, out_features]``."""
        assert_shape(x, [None, self.in_features], "hidden layer input")
        return self.act(self.fc(x))


class MLPGenerator(Generator, coders=hub_coders(MLPConfig)):
    """G of the ``mlp`` backbone: ``w -> fc1 .. fc{g_layers} -> out`` (linear output, no tanh).

    An MLP has no spatial resolutions, so wherever the protocol says "resolution" this backbone
    means the index ``i`` of a hidden layer: ``fc{i}`` (``i = 1..g_layers``) produces ``hidden_i``
    ``[N, width]``, which is ``features[i]`` and ``state_at(i)["x"]``. Adapters sit before every
    ``fc{i}`` (listed at resolution ``i``) and receive ``[N, channels]`` tensors (``w`` for ``fc1``).
    """

    def __init__(self, config: MLPConfig):
        super().__init__()
        require_resolved(config, "MLPGenerator")
        self.config = config
        self.latent = LabelEmbedding(config.z_dim, config.c_dim, "MLPGenerator")
        self.z_dim = config.z_dim
        self.c_dim = config.c_dim
        self.w_dim = self.latent.w_dim
        self.img_shape = (config.dim,)
        self.layers = nn.ModuleDict()
        for i in range(1, config.g_layers + 1):
            in_features = self.w_dim if i == 1 else config.width
            self.layers[f"fc{i}"] = HiddenLayer(in_features, config.width, config.lrelu_slope)
        self.out = nn.Linear(config.width, config.dim)

    def mapping(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        """``w = z``, or ``[z, embed(c)]`` when conditional."""
        return self.latent(z, c)

    def synthesis_layers(self) -> list[SynthesisLayer]:
        """``fc1 .. fc{g_layers}``; ``resolution`` is the hidden-layer index."""
        return [
            SynthesisLayer(name=name, channels=layer.in_features, resolution=i)
            for i, (name, layer) in enumerate(self.layers.items(), start=1)
        ]

    def block_resolutions(self) -> list[int]:
        """Hidden-layer indices ``1 .. g_layers`` (the mlp's "resolutions")."""
        return list(range(1, self.config.g_layers + 1))

    def synthesis(
        self, w: Tensor, cond: Cond = None, features: bool = False
    ) -> Tensor | tuple[Tensor, Features]:
        """Points ``[N, dim]`` from ``w``; with ``features`` also ``{i: hidden_i}``."""
        assert_shape(w, [None, self.w_dim], "MLPGenerator w")
        cond = self.encode_cond(cond)
        feats: Features = {}
        x = self._run(w, cond, start=0, feats=feats)
        return (x, feats) if features else x

    def resume_state(self, resolution: int) -> dict[str, tuple[int, ...]]:
        """After hidden layer ``resolution`` the state is ``{"x": (width,)}``."""
        self.check_resolution(resolution)
        return {"x": (self.config.width,)}

    def state_at(
        self, resolution: int, z: Tensor, c: Tensor | None = None, cond: Cond = None
    ) -> dict[str, Tensor]:
        """Run mapping and hidden layers ``1..resolution``; return ``{"x": hidden}``."""
        self.check_resolution(resolution)
        w = self.mapping(z, c)
        assert_shape(w, [None, self.w_dim], "MLPGenerator w")
        cond = self.encode_cond(cond)
        return {"x": self._run(w, cond, start=0, stop=resolution)}

    def synthesize_from(self, resolution: int, state: Mapping[str, Tensor], cond: Cond = None) -> Tensor:
        """Run hidden layers after ``resolution`` and the output layer from ``state["x"]``."""
        self.check_resolution(resolution)
        x = state["x"]
        assert_shape(x, [None, *self.resume_state(resolution)["x"]], f"state x at layer {resolution}")
        cond = self.encode_cond(cond)
        return self._run(x, cond, start=resolution)

    def _run(
        self,
        x: Tensor,
        cond: Mapping[str, Tensor],
        start: int,
        stop: int | None = None,
        feats: Features | None = None,
    ) -> Tensor:
        """Run hidden layers ``start+1 .. stop`` (and the output layer when ``stop`` is None)."""
        for i, (name, layer) in enumerate(self.layers.items(), start=1):
            if i <= start:
                continue
            x = layer(self.adapt(name, x, cond))
            if feats is not None:
                feats[i] = x
            if i == stop:
                return x
        x = self.out(x)
        assert_shape(x, [None, *self.img_shape], "MLPGenerator output")
        return x


class MLPDiscriminator(Discriminator, coders=hub_coders(MLPConfig)):
    """D of the ``mlp`` backbone: ``x -> fc1 .. fc{d_layers} -> logit`` with label projection.

    ``features[i]`` is the output of hidden layer ``fc{i}`` (``i = 1..d_layers``).
    """

    def __init__(self, config: MLPConfig):
        super().__init__()
        require_resolved(config, "MLPDiscriminator")
        self.config = config
        self.c_dim = config.c_dim
        self.img_shape = (config.dim,)
        self.layers = nn.ModuleDict()
        for i in range(1, config.d_layers + 1):
            in_features = config.dim if i == 1 else config.width
            self.layers[f"fc{i}"] = HiddenLayer(in_features, config.width, config.lrelu_slope)
        self.out = ProjectionOutput(config.width, config.c_dim, False, "MLPDiscriminator")

    def forward(
        self, x: Tensor, c: Tensor | None = None, features: bool = False
    ) -> Tensor | tuple[Tensor, Features]:
        """Logits ``[N]`` for points ``x`` ``[N, dim]``; with ``features`` also ``{i: hidden_i}``."""
        assert_shape(x, [None, *self.img_shape], "MLPDiscriminator input")
        one_hot_check(c, x.shape[0], self.c_dim, "MLPDiscriminator")
        feats: Features = {}
        for i, layer in enumerate(self.layers.values(), start=1):
            x = layer(x)
            feats[i] = x
        logits = self.out(x, c)
        return (logits, feats) if features else logits

    def feature_channels(self) -> dict[int, int]:
        """``{i: width}`` for every hidden layer."""
        return {i: self.config.width for i in range(1, self.config.d_layers + 1)}
