"""Import TF-era StyleGAN2 pickles (config-f and StyleGAN2-ADA's TensorFlow networks) onto the backbone.

The variables get the transforms NVIDIA's own converter (legacy.py in stylegan2-ada-pytorch)
applies: kernels from TF's ``[kh, kw, in, out]`` to ``[out, in, kh, kw]`` (the up-sampling
``Conv0_up`` and ``Skip`` kernels also flipped), dense weights transposed, modulation biases
plus 1, the ``[1, 1, r, r]`` noise inputs and ``[1, C, 4, 4]`` constant sliced, ``dlatent_avg``
as ``w_avg``. Widths, layer counts and label sizes come from the variables' shapes; the settings
shapes cannot show come from each network's static kwargs, with the defaults NVIDIA's converter
assumes where a kwarg is absent.
"""

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gancore.backbone import DataInfo
from gancore.importing import CheckpointImportError, ImportedModel, PublishedCheckpoint
from gancore.layers import RESAMPLE_FILTER
from gancore.pickle_reader import PickledTFNetwork

from gancore_stylegan2.nvidia_import import channel_settings, discriminator_name, generator_name

__all__ = ["import_tf_stylegan2", "tf_discriminator_tensors", "tf_generator_tensors"]

#: Static kwargs that change nothing the imported networks compute (sampling and training settings).
_IGNORED_KWARGS = {"truncation_psi", "truncation_cutoff", "style_mixing_prob", "structure", "randomize_noise",
                   "is_template_graph", "components", "fused_modconv", "dtype", "num_fp16_res", "freeze_layers"}


def _refuse(where: str, message: str) -> CheckpointImportError:
    return CheckpointImportError(f"{where}: {message}; the stylegan2 backbone cannot reproduce it, nothing was written")


def _t(value: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(value, dtype=np.float32, order="C"))  # keeps 0-d arrays 0-d


def _kernel(value: np.ndarray, flip: bool = False) -> torch.Tensor:
    """TF ``[kh, kw, in, out]`` -> ``[out, in, kh, kw]`` (flipped spatially for TF's transposed convs)."""
    return _t((value[::-1, ::-1] if flip else value).transpose(3, 2, 0, 1))


def _resolutions(names: list[str], prefix: str) -> list[int]:
    return sorted({int(m[1]) for n in names if (m := re.match(rf"{prefix}(\d+)x\1/", n))})


class _Variables:
    """A network's TF variables, recording which ones a conversion took."""

    def __init__(self, variables: dict[str, np.ndarray]):
        self.all = variables
        self.used: set[str] = set()

    def __contains__(self, name: str) -> bool:
        return name in self.all

    def take(self, name: str) -> np.ndarray:
        self.used.add(name)
        return self.all[name]

    def mapping(self, embed: str, dense: str) -> dict[str, torch.Tensor]:
        """A mapping network's label embedding (scope ``embed``) and layers (``dense.format(i)``)."""
        out = {}
        if f"{embed}/weight" in self:
            out["mapping.embed.weight"] = _t(self.take(f"{embed}/weight").T)
            out["mapping.embed.bias"] = _t(self.take(f"{embed}/bias"))
        i = 0
        while f"{dense.format(i)}/weight" in self:
            out[f"mapping.fc{i}.weight"] = _t(self.take(f"{dense.format(i)}/weight").T)
            out[f"mapping.fc{i}.bias"] = _t(self.take(f"{dense.format(i)}/bias"))
            i += 1
        return out


