"""The registry of op implementations filled through ``gancore_register_ops``."""

import contextlib
from typing import Callable, Iterator

import attrs

__all__ = ["REGISTRY", "OpImplementation", "OpsRegistry"]


@attrs.frozen(kw_only=True)
class OpImplementation:
    """One implementation of an op, as registered by a plugin."""

    op: str
    name: str
    function: Callable
    priority: int = 0
    available: Callable[[], bool] | None = None
    owner: str = "gancore"

    def is_available(self) -> bool:
        """Whether this implementation can run here (it says so itself, or it has no check)."""
        return True if self.available is None else bool(self.available())


class OpsRegistry:
    """Implementations of each op by name; ``impl="auto"`` picks the highest available priority."""

    def __init__(self) -> None:
        self._impls: dict[str, dict[str, OpImplementation]] = {}

    @contextlib.contextmanager
    def reference_only(self, ops: "tuple[str, ...] | None" = None) -> Iterator[None]:
        """Set every implementation but the reference aside (for ``ops``, default all) while inside."""
        saved = {}
        for op in ops or tuple(self._impls):
            saved[op] = {k: v for k, v in self._impls.get(op, {}).items() if k != "ref"}
            for name in saved[op]:
                self._impls[op].pop(name)
        try:
            yield
        finally:
            for op, impls in saved.items():
                self._impls[op].update(impls)

    def register(
        self,
        op: str,
        name: str,
        function: Callable,
        priority: int = 0,
        available: Callable[[], bool] | None = None,
        *,
        owner: str = "gancore",
    ) -> None:
        """Add implementation ``name`` of ``op``.

        The same op and name from another owner is an error; from the same owner (a plugin
        registered again by a second plugin manager) it replaces the earlier one.
        """
        impls = self._impls.setdefault(op, {})
        if name in impls and impls[name].owner != owner:
            raise ValueError(
                f"op {op!r} implementation {name!r} is registered twice: by {impls[name].owner!r} and by {owner!r}"
            )
        impls[name] = OpImplementation(
            op=op, name=name, function=function, priority=priority, available=available, owner=owner
        )

    def implementations(self, op: str) -> list[OpImplementation]:
        """The implementations of ``op``, highest priority first."""
        return sorted(self._impls.get(op, {}).values(), key=lambda impl: -impl.priority)

    def get(self, op: str, impl: str = "auto") -> OpImplementation:
        """Choose an implementation: ``"auto"`` (best available) or one by name (KeyError if absent)."""
        if impl == "auto":
            for candidate in self.implementations(op):
                if candidate.is_available():
                    return candidate
            raise KeyError(f"no available implementation of op {op!r}")
        try:
            return self._impls[op][impl]
        except KeyError:
            known = ", ".join(sorted(self._impls.get(op, {}))) or "none"
            raise KeyError(f"op {op!r} has no implementation {impl!r}; registered: {known}") from None


#: The process-wide registry: gancore's reference ops register here on import, and every plugin
#: manager registers the kernels of installed ``kind = "ops"`` plugins here.
REGISTRY = OpsRegistry()
