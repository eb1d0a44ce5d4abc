"""Choosing an op implementation: ``impl="auto" | "ref" | <name>``, CPU tensors on the reference."""

import warnings
from typing import Callable

from torch import Tensor

from gancore.ops.registry import REGISTRY, OpsRegistry

__all__ = ["IMPL_REFERENCE", "OpUnavailableError", "choose"]

#: The name of the pure-PyTorch implementation every op has.
IMPL_REFERENCE = "ref"

_warned: set[tuple[str, str]] = set()


class OpUnavailableError(RuntimeError):
    """An implementation asked for by name cannot run here."""


def _available(op: str, name: str, registry: OpsRegistry) -> tuple[bool, str]:
    impl = registry.get(op, name)
    try:
        return impl.is_available(), "it reports itself unavailable"
    except Exception as exc:  # a kernel that fails to compile or load
        return False, f"{type(exc).__name__}: {exc}"


def choose(op: str, impl: str, *tensors: Tensor | None, registry: OpsRegistry = REGISTRY) -> Callable:
    """The function that runs ``op`` on ``tensors`` for the requested ``impl``.

    CPU tensors always take the reference. ``"auto"`` takes the available implementation with the
    highest priority and falls back to the reference with one warning per implementation that
    fails to load; a name asks for that implementation and raises if it cannot run.
    """
    if impl == IMPL_REFERENCE or all(t is None or t.device.type == "cpu" for t in tensors):
        return registry.get(op, IMPL_REFERENCE).function
    if impl == "auto":
        for candidate in registry.implementations(op):
            if candidate.name == IMPL_REFERENCE:
                continue
            ok, why = _available(op, candidate.name, registry)
            if ok:
                return candidate.function
            if (op, candidate.name) not in _warned:
                _warned.add((op, candidate.name))
                warnings.warn(
                    f"op {op!r}: implementation {candidate.name!r} (from {candidate.owner!r}) is not available "
                    f"({why}); using the reference implementation",
                    RuntimeWarning,
                    stacklevel=3,
                )
        return registry.get(op, IMPL_REFERENCE).function
    ok, why = _available(op, impl, registry)
    if not ok:
        raise OpUnavailableError(f"op {op!r}: implementation {impl!r} cannot run here ({why})")
    return registry.get(op, impl).function
