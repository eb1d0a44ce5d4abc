"""Augmentation on limited data: baseline vs DiffAugment vs ADA, DCGAN at 32 px on the first 1k and 5k Fashion-MNIST images.

    python benchmarks/augment.py --sizes 1000,5000 --seeds 0,1,2 --steps 1500   # train and measure every cell
    python benchmarks/augment.py --merge --docs docs/augment                     # table, FID curves, sample grids

Every cell (size, variant, seed) is a gancore run folder under ``--out`` (default
``benchmarks/augment``), checkpointed every ``--curve-every`` steps and kept: an interrupted cell
resumes from its newest checkpoint, a finished one is skipped. The cells' results (config.json,
stats.jsonl, curve.json, eval.json) are committed, their checkpoints are not: a cell with results
but no checkpoints counts as done, so the study can span sessions and machines. Each checkpoint's G_ema is measured
once for the FID curve (``--curve-n`` samples, ``curve.json``) and the last one in full
(``--n`` samples: FID, KID and precision/recall, ``eval.json``), always with the ``fmnist``
extractor against training images that no cell trained on (the training split from item
max(``--sizes``) on: 5,000-14,999 by default), so that memorising the training subset earns
nothing. ``--merge`` writes the table (mean ± std over seeds) to ``<out>/table.md`` and, with
``--docs``, the FID, D-score-gap and memorisation curves and one sample grid per size and variant
(the lowest seed, the same latents) as PNGs. D's score gap is measured on what D scored: augmented
images for the augmented variants. Memorisation, the ADA paper's sign of overfitting, is D's mean
logit on 1,000 images it trained on minus on 1,000 held-out ones, un-augmented, at every curve point.
"""

import argparse
import json
import math
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from cells import fid_curve, kept_without_weights, mean_std, plot_band, save_variant_grid, train_cell, write_json  # noqa: E402

if TYPE_CHECKING:
    from gancore.data.base import DatasetView

#: The plugins of each variant (the augment plugin's defaults: ADA bgc with adaptive p; DiffAugment's paper policy).
VARIANTS: dict[str, list] = {
    "baseline": [],
    "diffaugment": [{"name": "augment", "mode": "diffaugment"}],
    "ada": [{"name": "augment", "mode": "ada"}],
}
METRICS = ("Metrics/fid", "Metrics/kid", "Metrics/precision", "Metrics/recall")


def _cell_name(size: int, variant: str, seed: int) -> str:
    return f"{size}-{variant}-seed{seed}"


def _cell_config(args: argparse.Namespace, size: int, variant: str, seed: int) -> dict:
    """configs/fmnist-dcgan.toml at ``--width``, on the first ``size`` images, with the variant's plugins."""
    from gancore.config import apply_overrides, load_raw_config

    raw = load_raw_config(REPO / "configs" / "fmnist-dcgan.toml")
    raw["plugins"] = json.loads(json.dumps(VARIANTS[variant]))
    raw["backbone"]["width"] = args.width
    raw["data"]["max_items"] = size
    if args.data_path:
        raw["data"]["path"] = args.data_path
    raw = apply_overrides(raw, args.set)
    raw["train"].update({
        "steps": args.steps, "seed": seed, "device": args.device, "progress": False, "tensorboard": False,
        "checkpoint_every": args.curve_every, "keep_checkpoints": args.steps // args.curve_every + 1,
        "sample_every": 0, "log_every": args.curve_every // 4 or 1,
    })
    return raw


def _held_out_from(args: argparse.Namespace) -> int:
    """First training item of the reference set: ``--held-out-from``, else the largest ``--sizes``."""
    return args.held_out_from or max(int(s) for s in args.sizes.split(",") if s.strip())


def _held_out(run, held_out_from: int) -> "DatasetView":
    """Training images no cell saw: the training split from item ``held_out_from`` on (the
    largest ``--sizes``), so that no cell is measured against images it memorised."""
    import attrs

    from gancore.data import build_dataset
    from gancore.data.base import DatasetView, index_tensor

    class HeldOut(DatasetView):
        def __len__(self) -> int:
            return len(self.dataset) - held_out_from

        def get(self, indices):
            return self.dataset.get(index_tensor(indices, len(self)) + held_out_from)

        def describe(self) -> str:
            return f"{self.dataset.describe()}, items from {held_out_from} on"

    return HeldOut(build_dataset(attrs.evolve(run.config.data, max_items=None)))


