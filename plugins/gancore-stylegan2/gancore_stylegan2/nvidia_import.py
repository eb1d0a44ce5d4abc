"""Import NVIDIA's StyleGAN2 networks (stylegan2-ada-pytorch and StyleGAN3-repo pickles) onto the backbone.

Every setting is read from the pickled modules' own attributes and tensor shapes (NVIDIA's two
repositories have different defaults); what the backbone cannot reproduce is refused by name.
"""

import re
from pathlib import Path
from typing import Any, Callable

import torch

from gancore.backbone import DataInfo
from gancore.importing import CheckpointImportError, ImportedModel, PublishedCheckpoint
from gancore.layers import RESAMPLE_FILTER, is_resample_filter
from gancore.pickle_reader import PickledModule

__all__ = ["channel_settings", "discriminator_name", "generator_name", "import_nvidia_stylegan2"]


def _is_stylegan2_generator(net: Any) -> bool:
    if not isinstance(net, PickledModule) or net.class_name != "Generator":
        return False
    synthesis = net.children.get("synthesis")
    return synthesis is not None and "b4" in synthesis.children and "mapping" in net.children


#: NVIDIA's StyleGAN2 tensor names (anything else in a file belongs to a method's modules).
_G_KEYS = re.compile(
    r"mapping\.((fc\d+|embed)\.(weight|bias)|w_avg)"
    r"|synthesis\.b\d+\.(const|resample_filter)"
    r"|synthesis\.b\d+\.(conv0|conv1|torgb)\.(weight|bias|noise_const|noise_strength|resample_filter|affine\.(weight|bias))"
)
_D_KEYS = re.compile(
    r"b\d+\.(fromrgb|conv0|conv1|skip|conv|fc|out)\.(weight|bias|resample_filter)|b\d+\.resample_filter"
    r"|mapping\.(fc\d+|embed)\.(weight|bias)"
)


def generator_name(key: str) -> str | None:
    """NVIDIA's G tensor name -> the stylegan2 backbone's (``mapping.fc3.weight`` ->
    ``mapping_network.layers.3.weight``, ``synthesis.b8.conv0.bias`` -> ``synthesis_blocks.b8.conv0.bias``);
    None for a tensor that is not StyleGAN2's (a method's module)."""
    if not _G_KEYS.fullmatch(key):
        return None
    if key.startswith("mapping."):
        rest = key.removeprefix("mapping.")
        match = re.fullmatch(r"fc(\d+)\.(.+)", rest)
        return f"mapping_network.layers.{match[1]}.{match[2]}" if match else f"mapping_network.{rest}"
    return "synthesis_blocks." + key.removeprefix("synthesis.")


def discriminator_name(key: str) -> str | None:
    """NVIDIA's D tensor name -> the stylegan2 backbone's (``b4.fc.weight`` -> ``epilogue.fc.weight``,
    ``b32.conv0.weight`` -> ``blocks.b32.conv0.weight``, ``mapping.fc0.bias`` -> ``label_mapping.layers.0.bias``);
    None for a tensor that is not StyleGAN2's (a method's module, e.g. GLeaD's decoder)."""
    if not _D_KEYS.fullmatch(key):
        return None
    if key.startswith("b4."):
        return "epilogue." + key.removeprefix("b4.")
    if key.startswith("mapping."):
        rest = key.removeprefix("mapping.")
        match = re.fullmatch(r"fc(\d+)\.(.+)", rest)
        return f"label_mapping.layers.{match[1]}.{match[2]}" if match else f"label_mapping.{rest}"
    return "blocks." + key


