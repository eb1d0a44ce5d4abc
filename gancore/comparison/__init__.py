"""`gancore compare`: several variants of a run, trained over the same seeds, compared beyond seed noise."""

import math
import sys
from pathlib import Path
from typing import Any, Sequence

from gancore.comparison.cells import Cell, Variant, eval_every_steps, resolved_raw, variants_from
from gancore.comparison.launch import train_cells
from gancore.comparison.report import write_report

__all__ = ["Cell", "Variant", "compare", "plan_cells"]


def compare(
    configs: Sequence[str | Path],
    *,
    vary: Sequence[str] = (),
    overrides: Sequence[str] = (),
    seeds: int | Sequence[int] = 3,
    out: str | Path = "compare",
    jobs: int = 1,
    curve_every: float | None = None,
    launcher: str = "local",
    launcher_parameters: dict[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train every (variant, seed) cell under ``out`` and write ``out/report.md`` and ``report.json``.

    ``configs`` are run files, one per variant (named by their stem), or one run file with a
    variant per ``vary`` entry (``NAME='--set key=value ...'``); ``overrides`` (``key=value``)
    change every variant, before a variant's own changes. ``seeds`` is a count (0, 1, ...)
    or the seeds themselves, the same for every variant, so that differences can be paired.
    Each cell is an ordinary run folder, ``out/<variant>/seed-<s>``, trained by a plain
    ``gancore train`` (``jobs`` at a time, or as a job array: ``launcher`` ``"slurm"`` through
    submitit, with ``launcher_parameters`` such as ``{"slurm_partition": "gpu", "gpus_per_node": 1}``):
    a finished cell is never trained again and a killed one goes on from its newest checkpoint, so
    running the same command again resumes a comparison. ``curve_every`` (kimg) adds an evaluation that often, for curves. Every run file
    and change is checked before anything is trained. Returns the report's JSON.
    """
    variants = variants_from(configs, vary, overrides)
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    out = Path(out)
    cells, steps = plan_cells(variants, seed_list, out, curve_every)
    train_cells(cells, steps, out, jobs, launcher, launcher_parameters, progress)
    print(f"gancore: {len(cells)} cells trained under {out}", file=sys.stderr)
    return write_report(out, cells, seed_list)


def plan_cells(
    variants: Sequence[Variant], seeds: Sequence[int], out: Path, curve_every: float | None = None
) -> tuple[list[Cell], dict[str, int]]:
    """The cells of a comparison, first seed first, and each variant's length in steps. Every
    variant's run file and changes are checked here (ValueError or ConfigError naming the problem)."""
    from gancore.api import load_config
    from gancore.data import build_dataset

    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be one or more distinct numbers, got {list(seeds)!r}")
    cells: list[Cell] = []
    steps: dict[str, int] = {}
    for variant in variants:
        probe = Cell(variant, seeds[0], out)
        config = load_config(resolved_raw(probe))  # a bad run file or --set stops the comparison now
        extra = []
        if curve_every:
            every = eval_every_steps(curve_every, config.train.batch * config.train.d_steps)  # kimg: what D reads
            # Each evaluation in a stats line of its own (a line holds the means since the last one).
            extra += [f"train.eval_every={every}", f"train.log_every={math.gcd(every, config.train.log_every)}"]
        if not config.train.metrics and build_dataset(config.data).info.is_image:
            extra.append('train.metrics=["fid", "kid", "pr"]')
        steps[variant.name] = config.train.steps
        cells += [Cell(variant, seed, out / variant.name / f"seed-{seed}", tuple(extra)) for seed in seeds]
    cells.sort(key=lambda cell: (list(seeds).index(cell.seed), list(variants).index(cell.variant)))
    return cells, steps