def _measure(checkpoint: Path, metrics: tuple[str, ...], n: int, args: argparse.Namespace) -> dict:
    from gancore.metrics.evaluate import default_cache_dir
    from gancore.pretrained import load_run
    from gancore.run import resolve_device

    run = load_run(checkpoint, components=("G_ema",)).to(resolve_device(args.device))
    held_out_from = _held_out_from(args)
    # A cache folder of its own: the reference cache is keyed by the data config, not by the items held out.
    cache = default_cache_dir() / f"held-out-from-{held_out_from}"
    evaluation = run.measure(metrics, n, 0, "fmnist", _held_out(run, held_out_from), cache)
    return {"step": run.step, "kimg": run.kimg, "reference_from_item": held_out_from, **evaluation.as_json()}


def _d_on_reals(checkpoint: Path, args: argparse.Namespace, count: int = 1000) -> dict[str, float]:
    """D's mean logit on ``count`` of the images it trained on and on as many held-out ones (un-augmented):
    the ADA paper's sign of overfitting is the held-out score falling towards the fakes' while the
    training score stays up."""
    import torch

    from gancore.data import build_dataset
    from gancore.pretrained import load_run
    from gancore.run import resolve_device

    run = load_run(checkpoint, components=("D",)).to(resolve_device(args.device))
    run.D.eval()
    held_out_from = _held_out_from(args)
    held_out = _held_out(run, held_out_from)
    trained_on = build_dataset(run.config.data)
    count = min(count, len(trained_on), len(held_out))
    means = {}
    for key, dataset in (("d_train", trained_on), ("d_heldout", held_out)):
        logits = []
        for indices in torch.arange(count).split(250):
            x, c = dataset.get(indices)
            with torch.no_grad():
                logits.append(run.D(x.to(run.device), None if c is None else c.to(run.device)).float())
        means[key] = torch.cat(logits).mean().item()
    return means


def _evaluate(folder: Path, args: argparse.Namespace) -> dict:
    """FID of every kept checkpoint (the curve) and the full metrics of the newest, each measured once."""
    from gancore.checkpoint import latest_checkpoint, list_checkpoints

    def measure_fid(checkpoint: Path) -> tuple[float, float]:
        result = _measure(checkpoint, ("fid",), args.curve_n, args)
        return result["kimg"], result["metrics"]["Metrics/fid"]

    curve = fid_curve(folder, measure_fid)
    for checkpoint in list_checkpoints(folder / "checkpoints"):
        if "d_train" not in curve[checkpoint.name]:
            curve[checkpoint.name].update(_d_on_reals(checkpoint, args))
            write_json(folder / "curve.json", curve)
    result_path = folder / "eval.json"
    latest = latest_checkpoint(folder)
    if result_path.is_file():
        result = json.loads(result_path.read_text())
        if result.get("checkpoint") == latest.name:
            return result
    result = {"checkpoint": latest.name, **_measure(latest, ("fid", "kid", "pr"), args.n, args)}
    write_json(result_path, result)
    return result


def _score_gap(folder: Path) -> list[tuple[float, float]]:
    """``(kimg, mean D logit on reals - on fakes)`` of every logged step: D's confidence, which grows as it overfits."""
    lines = [json.loads(line) for line in (folder / "stats.jsonl").read_text().splitlines() if line.strip()]
    return [(line["kimg"], line["Loss/scores/real"] - line["Loss/scores/fake"]) for line in lines
            if "Loss/scores/real" in line]


def _memorisation(folder: Path) -> list[tuple[float, float]]:
    """``(kimg, D's mean logit on the images it trained on - on held-out ones)`` of every curve point that has it."""
    points = sorted(json.loads((folder / "curve.json").read_text()).values(), key=lambda point: point["kimg"])
    return [(p["kimg"], p["d_train"] - p["d_heldout"]) for p in points if "d_train" in p]


def _cells(out: Path) -> dict[tuple[int, str], list[Path]]:
    """Finished cells by (size, variant)."""
    found: dict[tuple[int, str], list[Path]] = {}
    for result in sorted(out.glob("cells/*/eval.json")):
        match = re.fullmatch(r"(\d+)-(.+)-seed(\d+)", result.parent.name)
        if match:
            found.setdefault((int(match.group(1)), match.group(2)), []).append(result.parent)
    return dict(sorted(found.items(), key=lambda item: (item[0][0], list(VARIANTS).index(item[0][1]))))