def tf_generator_tensors(variables: dict[str, np.ndarray]) -> tuple[dict[str, torch.Tensor], set[str]]:
    """NVIDIA's PyTorch G tensors (its names) from a TF G's variables, and the variables used."""
    v = _Variables(variables)
    take = v.take
    out = {"mapping.w_avg": _t(take("dlatent_avg")), **v.mapping("mapping/LabelEmbed", "mapping/Dense{}")}
    out["synthesis.b4.const"] = _t(take("synthesis/4x4/Const/const")[0])
    for r in _resolutions(list(variables), "synthesis/"):
        s = f"synthesis/{r}x{r}"
        layers = [("conv1", f"{s}/Conv", False, 0)] if r == 4 else [
            ("conv0", f"{s}/Conv0_up", True, 2 * int(np.log2(r)) - 5), ("conv1", f"{s}/Conv1", False, 2 * int(np.log2(r)) - 4)]
        for layer, tf_name, flip, noise in layers:
            p = f"synthesis.b{r}.{layer}"
            out[f"{p}.weight"] = _kernel(take(f"{tf_name}/weight"), flip)
            out[f"{p}.bias"] = _t(take(f"{tf_name}/bias"))
            out[f"{p}.noise_const"] = _t(take(f"synthesis/noise{noise}")[0, 0])
            out[f"{p}.noise_strength"] = _t(take(f"{tf_name}/noise_strength"))
            out[f"{p}.affine.weight"] = _t(take(f"{tf_name}/mod_weight").T)
            out[f"{p}.affine.bias"] = _t(take(f"{tf_name}/mod_bias") + 1)
        p = f"synthesis.b{r}.torgb"
        out[f"{p}.weight"] = _kernel(take(f"{s}/ToRGB/weight"))
        out[f"{p}.bias"] = _t(take(f"{s}/ToRGB/bias"))
        out[f"{p}.affine.weight"] = _t(take(f"{s}/ToRGB/mod_weight").T)
        out[f"{p}.affine.bias"] = _t(take(f"{s}/ToRGB/mod_bias") + 1)
    return out, v.used


def tf_discriminator_tensors(variables: dict[str, np.ndarray]) -> tuple[dict[str, torch.Tensor], set[str]]:
    """NVIDIA's PyTorch D tensors (its names) from a TF D's variables, and the variables used."""
    v = _Variables(variables)
    take = v.take
    out = v.mapping("LabelEmbed", "Mapping{}")
    for r in _resolutions(list(variables), ""):
        if r == 4:
            continue
        if f"{r}x{r}/FromRGB/weight" in v:
            out[f"b{r}.fromrgb.weight"] = _kernel(take(f"{r}x{r}/FromRGB/weight"))
            out[f"b{r}.fromrgb.bias"] = _t(take(f"{r}x{r}/FromRGB/bias"))
        for i, tf_name in ((0, "Conv0"), (1, "Conv1_down")):
            out[f"b{r}.conv{i}.weight"] = _kernel(take(f"{r}x{r}/{tf_name}/weight"))
            out[f"b{r}.conv{i}.bias"] = _t(take(f"{r}x{r}/{tf_name}/bias"))
        if f"{r}x{r}/Skip/weight" in v:
            out[f"b{r}.skip.weight"] = _kernel(take(f"{r}x{r}/Skip/weight"))
    if "4x4/FromRGB/weight" in v:
        out["b4.fromrgb.weight"] = _kernel(take("4x4/FromRGB/weight"))
        out["b4.fromrgb.bias"] = _t(take("4x4/FromRGB/bias"))
    out["b4.conv.weight"] = _kernel(take("4x4/Conv/weight"))
    out["b4.conv.bias"] = _t(take("4x4/Conv/bias"))
    out["b4.fc.weight"] = _t(take("4x4/Dense0/weight").T)
    out["b4.fc.bias"] = _t(take("4x4/Dense0/bias"))
    out["b4.out.weight"] = _t(take("Output/weight").T)
    out["b4.out.bias"] = _t(take("Output/bias"))
    return out, v.used


def _kwargs(net: PickledTFNetwork, known: set[str], where: str) -> dict[str, Any]:
    kwargs = dict(net.static_kwargs)
    unknown = sorted(set(kwargs) - known - _IGNORED_KWARGS)
    if unknown:
        raise _refuse(where, f"TF network {net.name!r} has settings gancore does not know: {unknown}")
    if kwargs.get("resample_kernel", list(RESAMPLE_FILTER)) not in (list(RESAMPLE_FILTER), tuple(RESAMPLE_FILTER)):
        raise _refuse(where, f"resample_kernel {kwargs['resample_kernel']}")
    if kwargs.get("nonlinearity", "lrelu") != "lrelu" or kwargs.get("mapping_nonlinearity", "lrelu") != "lrelu":
        raise _refuse(where, "an activation other than lrelu")
    return kwargs


