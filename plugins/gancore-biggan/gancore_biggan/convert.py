"""BigGAN-PyTorch's state dicts (``G.pth``, ``G_ema.pth``, ``D.pth``) in gancore's names, and the config they imply."""

import re
from typing import TYPE_CHECKING, Callable, Mapping

from torch import Tensor

from gancore_biggan.config import D_MULTIPLIERS, G_MULTIPLIERS, d_layout

if TYPE_CHECKING:  # pragma: no cover
    from gancore.import_types import ImportedModel, PublishedCheckpoint

__all__ = ["ReferenceFormatError", "config_from_reference", "convert_d", "convert_g", "import_biggan_pytorch"]


class ReferenceFormatError(ValueError):
    """A state dict that is not BigGAN-PyTorch's, or uses a setting the backbone does not reproduce."""


#: Their spectral norm's buffers (one singular value) and their batch norm's statistics, by our names.
_RENAMES = (("u0", "u"), ("sv0", "sv"), ("stored_mean", "running_mean"), ("stored_var", "running_var"),
            ("conv_sc", "shortcut"))


def _leaf(name: str) -> str:
    for theirs, ours in _RENAMES:
        name = re.sub(rf"(^|\.){theirs}(\.|$)", rf"\g<1>{ours}\g<2>", name)
    return name


def _check_sn(state: Mapping[str, Tensor]) -> None:
    several = sorted(k for k in state if re.search(r"\.(u|sv)[1-9]$", k))
    if several:
        raise ReferenceFormatError(f"spectral norm with several singular values ({several[0]}, ...): "
                                   "the biggan backbone keeps one (num_G_SVs = num_D_SVs = 1)")


def _convert(state: Mapping[str, Tensor], network: str, block: Callable[[int], str], top: Mapping[str, str]) -> dict[str, Tensor]:
    """Rename a reference state dict: ``blocks.<i>.0.*`` (a block) and ``blocks.<i>.1.*`` (its
    attention) to ``blocks.<block(i)>.*`` and ``attention.<block(i)>.*``, and the modules named
    in ``top`` (their prefix to ours); anything else is an error naming the tensor."""
    _check_sn(state)
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        match = re.fullmatch(r"blocks\.(\d+)\.(\d)\.(.+)", key)
        prefix = next((p for p in top if key.startswith(p)), None)
        if match:
            group = "blocks" if match.group(2) == "0" else "attention"
            name = f"{group}.{block(int(match.group(1)))}.{_leaf(match.group(3))}"
        elif prefix is not None:
            name = top[prefix] + _leaf(key.removeprefix(prefix))
        else:
            raise ReferenceFormatError(f"{network}: tensor {key!r} is not one of BigGAN-PyTorch's {network}")
        out[name] = value
    return out


def convert_g(state: Mapping[str, Tensor], resolution: int) -> dict[str, Tensor]:
    """A BigGAN-PyTorch ``Generator`` state dict in the names of :class:`BigGANGenerator`."""
    resolutions = [8 * 2**i for i in range(len(G_MULTIPLIERS[resolution]) - 1)]
    top = {"output_layer.0.": "output_bn.", "output_layer.2.": "torgb.", "linear.": "linear.", "shared.": "shared."}
    return _convert(state, "Generator", lambda index: f"b{resolutions[index]}", top)


