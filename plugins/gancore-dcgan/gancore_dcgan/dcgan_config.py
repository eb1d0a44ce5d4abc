"""``DCGANConfig``: the settings of the ``dcgan`` backbone and its channel widths."""

import attrs

from gancore.backbone import DataInfo, image_data_shape
from gancore.config import ge, gt, one_of

__all__ = ["RESOLUTIONS", "DCGANConfig"]

#: Image sizes the ``dcgan`` backbone supports.
RESOLUTIONS = (8, 16, 32, 64)


def _check_resolution(instance: object, attribute: attrs.Attribute, value: int | None) -> None:
    """Validator: None or a power of two from 8 to 64."""
    if value is not None and value not in RESOLUTIONS:
        raise ValueError(f"must be a power of two from 8 to 64, got {value!r}")


def _check_channels(instance: object, attribute: attrs.Attribute, value: int | None) -> None:
    """Validator: None, 1 (grayscale) or 3 (RGB)."""
    if value is not None and value not in (1, 3):
        raise ValueError(f"must be 1 or 3, got {value!r}")


@attrs.frozen(kw_only=True)
class DCGANConfig:
    """Settings of the ``dcgan`` backbone; ``resolution``, ``channels`` and ``c_dim`` come from
    the data when None.

    The width at resolution ``r`` is ``width * 2**log2(resolution / r)`` capped at ``max_width``,
    times ``channel_multiplier`` (rounded, at least 1): see :meth:`width_at`.
    """

    resolution: int | None = attrs.field(default=None, validator=_check_resolution)
    channels: int | None = attrs.field(default=None, validator=_check_channels)
    #: Number of classes (0: unconditional).
    c_dim: int | None = attrs.field(default=None, validator=ge(0))
    z_dim: int = attrs.field(default=128, validator=gt(0))
    #: Channels at the output resolution; doubled at every halving of the resolution.
    width: int = attrs.field(default=64, validator=gt(0))
    max_width: int = attrs.field(default=512, validator=gt(0))
    #: Scales every width (for compressed students).
    channel_multiplier: float = attrs.field(default=1.0, validator=gt(0.0))
    #: D's own channel multiplier (None: the same as G's); a compressed student may keep a wide D.
    d_channel_multiplier: float | None = attrs.field(default=None, validator=gt(0.0))
    #: Normalisation in G's blocks.
    g_norm: str = attrs.field(default="batch", validator=one_of("batch", "none"))
    #: Spectral norm on every conv and linear layer of D.
    spectral_norm: bool = False
    #: How resolution changes: ``"stride"`` (4x4 stride-2 (transposed) convs, classic DCGAN) or
    #: ``"nearest"`` (nearest upsampling + 3x3 conv in G, 3x3 conv + 2x2 average pooling in D).
    resample: str = attrs.field(default="stride", validator=one_of("stride", "nearest"))

    def with_data(self, info: DataInfo) -> "DCGANConfig":
        """Fill ``resolution``, ``channels`` and ``c_dim`` from the data set."""
        channels, width = image_data_shape(self, info, "dcgan")
        try:
            return attrs.evolve(self, resolution=width, channels=channels, c_dim=info.c_dim)
        except ValueError as exc:
            raise ValueError(
                f"data set {info.name!r} does not fit the dcgan backbone: {exc}"
            ) from None

    @property
    def block_resolutions(self) -> list[int]:
        """``[4, 8, ..., resolution]`` (needs a resolved config)."""
        if self.resolution is None:
            raise ValueError("resolution is None; call with_data(info) first")
        return [2**k for k in range(2, self.resolution.bit_length())]

    def width_at(self, res: int, network: str = "G") -> int:
        """Channels of the feature maps at resolution ``res`` in G (or, with ``network="D"``, in D)."""
        if self.resolution is None:
            raise ValueError("resolution is None; call with_data(info) first")
        base = min(self.width * (self.resolution // res), self.max_width)
        multiplier = self.channel_multiplier
        if network == "D" and self.d_channel_multiplier is not None:
            multiplier = self.d_channel_multiplier
        return max(1, round(base * multiplier))
