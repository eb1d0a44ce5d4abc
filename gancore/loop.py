"""The training loop: steps, logging, sample grids, checkpoints, evaluations and the run's summary."""

import contextlib
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from gancore.checkpoint import latest_checkpoint
from gancore.data import DataError
from gancore.dead_discriminator import DeadDiscriminatorWatch
from gancore.distributed import is_distributed, rank
from gancore.divergence import DivergenceError, DivergenceGuard
from gancore.evaluation import keep_best
from gancore.files import write_json_atomically
from gancore.memory import TrainingOutOfMemory, is_out_of_memory
from gancore.messages import warn
from gancore.runfolder import LOCK_FILE, RunLock, clear_run_files, remove_orphaned_temporaries
from gancore.signals import TrainingInterrupted, stop_on_signals

if TYPE_CHECKING:  # pragma: no cover
    from gancore.run import Run

__all__ = ["train"]


def train(run: "Run", steps: int | None = None) -> "Run":
    """Train ``run`` until ``steps`` (default ``train.steps``) steps are done; write logs, samples, checkpoints.

    With a run folder, the process holds the folder's lock while it trains (a second writer is
    refused with :class:`~gancore.runfolder.RunFolderBusyError`) and first removes what killed
    checkpoint writers left. SIGINT or SIGTERM finish the current step, write a checkpoint and raise
    :class:`~gancore.signals.TrainingInterrupted`. A loss or output beyond
    ``train.divergence_limit`` for ``train.divergence_steps`` steps stops training with a
    :class:`~gancore.divergence.DivergenceError` (or warns, per ``train.divergence``), as does a
    NaN or infinite loss; their messages name the newest checkpoint.
    """
    config = run.config.train
    total = config.steps if steps is None else steps
    # Only a folder this call starts from nothing (absent, or holding no more than a lock file) is
    # cleared if the run fails before its first step; a folder with anything else is left alone.
    existed = run.out_dir is not None and run.out_dir.exists()
    fresh = run.out_dir is not None and (not existed or {c.name for c in run.out_dir.iterdir()} <= {LOCK_FILE})
    run.fresh_folder = fresh
    lock = _take_folder(run) if run.out_dir is not None else None
    guard = DivergenceGuard(config.divergence_limit, config.divergence_steps) if config.divergence != "off" else None
    dead_d = DeadDiscriminatorWatch(config.dead_d_steps) if config.dead_d_steps and rank() == 0 else None
    progress = _progress(total, run.step, enabled=config.progress and rank() == 0)
    started = run_started = time.perf_counter()
    first_step = run.step
    steps_since_log = 0
    try:
        with stop_on_signals(announce=rank() == 0) as stop:
            while run.step < total:
                try:
                    stats = run.trainer.step()
                except DivergenceError:
                    raise
                except DataError as exc:  # a file found damaged only when its pixels are read
                    raise DataError(f"{exc}; {_newest_checkpoint(run)}") from None
                except (RuntimeError, MemoryError) as exc:
                    if not is_out_of_memory(exc):
                        raise
                    raise TrainingOutOfMemory(_out_of_memory(run, exc)) from None
                except FloatingPointError as exc:
                    raise DivergenceError(f"training diverged: {exc}; {_newest_checkpoint(run)}") from None
                run.log.add(stats)
                steps_since_log += 1
                done = run.step
                last = done == total
                message = guard.check(done, stats) if guard is not None else None
                if message and config.divergence == "stop":
                    run.log.flush(done, run.kimg, (time.perf_counter() - started) / steps_since_log)
                    raise DivergenceError(f"{message} (lower the learning rates?); {_newest_checkpoint(run)}")
                if message and guard is not None and guard.streak == guard.patience:
                    warn(message)
                if dead_d is not None and (dead := dead_d.check(done, stats)):
                    warn(dead)
                if (config.eval_every and done % config.eval_every == 0) or last:
                    run.log.add(run.evaluate())
                    keep_best(run)
                if done % config.log_every == 0 or last:
                    now = time.perf_counter()
                    line = run.log.flush(done, run.kimg, (now - started) / steps_since_log)
                    started, steps_since_log = now, 0
                    progress.set_postfix(_short_stats(line), refresh=False)
                if run.out_dir is not None:
                    if (config.sample_every and done % config.sample_every == 0) or last:
                        run.save_sample_grid(run.out_dir / "samples" / f"step-{done:06d}.png")
                    if (config.checkpoint_every and done % config.checkpoint_every == 0) or last:
                        run.save_checkpoint()
                progress.update(1)
                if _stop_requested(stop.signum, run.device) and not last:
                    if steps_since_log:
                        run.log.flush(done, run.kimg, (time.perf_counter() - started) / steps_since_log)
                    raise TrainingInterrupted(stop.signum or signal.SIGTERM, done, _checkpoint_now(run))
    except BaseException:
        if lock is not None and fresh and _nothing_done(run):
            lock.release()
            run.lock = None
            # Nothing in the folder is worth keeping, and it must not refuse the next `gancore train`.
            clear_run_files(run.out_dir, keep_lock=False)
            if not existed:
                with contextlib.suppress(OSError):  # a plugin's own file stays, and so does the folder
                    run.out_dir.rmdir()
        raise
    finally:
        progress.close()
        run.trainer.close()
        run.log.close()
        if lock is not None and lock.held:
            lock.release()
            run.lock = None
    if run.out_dir is not None and run.step > first_step:
        _write_summary(run, time.perf_counter() - run_started)
    return run


