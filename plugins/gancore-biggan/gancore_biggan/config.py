"""``BigGANConfig``: the settings of the ``biggan`` backbone, its presets, and the channel layout they give."""

from typing import Any

import attrs

from gancore.backbone import DataInfo, image_data_shape
from gancore.config import ge, gt, one_of

__all__ = ["PRESETS", "RESOLUTIONS", "BigGANConfig", "d_layout"]

#: Image sizes the backbone supports.
RESOLUTIONS = (32, 64, 128, 256)

#: Channel multipliers of G's blocks by resolution (input of the first block, then each block's output),
#: and of D's blocks (output of each block), as BigGAN-PyTorch lays them out.
G_MULTIPLIERS: dict[int, list[int]] = {
    32: [4, 4, 4, 4],
    64: [16, 16, 8, 4, 2],
    128: [16, 16, 8, 4, 2, 1],
    256: [16, 16, 8, 8, 4, 2, 1],
}
D_MULTIPLIERS: dict[int, list[int]] = {
    32: [4, 4, 4, 4],
    64: [1, 2, 4, 8, 16],
    128: [1, 2, 4, 8, 16, 16],
    256: [1, 2, 4, 8, 8, 16, 16],
}

#: The reference scripts' settings (BigGAN-PyTorch): ``cifar10`` is scripts/launch_cifar_ema.sh
#: (G 4,304,387 / D 4,207,361 parameters), ``imagenet128`` is scripts/launch_BigGAN_bs256x8.sh
#: (G 70,433,988 / D 87,982,370). Keys given in the run file win over the preset's.
PRESETS: dict[str, dict[str, Any]] = {
    "cifar10": {"g_ch": 64, "d_ch": 64, "z_dim": 128, "shared_dim": 0, "hier": False, "g_attn": (), "d_attn": (),
                "sn_eps": 1e-8, "init": "N02"},
    "imagenet128": {"g_ch": 96, "d_ch": 96, "z_dim": 120, "shared_dim": 128, "hier": True, "g_attn": (64,),
                    "d_attn": (64,), "sn_eps": 1e-6, "init": "ortho"},
}

#: What a field left unset is when no preset sets it.
DEFAULTS: dict[str, Any] = {"g_ch": 64, "d_ch": 64, "z_dim": 128, "shared_dim": 0, "hier": False, "g_attn": (),
                            "d_attn": (), "sn_eps": 1e-8, "init": "ortho"}


def d_layout(resolution: int) -> list[tuple[int, bool]]:
    """``(output resolution, downsample)`` of each D block at image size ``resolution``: halving to
    4x4 then one block at 4x4, or at 32 px the CIFAR layout (two halvings to 8, two blocks at 8)."""
    count = len(D_MULTIPLIERS[resolution])
    down = [True, True, False, False] if resolution == 32 else [True] * (count - 1) + [False]
    layout, res = [], resolution
    for d in down:
        res = res // 2 if d else res
        layout.append((res, d))
    return layout


def _resolutions(value: Any) -> tuple[int, ...] | None:
    if value is None:
        return None
    return tuple(int(v) for v in value)