_G_KWARGS = {"latent_size", "label_size", "dlatent_size", "resolution", "num_channels", "mapping_layers", "label_fmaps",
             "mapping_fmaps", "mapping_nonlinearity", "mapping_lrmul", "w_avg_beta", "dlatent_avg_beta", "fmap_base",
             "fmap_max", "fmap_min", "fmap_decay", "conv_clamp", "architecture", "resample_kernel", "use_noise",
             "nonlinearity", "normalize_latents"}
_D_KWARGS = {"label_size", "resolution", "num_channels", "architecture", "fmap_base", "fmap_max", "fmap_min",
             "fmap_decay", "conv_clamp", "mapping_fmaps", "mapping_layers", "mapping_lrmul", "mbstd_group_size",
             "mbstd_num_features", "nonlinearity", "resample_kernel"}


def _claim_lod(net_name: str, variables: dict[str, np.ndarray], where: str) -> set[str]:
    """The progressive-growing level ``lod`` is claimed when 0 (no blending); else refused."""
    claimed = set()
    for name, value in variables.items():
        if name.rsplit("/", 1)[-1] == "lod":
            if np.any(value != 0):
                raise _refuse(where, f"{net_name}/{name} = {value} (a progressive-growing network mid-transition)")
            claimed.add(name)
    return claimed


def _generator_settings(Gs: PickledTFNetwork, tensors: dict[str, torch.Tensor], where: str) -> dict[str, Any]:
    kwargs = {**_kwargs(Gs, _G_KWARGS, where)}
    for component in Gs.components.values():
        kwargs.update(_kwargs(component, _G_KWARGS, where))
    if kwargs.get("architecture", "skip") != "skip" or any(n.startswith("ToRGB_lod") for n in Gs.all_variables()):
        raise _refuse(where, f"G architecture {kwargs.get('architecture', 'orig')!r} (the backbone's G is 'skip')")
    if not kwargs.get("use_noise", True):
        raise _refuse(where, "G without noise inputs (use_noise = False)")
    if kwargs.get("normalize_latents", True) is not True:
        raise _refuse(where, "G without latent normalization (normalize_latents = False)")
    if kwargs.get("fmap_decay", 1.0) != 1.0 or kwargs.get("fmap_min", 1) != 1:
        raise _refuse(where, "widths with fmap_decay != 1 or fmap_min != 1")
    layers = sum(1 for k in tensors if re.fullmatch(r"mapping\.fc\d+\.weight", k))
    w_dim = int(tensors["mapping.w_avg"].shape[0])
    c_dim = int(tensors["mapping.embed.weight"].shape[1]) if "mapping.embed.weight" in tensors else 0
    z_dim = int(tensors["mapping.fc0.weight"].shape[1]) - (int(tensors["mapping.embed.weight"].shape[0]) if c_dim else 0)
    widths = {int(m[1]): int(t.shape[0]) for k, t in tensors.items() if (m := re.fullmatch(r"synthesis\.b(\d+)\.conv1\.weight", k))}
    resolution = max(widths)
    channel_base, channel_max = channel_settings(widths, f"{where} G")
    beta = kwargs.get("w_avg_beta", kwargs.get("dlatent_avg_beta", 0.995))
    return {
        "resolution": resolution, "channels": int(tensors[f"synthesis.b{resolution}.torgb.weight"].shape[0]),
        "c_dim": c_dim, "z_dim": z_dim, "w_dim": w_dim, "mapping_layers": layers,
        "mapping_lr_multiplier": float(kwargs.get("mapping_lrmul", 0.01)),
        "channel_base": channel_base, "channel_max": channel_max, "w_avg_beta": 0.995 if beta is None else float(beta),
        "conv_clamp": kwargs.get("conv_clamp"), "noise_mode": "const",
    }


