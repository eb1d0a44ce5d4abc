"""A safe reader for NVIDIA-format network pickles: an allow-list unpickler that never runs pickled code.

NVIDIA's StyleGAN2-ADA / StyleGAN3 pickles (and the GLeaD and EqGAN-SA forks built on them) store
every network as a call to ``torch_utils.persistence._reconstruct_persistent_obj(meta)``, whose
``meta`` carries the Python source of the network's module; unpickling them the usual way
``exec``-s that source. Here the call becomes an inert :class:`PickledModule` (class name, the
module's pickled ``__dict__``, its ``init_kwargs``), the source is never run, storages are read
with ``torch.load(..., weights_only=True)``, and any global outside a short allow-list is refused
by name. TF-era pickles (``dnnlib.tflib.network.Network``) are read the same way into
:class:`PickledTFNetwork` records (name, static kwargs, variables as numpy arrays).
"""

import hashlib
import io
import pickle
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, Mapping

import attrs
import numpy as np
import torch

try:  # numpy >= 2 moved the pickling helpers; the old name warns there
    from numpy._core import multiarray as _NUMPY_MULTIARRAY
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _NUMPY_MULTIARRAY

__all__ = [
    "PickleReadError",
    "PickledModule",
    "PickledTFNetwork",
    "UnsafePickleError",
    "allowed_globals",
    "read_network_pickle",
]


class PickleReadError(ValueError):
    """A file that is not a readable network pickle (truncated, corrupt, of another kind)."""


class UnsafePickleError(PickleReadError):
    """A pickle that asks for a global outside the allow-list; it is refused, nothing of it runs."""