def _take_folder(run: "Run") -> RunLock | None:
    """Lock the run folder (rank 0, which alone writes), clean up after killed writers, write config.json."""
    assert run.out_dir is not None
    if rank() != 0:
        return None
    lock = run.lock if run.lock is not None else RunLock(run.out_dir).acquire()
    run.lock = lock
    removed = remove_orphaned_temporaries(run.out_dir / "checkpoints")
    if removed:
        print(f"gancore: removed {len(removed)} temporary folder(s) left by killed checkpoint writers: "
              f"{', '.join(p.name for p in removed)}", file=sys.stderr)
    _prepare_out_dir(run)
    return lock


def _stop_requested(signum: int | None, device: Any) -> bool:
    """Whether to stop now; under data parallelism every rank stops at the same step."""
    if not is_distributed():
        return signum is not None
    import torch
    import torch.distributed as dist

    flag = torch.tensor([1.0 if signum is not None else 0.0], device=device)  # NCCL reduces GPU tensors only
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def _checkpoint_now(run: "Run") -> Path | None:
    """A checkpoint of the current step: the one just written, or a new one (None without a run folder)."""
    if run.out_dir is None or rank() != 0:
        return None
    latest = latest_checkpoint(run.out_dir)
    if latest is not None and latest.name == f"step-{run.step:06d}":
        return latest
    return run.save_checkpoint()


def _out_of_memory(run: "Run", exc: BaseException) -> str:
    """One line: where memory ran out, with which batch, what to try, and what is intact."""
    train = run.config.train
    piece = f", {train.batch_per_gpu} per pass" if train.batch_per_gpu else ""
    smaller = max(1, (train.batch_per_gpu or train.batch) // 2)
    first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
    return (
        f"out of memory in {run.trainer.phase or 'a training step'} at step {run.step} on {run.device} "
        f"(batch {train.batch}{piece}: {first}); try train.batch_per_gpu = {smaller} (the same batch, its "
        f"gradients accumulated over smaller passes) or a smaller train.batch; {_newest_checkpoint(run)}"
    )


def _nothing_done(run: "Run") -> bool:
    """Whether a failed run folder holds nothing worth keeping: no stats line, sample grid or checkpoint."""
    if run.out_dir is None or latest_checkpoint(run.out_dir) is not None:
        return False
    stats, samples = run.out_dir / "stats.jsonl", run.out_dir / "samples"
    return not (stats.is_file() and stats.stat().st_size) and not (samples.is_dir() and any(samples.iterdir()))


def _newest_checkpoint(run: "Run") -> str:
    """What a user can go back to, said truthfully."""
    if run.out_dir is None:
        return "the run has no folder, so no checkpoint exists"
    latest = latest_checkpoint(run.out_dir)
    if latest is None:
        if _nothing_done(run) and run.fresh_folder:
            return f"no step was logged and no checkpoint written, so nothing is kept in {run.out_dir}"
        every = run.config.train.checkpoint_every
        return (f"no checkpoint was written before it (train.checkpoint_every = {every}): {run.out_dir} keeps its "
                f"stats.jsonl and samples to look at, and `gancore train` with the same --out starts the run again")
    return f"the newest checkpoint is {latest} (step {int(latest.name.split('-')[1])})"


def _write_summary(run: "Run", seconds: float) -> None:
    assert run.out_dir is not None
    write_json_atomically(run.out_dir / "summary.json", {
        "step": run.step,
        "kimg": run.kimg,
        "seconds": round(seconds, 3),
        "metrics": run.metrics,
        "metrics_protocol": run.metrics_protocol,
        "best_fid": run.best_fid,
        "params": run.parameter_counts(),
        "plugins": run.config.plugin_names,
    })


def _prepare_out_dir(run: "Run") -> None:
    assert run.out_dir is not None
    run.out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomically(run.out_dir / "config.json", run.resolved_config())


def _short_stats(line: Mapping[str, Any]) -> dict[str, str]:
    short = {}
    for key, label in (("Loss/D/total", "D"), ("Loss/G/total", "G")):
        if key in line:
            short[label] = f"{line[key]:.3f}"
    return short


class _NoProgress:
    def update(self, n: int) -> None:
        pass

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, initial: int, enabled: bool) -> Any:
    if not enabled:
        return _NoProgress()
    from tqdm.auto import tqdm

    # Redraw less often when the output is a log file rather than a terminal.
    interval = 0.1 if sys.stderr.isatty() else 10.0
    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, desc="train", mininterval=interval)
