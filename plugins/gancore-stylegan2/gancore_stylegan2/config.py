"""``StyleGAN2Config``: the settings of the ``stylegan2`` backbone, its widths and its w layout."""

from typing import Any

import attrs

from gancore.backbone import DataInfo, image_data_shape
from gancore.config import ge, gt, le, lt, one_of

__all__ = ["MAX_RESOLUTION", "MIN_RESOLUTION", "StyleGAN2Config", "require_resolved"]

#: Smallest and largest image sizes the backbone builds (powers of two in between).
MIN_RESOLUTION = 8
MAX_RESOLUTION = 1024


def _check_resolution(instance: object, attribute: attrs.Attribute, value: int | None) -> None:
    """Validator: None or a power of two from 8 to 1024."""
    if value is None:
        return
    if not (MIN_RESOLUTION <= value <= MAX_RESOLUTION and value & (value - 1) == 0):
        raise ValueError(f"must be a power of two from {MIN_RESOLUTION} to {MAX_RESOLUTION}, got {value!r}")


@attrs.frozen(kw_only=True)
class StyleGAN2Config:
    """Settings of the ``stylegan2`` backbone (config ``stylegan2`` of NVIDIA's official code).

    ``resolution``, ``channels`` and ``c_dim`` come from the data when None. The width at
    resolution ``r`` is ``min(channel_base // r, channel_max)`` times ``channel_multiplier``
    (rounded, at least 1), the same in G and D: see :meth:`width_at`.
    """

    resolution: int | None = attrs.field(default=None, validator=_check_resolution)
    channels: int | None = attrs.field(default=None, validator=one_of(None, 1, 3))
    #: Number of classes (0: unconditional).
    c_dim: int | None = attrs.field(default=None, validator=ge(0))
    z_dim: int = attrs.field(default=512, validator=gt(0))
    w_dim: int = attrs.field(default=512, validator=gt(0))
    #: Fully connected layers of G's mapping network.
    mapping_layers: int = attrs.field(default=8, validator=ge(1))
    #: Learning-rate multiplier of the mapping layers (equalized learning rate).
    mapping_lr_multiplier: float = attrs.field(default=0.01, validator=gt(0.0))
    #: Overall width: ``channel_base // r`` channels at resolution ``r`` ...
    channel_base: int = attrs.field(default=32768, validator=gt(0))
    #: ... capped at this.
    channel_max: int = attrs.field(default=512, validator=gt(0))
    #: Scales every width (for compressed students); 1.0 gives the official widths.
    channel_multiplier: float = attrs.field(default=1.0, validator=gt(0.0))
    #: D's own channel multiplier (None: the same as G's); a compressed student may keep a wide D.
    d_channel_multiplier: float | None = attrs.field(default=None, validator=gt(0.0))
    #: Probability of style mixing regularisation in training (two latents, random crossover).
    style_mixing: float = attrs.field(default=0.9, validator=[ge(0.0), le(1.0)])
    #: Truncation applied when G is in eval mode (sampling from G_ema); 1.0 = none.
    truncation_psi: float = attrs.field(default=1.0, validator=ge(0.0))
    #: Truncate only the first this many ws (None: all of them).
    truncation_cutoff: int | None = attrs.field(default=None, validator=ge(1))
    #: Decay of the tracked average ``w_avg`` (updated in training, used by truncation).
    w_avg_beta: float = attrs.field(default=0.995, validator=[ge(0.0), lt(1.0)])
    #: Per-pixel noise inputs: fresh ``"random"`` noise, the stored ``"const"`` noise, or ``"none"``.
    noise_mode: str = attrs.field(default="random", validator=one_of("random", "const", "none"))
    #: Modulated conv as one grouped conv (True) or scaling around a shared conv (False);
    #: None as the official code: fused in eval mode, separate in training.
    fused_modconv: bool | None = None
    #: Clamp conv outputs to ±conv_clamp (the official code uses 256 with float16); None: off.
    conv_clamp: float | None = attrs.field(default=None, validator=gt(0.0))
    #: Group size of D's minibatch standard deviation layer (capped at the batch size; "none":
    #: the whole batch, as NVIDIA's code allows).
    mbstd_group_size: int | None = attrs.field(default=4, validator=ge(1))
    #: Channels the minibatch standard deviation layer appends (0: no such layer).
    mbstd_num_channels: int = attrs.field(default=1, validator=ge(0))
    #: Fully connected layers of D's label mapping network (conditional D only; 0: the
    #: normalized label embedding itself).
    d_mapping_layers: int = attrs.field(default=8, validator=ge(0))
    #: Learning-rate multiplier of D's label mapping layers (None: ``mapping_lr_multiplier``).
    d_mapping_lr_multiplier: float | None = attrs.field(default=None, validator=gt(0.0))
    #: D's block architecture: ``"resnet"`` (StyleGAN2), ``"skip"`` or ``"orig"`` (NVIDIA's names).
    d_architecture: str = attrs.field(default="resnet", validator=one_of("resnet", "skip", "orig"))
    #: Width of D's mapped label (projection conditioning); None: D's width at 4x4.
    cmap_dim: int | None = attrs.field(default=None, validator=gt(0))

    def with_data(self, info: DataInfo) -> "StyleGAN2Config":
        """Fill ``resolution``, ``channels`` and ``c_dim`` from the data set."""
        channels, width = image_data_shape(self, info, "stylegan2")
        fields = attrs.fields_dict(StyleGAN2Config)
        for field, value in (("resolution", width), ("channels", channels)):
            try:
                fields[field].validator(self, fields[field], value)
            except ValueError as exc:
                raise ValueError(
                    f"data set {info.name!r} does not fit the stylegan2 backbone: {field} {exc}"
                ) from None
        return attrs.evolve(self, resolution=width, channels=channels, c_dim=info.c_dim)

    # -- derived quantities (need a resolved config) ------------------------------------------

    def _resolved_resolution(self) -> int:
        if self.resolution is None:
            raise ValueError("resolution is None; call with_data(info) first")
        return self.resolution

    @property
    def block_resolutions(self) -> list[int]:
        """``[4, 8, ..., resolution]``: the output sizes of G's synthesis blocks."""
        return [2**k for k in range(2, self._resolved_resolution().bit_length())]

    def width_at(self, res: int, network: str = "G") -> int:
        """Channels of the feature maps at resolution ``res`` in G (or, with ``network="D"``, in D)."""
        base = min(self.channel_base // res, self.channel_max)
        multiplier = self.channel_multiplier
        if network == "D" and self.d_channel_multiplier is not None:
            multiplier = self.d_channel_multiplier
        return max(1, round(base * multiplier))

    @property
    def num_ws(self) -> int:
        """Number of per-layer latents G's synthesis consumes: ``2 * log2(resolution) - 2``."""
        return 2 * (self._resolved_resolution().bit_length() - 1) - 2

    def ws_start(self, res: int) -> int:
        """Index of the first w that G's block ``b{res}`` consumes (its first conv's)."""
        return 0 if res == 4 else 2 * (res.bit_length() - 1) - 5

    def ws_remaining(self, res: int) -> int:
        """Number of ws the blocks after ``b{res}`` consume (0 after the last block)."""
        if res == self._resolved_resolution():
            return 0
        return self.num_ws - self.ws_start(2 * res)


def require_resolved(config: Any, owner: str) -> None:
    """Raise a ValueError naming the data-dependent fields of ``config`` that are still None."""
    missing = [name for name in ("resolution", "channels", "c_dim") if getattr(config, name) is None]
    if missing:
        raise ValueError(
            f"{owner} needs a resolved {type(config).__name__}, but {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} None; fill them from the data set with "
            f"config.with_data(info) (or set them explicitly)"
        )
