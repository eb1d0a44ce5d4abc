"""`gancore compare`: several variants of a run, trained over the same seeds, compared beyond seed noise."""

import math
import signal
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from gancore.comparison.cells import Cell, Variant, cell_status, eval_every_steps, resolved_raw, run_cell, variants_from
from gancore.comparison.report import write_report

__all__ = ["Cell", "Variant", "compare"]


def compare(
    configs: Sequence[str | Path],
    *,
    vary: Sequence[str] = (),
    seeds: int | Sequence[int] = 3,
    out: str | Path = "compare",
    jobs: int = 1,
    curve_every: float | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train every (variant, seed) cell under ``out`` and write ``out/report.md`` and ``report.json``.

    ``configs`` are run files, one per variant (named by their stem), or one run file with a
    variant per ``vary`` entry (``NAME='--set key=value ...'``). ``seeds`` is a count (0, 1, ...)
    or the seeds themselves, the same for every variant, so that differences can be paired.
    Each cell is an ordinary run folder, ``out/<variant>/seed-<s>``, trained by a plain
    ``gancore train`` (``jobs`` at a time): a finished cell is never trained again and a killed
    one goes on from its newest checkpoint, so running the same command again resumes a
    comparison. ``curve_every`` (kimg) adds an evaluation that often, for curves. Every run file
    and change is checked before anything is trained. Returns the report's JSON.
    """
    from gancore.api import load_config
    from gancore.data import build_dataset

    variants = variants_from(configs, vary)
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list or len(set(seed_list)) != len(seed_list):
        raise ValueError(f"seeds must be one or more distinct numbers, got {seeds!r}")
    out = Path(out)
    cells: list[Cell] = []
    steps: dict[str, int] = {}
    for variant in variants:
        probe = Cell(variant, seed_list[0], out)
        config = load_config(resolved_raw(probe))  # a bad run file or --set stops the comparison now
        extra = []
        if curve_every:
            every = eval_every_steps(curve_every, config.train.batch)
            # Each evaluation in a stats line of its own (a line holds the means since the last one).
            extra += [f"train.eval_every={every}", f"train.log_every={math.gcd(every, config.train.log_every)}"]
        if not config.train.metrics and build_dataset(config.data).info.is_image:
            extra.append('train.metrics=["fid", "kid", "pr"]')
        steps[variant.name] = config.train.steps
        cells += [Cell(variant, seed, out / variant.name / f"seed-{seed}", tuple(extra)) for seed in seed_list]
    cells.sort(key=lambda cell: (seed_list.index(cell.seed), variants.index(cell.variant)))
    _train_cells(cells, steps, out, jobs, progress)
    return write_report(out, cells, seed_list)


def _train_cells(cells: list[Cell], steps: dict[str, int], out: Path, jobs: int, progress: bool) -> None:
    """Run the cells that are not done, ``jobs`` at a time, with a progress bar over cells; Ctrl-C
    (or SIGTERM) lets running cells write a checkpoint, then stops."""
    from tqdm.auto import tqdm

    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    waiting = [c for c in cells if cell_status(c, steps[c.variant.name]) != "done"]
    bar = tqdm(total=len(cells), initial=len(cells) - len(waiting), unit="cell", desc="compare", disable=not progress)
    running: dict[Any, Cell] = {}
    failed: list[str] = []
    try:
        while waiting or running:
            while waiting and len(running) < jobs:
                cell = waiting.pop(0)
                log = out / "logs" / f"{cell.variant.name}-seed-{cell.seed}.log"
                process = run_cell(cell, steps[cell.variant.name], log)
                if process is not None:
                    running[process] = cell
            for process in [p for p in running if p.poll() is not None]:
                cell = running.pop(process)
                if process.returncode != 0:
                    failed.append(f"{cell.variant.name} seed {cell.seed} (exit {process.returncode}; see "
                                  f"{out / 'logs' / f'{cell.variant.name}-seed-{cell.seed}.log'})")
                bar.update(1)
            time.sleep(0.2)
    except KeyboardInterrupt:
        for process in running:
            process.send_signal(signal.SIGINT)  # each writes a checkpoint and stops
        for process in running:
            process.wait()
        raise
    finally:
        bar.close()
    if failed:
        raise RuntimeError(f"{len(failed)} cell(s) failed: {'; '.join(failed)}")
    print(f"gancore: {len(cells)} cells trained under {out}", file=sys.stderr)