@attrs.frozen(kw_only=True)
class PickledModule:
    """An NVIDIA persistent network as pickled, without its code: a record, never a module.

    ``state`` is the module's ``__dict__`` as pickled (``_parameters``, ``_buffers``, ``_modules``,
    its own attributes such as ``conv_clamp`` or ``architecture``, ``_init_kwargs``).
    ``source_classes`` names the classes the (unrun) module source defines, found by reading its
    text, and ``source_sha256`` identifies that source.
    """

    class_name: str
    state: Mapping[str, Any]
    source_classes: tuple[str, ...] = ()
    source_sha256: str = ""

    @property
    def init_kwargs(self) -> dict[str, Any]:
        """The keyword arguments the network was constructed with (``{}`` if not recorded)."""
        return dict(self.state.get("_init_kwargs") or {})

    def attribute(self, name: str, default: Any = None) -> Any:
        """The module's own attribute ``name`` (e.g. ``conv_clamp``), or ``default``."""
        return self.state.get(name, default)

    @property
    def children(self) -> dict[str, "PickledModule"]:
        """The direct submodules, by attribute name (a child that is None is left out)."""
        modules = self.state.get("_modules") or {}
        return {name: child for name, child in modules.items() if child is not None}

    def child(self, path: str) -> "PickledModule":
        """The submodule at dotted ``path`` (e.g. ``"synthesis.b4"``); KeyError naming it if absent."""
        node = self
        for part in path.split("."):
            children = node.children
            if part not in children:
                raise KeyError(f"{self.class_name} has no submodule {path!r} (at {part!r}: {sorted(children)})")
            node = children[part]
        return node

    def _tensors(self) -> dict[str, torch.Tensor]:
        found: dict[str, torch.Tensor] = {}
        for group in ("_parameters", "_buffers"):
            for name, tensor in (self.state.get(group) or {}).items():
                if tensor is not None:
                    found[name] = tensor
        return found

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every parameter and buffer, recursively, by dotted name (the keys of ``state_dict()``)."""
        return dict(self._walk(""))

    def _walk(self, prefix: str) -> Iterator[tuple[str, torch.Tensor]]:
        for name, tensor in self._tensors().items():
            yield prefix + name, tensor
        for name, child in self.children.items():
            if isinstance(child, PickledModule):
                yield from child._walk(f"{prefix}{name}.")

    def modules(self, prefix: str = "") -> Iterator[tuple[str, "PickledModule"]]:
        """``(dotted path, record)`` for this module (path ``prefix``) and every submodule."""
        yield prefix, self
        for name, child in self.children.items():
            if isinstance(child, PickledModule):
                yield from child.modules(f"{prefix}.{name}" if prefix else name)


@attrs.frozen(kw_only=True)
class PickledTFNetwork:
    """A TF-era ``dnnlib.tflib.network.Network`` as pickled: its variables, never its build code.

    ``variables`` maps the network's own TF variable names (``"4x4/Conv/weight"``) to numpy
    arrays; ``components`` holds the sub-networks (``mapping``, ``synthesis``).
    """

    name: str
    static_kwargs: Mapping[str, Any]
    variables: Mapping[str, np.ndarray]
    components: Mapping[str, "PickledTFNetwork"]
    build_func_name: str = ""

    def all_variables(self, prefix: str = "") -> dict[str, np.ndarray]:
        """This network's variables and its components', each under ``<component>/`` (as NVIDIA's
        legacy.py collects them: ``dlatent_avg``, ``mapping/Dense0/weight``, ``synthesis/4x4/Conv/weight``)."""
        found = {prefix + name: value for name, value in self.variables.items()}
        for name, component in self.components.items():
            found.update(component.all_variables(f"{prefix}{name}/"))
        return found


class _TFNetworkStub:
    """Stands in for ``dnnlib.tflib.network.Network`` while unpickling; keeps only its state."""

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise PickleReadError(f"a TF Network's state is a {type(state).__name__}, not a dict")
        object.__setattr__(self, "_state", state)


class _TorchModuleStub:
    """Stands in for a plain ``torch.nn`` layer pickled inside a network (EqGAN-SA's SEL holds
    ``Sequential``, ``InstanceNorm2d`` and ``LeakyReLU``); keeps only its state."""

    class_name = "Module"

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise PickleReadError(f"a pickled {self.class_name}'s state is a {type(state).__name__}, not a dict")
        object.__setattr__(self, "_state", state)


#: Plain torch layers a network pickle may hold (as inert records; their code is torch's own).
_TORCH_LAYERS = {
    "torch.nn.modules.container": ("Sequential",),
    "torch.nn.modules.instancenorm": ("InstanceNorm2d",),
    "torch.nn.modules.activation": ("LeakyReLU",),
}


def _inert_hook(*args: Any, **kwargs: Any) -> None:
    """Stands in for a function a pickled module kept as a hook (EqGAN-SA's Grad-CAM hooks); never run."""
    raise PickleReadError("a pickled network's hook function was called; gancore never runs a pickle's code")


def _source_record(meta: Mapping[str, Any]) -> tuple[tuple[str, ...], str]:
    src = meta.get("module_src") or ""
    if not isinstance(src, str):
        raise PickleReadError(f"persistent object's module_src is a {type(src).__name__}, not text")
    # The source is read as text to name its classes; it is never compiled or run.
    classes = tuple(re.findall(r"^class\s+(\w+)", src, flags=re.MULTILINE))
    return classes, hashlib.sha256(src.encode("utf-8")).hexdigest()


def _inert_persistent_obj(meta: Any) -> PickledModule:
    """Replaces ``torch_utils.persistence._reconstruct_persistent_obj``: a record, no code run."""
    if not isinstance(meta, dict):
        raise PickleReadError(f"persistent object's meta is a {type(meta).__name__}, not a dict")
    if meta.get("type") != "class":
        raise PickleReadError(f"persistent object of type {meta.get('type')!r}; only 'class' is known")
    state = meta.get("state")
    if not isinstance(state, dict):
        raise PickleReadError(f"persistent object {meta.get('class_name')!r} has no state dict")
    classes, digest = _source_record(meta)
    return PickledModule(
        class_name=str(meta.get("class_name")), state=state, source_classes=classes, source_sha256=digest
    )


def _load_storage(data: bytes) -> Any:
    """Replaces ``torch.storage._load_from_bytes``: the storage, through the weights-only loader."""
    if not isinstance(data, (bytes, bytearray)):
        raise PickleReadError(f"a storage's payload is a {type(data).__name__}, not bytes")
    return torch.load(io.BytesIO(bytes(data)), weights_only=True, map_location="cpu")


def _rebuild_from_type_v2(func: Callable, new_type: type, args: tuple, state: Any) -> Any:
    """``torch._utils._rebuild_from_type_v2`` restricted to plain tensors and parameters."""
    if func not in _TENSOR_REBUILDERS or new_type not in (torch.Tensor, torch.nn.Parameter):
        raise UnsafePickleError(f"refuses to rebuild a tensor of type {getattr(new_type, '__name__', new_type)!r}")
    return torch._utils._rebuild_from_type_v2(func, new_type, args, state)


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    """``numpy.core.multiarray.scalar`` for numeric and boolean dtypes only."""
    if not isinstance(dtype, np.dtype) or dtype.kind not in "biufc":
        raise UnsafePickleError(f"refuses a numpy scalar of dtype {dtype!r}")
    return _NUMPY_MULTIARRAY.scalar(dtype, data)


def _numpy_reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """``numpy.core.multiarray._reconstruct`` for plain ndarrays only (their data comes by __setstate__)."""
    if subtype is not np.ndarray:
        raise UnsafePickleError(f"refuses to rebuild an array of type {subtype!r}")
    return _NUMPY_MULTIARRAY._reconstruct(subtype, shape, dtype)


_TENSOR_REBUILDERS = (torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter)


def _allowed() -> dict[tuple[str, str], Any]:
    table: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): OrderedDict,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
        ("torch._utils", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
        ("torch", "Tensor"): torch.Tensor,
        ("torch.nn.parameter", "Parameter"): torch.nn.Parameter,
        ("torch.storage", "_load_from_bytes"): _load_storage,
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): _inert_persistent_obj,
        ("dnnlib.util", "EasyDict"): dict,
        ("dnnlib", "EasyDict"): dict,
        ("dnnlib.tflib.network", "Network"): _TFNetworkStub,
        ("numpy", "dtype"): np.dtype,
        ("numpy", "ndarray"): np.ndarray,
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[(module, "scalar")] = _numpy_scalar
        table[(module, "_reconstruct")] = _numpy_reconstruct
    for module, names in _TORCH_LAYERS.items():
        for name in names:
            table[(module, name)] = type(name, (_TorchModuleStub,), {"class_name": name})
    # EqGAN-SA's D keeps its training loss's Grad-CAM hooks in its pickled hook dicts.
    table[("training.loss", "grad_hook")] = _inert_hook
    table[("training.loss", "activation_hook")] = _inert_hook
    return table


