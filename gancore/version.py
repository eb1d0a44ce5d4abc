"""The version of gancore (read by the package, its checkpoints and its model cards)."""

__version__ = "0.1.0"