def merge(out: Path, docs: Path | None = None) -> str:
    """The markdown table of every finished cell; with ``docs``, the curves and sample grids as PNGs."""
    cells = _cells(out)
    if not cells:
        return "no finished cells yet"
    header = ("| images | variant | seeds | FID | KID | precision | recall | best FID on the curve (kimg) "
              "| D score gap at the end | D(trained on) - D(held out) at the end |")
    lines = [header, "|" + "---|" * 10]
    for (size, variant), folders in cells.items():
        results = [json.loads((f / "eval.json").read_text()) for f in folders]
        figures = [mean_std([r["metrics"].get(k, math.nan) for r in results]) for k in METRICS]
        best = []
        for folder in folders:
            curve = json.loads((folder / "curve.json").read_text()).values()
            low = min(curve, key=lambda point: point["fid"])
            best.append(f"{low['fid']:.1f} ({low['kimg']:.0f})")
        gaps = [_score_gap(f)[-1][1] for f in folders]
        memorised = [points[-1][1] if (points := _memorisation(f)) else math.nan for f in folders]
        lines.append(f"| {size:,} | {variant} | {len(folders)} | " + " | ".join(figures)
                     + f" | {', '.join(best)} | {mean_std(gaps)} | {mean_std(memorised)} |")
    table = "\n".join(lines)
    (out / "table.md").write_text(table + "\n")
    if docs is not None:
        docs.mkdir(parents=True, exist_ok=True)
        _plot(cells, docs / "fid-curves.png")
        _grids(cells, docs)
    return table


def _plot(cells: dict[tuple[int, str], list[Path]], path: Path) -> None:
    """FID (top) and D's score gap (bottom) against kimg, one column per data size, mean ± std over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({size for size, _ in cells})
    figure, axes = plt.subplots(3, len(sizes), figsize=(5.5 * len(sizes), 10), squeeze=False, sharex="col")
    for column, size in enumerate(sizes):
        for (cell_size, variant), folders in cells.items():
            if cell_size != size:
                continue
            curves = [{round(p["kimg"], 3): p["fid"] for p in json.loads((f / "curve.json").read_text()).values()}
                      for f in folders]
            kimg = sorted(set.intersection(*(set(c) for c in curves)))  # the points every seed has
            plot_band(axes[0][column], kimg, [[c[k] for c in curves] for k in kimg], variant)
            gaps = [_score_gap(f) for f in folders]
            length = min(len(g) for g in gaps)
            plot_band(axes[1][column], [gaps[0][i][0] for i in range(length)],
                  [[g[i][1] for g in gaps] for i in range(length)], variant)
            memorised = [dict(_memorisation(f)) for f in folders]
            kimg = sorted(set.intersection(*(set(m) for m in memorised)))
            if kimg:
                plot_band(axes[2][column], kimg, [[m[k] for m in memorised] for k in kimg], variant)
        axes[0][column].set_title(f"first {size:,} Fashion-MNIST images")
        axes[0][column].set_ylabel("FID (fmnist features, vs held-out training images)")
        axes[1][column].set_ylabel("D(real) - D(fake), mean logit")
        axes[2][column].set_ylabel("D(trained-on reals) - D(held-out reals)")
        axes[2][column].set_xlabel("kimg")
        axes[0][column].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _grids(cells: dict[tuple[int, str], list[Path]], docs: Path) -> None:
    """An 8x8 grid of G_ema per size and variant: the cell of the lowest seed, the same latents for all."""
    for (size, variant), folders in cells.items():
        save_variant_grid(folders, docs / f"grid-{size}-{variant}.png")


def main(argv: list[str] | None = None) -> int:
    """Train and measure the selected cells, or merge the finished ones."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000", help="training images per cell (the first N)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=1500, help="training steps per cell (batch 64)")
    parser.add_argument("--width", type=int, default=16, help="DCGAN width")
    parser.add_argument("--curve-every", type=int, default=300, help="steps between the FID curve's points")
    parser.add_argument("--curve-n", type=int, default=2000, help="samples per FID curve point")
    parser.add_argument("--n", type=int, default=10000, help="samples for the final metrics")
    parser.add_argument("--held-out-from", type=int, default=None,
                        help="first training item of the reference set (default: the largest --sizes)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides for every cell, e.g. train.r1_gamma=0 backbone.d_channel_multiplier=2")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-path", default=None, help="folder of the Fashion-MNIST idx files")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "augment")
    parser.add_argument("--merge", action="store_true")
    parser.add_argument("--docs", type=Path, default=None, help="with --merge: where the PNGs go")
    args = parser.parse_args(argv)
    if args.merge:
        print(merge(args.out, args.docs))
        return 0
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    # Seed 0 of every cell first, so that a partial study already compares every variant.
    for seed in (int(s) for s in args.seeds.split(",") if s.strip()):
        for size in (int(s) for s in args.sizes.split(",") if s.strip()):
            for variant in variants:
                folder = args.out / "cells" / _cell_name(size, variant, seed)
                print(f"{size} images, {variant}, seed {seed}", flush=True)
                if kept_without_weights(folder):
                    print("  done (its results are kept without its checkpoints)", flush=True)
                    continue
                train_cell(folder, _cell_config(args, size, variant, seed))
                result = _evaluate(folder, args)
                print("  " + ", ".join(f"{k.removeprefix('Metrics/')} {v:.4g}" for k, v in result["metrics"].items()),
                      flush=True)
    print(merge(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
