"""Resumable benchmark cells: train a run folder up to a step budget, and summarise figures over seeds."""

import math
import statistics
from pathlib import Path

__all__ = ["mean_std", "train_cell"]


def train_cell(folder: Path, raw: dict) -> None:
    """Train the run in ``folder`` to ``raw``'s ``train.steps``: from scratch, from its newest
    checkpoint, or not at all when it got there already."""
    from gancore.checkpoint import latest_checkpoint, read_state
    from gancore.run import Run

    latest = latest_checkpoint(folder)
    if latest is not None:
        if read_state(latest)["step"] >= raw["train"]["steps"]:
            return
        print(f"  resuming {folder.name} at {latest.name}", flush=True)
        Run.resume(folder, steps=raw["train"]["steps"]).train()
    else:
        Run.build(raw, out_dir=folder).train()


def mean_std(values: list[float]) -> str:
    """``mean ± std`` of the finite values (``n/a`` when none)."""
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return "n/a"
    std = statistics.stdev(finite) if len(finite) > 1 else 0.0
    return f"{statistics.fmean(finite):.4g} ± {std:.2g}"
