"""Import EqGAN-SA's modules from the official code's checkpoints (genforce/eqgan-sa, on stylegan2-ada-pytorch).

The official G carries two heat-map encoders per level (``synthesis.hm_conv{0,1}_b{8,16,32}``) and
a SEL before every synthesis layer (``synthesis.b{r}.{conv0,conv1,torgb}.sel``: ``shared.0``,
``sigma``, ``mu``, ``output.1``). They map 1:1 onto gancore-eqgan-sa's cond encoders
(``eqgan_sa_level{1,2,3}``) and its adapters (``b{r}_{layer}``). D has no modules of its own.
"""

import re

import torch

from gancore.importing import CheckpointImportError, ImportedModel, ImportedModules, PublishedCheckpoint
from gancore.layers import is_resample_filter
from gancore.pickle_reader import PickledModule

__all__ = ["import_eqgan_sa_modules", "official_name_to_ours"]

#: The official encoder of each heat-map level (named by the block it was made for).
LEVELS = {"b8": 1, "b16": 2, "b32": 3}
#: SEL sub-layer names: official -> ours.
SEL_PARTS = {"shared.0": "shared", "sigma": "sigma", "mu": "mu", "output.1": "out"}


def official_name_to_ours(key: str) -> str | None:
    """An official G tensor name of EqGAN-SA's modules -> ours (None if not one of them).

    ``synthesis.hm_conv1_b16.weight`` -> ``cond_encoders.eqgan_sa_level2.conv1.weight``;
    ``synthesis.b32.torgb.sel.output.1.bias`` -> ``adapters.b32_torgb.0.out.bias``.
    """
    if m := re.fullmatch(r"synthesis\.hm_conv([01])_(b\d+)\.(weight|bias)", key):
        return f"cond_encoders.eqgan_sa_level{LEVELS[m[2]]}.conv{m[1]}.{m[3]}" if m[2] in LEVELS else None
    if m := re.fullmatch(r"synthesis\.(b\d+)\.(conv0|conv1|torgb)\.sel\.(shared\.0|sigma|mu|output\.1)\.(weight|bias)", key):
        return f"adapters.{m[1]}_{m[2]}.0.{SEL_PARTS[m[3]]}.{m[4]}"
    return None


def _refuse(where: str, message: str) -> CheckpointImportError:
    return CheckpointImportError(f"{where}: EqGAN-SA's {message}; gancore-eqgan-sa cannot reproduce it, nothing was written")


def import_eqgan_sa_modules(checkpoint: PublishedCheckpoint, model: ImportedModel) -> ImportedModules | None:
    """EqGAN-SA's modules in an official checkpoint's G and G_ema (None if it has none)."""
    where = checkpoint.source
    tensors: dict[str, dict[str, torch.Tensor]] = {}
    claimed: set[str] = set()
    shapes: dict[str, tuple[int, ...]] = {}
    for net in ("G", "G_ema"):
        G = checkpoint.networks.get(net)
        if not isinstance(G, PickledModule) or "synthesis" not in G.children:
            continue
        found = {}
        for key, tensor in G.tensors().items():
            if key.endswith(".resample_filter") and (".sel." in key or re.match(r"synthesis\.hm_conv[01]_b\d+\.", key)):
                if not is_resample_filter(tensor):
                    raise _refuse(where, f"resample filter {key}")
                claimed.add(f"{net}.{key}")
                continue
            ours = official_name_to_ours(key)
            if ours is not None:
                found[ours] = tensor.detach().float().contiguous()
                claimed.add(f"{net}.{key}")
                shapes[ours] = tuple(tensor.shape)
        if found:
            tensors[net] = found
    if not tensors:
        return None
    if not any(k.startswith("adapters.") for k in shapes):
        raise _refuse(where, "heat-map encoders without SEL layers (a model trained with use_sel = False)")
    strengths = {float(m.attribute("sel_strength", 0.1)) for _, m in checkpoint.networks["G_ema"].modules() if m.class_name == "SEL"}
    settings = {
        "name": "eqgan_sa",
        "encoder_hidden": shapes["cond_encoders.eqgan_sa_level1.conv0.weight"][0],
        "encoder_channels": shapes["cond_encoders.eqgan_sa_level1.conv1.weight"][0],
        "sel_hidden": next(v[0] for k, v in shapes.items() if k.endswith(".shared.weight")),
    }
    if strengths != {0.1}:
        raise _refuse(where, f"SEL strength {sorted(strengths)} (the official code's is 0.1)")
    notes = (
        "EqGAN-SA's heat-map encoders and SEL layers imported into gancore-eqgan-sa; the official G draws a "
        "heat map when given none, gancore-eqgan-sa draws it from the run's generator (G.sample does): the "
        "same distribution, other draws",
    )
    return ImportedModules(entry=settings, tensors=tensors, claimed=frozenset(claimed), notes=notes)