def convert_d(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A BigGAN-PyTorch ``Discriminator`` state dict in the names of :class:`BigGANDiscriminator`."""
    return _convert(state, "Discriminator", str, {"linear.": "linear.", "embed.": "embed."})


def config_from_reference(G: Mapping[str, Tensor], D: Mapping[str, Tensor]) -> dict:
    """The ``[backbone]`` settings (and ``resolution``, ``channels``, ``c_dim``) that G's and D's
    state dicts were made with, read from their tensor shapes."""
    try:
        bottom = G["linear.weight"].shape[0] // 16
        blocks = 1 + max(int(m.group(1)) for k in G if (m := re.match(r"blocks\.(\d+)\.", k)))
        resolution = next(r for r, m in G_MULTIPLIERS.items() if len(m) - 1 == blocks)
        g_ch = bottom // G_MULTIPLIERS[resolution][0]
        d_ch = D["blocks.0.0.conv2.weight"].shape[0] // D_MULTIPLIERS[resolution][0]
        channels = G["output_layer.2.weight"].shape[0]
        shared = "shared.weight" in G
        gain = G["blocks.0.0.bn1.gain.weight"]
        if shared:
            c_dim, shared_dim = G["shared.weight"].shape
            z_chunk = gain.shape[1] - shared_dim
        else:
            c_dim, shared_dim, z_chunk = gain.shape[0], 0, 0
        hier = z_chunk > 0
        z_dim = G["linear.weight"].shape[1] * ((blocks + 1) if hier else 1)
    except (KeyError, StopIteration, ValueError) as exc:
        raise ReferenceFormatError(f"not BigGAN-PyTorch's Generator/Discriminator state dicts ({exc!r})") from None
    g_res = [8 * 2**i for i in range(blocks)]
    g_attn = sorted({g_res[int(m.group(1))] for k in G if (m := re.match(r"blocks\.(\d+)\.1\.gamma$", k))})
    d_res = [res for res, _ in d_layout(resolution)]
    d_attn = sorted({d_res[int(m.group(1))] for k in D if (m := re.match(r"blocks\.(\d+)\.1\.gamma$", k))})
    d_wide = D["blocks.0.0.conv1.weight"].shape[0] == D["blocks.0.0.conv2.weight"].shape[0]
    return {"resolution": resolution, "channels": channels, "c_dim": int(c_dim), "g_ch": g_ch, "d_ch": d_ch,
            "z_dim": z_dim, "shared_dim": int(shared_dim), "hier": hier, "g_attn": g_attn, "d_attn": d_attn,
            "d_wide": d_wide}


def import_biggan_pytorch(checkpoint: "PublishedCheckpoint") -> "ImportedModel | None":
    """BigGAN-PyTorch's ``G.pth`` / ``G_ema.pth`` / ``D.pth`` state dicts as a ``biggan`` model
    (None when the checkpoint is not theirs). Without ``G_ema.pth`` G_ema is G; without ``D.pth``
    the import is refused (the backbone's settings are read from both networks)."""
    from gancore.backbone import DataInfo
    from gancore.import_types import CheckpointImportError, ImportedModel, StateDict

    networks = checkpoint.networks
    G = networks.get("G")
    if not isinstance(G, StateDict) or "output_layer.2.weight" not in G.state or "linear.weight" not in G.state:
        return None
    D = networks.get("D")
    if not isinstance(D, StateDict):
        raise CheckpointImportError(f"{checkpoint.source}: BigGAN-PyTorch's G without its D.pth; the backbone's "
                                    "settings are read from both networks (put D.pth beside G.pth)")
    try:
        settings = config_from_reference(G.state, D.state)
        resolution = settings.pop("resolution")
        tensors = {"G": convert_g(G.state, resolution), "D": convert_d(D.state)}
        G_ema = networks.get("G_ema")
        tensors["G_ema"] = convert_g(G_ema.state, resolution) if isinstance(G_ema, StateDict) else tensors["G"]
    except ReferenceFormatError as exc:
        raise CheckpointImportError(f"{checkpoint.source}: {exc}") from None
    channels, c_dim = settings.pop("channels"), settings.pop("c_dim")
    notes = ["the spectral norm's epsilon is not stored in the weights: set to 1e-8 (BigGAN-PyTorch's train.py "
             "default; its ImageNet script used 1e-6, which moves outputs by less than 1e-6)"]
    if not isinstance(networks.get("G_ema"), StateDict):
        notes.append("no G_ema.pth: G_ema is a copy of G")
    return ImportedModel(
        backbone={"name": "biggan", **settings},
        data_info=DataInfo(name="folder", shape=(channels, resolution, resolution), c_dim=c_dim),
        tensors=tensors,
        claimed=frozenset(checkpoint.tensor_names()),
        notes=tuple(notes),
    )
