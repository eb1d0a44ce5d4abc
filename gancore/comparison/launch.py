"""Where the cells of a comparison train: local processes, or a job array through submitit (Slurm, or submitit's local executor)."""

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from gancore.comparison.cells import Cell, cell_status, run_cell, train_command

__all__ = ["LAUNCHERS", "train_cells"]

#: ``local``: processes on this machine; ``slurm``: a Slurm job array through submitit;
#: ``submitit-local``: the same job array on this machine (submitit's local executor).
LAUNCHERS = ("local", "slurm", "submitit-local")


def train_cells(
    cells: Sequence[Cell], steps: dict[str, int], out: Path, jobs: int = 1, launcher: str = "local",
    parameters: dict[str, Any] | None = None, progress: bool = True,
) -> None:
    """Train every cell that is not done, with a progress bar over cells; raises RuntimeError
    naming the cells that failed (the finished ones are kept). ``parameters`` go to submitit's
    ``update_parameters`` (``timeout_min``, ``slurm_partition``, ``gpus_per_node``, ...)."""
    from tqdm.auto import tqdm

    if launcher not in LAUNCHERS:
        raise ValueError(f"unknown launcher {launcher!r}; choose one of {', '.join(LAUNCHERS)}")
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    waiting = [c for c in cells if cell_status(c, steps[c.variant.name]) != "done"]
    bar = tqdm(total=len(cells), initial=len(cells) - len(waiting), unit="cell", desc="compare", disable=not progress)
    try:
        if launcher == "local":
            failed = _local(waiting, steps, out, jobs, bar)
        else:
            failed = _submitit(waiting, steps, out, launcher, parameters or {}, bar)
    finally:
        bar.close()
    if failed:
        raise RuntimeError(f"{len(failed)} cell(s) failed: {'; '.join(failed)}")


def _log(out: Path, cell: Cell) -> Path:
    return out / "logs" / f"{cell.variant.name}-seed-{cell.seed}.log"


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _local(waiting: list[Cell], steps: dict[str, int], out: Path, jobs: int, bar: Any) -> list[str]:
    """Cells as local processes, ``jobs`` at a time; Ctrl-C (or SIGTERM, e.g. ``kill``) lets the
    running ones write a checkpoint, then stops."""
    waiting = list(waiting)
    running: dict[Any, Cell] = {}
    failed: list[str] = []
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        while waiting or running:
            while waiting and len(running) < jobs:
                cell = waiting.pop(0)
                process = run_cell(cell, steps[cell.variant.name], _log(out, cell))
                if process is not None:
                    running[process] = cell
            for process in [p for p in running if p.poll() is not None]:
                cell = running.pop(process)
                if process.returncode != 0:
                    failed.append(f"{cell.variant.name} seed {cell.seed} (exit {process.returncode}; see {_log(out, cell)})")
                bar.update(1)
            time.sleep(0.2)
    except KeyboardInterrupt:
        for process in running:
            process.send_signal(signal.SIGTERM)  # each writes a checkpoint and stops (SIGINT may be ignored)
        for process in running:
            process.wait()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    return failed


def run_command(command: list[str], log: str) -> None:
    """Run one cell's ``gancore`` command with its output appended to ``log`` (what a job does)."""
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"$ {subprocess.list2cmdline(command)}\n")
        f.flush()
        subprocess.run(command, stdout=f, stderr=subprocess.STDOUT, check=True)


def _submitit(
    waiting: list[Cell], steps: dict[str, int], out: Path, launcher: str, parameters: dict[str, Any], bar: Any
) -> list[str]:
    """Cells as one job array through submitit, each job a plain ``gancore`` command."""
    try:
        import submitit
    except ImportError:
        raise ValueError(f"--launcher {launcher} needs submitit: pip install 'gancore[slurm]'") from None
    if not waiting:
        return []
    folder = out / "submitit" / "%j"
    executor = (submitit.AutoExecutor(folder=folder, cluster="slurm") if launcher == "slurm"
                else submitit.LocalExecutor(folder=folder))
    executor.update_parameters(**({"timeout_min": 24 * 60} | parameters))
    commands = [train_command(cell, cell_status(cell, steps[cell.variant.name]), steps[cell.variant.name])
                for cell in waiting]
    submitted = executor.map_array(run_command, commands, [str(_log(out, cell)) for cell in waiting])
    print(f"gancore: submitted {len(submitted)} cell(s) as job {submitted[0].job_id.split('_')[0]} "
          f"({launcher}); their logs are in {out / 'logs'}", file=sys.stderr)
    failed: list[str] = []
    pending = dict(zip(submitted, waiting))
    while pending:
        for job in [j for j in pending if j.done()]:
            cell = pending.pop(job)
            try:
                job.result()
            except Exception as exc:  # submitit re-raises the job's error: name the cell and its log
                failed.append(f"{cell.variant.name} seed {cell.seed} ({type(exc).__name__}; see {_log(out, cell)})")
            bar.update(1)
        time.sleep(0.5)
    return failed
