"""The Generator / Discriminator protocol every backbone implements."""

import re
from typing import Any, Callable, Iterable, Mapping, Sequence

import attrs
import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor, nn

from gancore.losses import LossTerm

__all__ = [
    "image_data_shape",
    "PLUGIN_MODULE_GROUPS",
    "CAPABILITIES",
    "CapabilityError",
    "BackboneSpec",
    "DataInfo",
    "Discriminator",
    "Generator",
    "SynthesisLayer",
    "assert_shape",
    "hub_coders",
]

#: Capabilities a backbone may offer; a plugin names the ones it needs in ``requires``
#: as ``"backbone.<capability>"``.
CAPABILITIES: dict[str, str] = {
    "d_features": "D(x, c, features=True) also returns its block outputs by resolution",
    "g_features": "G(z, c, cond, features=True) also returns its block outputs by resolution",
    "resume_state": "G.resume_state / G.state_at / G.synthesize_from resume synthesis mid-way",
    "adapters": "G.add_adapter / G.add_cond_encoder insert plugin modules into synthesis",
    "path_length": "G.mapping / G.synthesis expose an intermediate latent w for path length",
    "conditioning": "G and D accept one-hot class labels c (c_dim > 0)",
}


@attrs.frozen(kw_only=True)
class DataInfo:
    """What a backbone needs to know of the data set it is trained on."""

    name: str
    #: Shape of one sample without the batch axis: ``(C, H, W)`` for images, ``(D,)`` for points.
    shape: tuple[int, ...]
    #: Number of classes (width of the one-hot label ``c``); 0 when unconditional.
    c_dim: int = 0

    @property
    def is_image(self) -> bool:
        """True for ``(C, H, W)`` image data, False for flat point data."""
        return len(self.shape) == 3

    @property
    def resolution(self) -> int | None:
        """Image side length, or None for point data."""
        return self.shape[-1] if self.is_image else None

    @property
    def channels(self) -> int:
        """Image channels, or the dimension of a point."""
        return self.shape[0]


@attrs.frozen(kw_only=True)
class SynthesisLayer:
    """One layer of G's synthesis network, as offered to adapter factories."""

    name: str
    channels: int
    resolution: int


@attrs.frozen(kw_only=True)
class BackboneSpec:
    """A backbone as registered through ``gancore_register_backbones``.

    ``config_class`` is a frozen attrs class holding the backbone's fields (the ``[backbone]``
    table minus ``name``). If it defines ``with_data(info: DataInfo)``, the core calls it to fill
    data-dependent defaults (resolution, channels, c_dim) before the networks are built.
    ``generator_class(config)`` and ``discriminator_class(config)`` build the networks.
    """

    name: str
    config_class: type
    generator_class: type["Generator"]
    discriminator_class: type["Discriminator"]
    capabilities: frozenset[str] = attrs.field(converter=frozenset, factory=frozenset)
    description: str = ""

    def __attrs_post_init__(self) -> None:
        unknown = sorted(set(self.capabilities) - set(CAPABILITIES))
        if unknown:
            raise ValueError(
                f"backbone {self.name!r} declares unknown capabilities {unknown}; "
                f"known: {sorted(CAPABILITIES)}"
            )

    def resolve_config(self, config: Any, info: DataInfo) -> Any:
        """Return ``config`` with its data-dependent defaults filled from ``info``."""
        with_data = getattr(config, "with_data", None)
        return with_data(info) if with_data is not None else config


def hub_coders(config_class: type) -> dict[type, tuple[Callable, Callable]]:
    """Encoders for ``PyTorchModelHubMixin`` so an attrs backbone config round-trips as JSON.

    Use as ``class MyG(Generator, coders=hub_coders(MyConfig))``.
    """
    from gancore.config import converter

    return {config_class: (converter.unstructure, lambda d: converter.structure(d, config_class))}