def _discriminator_settings(D: PickledTFNetwork, tensors: dict[str, torch.Tensor], g: dict[str, Any], where: str) -> dict[str, Any]:
    kwargs = _kwargs(D, _D_KWARGS, where)
    if any(n.startswith("FromRGB_lod") for n in D.all_variables()):
        architecture = "orig"
    else:
        architecture = kwargs.get("architecture", "resnet")
    has_skip = any(k.endswith(".skip.weight") for k in tensors)
    if (architecture == "resnet") != has_skip:
        raise _refuse(where, f"D architecture {architecture!r} does not fit its variables")
    widths = {int(m[1]): int(t.shape[0]) for k, t in tensors.items() if (m := re.fullmatch(r"b(\d+)\.conv0\.weight", k))}
    widths[4] = int(tensors["b4.conv.weight"].shape[0])
    if any(min(g["channel_base"] // r, g["channel_max"]) != c for r, c in widths.items()):
        raise _refuse(where, f"D's widths {dict(sorted(widths.items()))} differ from G's")
    if kwargs.get("conv_clamp") != g["conv_clamp"]:
        raise _refuse(where, "D's conv_clamp differs from G's")
    mbstd_channels = int(kwargs.get("mbstd_num_features", 1))
    settings: dict[str, Any] = {
        "d_architecture": architecture,
        # NVIDIA's converter reads an absent group size as None: the whole batch.
        "mbstd_group_size": kwargs.get("mbstd_group_size"),
        "mbstd_num_channels": mbstd_channels,
    }
    if int(tensors["b4.conv.weight"].shape[1]) != widths[4] + mbstd_channels:
        raise _refuse(where, "D's 4x4 conv does not take mbstd_num_features extra channels")
    if g["c_dim"] > 0:
        layers = sum(1 for k in tensors if re.fullmatch(r"mapping\.fc\d+\.weight", k))
        settings.update(cmap_dim=int(tensors["b4.out.weight"].shape[0]), d_mapping_layers=layers,
                        d_mapping_lr_multiplier=float(kwargs.get("mapping_lrmul", 0.1)))
    return settings


def import_tf_stylegan2(checkpoint: PublishedCheckpoint) -> ImportedModel | None:
    """The stylegan2 backbone's reading of a TF-era ``(G, D, Gs)`` pickle (None if not one)."""
    nets = checkpoint.networks
    if sorted(nets) != ["D", "G", "Gs"] or not all(isinstance(n, PickledTFNetwork) for n in nets.values()):
        return None
    where = checkpoint.source
    if not {"mapping", "synthesis"} <= set(nets["Gs"].components):
        raise _refuse(where, f"TF generator without mapping and synthesis components ({sorted(nets['Gs'].components)})")
    claimed: set[str] = set()
    official: dict[str, dict[str, torch.Tensor]] = {}
    for tf_name, name in (("G", "G"), ("Gs", "G_ema"), ("D", "D")):
        variables = nets[tf_name].all_variables()
        convert = tf_discriminator_tensors if name == "D" else tf_generator_tensors
        try:
            official[name], used = convert(variables)
        except KeyError as exc:
            raise _refuse(where, f"TF network {tf_name} lacks variable {exc}") from None
        claimed |= {f"{tf_name}.{v}" for v in used | _claim_lod(tf_name, variables, where)}
    settings = _generator_settings(nets["Gs"], official["G_ema"], where)
    if _generator_settings(nets["G"], official["G"], where) != settings:
        raise _refuse(where, "G and Gs are built differently")
    settings.update(_discriminator_settings(nets["D"], official["D"], settings, where))
    tensors = {}
    for name in ("G", "G_ema", "D"):
        rename = discriminator_name if name == "D" else generator_name
        tensors[name] = {str(rename(k)): t for k, t in official[name].items()}
    notes = (
        "converted from TensorFlow variables with the transforms of NVIDIA's legacy.py (kernels transposed, "
        "up-sampling kernels flipped, modulation biases + 1)",
        "TF's Gs samples with truncation_psi 0.5 by default; the imported G_ema samples without truncation "
        "(set G.truncation_psi to taste)",
    )
    info = DataInfo(name=Path(checkpoint.source).stem,
                    shape=(settings["channels"], settings["resolution"], settings["resolution"]), c_dim=settings["c_dim"])
    return ImportedModel(backbone={"name": "stylegan2", **settings}, data_info=info, tensors=tensors,
                         claimed=frozenset(claimed), notes=notes)