def channel_settings(widths: dict[int, int], where: str) -> tuple[int, int]:
    """``(channel_base, channel_max)`` with ``min(channel_base // r, channel_max) == widths[r]`` for every r."""
    channel_max = max(widths.values())
    candidates = [c * r for r, c in widths.items() if c < channel_max] + [channel_max * max(widths)]
    for channel_base in sorted(set(candidates)):
        if all(min(channel_base // r, channel_max) == c for r, c in widths.items()):
            return channel_base, channel_max
    raise CheckpointImportError(
        f"{where}: widths {dict(sorted(widths.items()))} are not min(channel_base // r, channel_max) for any "
        "channel_base; the stylegan2 backbone cannot build them"
    )


def _refuse(where: str, message: str) -> CheckpointImportError:
    return CheckpointImportError(f"{where}: {message}; the stylegan2 backbone cannot reproduce it, nothing was written")


def _check_filter(module: PickledModule, where: str) -> None:
    taps = module.state.get("_buffers", {}).get("resample_filter")
    if taps is not None and not is_resample_filter(taps):
        raise _refuse(where, f"a resample filter other than {list(RESAMPLE_FILTER)}")


def _check_activation(module: PickledModule, want: str, where: str) -> None:
    activation = module.attribute("activation", want)
    if activation != want:
        raise _refuse(where, f"activation {activation!r} (the backbone uses {want!r})")


def _same(values: dict[str, Any], what: str, where: str) -> Any:
    distinct = set(values.values())
    if len(distinct) != 1:
        raise _refuse(where, f"{what} differs between layers ({values})")
    return distinct.pop()


def _mapping_settings(mapping: PickledModule, in_features: int, where: str) -> tuple[int, float | None]:
    """``(num_layers, lr_multiplier)`` of a mapping network, checking widths and activations."""
    num_layers = int(mapping.attribute("num_layers"))
    w_dim = int(mapping.attribute("w_dim"))
    gains = {}
    for i in range(num_layers):
        fc = mapping.child(f"fc{i}")
        _check_activation(fc, "lrelu", f"{where}.fc{i}")
        shape = list(fc.tensors()["weight"].shape)
        if shape != [w_dim, in_features if i == 0 else w_dim]:
            raise _refuse(where, f"fc{i} of shape {shape}: layer or embedding widths other than w_dim = {w_dim}")
        gains[f"fc{i}"] = float(fc.attribute("bias_gain"))
    if "embed" in mapping.children:
        _check_activation(mapping.child("embed"), "linear", f"{where}.embed")
    lr_multiplier = _same(gains, "the learning-rate multiplier", where) if gains else None
    return num_layers, lr_multiplier


def _generator_settings(G: PickledModule, where: str) -> tuple[dict[str, Any], list[str]]:
    resolution = int(G.attribute("img_resolution"))
    z_dim, c_dim, w_dim = (int(G.attribute(k)) for k in ("z_dim", "c_dim", "w_dim"))
    mapping, synthesis = G.child("mapping"), G.child("synthesis")
    num_layers, lr_multiplier = _mapping_settings(mapping, z_dim + (w_dim if c_dim else 0), f"{where} G.mapping")
    widths, clamps, fused, notes = {}, {}, {}, []
    fp16 = []
    for res in [2**k for k in range(2, resolution.bit_length())]:
        block = synthesis.child(f"b{res}")
        architecture = block.attribute("architecture", "skip")
        if architecture != "skip":
            raise _refuse(where, f"G block b{res} has architecture {architecture!r} (the backbone's G is 'skip')")
        _check_filter(block, f"{where} G.synthesis.b{res}")
        layer = block.child("conv1")
        if not layer.attribute("use_noise", True):
            raise _refuse(where, f"G block b{res} has no noise inputs (use_noise = False)")
        _check_activation(layer, "lrelu", f"{where} G.synthesis.b{res}.conv1")
        widths[res] = int(layer.tensors()["weight"].shape[0])
        clamps[f"b{res}"] = layer.attribute("conv_clamp")
        # The StyleGAN3 repository's blocks say how they modulate; stylegan2-ada-pytorch's fuse in eval only.
        fused[f"b{res}"] = {True: True, False: False}.get(block.attribute("fused_modconv_default", "inference_only"))
        if block.attribute("use_fp16", False):
            fp16.append(res)
    if fp16:
        notes.append(
            f"NVIDIA's G runs blocks {', '.join(map(str, fp16))} in float16 on a GPU; gancore runs them in float32 "
            "(bfloat16 autocast where train.precision asks for it)"
        )
    channel_base, channel_max = channel_settings(widths, f"{where} G")
    settings = {
        "resolution": resolution, "channels": int(G.attribute("img_channels")), "c_dim": c_dim,
        "z_dim": z_dim, "w_dim": w_dim, "mapping_layers": num_layers, "mapping_lr_multiplier": lr_multiplier,
        "channel_base": channel_base, "channel_max": channel_max,
        "w_avg_beta": mapping.attribute("w_avg_beta"), "conv_clamp": _same(clamps, "conv_clamp", f"{where} G"),
        "fused_modconv": _same(fused, "fused_modconv_default", f"{where} G"), "noise_mode": "const",
    }
    return settings, notes


def _discriminator_settings(D: PickledModule, g: dict[str, Any], where: str) -> dict[str, Any]:
    resolution = int(D.attribute("img_resolution"))
    if resolution != g["resolution"] or int(D.attribute("c_dim")) != g["c_dim"]:
        raise _refuse(where, "D's resolution or label count differs from G's")
    architectures, clamps, widths = {}, {}, {}
    for res in [2**k for k in range(resolution.bit_length() - 1, 2, -1)]:
        block = D.child(f"b{res}")
        architectures[f"b{res}"] = block.attribute("architecture", "resnet")
        _check_filter(block, f"{where} D.b{res}")
        clamps[f"b{res}"] = block.child("conv0").attribute("conv_clamp")
        widths[res] = int(block.child("conv0").tensors()["weight"].shape[0])
    epilogue = D.child("b4")
    widths[4] = int(epilogue.attribute("in_channels"))
    clamps["b4"] = epilogue.child("conv").attribute("conv_clamp")
    architecture = _same(architectures, "the architecture", f"{where} D")
    if epilogue.attribute("architecture", architecture) != architecture:
        raise _refuse(where, "D's epilogue architecture differs from its blocks'")
    base, cap = g["channel_base"], g["channel_max"]
    if any(min(base // r, cap) != c for r, c in widths.items()):
        raise _refuse(where, f"D's widths {dict(sorted(widths.items()))} differ from G's")
    if _same(clamps, "conv_clamp", f"{where} D") != g["conv_clamp"]:
        raise _refuse(where, "D's conv_clamp differs from G's")
    mbstd = epilogue.children.get("mbstd")
    settings: dict[str, Any] = {
        "d_architecture": architecture,
        "mbstd_group_size": mbstd.attribute("group_size") if mbstd is not None else 4,
        "mbstd_num_channels": int(mbstd.attribute("num_channels")) if mbstd is not None else 0,
    }
    if g["c_dim"] > 0:
        cmap_dim = int(epilogue.attribute("cmap_dim"))
        layers, lr_multiplier = _mapping_settings(D.child("mapping"), cmap_dim, f"{where} D.mapping")
        settings.update(cmap_dim=cmap_dim, d_mapping_layers=layers, d_mapping_lr_multiplier=lr_multiplier)
    return settings


def _mapped(net_name: str, net: PickledModule, rename: Callable[[str], str | None]) -> tuple[dict[str, torch.Tensor], set[str]]:
    """The network's tensors under gancore's names, and the checkpoint names used (filters included)."""
    tensors, claimed = {}, set()
    for key, tensor in net.tensors().items():
        new = rename(key)
        if new is None:
            continue  # not a part the backbone knows: left for a method plugin, or for the core to report
        claimed.add(f"{net_name}.{key}")
        if not key.endswith("resample_filter"):  # checked above; the backbone builds its own
            tensors[new] = tensor.detach().to(torch.float32).contiguous()
    return tensors, claimed


def import_nvidia_stylegan2(checkpoint: PublishedCheckpoint) -> ImportedModel | None:
    """The stylegan2 backbone's reading of NVIDIA's PyTorch StyleGAN2 pickles (None if not one)."""
    nets = checkpoint.networks
    generators = {k: v for k, v in nets.items() if k in ("G", "G_ema")}
    if not generators or not all(_is_stylegan2_generator(v) for v in generators.values()):
        return None
    where = checkpoint.source
    if "G_ema" not in nets:
        raise CheckpointImportError(f"{where}: holds no G_ema (networks: {sorted(nets)}); nothing was written")
    D = nets.get("D")
    if not isinstance(D, PickledModule) or D.class_name != "Discriminator":
        raise CheckpointImportError(f"{where}: holds no StyleGAN2 Discriminator 'D' (networks: {sorted(nets)})")
    g_settings, notes = _generator_settings(nets["G_ema"], where)
    if "G" in nets and _generator_settings(nets["G"], where)[0] != g_settings:
        raise _refuse(where, "G and G_ema are built differently")
    settings = {**g_settings, **_discriminator_settings(D, g_settings, where)}
    tensors, claimed = {}, set()
    for net_name in ("G", "G_ema"):
        source = net_name if net_name in nets else "G_ema"
        tensors[net_name], used = _mapped(source, nets[source], generator_name)
        claimed |= used
    tensors["D"], used = _mapped("D", D, discriminator_name)
    claimed |= used
    if "G" not in nets:
        notes.append("the file holds no training G; G starts as a copy of G_ema")
    notes.append(
        "training settings (style mixing, regularisation, learning rates) are not stored in the file; "
        "a fine-tuning run takes them from its own config"
    )
    info = DataInfo(name=_data_name(checkpoint), shape=(settings["channels"], settings["resolution"], settings["resolution"]),
                    c_dim=settings["c_dim"])
    return ImportedModel(
        backbone={"name": "stylegan2", **settings}, data_info=info, tensors=tensors,
        claimed=frozenset(claimed), notes=tuple(notes),
    )


def _data_name(checkpoint: PublishedCheckpoint) -> str:
    """The training set's name from the pickle's ``training_set_kwargs`` (else the file's name)."""
    kwargs = checkpoint.extras.get("training_set_kwargs")
    path = kwargs.get("path") if isinstance(kwargs, dict) else None
    return Path(str(path)).stem if path else Path(checkpoint.source).stem