def assert_shape(tensor: Tensor, shape: Sequence[int | None], what: str = "tensor") -> None:
    """Raise a ValueError unless ``tensor`` has ``shape`` (``None`` matches any size)."""
    if tensor.ndim != len(shape) or any(
        want is not None and have != want for have, want in zip(tensor.shape, shape)
    ):
        raise ValueError(f"{what}: expected shape {list(shape)}, got {list(tensor.shape)}")


class CapabilityError(NotImplementedError):
    """A backbone network does not offer a part of the protocol that was called."""


def _not_offered(network: nn.Module, method: str) -> CapabilityError:
    return CapabilityError(
        f"{type(network).__name__} does not implement {method}(); its backbone lacks the "
        "capability a caller relies on (plugins name the capabilities they need in `requires`)"
    )


def _module_key(layer_name: str) -> str:
    """Turn a layer name into a valid ``nn.ModuleDict`` key (no dots)."""
    return re.sub(r"[^0-9A-Za-z_]", "_", layer_name)


#: The ``nn.ModuleDict`` attributes of G and D that hold modules added by plugins.
PLUGIN_MODULE_GROUPS = ("adapters", "cond_encoders", "attachments")


class _PluginModulesMixin:
    """``attach``: modules that plugins hang on a network, trained and saved with it."""

    attachments: nn.ModuleDict

    def attach(self, name: str, module: nn.Module) -> None:
        """Attach ``module`` under ``name``: it joins the network's parameters and state dict."""
        if name in self.attachments:
            raise ValueError(f"a module named {name!r} is already attached to {type(self).__name__}")
        self.attachments[name] = module


