"""The Python entry points: load a run file, train, resume."""

from pathlib import Path
from typing import Any, Iterable, Mapping

from gancore.config import ConfigError, RunConfig, apply_overrides, load_raw_config, parse_run_config
from gancore.plugins import PluginManager
from gancore.run import Run

__all__ = ["load_config", "resume", "train"]


def load_config(
    config: str | Path | Mapping[str, Any] | RunConfig,
    overrides: Iterable[str] = (),
    *,
    manager: PluginManager | None = None,
) -> RunConfig:
    """Read and check a run config: a TOML/JSON path, a raw dict or a RunConfig, plus ``--set`` overrides.

    Every problem is reported at once in one :class:`~gancore.config.ConfigError`.
    """
    overrides = list(overrides)
    if isinstance(config, RunConfig):
        if not overrides:
            return config
        raw, source = config.to_dict(), "<config>"
    elif isinstance(config, Mapping):
        raw, source = dict(config), "<config>"
    else:
        raw, source = load_raw_config(config), str(config)
    if overrides:
        raw = apply_overrides(raw, overrides, source=f"{source} (--set)")
    manager = manager or PluginManager()
    return parse_run_config(
        raw, manager.backbone_config_class, manager.config_class, source=source, plugin_name=manager.canonical_name
    )


def train(
    config: str | Path | Mapping[str, Any] | RunConfig,
    out: str | Path | None = None,
    *,
    overrides: Iterable[str] = (),
    steps: int | None = None,
) -> Run:
    """Build a run from ``config`` and train it; returns the finished :class:`Run`.

    ``out`` is the run folder (config.json, stats.jsonl, samples/, checkpoints/); None keeps the
    run in memory. ``steps`` overrides ``train.steps``.
    """
    manager = PluginManager()
    run_config = load_config(config, overrides, manager=manager)
    run = Run.build(run_config, out_dir=out, manager=manager)
    return run.train(steps)


def resume(
    run_dir: str | Path,
    steps: int | None = None,
    *,
    overrides: Iterable[str] = (),
    fork: str | Path | None = None,
    discard_later: bool = False,
) -> Run:
    """Continue a run from its newest checkpoint (or a checkpoint folder) until ``steps`` (default:
    its configured length), with ``overrides`` (``"train.g_lr=0.001"``) taking effect from there.

    ``fork`` goes on in a new run folder, ``discard_later`` deletes what the run wrote after the
    checkpoint; one of them is needed when the checkpoint has later ones (see :meth:`Run.resume`).
    """
    run = Run.resume(run_dir, steps=steps, overrides=list(overrides), fork=fork, discard_later=discard_later)
    return run.train(steps)


__all__ += ["ConfigError"]
