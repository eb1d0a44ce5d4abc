"""Load and check DGL's teacher discriminator (safetensors and JSON only, through gancore's own loading)."""

from typing import Any

import torch
from torch import nn

from gancore.config import ConfigError
from gancore.run import Run

__all__ = ["load_teacher", "check_compatible"]


def load_teacher(source: str, revision: str | None, device: torch.device, dtype: torch.dtype = torch.float32) -> Run:
    """The teacher's run (networks only) with its D loaded, frozen, in eval mode, on ``device``.

    ``source`` is a run folder, a checkpoint folder, an exported folder or a Hub repo id.
    """
    from gancore.checkpoint import CheckpointError
    from gancore.plugins import PluginError
    from gancore.pretrained import load_run

    try:
        teacher = load_run(source, components=("D",), revision=revision)
    except (CheckpointError, PluginError) as exc:
        raise ConfigError("the run config", [f"plugins.dgl.teacher: cannot load a teacher D: {exc}"]) from None
    except ConfigError as exc:
        raise ConfigError("the run config", [f"plugins.dgl.teacher: the teacher's own config: {p}" for p in exc.problems]) from None
    D = teacher.D.to(device=device, dtype=dtype)
    D.requires_grad_(False).eval()
    return teacher


def check_compatible(student: Any, teacher: Run, source: str) -> None:
    """Raise a ConfigError naming every way the teacher's data disagrees with the student's."""
    problems = []
    s_info, t_info = student.data_info, teacher.data_info
    if tuple(s_info.shape) != tuple(t_info.shape):
        problems.append(
            f"plugins.dgl.teacher: the teacher at {source} was trained on samples of shape {list(t_info.shape)} "
            f"(channels, resolution), the student on {list(s_info.shape)}"
        )
    if s_info.c_dim != t_info.c_dim:
        problems.append(
            f"plugins.dgl.teacher: the teacher at {source} has c_dim {t_info.c_dim} (conditioning), "
            f"the student {s_info.c_dim}"
        )
    s_fit, t_fit = student.config.data.fit, teacher.config.data.fit
    if s_info.is_image and s_fit != t_fit:
        problems.append(
            f"plugins.dgl.teacher: the teacher's images were prepared with data.fit = {t_fit!r}, "
            f"the student's with {s_fit!r}"
        )
    if problems:
        raise ConfigError("the run config", problems)


def count(module: nn.Module) -> int:
    """Number of parameters of ``module``."""
    return sum(p.numel() for p in module.parameters())