class Generator(_PluginModulesMixin, nn.Module, PyTorchModelHubMixin):
    """Base class of every backbone's generator.

    Subclasses set ``z_dim``, ``c_dim``, ``w_dim`` and ``img_shape`` and implement
    :meth:`mapping`, :meth:`synthesis`, :meth:`synthesis_layers` and (with the
    ``resume_state`` capability) :meth:`resume_state`, :meth:`state_at` and
    :meth:`synthesize_from`. Inside synthesis they call ``cond = self.encode_cond(cond)`` once
    and ``x = self.adapt(layer.name, x, cond)`` before every layer listed by
    :meth:`synthesis_layers`.
    """

    z_dim: int
    c_dim: int
    w_dim: int
    img_shape: tuple[int, ...]

    def __init__(self) -> None:
        super().__init__()
        self.adapters = nn.ModuleDict()
        self.cond_encoders = nn.ModuleDict()
        self.attachments = nn.ModuleDict()

    # -- the protocol -------------------------------------------------------------------------

    def forward(
        self,
        z: Tensor,
        c: Tensor | None = None,
        cond: Mapping[str, Tensor] | None = None,
        features: bool = False,
    ) -> Tensor | tuple[Tensor, dict[int, Tensor]]:
        """Generate images (or points) from latents ``z`` ``[N, z_dim]``.

        Returns ``[N, *img_shape]`` in [-1, 1] for images, or with ``features=True`` a pair
        ``(images, {resolution: block_output})``.
        """
        return self.synthesis(self.mapping(z, c), cond=cond, features=features)

    def mapping(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        """Map ``z`` (and labels ``c``) to the intermediate latent ``w`` ``[N, w_dim]``."""
        raise _not_offered(self, "mapping")

    def mix_styles(self, w: Tensor, z: Tensor, c: Tensor | None = None) -> Tensor:
        """Style mixing regularisation in training: ``w`` with some layers' latents from another ``z``.

        What ``forward`` applies between :meth:`mapping` and :meth:`synthesis`; the path-length
        phase applies it too, as NVIDIA's loss does. The default mixes nothing (backbones
        without per-layer latents).
        """
        return w

    def synthesis(
        self, w: Tensor, cond: Mapping[str, Tensor] | None = None, features: bool = False
    ) -> Tensor | tuple[Tensor, dict[int, Tensor]]:
        """Synthesize images from ``w``; see :meth:`forward` for the return value."""
        raise _not_offered(self, "synthesis")

    def synthesis_layers(self) -> list[SynthesisLayer]:
        """The layers that adapters may be inserted before, in execution order."""
        raise _not_offered(self, "synthesis_layers")

    def resume_state(self, resolution: int) -> dict[str, tuple[int, ...]]:
        """Describe the state synthesis carries after the block at ``resolution``.

        Returns ``{name: shape without batch axis}``; :meth:`state_at` returns tensors of these
        shapes and :meth:`synthesize_from` accepts them.
        """
        raise _not_offered(self, "resume_state")

    def state_at(
        self,
        resolution: int,
        z: Tensor,
        c: Tensor | None = None,
        cond: Mapping[str, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """Run G up to and including the block at ``resolution`` and return its state."""
        raise _not_offered(self, "state_at")

    def synthesize_from(
        self,
        resolution: int,
        state: Mapping[str, Tensor],
        cond: Mapping[str, Tensor] | None = None,
    ) -> Tensor:
        """Run the rest of synthesis from a state at ``resolution`` and return the images.

        ``G.synthesize_from(r, G.state_at(r, z, c, cond), cond)`` equals ``G(z, c, cond)``.
        """
        raise _not_offered(self, "synthesize_from")

    def loss_terms(self) -> "list[LossTerm]":
        """Terms of the backbone's own that G's loss gets in every Gmain step (e.g. BigGAN's
        orthogonal regularisation), each a :class:`~gancore.losses.LossTerm`; none by default.
        They are reported as ``Loss/G/backbone_<name>``."""
        return []

    # -- sampling -----------------------------------------------------------------------------

    #: Draws the extra inputs the run's plugins feed G (set by ``gancore.from_pretrained``).
    cond_source: "Callable[[int, torch.Generator], Mapping[str, Tensor]] | None" = None
    #: How the batch norms normalise when sampling, and the standing statistics' passes (the run's
    #: ``train.sample_bn`` and ``train.standing_passes``, set by ``gancore.from_pretrained``).
    sample_bn: str = "running"
    standing_passes: int = 16

    def sample(self, n: int, seed: int = 0, c: Tensor | None = None, **cond: Tensor) -> Tensor:
        """``n`` samples on the CPU from the fixed latents of ``seed`` (the same as the run's own
        ``run.sample(n, seed)``); ``c`` gives labels, ``cond`` inputs such as ``heatmap=...``."""
        from gancore.sampling import draw_samples

        return draw_samples(self, n, seed, c, cond, self.cond_source, batch_norm=self.sample_bn,
                            standing_passes=self.standing_passes)

    # -- plugin modules -----------------------------------------------------------------------

    def add_adapter(
        self, factory: Callable[[str, int, int], nn.Module | None]
    ) -> list[str]:
        """Insert plugin modules before synthesis layers.

        ``factory(layer_name, channels, resolution)`` is called for every layer of
        :meth:`synthesis_layers` and returns a module (called as ``x = adapter(x, cond)``) or
        None to skip the layer. Adapters of several plugins run in the order they were added.
        Returns the names of the layers that received an adapter.
        """
        added = []
        for layer in self.synthesis_layers():
            module = factory(layer.name, layer.channels, layer.resolution)
            if module is None:
                continue
            key = _module_key(layer.name)
            if key not in self.adapters:
                self.adapters[key] = nn.ModuleList()
            self.adapters[key].append(module)
            added.append(layer.name)
        return added

    def add_cond_encoder(self, name: str, module: nn.Module) -> None:
        """Add a module run once per forward on ``cond``; its output is stored as ``cond[name]``."""
        if name in self.cond_encoders:
            raise ValueError(f"a cond encoder named {name!r} is already registered")
        self.cond_encoders[name] = module

    def encode_cond(self, cond: Mapping[str, Tensor] | None) -> dict[str, Tensor]:
        """Run every cond encoder on ``cond`` and return the enriched dict."""
        out = dict(cond or {})
        for name, encoder in self.cond_encoders.items():
            out[name] = encoder(out)
        return out

    def adapt(self, layer_name: str, x: Tensor, cond: Mapping[str, Tensor]) -> Tensor:
        """Apply the adapters registered for ``layer_name`` to ``x``."""
        key = _module_key(layer_name)
        if key in self.adapters:
            for adapter in self.adapters[key]:
                x = adapter(x, cond)
        return x

    def check_resolution(self, resolution: int) -> None:
        """Raise a clear error if ``resolution`` is not one of G's block resolutions."""
        valid = self.block_resolutions()
        if resolution not in valid:
            raise ValueError(
                f"{type(self).__name__} has no block at resolution {resolution}; "
                f"its blocks are at {valid}"
            )

    def block_resolutions(self) -> list[int]:
        """The resolutions of G's synthesis blocks (valid ``resolution`` arguments), in order.

        Note that these are the blocks' *output* resolutions, while a :class:`SynthesisLayer`
        reports the resolution of its *input*.
        """
        raise _not_offered(self, "block_resolutions")


class Discriminator(_PluginModulesMixin, nn.Module, PyTorchModelHubMixin):
    """Base class of every backbone's discriminator.

    Subclasses set ``c_dim`` and ``img_shape`` and implement :meth:`forward` and
    :meth:`feature_channels`.
    """

    c_dim: int
    img_shape: tuple[int, ...]

    def __init__(self) -> None:
        super().__init__()
        self.attachments = nn.ModuleDict()

    def forward(
        self, x: Tensor, c: Tensor | None = None, features: bool = False
    ) -> Tensor | tuple[Tensor, dict[int, Tensor]]:
        """Score ``x`` ``[N, *img_shape]``: logits ``[N]``, or ``(logits, {res: block_output})``."""
        raise _not_offered(self, "forward")

    def feature_channels(self) -> dict[int, int]:
        """Channels of the block output at each resolution that ``features=True`` returns."""
        raise _not_offered(self, "feature_channels")


def image_data_shape(config: Any, info: DataInfo, backbone: str) -> tuple[int, int]:
    """``(channels, resolution)`` of a square-image data set, for a backbone's ``with_data``.

    Raises a ValueError if the data are not square images or disagree with the ``resolution``,
    ``channels`` or ``c_dim`` already set in ``config``.
    """
    if not info.is_image:
        raise ValueError(
            f"the {backbone} backbone models images of shape (C, H, W), but data set {info.name!r} "
            f"has samples of shape {tuple(info.shape)}; use the mlp backbone for points"
        )
    channels, height, width = info.shape
    if height != width:
        raise ValueError(f"the {backbone} backbone needs square images, data set {info.name!r} has {height}x{width}")
    for field, value in (("resolution", width), ("channels", channels), ("c_dim", info.c_dim)):
        mine = getattr(config, field)
        if mine is not None and mine != value:
            raise ValueError(
                f"{field} = {mine} does not match data set {info.name!r}, which has "
                f"{field} = {value}; leave {field} unset to take it from the data"
            )
    return channels, width


def count_parameters(modules: Iterable[nn.Module]) -> int:
    """Number of distinct parameters in ``modules``."""
    seen: dict[int, int] = {}
    for module in modules:
        for p in module.parameters():
            seen[id(p)] = p.numel()
    return sum(seen.values())


def one_hot_check(c: Tensor | None, n: int, c_dim: int, what: str) -> None:
    """Validate labels ``c`` for a network with ``c_dim`` classes and batch size ``n``."""
    if c_dim == 0:
        if c is not None and c.numel() != 0:
            raise ValueError(f"{what} is unconditional (c_dim = 0) but labels were given")
        return
    if c is None:
        raise ValueError(f"{what} is conditional (c_dim = {c_dim}) but no labels were given")
    assert_shape(c, [n, c_dim], f"{what} labels c")

