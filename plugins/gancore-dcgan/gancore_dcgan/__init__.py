"""gancore-dcgan: the `mlp` and `dcgan` backbones."""

__version__ = "0.1.0"
