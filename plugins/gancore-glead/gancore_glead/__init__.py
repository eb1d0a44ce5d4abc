"""GLeaD (Bai et al., CVPR 2023) as a gancore plugin: D's features must let G reconstruct the input."""

from gancore_glead.config import GLeaDConfig
from gancore_glead.plugin import GLeaD

__all__ = ["GLeaD", "GLeaDConfig"]
