"""DGL (Tian et al. 2021) as a gancore plugin: a frozen teacher D guides a (compressed) student G."""

from gancore_dgl.config import DGLConfig
from gancore_dgl.plugin import DGL

__all__ = ["DGL", "DGLConfig"]
