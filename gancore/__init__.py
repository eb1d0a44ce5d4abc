"""gancore: GAN training in which every improvement method is an installable plugin."""

from gancore.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["hookimpl", "__version__"]