_ALLOWED = _allowed()


def allowed_globals() -> list[str]:
    """The globals a network pickle may name, as ``module.name`` (everything else is refused)."""
    return sorted(f"{module}.{name}" for module, name in _ALLOWED)


class _SafeUnpickler(pickle.Unpickler):
    """``find_class`` answers from the allow-list only; persistent ids are refused."""

    def __init__(self, file: BinaryIO, where: str):
        super().__init__(file)
        self._where = where

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self._where}: refuses to load global {module}.{name}: not on gancore's allow-list of "
                "tensor rebuilders, containers and NVIDIA's persistence records; the file may run code, "
                "and gancore never runs a pickle's code"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self._where}: refuses a persistent id ({type(pid).__name__}); not a network pickle")


def _tf_record(stub: _TFNetworkStub, where: str) -> PickledTFNetwork:
    state = stub._state
    version = state.get("version")
    if not isinstance(version, int) or not 2 <= version <= 4:
        raise PickleReadError(f"{where}: TF Network version {version!r}; only versions 2 to 4 are known")
    variables = {}
    for item in state.get("variables") or ():
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[1], np.ndarray)):
            raise PickleReadError(f"{where}: a TF variable entry is not (name, array)")
        variables[str(item[0])] = item[1]
    components = {
        str(key): _tf_record(value, where)
        for key, value in (state.get("components") or {}).items()
        if isinstance(value, _TFNetworkStub)
    }
    return PickledTFNetwork(
        name=str(state.get("name")), static_kwargs=dict(state.get("static_kwargs") or {}), variables=variables,
        components=components, build_func_name=str(state.get("build_func_name", "")),
    )


def _records(value: Any, where: str) -> Any:
    """Turn TF Network stubs into PickledTFNetwork records and plain torch layers into
    PickledModule records, anywhere in tuples, lists, dicts and networks' states."""
    if isinstance(value, _TFNetworkStub):
        return _tf_record(value, where)
    if isinstance(value, _TorchModuleStub):
        return PickledModule(class_name=value.class_name, state=_records(value._state, where))
    if isinstance(value, PickledModule):
        return attrs.evolve(value, state=_records(dict(value.state), where))
    if isinstance(value, tuple):
        return tuple(_records(v, where) for v in value)
    if isinstance(value, list):
        return [_records(v, where) for v in value]
    if isinstance(value, dict):
        return {k: _records(v, where) for k, v in value.items()}
    return value


def read_network_pickle(source: str | Path | bytes | BinaryIO) -> Any:
    """Read an NVIDIA-format network pickle safely: records instead of code.

    ``source`` is a path, the file's bytes, or a binary file object. The result is the pickle's
    top-level object with every persistent network a :class:`PickledModule` (StyleGAN2-ADA /
    StyleGAN3 pickles: a dict with ``G``, ``D``, ``G_ema``, ...) and every TF-era network a
    :class:`PickledTFNetwork` (config-f pickles: a tuple ``(G, D, Gs)``).

    Raises :class:`UnsafePickleError` naming any global outside :func:`allowed_globals`, and
    :class:`PickleReadError` for a truncated or corrupt file.
    """
    if isinstance(source, (bytes, bytearray)):
        where, file = "<bytes>", io.BytesIO(bytes(source))
    elif isinstance(source, (str, Path)):
        where = str(source)
        try:
            file = io.BytesIO(Path(source).read_bytes())
        except FileNotFoundError:
            raise PickleReadError(f"{where}: file not found") from None
        except IsADirectoryError:
            raise PickleReadError(f"{where}: is a folder, not a network pickle") from None
    else:
        where, file = getattr(source, "name", "<file>"), source
    try:
        value = _SafeUnpickler(file, where).load()
    except PickleReadError:
        raise
    except EOFError:
        raise PickleReadError(f"{where}: ends early; the file is truncated (an interrupted download?)") from None
    except (pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError, KeyError, RuntimeError) as exc:
        raise PickleReadError(f"{where}: not a readable network pickle ({type(exc).__name__}: {exc})") from None
    return _records(value, where)