@attrs.frozen(kw_only=True)
class BigGANConfig:
    """Settings of the ``biggan`` backbone. ``resolution``, ``channels`` and ``c_dim`` come from the
    data when None; every other None takes the ``preset``'s value, else :data:`DEFAULTS`."""

    resolution: int | None = attrs.field(default=None, validator=attrs.validators.optional(one_of(*RESOLUTIONS)))
    channels: int | None = attrs.field(default=None, validator=attrs.validators.optional(one_of(1, 3)))
    #: Number of classes (0: unconditional).
    c_dim: int | None = attrs.field(default=None, validator=attrs.validators.optional(ge(0)))
    #: A reference setting (:data:`PRESETS`) for the fields left None.
    preset: str | None = attrs.field(default=None, validator=attrs.validators.optional(one_of(*PRESETS)))
    z_dim: int | None = attrs.field(default=None, validator=attrs.validators.optional(gt(0)))
    #: Channel multipliers of G and D (``G_ch``, ``D_ch``).
    g_ch: int | None = attrs.field(default=None, validator=attrs.validators.optional(gt(0)))
    d_ch: int | None = attrs.field(default=None, validator=attrs.validators.optional(gt(0)))
    #: Size of the class embedding shared by G's blocks (0: an embedding per batch norm, as the CIFAR script).
    shared_dim: int | None = attrs.field(default=None, validator=attrs.validators.optional(ge(0)))
    #: Hierarchical latents: z split into one chunk per block plus one for the input layer.
    hier: bool | None = None
    #: Resolutions with a self-attention block in G and in D.
    g_attn: tuple[int, ...] | None = attrs.field(default=None, converter=_resolutions)
    d_attn: tuple[int, ...] | None = attrs.field(default=None, converter=_resolutions)
    #: Epsilon of the spectral norm's normalisations, and of batch norm.
    sn_eps: float | None = attrs.field(default=None, validator=attrs.validators.optional(gt(0.0)))
    bn_eps: float = attrs.field(default=1e-5, validator=gt(0.0))
    #: Weight initialisation of every conv, linear and embedding: ``ortho``, ``N02`` (normal, std 0.02) or ``xavier``.
    init: str | None = attrs.field(default=None, validator=attrs.validators.optional(one_of("ortho", "N02", "xavier")))
    #: D's blocks widen in their first conv (BigGAN's ``D_wide``).
    d_wide: bool = True
    #: beta of the orthogonal regularisation ``(beta / 2) ||W W^T * (1 - I)||^2`` summed over G's
    #: weights of two or more dimensions but the shared embedding (0: off, as in BigGAN-PyTorch's
    #: scripts; the paper's 1e-4).
    ortho_reg: float = attrs.field(default=0.0, validator=ge(0.0))

    def with_data(self, info: DataInfo) -> "BigGANConfig":
        """Fill ``resolution``, ``channels`` and ``c_dim`` from the data, and the rest from the preset."""
        channels, width = image_data_shape(self, info, "biggan")
        if width not in RESOLUTIONS:
            raise ValueError(f"data set {info.name!r} has {width}x{width} images; the biggan backbone takes "
                             f"{', '.join(map(str, RESOLUTIONS))}")
        return attrs.evolve(self.resolved(), resolution=width, channels=channels, c_dim=info.c_dim)

    def resolved(self) -> "BigGANConfig":
        """This config with every preset field filled (the preset's value, else the default)."""
        preset = PRESETS.get(self.preset or "", {})
        filled = {key: preset.get(key, default) for key, default in DEFAULTS.items() if getattr(self, key) is None}
        return attrs.evolve(self, **filled)

    @property
    def num_g_blocks(self) -> int:
        """G's up blocks: from 4x4 to the output resolution."""
        return len(G_MULTIPLIERS[self._resolution]) - 1

    @property
    def z_chunk(self) -> int:
        """The size of each latent chunk with ``hier`` (z is cut into ``num_g_blocks + 1`` equal
        chunks; what does not divide is dropped, as the reference does), else 0."""
        return self.z_dim // (self.num_g_blocks + 1) if self.hier else 0

    @property
    def z_used(self) -> int:
        """The latent size G reads: ``z_dim`` rounded down to whole chunks with ``hier``."""
        return self.z_chunk * (self.num_g_blocks + 1) if self.hier else self.z_dim

    def g_channels(self) -> list[tuple[int, int, int]]:
        """``(in, out, output resolution)`` of each G block."""
        m = [self.g_ch * k for k in G_MULTIPLIERS[self._resolution]]
        return [(m[i], m[i + 1], 8 * 2**i) for i in range(len(m) - 1)]

    def d_channels(self) -> list[tuple[int, int, int, bool]]:
        """``(in, out, output resolution, downsample)`` of each D block."""
        outs = [self.d_ch * k for k in D_MULTIPLIERS[self._resolution]]
        ins = [self.channels, *outs[:-1]]
        return [(c_in, c_out, res, down) for c_in, c_out, (res, down) in zip(ins, outs, d_layout(self._resolution))]

    @property
    def _resolution(self) -> int:
        if self.resolution is None:
            raise ValueError("resolution is None; call with_data(info) first")
        return self.resolution
