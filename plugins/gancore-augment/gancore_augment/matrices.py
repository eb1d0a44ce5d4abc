"""Batched homogeneous transforms: 2-D (3x3) for the geometric ops, 3-D colour (4x4) for the colour ops."""

import torch
from torch import Tensor

__all__ = ["rotate2d", "rotate3d", "scale2d", "scale3d", "translate2d", "translate3d"]


def _stack(rows: list[list[Tensor | float]], like: Tensor) -> Tensor:
    """``[N, R, C]`` from a nested list of per-sample ``[N]`` tensors and constants."""
    entries = [e if isinstance(e, Tensor) else torch.full_like(like, float(e)) for row in rows for e in row]
    return torch.stack(entries, dim=-1).reshape(like.shape[0], len(rows), len(rows[0]))


def translate2d(tx: Tensor, ty: Tensor) -> Tensor:
    """Per-sample 2-D translations ``[N, 3, 3]``."""
    return _stack([[1, 0, tx], [0, 1, ty], [0, 0, 1]], tx)


def scale2d(sx: Tensor, sy: Tensor) -> Tensor:
    """Per-sample 2-D scalings ``[N, 3, 3]``."""
    return _stack([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], sx)


def rotate2d(theta: Tensor) -> Tensor:
    """Per-sample 2-D rotations by ``theta`` radians ``[N, 3, 3]``."""
    c, s = torch.cos(theta), torch.sin(theta)
    return _stack([[c, -s, 0], [s, c, 0], [0, 0, 1]], theta)


def translate3d(tx: Tensor, ty: Tensor, tz: Tensor) -> Tensor:
    """Per-sample colour offsets ``[N, 4, 4]``."""
    return _stack([[1, 0, 0, tx], [0, 1, 0, ty], [0, 0, 1, tz], [0, 0, 0, 1]], tx)


def scale3d(sx: Tensor, sy: Tensor, sz: Tensor) -> Tensor:
    """Per-sample colour scalings ``[N, 4, 4]``."""
    return _stack([[sx, 0, 0, 0], [0, sy, 0, 0], [0, 0, sz, 0], [0, 0, 0, 1]], sx)


def rotate3d(axis: Tensor, theta: Tensor) -> Tensor:
    """Per-sample rotations of colour space by ``theta`` about the unit ``axis`` ``[3]`` (Rodrigues) ``[N, 4, 4]``."""
    x, y, z = (float(a) for a in axis[:3])
    s, c = torch.sin(theta), torch.cos(theta)
    cc = 1 - c
    return _stack([
        [x * x * cc + c, x * y * cc - z * s, x * z * cc + y * s, 0],
        [y * x * cc + z * s, y * y * cc + c, y * z * cc - x * s, 0],
        [z * x * cc - y * s, z * y * cc + x * s, z * z * cc + c, 0],
        [0, 0, 0, 1],
    ], theta)
