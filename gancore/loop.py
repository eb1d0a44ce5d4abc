"""The training loop: steps, logging, sample grids, checkpoints, evaluations and the run's summary."""

import json
import sys
import time
from typing import TYPE_CHECKING, Any, Mapping

from gancore.distributed import rank
from gancore.evaluation import keep_best

if TYPE_CHECKING:  # pragma: no cover
    from gancore.run import Run

__all__ = ["train"]


def train(run: "Run", steps: int | None = None) -> "Run":
    """Train ``run`` until ``steps`` (default ``train.steps``) steps are done; write logs, samples, checkpoints."""
    config = run.config.train
    total = config.steps if steps is None else steps
    if run.out_dir is not None:
        _prepare_out_dir(run)
    progress = _progress(total, run.step, enabled=config.progress and rank() == 0)
    started = run_started = time.perf_counter()
    first_step = run.step
    steps_since_log = 0
    try:
        while run.step < total:
            run.log.add(run.trainer.step())
            steps_since_log += 1
            done = run.step
            last = done == total
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
    finally:
        progress.close()
        run.log.close()
    if run.out_dir is not None and run.step > first_step:
        _write_summary(run, time.perf_counter() - run_started)
    return run


def _write_json(path: Any, payload: Mapping[str, Any]) -> None:
    """Write ``payload`` as JSON through a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def _write_summary(run: "Run", seconds: float) -> None:
    assert run.out_dir is not None
    _write_json(run.out_dir / "summary.json", {
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
    _write_json(run.out_dir / "config.json", run.resolved_config())


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
