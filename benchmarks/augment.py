"""The limited-data study: baseline vs DiffAugment vs ADA on 100, 500 and 2,000 Fashion-MNIST images, one `gancore compare` per size.

    python benchmarks/augment.py                                # every size, seeds 0-2 (resumable)
    python benchmarks/augment.py --sizes 100 --seeds 0          # a part of it
    python benchmarks/augment.py --report-only --docs docs/augment/limited   # the table and figures of what is done

Each size N is the comparison

    gancore compare configs/fmnist-dcgan-limited.toml --set data.max_items=N \\
        --vary diffaugment='--set plugins=[{name="augment", mode="diffaugment"}]' \\
        --vary ada='--set plugins=[{name="augment", mode="ada"}]' --seeds 0,1,2 --curve-every 32

under ``<out>/<N>-images`` (the base run file is the baseline; the augment plugin's defaults are
the papers' constants). Seeds are added one round at a time over every size, so that a study cut
short still compares every size. Metrics compare with the whole Fashion-MNIST test split, and
``memorisation`` is D's mean score on its training images minus on test images.
"""

import argparse
import math
import sys
from pathlib import Path

from gancore.comparison import compare, plan_cells
from gancore.comparison.cells import variants_from
from gancore.comparison.report import collect, plot_band
from gancore.comparison.statistics import mean_std

REPO = Path(__file__).resolve().parents[1]
RUN_FILE = REPO / "configs" / "fmnist-dcgan-limited.toml"
VARIANTS = (
    """diffaugment=--set 'plugins=[{name="augment", mode="diffaugment"}]'""",
    """ada=--set 'plugins=[{name="augment", mode="ada"}]'""",
)
TABLE_METRICS = ("fid", "memorisation", "precision", "recall")


def _variants(size: int, extra: list[str]):
    return variants_from([RUN_FILE], VARIANTS, [f"data.max_items={size}", "train.tensorboard=false", *extra])


def table(out: Path, sizes: list[int], seeds: list[int], curve_every: float, extra: list[str]) -> str:
    """The markdown table over sizes and variants: final metrics (mean ± std over the seeds done)
    and the best FID of each seed's curve with its kimg."""
    lines = ["| images | variant | seeds | " + " | ".join(TABLE_METRICS) + " | lowest FID on the curve (kimg) |",
             "|---|---|---|" + "---|" * (len(TABLE_METRICS) + 1)]
    for size in sizes:
        cells, _ = plan_cells(_variants(size, extra), seeds, out / f"{size}-images", curve_every)
        collected = collect(cells)
        for name, entry in collected.items():
            done = sorted(entry["metrics"].get("fid", {}))
            if not done:
                continue
            figures = [mean_std([entry["metrics"].get(m, {}).get(s, math.nan) for s in done]) for m in TABLE_METRICS]
            best = []
            for seed in done:
                curve = entry["curves"]["fid"][seed]
                kimg, low = min(curve, key=lambda point: point[1])
                best.append(f"{low:.1f} ({kimg:.0f})")
            label = "baseline" if name == RUN_FILE.stem else name
            lines.append(f"| {size:,} | {label} | {len(done)} | " + " | ".join(figures) + f" | {', '.join(best)} |")
    return "\n".join(lines)


def figure(out: Path, sizes: list[int], seeds: list[int], curve_every: float, extra: list[str], path: Path) -> None:
    """FID (top) and memorisation (bottom) against kimg, one column per size, mean ± std over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = ("fid", "memorisation")
    fig, axes = plt.subplots(len(rows), len(sizes), figsize=(5 * len(sizes), 7), squeeze=False, sharex="col")
    for column, size in enumerate(sizes):
        cells, _ = plan_cells(_variants(size, extra), seeds, out / f"{size}-images", curve_every)
        for name, entry in collect(cells).items():
            for row, metric in enumerate(rows):
                per_seed = [dict(curve) for curve in entry["curves"].get(metric, {}).values()]
                if not per_seed:
                    continue
                kimg = sorted(set.intersection(*(set(curve) for curve in per_seed)))  # points every seed has
                label = "baseline" if name == RUN_FILE.stem else name
                plot_band(axes[row][column], kimg, [[curve[k] for curve in per_seed] for k in kimg], label)
        axes[0][column].set_title(f"first {size:,} Fashion-MNIST images")
        axes[0][column].set_ylabel("FID (fmnist features, vs the test split)")
        axes[1][column].set_ylabel("D(training images) - D(test images)")
        axes[1][column].set_xlabel("kimg")
        axes[0][column].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Run the comparisons (a seed round at a time), then print the table; with --docs, copy the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,500,2000", help="training images per comparison (the first N)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--curve-every", type=float, default=32.0, help="kimg between the curves' points")
    parser.add_argument("--jobs", type=int, default=1, help="cells trained at once (give each one thread: OMP_NUM_THREADS=1)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a change for every cell (e.g. data.path=DIR, train.steps=100)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "augment" / "limited")
    parser.add_argument("--report-only", action="store_true", help="train nothing: the table and figures of what is done")
    parser.add_argument("--docs", type=Path, help="where the figure and sample grids go")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if not args.report_only:
        for round_ in range(1, len(seeds) + 1):
            for size in sizes:
                print(f"{size} images, seeds {seeds[:round_]}", flush=True)
                compare([RUN_FILE], vary=VARIANTS, overrides=[f"data.max_items={size}", "train.tensorboard=false", *args.set],
                        seeds=seeds[:round_], out=args.out / f"{size}-images", curve_every=args.curve_every,
                        jobs=args.jobs)
    text = table(args.out, sizes, seeds, args.curve_every, args.set)
    print(text)
    if args.docs is not None:
        import shutil

        figure(args.out, sizes, seeds, args.curve_every, args.set, args.docs / "curves.png")
        for size in sizes:
            for grid in sorted((args.out / f"{size}-images" / "samples").glob("*.png")):
                name = "baseline" if grid.stem == RUN_FILE.stem else grid.stem
                shutil.copyfile(grid, args.docs / f"grid-{size}-{name}.png")
        (args.docs / "table.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
