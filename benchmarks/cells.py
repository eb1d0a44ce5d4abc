"""Resumable benchmark cells: train a run folder up to a step budget, and summarise figures over seeds."""

from pathlib import Path

from gancore.comparison.report import median_step_time, plot_band
from gancore.comparison.statistics import mean_std
from gancore.files import write_json_atomically as write_json

__all__ = ["fid_curve", "mean_std", "median_step_time", "plot_band", "save_grid", "train_cell", "write_json"]


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


def fid_curve(folder: Path, measure_fid) -> dict:
    """``curve.json`` of ``folder``: ``{checkpoint: {"kimg", "fid"}}`` for every kept checkpoint, each
    measured once with ``measure_fid(checkpoint) -> (kimg, fid)`` and saved as it lands."""
    import json

    from gancore.checkpoint import list_checkpoints

    path = folder / "curve.json"
    curve = json.loads(path.read_text()) if path.is_file() else {}
    for checkpoint in list_checkpoints(folder / "checkpoints"):
        if checkpoint.name not in curve:
            kimg, fid = measure_fid(checkpoint)
            curve[checkpoint.name] = {"kimg": kimg, "fid": fid}
            write_json(path, curve)
    return curve


def save_grid(folder: Path, path: Path, seed: int = 2024, count: int = 64) -> None:
    """An 8x8 grid of a run folder's newest G_ema, from the latents of ``seed`` (the same for every run)."""
    from gancore.pretrained import load_run
    from gancore.samples import save_samples

    run = load_run(folder, components=("G_ema",))
    save_samples(path, run.sample(count, seed=seed))


def kept_without_weights(folder: Path) -> bool:
    """Whether a cell is finished and measured but its checkpoints are gone (results are committed,
    checkpoints are not): it counts as done, since training it again would only repeat it."""
    return (folder / "eval.json").is_file() and not (folder / "checkpoints").is_dir()


def save_variant_grid(folders: list[Path], path: Path) -> None:
    """The grid of a variant's cells: from the first one with checkpoints (the shared latents); where none
    kept them and no grid was made before, a copy of the first cell's last trainer grid (its own latents)."""
    import shutil

    with_weights = [f for f in folders if (f / "checkpoints").is_dir()]
    if with_weights:
        save_grid(with_weights[0], path)
    elif not path.is_file():
        final = sorted((folders[0] / "samples").glob("step-*.png"))
        if final:
            shutil.copyfile(final[-1], path)
            print(f"{path}: no checkpoints in {folders[0]}; copied its trainer's grid {final[-1].name} "
                  "(the run's own latents, not the shared ones)")
