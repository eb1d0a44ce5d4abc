"""Import GLeaD's decoder and heads from the official code's checkpoints (EzioBy/glead, on stylegan2-ada-pytorch).

The official D carries, besides StyleGAN2's blocks, one up-sampling 1x1 conv per decoder stage
(``b8_dec`` .. ``b{decoder_res}_dec``) and three 1x1 heads (``img_proj``, ``feat_proj1``,
``feat_proj2``: the RGB skip image, G's feature map and w at ``glead_res_g``). They map 1:1 onto
:class:`~gancore_glead.decoder.StateDecoder`'s ``stages`` and ``heads``.
"""

import re

import torch

from gancore.importing import CheckpointImportError, ImportedModel, ImportedModules, PublishedCheckpoint
from gancore.layers import is_resample_filter
from gancore.pickle_reader import PickledModule

from gancore_glead.plugin import ATTACHMENT

__all__ = ["import_glead_modules"]

#: Official head -> the entry of G's state it predicts (our head's name).
HEADS = {"img_proj": "img", "feat_proj1": "x", "feat_proj2": "ws"}


def _refuse(where: str, message: str) -> CheckpointImportError:
    return CheckpointImportError(f"{where}: GLeaD's {message}; gancore-glead cannot reproduce it, nothing was written")


def _first(value: object) -> int:
    """The official code passes some resolutions as one-element lists."""
    return int(value[0]) if isinstance(value, (list, tuple)) else int(value)


def import_glead_modules(checkpoint: PublishedCheckpoint, model: ImportedModel) -> ImportedModules | None:
    """GLeaD's modules in an official checkpoint's D (None if it has none)."""
    D = checkpoint.networks.get("D")
    if not isinstance(D, PickledModule) or not any(re.fullmatch(r"b\d+_dec", name) for name in D.children):
        return None
    where = checkpoint.source
    if int(D.attribute("decoder_out_channel", 0)) != 512 or not set(HEADS) <= set(D.children):
        raise _refuse(where, "decoder without its three heads (decoder_out_channel != 512, a single final_proj)")
    decoder_res, r = _first(D.attribute("decoder_res")), _first(D.attribute("glead_res_g"))
    tensors: dict[str, torch.Tensor] = {}
    claimed: set[str] = set()
    stages = sorted(int(m[1]) for name in D.children if (m := re.fullmatch(r"b(\d+)_dec", name)))
    if stages != [2**k for k in range(3, decoder_res.bit_length())]:
        raise _refuse(where, f"decoder stages {stages} (expected 8 .. {decoder_res})")
    layers = {f"b{res}_dec": f"stages.b{res}" for res in stages} | {k: f"heads.{v}" for k, v in HEADS.items()}
    for official, ours in layers.items():
        layer = D.child(official)
        if layer.attribute("activation", "linear") != "linear" or layer.attribute("conv_clamp") is not None:
            raise _refuse(where, f"{official} with activation {layer.attribute('activation')!r} or a conv clamp")
        for key, tensor in layer.tensors().items():
            claimed.add(f"D.{official}.{key}")
            if key == "resample_filter":
                if not is_resample_filter(tensor):
                    raise _refuse(where, f"{official} resample filter")
                continue
            if key == "weight" and tuple(tensor.shape[2:]) != (1, 1):
                raise _refuse(where, f"decoder kernel size {tuple(tensor.shape[2:])} (gancore-glead's is 1x1)")
            tensors[f"attachments.{ATTACHMENT}.{ours}.{key}"] = tensor.detach().float().contiguous()
    w_dim = int(model.backbone["w_dim"])
    if tensors[f"attachments.{ATTACHMENT}.heads.ws.weight"].shape[0] != w_dim:
        raise _refuse(where, f"ws head of width {tensors[f'attachments.{ATTACHMENT}.heads.ws.weight'].shape[0]} (G's w_dim is {w_dim})")
    notes = (
        f"GLeaD's decoder (stages 8..{decoder_res}) and heads (G's state at {r}x{r}) imported into gancore-glead; "
        "the file does not store the loss settings (lambdas, LPIPS or MSE, the fake target): the folder lists "
        "the paper's defaults",
    )
    entry = {"name": "glead", "r": r, "decoder_resolution": decoder_res}
    return ImportedModules(entry=entry, tensors={"D": tensors}, claimed=frozenset(claimed), notes=notes)
