"""Test helpers: the committed parity fixtures, and a writer of pickles in NVIDIA's persistence format.

The writer makes what ``torch_utils.persistence`` writes (each network a call to
``_reconstruct_persistent_obj(meta)`` with its module source in ``meta``), but the source it
stores is a tripwire: code that, if anything ever ran it, would create a file the tests check for.
"""

import json
import pickle
import re
import sys
import types
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from gancore.importing import PublishedCheckpoint
from gancore.pickle_reader import PickledModule

FIXTURES = Path(__file__).parent / "fixtures"
#: Fixtures of stylegan2-ada-pytorch's networks, and of the StyleGAN3 repository's StyleGAN2.
NAMES = ("paper256-tiny", "configf-tiny", "cifar-cond-tiny", "skip-d-tiny", "sg3-stylegan2-tiny")


def load_fixture(name: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(tensors, meta)`` of a fixture written by tools/parity/make_fixtures.py."""
    return load_file(str(FIXTURES / f"{name}.safetensors")), json.loads((FIXTURES / f"{name}.json").read_text())


def _state(tree: dict[str, Any], tensors: dict[str, torch.Tensor], prefix: str, child: Any) -> dict[str, Any]:
    """A module's pickled ``__dict__`` rebuilt from its fixture tree (children made by ``child``)."""
    state: dict[str, Any] = {"training": False}
    state["_parameters"] = OrderedDict(
        (name, torch.nn.Parameter(tensors[prefix + name].clone())) for name in tree["parameters"]
    )
    state["_buffers"] = OrderedDict((name, tensors[prefix + name].clone()) for name in tree["buffers"])
    state["_non_persistent_buffers_set"] = set()
    state["_forward_hooks"] = OrderedDict()
    state["_modules"] = OrderedDict(
        (name, child(sub, tensors, f"{prefix}{name}.")) for name, sub in tree["children"].items()
    )
    for name, value in tree["attributes"].items():
        state[name] = np.float64(value) if name.endswith("_gain") and isinstance(value, float) else value
    state["_init_args"] = tuple(tree["init_args"] or ())
    state["_init_kwargs"] = tree["init_kwargs"] or {}
    return state


def record(tree: dict[str, Any], tensors: dict[str, torch.Tensor], prefix: str) -> PickledModule:
    """The :class:`PickledModule` the safe reader would return for this network."""
    return PickledModule(class_name=tree["class_name"], state=_state(tree, tensors, prefix, record))


def checkpoint(name: str) -> PublishedCheckpoint:
    """A fixture as the reader would give it, without a pickle in between."""
    tensors, meta = load_fixture(name)
    networks = {net: record(tree, tensors, f"{net}.") for net, tree in meta["networks"].items()}
    return PublishedCheckpoint(source=f"{name}.pkl", sha256="0" * 64, networks=networks)


# -- writing NVIDIA-format pickles ------------------------------------------------------------------


class _EasyDict(dict):
    """Pickles as ``dnnlib.util.EasyDict``."""


def _reconstruct_persistent_obj(meta: Any) -> Any:  # never called: only its name is pickled
    raise AssertionError("the writer's stand-in was called")


class _Persistent:
    """Pickles as NVIDIA's ``_reconstruct_persistent_obj(meta)``."""

    def __init__(self, meta: dict[str, Any]):
        self.meta = meta

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return _reconstruct_persistent_obj, (self.meta,)


def tripwire_source(flag: Path, class_name: str) -> str:
    """Module source that creates ``flag`` if anything ever executes it."""
    return f"import pathlib\npathlib.Path({str(flag)!r}).write_text('ran')\n\nclass {class_name}:\n    pass\n"


def _persistent(tree: dict[str, Any], tensors: dict[str, torch.Tensor], prefix: str, flag: Path) -> _Persistent:
    state = _state(tree, tensors, prefix, lambda sub, t, p: _persistent(sub, t, p, flag))
    state["_init_kwargs"] = {k: _EasyDict(v) if isinstance(v, dict) else v for k, v in state["_init_kwargs"].items()}
    meta = dict(type="class", version=6, module_src=tripwire_source(flag, tree["class_name"]),
                class_name=tree["class_name"], state=state)
    return _Persistent(meta)


def _fake_modules() -> dict[str, types.ModuleType]:
    persistence = types.ModuleType("torch_utils.persistence")
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    _reconstruct_persistent_obj.__module__, _reconstruct_persistent_obj.__qualname__ = (
        "torch_utils.persistence", "_reconstruct_persistent_obj")
    util = types.ModuleType("dnnlib.util")
    util.EasyDict = _EasyDict
    _EasyDict.__module__, _EasyDict.__qualname__ = "dnnlib.util", "EasyDict"
    return {"torch_utils": types.ModuleType("torch_utils"), "torch_utils.persistence": persistence,
            "dnnlib": types.ModuleType("dnnlib"), "dnnlib.util": util}


def persistent_module(class_name: str, tensors: dict[str, torch.Tensor], attributes: dict[str, Any], flag: Path) -> _Persistent:
    """Any module in NVIDIA's persistence format (e.g. an ``AugmentPipe`` for a snapshot's extras)."""
    tree = {"class_name": class_name, "attributes": attributes, "init_args": [], "init_kwargs": {},
            "parameters": [], "buffers": sorted(tensors), "children": {}}
    return _persistent(tree, tensors, "", flag)


def write_nvidia_pickle(path: Path, name: str, flag: Path, extras: dict[str, Any] | None = None,
                        networks: tuple[str, ...] = ("G", "D", "G_ema")) -> Path:
    """Write fixture ``name`` as NVIDIA's training loop writes a snapshot (``{G, D, G_ema, ...}``)."""
    tensors, meta = load_fixture(name)
    data: dict[str, Any] = {net: _persistent(meta["networks"][net], tensors, f"{net}.", flag) for net in networks}
    data.update(extras or {})
    path.write_bytes(_pickled(data, _fake_modules()))
    return path


def _pickled(data: Any, modules: dict[str, types.ModuleType]) -> bytes:
    """``pickle.dumps(data)`` with stand-in ``modules`` importable, as the writers' globals name them."""
    saved = {key: sys.modules.get(key) for key in modules}
    sys.modules.update(modules)
    try:
        return pickle.dumps(data, protocol=3)
    finally:
        for key, module in saved.items():
            if module is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = module


# -- writing TF-era pickles -------------------------------------------------------------------------


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy().astype(np.float32)


def _tf_kernel(t: torch.Tensor, flip: bool = False) -> np.ndarray:
    """The inverse of legacy.py: ``[out, in, kh, kw]`` -> TF ``[kh, kw, in, out]`` (flipped for Conv0_up)."""
    k = _np(t).transpose(2, 3, 1, 0)
    return np.ascontiguousarray(k[::-1, ::-1] if flip else k)


def tf_generator_variables(t: dict[str, torch.Tensor]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """NVIDIA PyTorch G tensors (its names) -> TF variables of (G itself, mapping, synthesis)."""
    own = {"dlatent_avg": _np(t["mapping.w_avg"])}
    mapping, synthesis = {}, {}
    for key, value in t.items():
        if m := re.fullmatch(r"mapping\.fc(\d+)\.(weight|bias)", key):
            mapping[f"Dense{m[1]}/{m[2]}"] = _np(value.T if m[2] == "weight" else value)
        elif m := re.fullmatch(r"mapping\.embed\.(weight|bias)", key):
            mapping[f"LabelEmbed/{m[1]}"] = _np(value.T if m[1] == "weight" else value)
    synthesis["4x4/Const/const"] = _np(t["synthesis.b4.const"])[None]
    for key, value in t.items():
        m = re.fullmatch(r"synthesis\.b(\d+)\.(conv0|conv1|torgb)\.(.+)", key)
        if not m:
            continue
        r, layer, part = int(m[1]), m[2], m[3]
        scope = f"{r}x{r}/" + {"conv0": "Conv0_up", "conv1": "Conv" if r == 4 else "Conv1", "torgb": "ToRGB"}[layer]
        if part == "weight":
            synthesis[f"{scope}/weight"] = _tf_kernel(value, flip=layer == "conv0")
        elif part in ("bias", "noise_strength"):
            synthesis[f"{scope}/{part}"] = _np(value)
        elif part == "affine.weight":
            synthesis[f"{scope}/mod_weight"] = _np(value.T)
        elif part == "affine.bias":
            synthesis[f"{scope}/mod_bias"] = _np(value) - 1
        elif part == "noise_const":
            index = 0 if r == 4 else 2 * int(np.log2(r)) - (5 if layer == "conv0" else 4)
            synthesis[f"noise{index}"] = _np(value)[None, None]
    return own, mapping, synthesis


def tf_discriminator_variables(t: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """NVIDIA PyTorch D tensors (its names) -> TF D variables."""
    out = {}
    for key, value in t.items():
        if key.endswith("resample_filter"):
            continue
        if m := re.fullmatch(r"b(\d+)\.(fromrgb|conv0|conv1|skip)\.(weight|bias)", key):
            r, layer, part = m[1], m[2], m[3]
            scope = f"{r}x{r}/" + {"fromrgb": "FromRGB", "conv0": "Conv0", "conv1": "Conv1_down", "skip": "Skip"}[layer]
            out[f"{scope}/{part}"] = _tf_kernel(value) if part == "weight" else _np(value)
        elif m := re.fullmatch(r"b4\.(conv|fc|out|fromrgb)\.(weight|bias)", key):
            scope = {"conv": "4x4/Conv", "fc": "4x4/Dense0", "out": "Output", "fromrgb": "4x4/FromRGB"}[m[1]]
            is_conv = m[1] in ("conv", "fromrgb")
            out[f"{scope}/{m[2]}"] = (_tf_kernel(value) if is_conv else _np(value.T)) if m[2] == "weight" else _np(value)
        elif m := re.fullmatch(r"mapping\.fc(\d+)\.(weight|bias)", key):
            out[f"Mapping{m[1]}/{m[2]}"] = _np(value.T if m[2] == "weight" else value)
        elif m := re.fullmatch(r"mapping\.embed\.(weight|bias)", key):
            out[f"LabelEmbed/{m[1]}"] = _np(value.T if m[1] == "weight" else value)
        else:
            raise KeyError(key)
    return out


class _TFNetwork:
    """Pickles as ``dnnlib.tflib.network.Network`` with the state its ``__getstate__`` returns."""

    def __init__(self, state: dict[str, Any]):
        self._state = state

    def __getstate__(self) -> dict[str, Any]:
        return self._state


def _tf_state(name: str, static_kwargs: dict[str, Any], variables: dict[str, np.ndarray],
              components: dict[str, Any], flag: Path) -> _TFNetwork:
    return _TFNetwork(dict(
        version=4, name=name, static_kwargs=static_kwargs, components=components,
        build_module_src=tripwire_source(flag, "Network"), build_func_name=f"training.networks_stylegan2.{name}",
        variables=list(variables.items()),
    ))


def write_tf_pickle(path: Path, name: str, flag: Path, g_kwargs: dict[str, Any], d_kwargs: dict[str, Any],
                    extra_variables: dict[str, np.ndarray] | None = None) -> Path:
    """Write fixture ``name`` as a TF-era ``(G, D, Gs)`` pickle: its weights through legacy.py's inverse."""
    tensors, _ = load_fixture(name)
    nets = []
    for net in ("G", "D", "G_ema"):
        t = {k.removeprefix(f"{net}."): v for k, v in tensors.items() if k.startswith(f"{net}.")}
        if net == "D":
            nets.append(_tf_state("D", d_kwargs, {**tf_discriminator_variables(t), **(extra_variables or {})}, {}, flag))
            continue
        own, mapping, synthesis = tf_generator_variables(t)
        components = {"mapping": _tf_state("G_mapping", {}, mapping, {}, flag),
                      "synthesis": _tf_state("G_synthesis", {}, synthesis, {}, flag)}
        nets.append(_tf_state("G" if net == "G" else "Gs", g_kwargs, own, components, flag))
    module = types.ModuleType("dnnlib.tflib.network")
    module.Network = _TFNetwork
    _TFNetwork.__module__, _TFNetwork.__qualname__ = "dnnlib.tflib.network", "Network"
    fakes = {"dnnlib": types.ModuleType("dnnlib"), "dnnlib.tflib": types.ModuleType("dnnlib.tflib"),
             "dnnlib.tflib.network": module}
    path.write_bytes(_pickled(tuple(nets), fakes))
    return path
