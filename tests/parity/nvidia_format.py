"""Test helpers: the committed parity fixtures, and a writer of pickles in NVIDIA's persistence format.

The writer makes what ``torch_utils.persistence`` writes (each network a call to
``_reconstruct_persistent_obj(meta)`` with its module source in ``meta``), but the source it
stores is a tripwire: code that, if anything ever ran it, would create a file the tests check for.
"""

import json
import pickle
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
NAMES = ("paper256-tiny", "configf-tiny", "cifar-cond-tiny", "skip-d-tiny")


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


def write_nvidia_pickle(path: Path, name: str, flag: Path, extras: dict[str, Any] | None = None,
                        networks: tuple[str, ...] = ("G", "D", "G_ema")) -> Path:
    """Write fixture ``name`` as NVIDIA's training loop writes a snapshot (``{G, D, G_ema, ...}``)."""
    tensors, meta = load_fixture(name)
    data: dict[str, Any] = {net: _persistent(meta["networks"][net], tensors, f"{net}.", flag) for net in networks}
    data.update(extras or {})
    modules = _fake_modules()
    saved = {key: sys.modules.get(key) for key in modules}
    sys.modules.update(modules)
    try:
        path.write_bytes(pickle.dumps(data, protocol=3))
    finally:
        for key, module in saved.items():
            if module is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = module
    return path
