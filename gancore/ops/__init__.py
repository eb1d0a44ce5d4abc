"""Op implementations by name: the registry that kernel plugins register faster versions into."""

from gancore.ops.registry import OpImplementation, OpsRegistry

__all__ = ["OpImplementation", "OpsRegistry"]
