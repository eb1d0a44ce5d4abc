"""Top-k vs baseline on 2-D Gaussian mixtures: the analysis of Sinha et al. (2020), on the CPU.

    python benchmarks/mog_topk.py [--config configs/mog25-topk.toml] [--seeds 5] [--steps N]
                                  [--datasets mog25 ring8] [--jobs 2] [--set train.g_lr=1e-4 ...]
                                  [--topk-set gamma=0.99 ...] [--write]

Every (data set, variant, seed) cell trains the ``mlp`` backbone with the settings of ``--config``
(``configs/mog25-topk.toml``, the demo, or ``configs/recipes/topk-mog25.toml``, the paper's toy) and
the same budget; the variants differ only in the plugin
list: ``baseline`` drops the topk plugin, ``topk`` keeps it with the demo's settings (changed with
``--topk-set``). Metrics are measured on
10k samples of G_ema: modes covered and modes hit (docs/metrics.md), share of high-quality samples
(within 4 std of the nearest mode), and the KL divergence of the mode histogram from uniform. Prints a markdown table of
mean ± std over seeds; ``--write`` also appends it, with the command, date and machine, to
benchmarks/RESULTS.md.
"""

import argparse
import datetime
import math
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
METRICS = (("Metrics/modes_covered", "modes covered", "{:.1f}"), ("Metrics/modes_hit", "modes hit", "{:.1f}"),
           ("Metrics/high_quality", "high-quality share", "{:.3f}"), ("Metrics/kl_uniform", "KL(modes ‖ uniform)", "{:.3f}"))


def run_cell(task: tuple[str, str, str, int, int | None, list[str], list[str]]) -> tuple[str, str, int, dict[str, float], float]:
    """Train one (data set, variant, seed) cell and return its metrics and wall time."""
    config, dataset, variant, seed, steps, topk_settings, extra = task
    import torch

    torch.set_num_threads(1)
    from gancore.api import load_config
    from gancore.run import Run

    overrides = [f"data.name={dataset}", f"train.seed={seed}", "train.progress=false", "train.log_every=1000000",
                 "train.sample_every=0", "train.checkpoint_every=0", *extra]
    if steps is not None:
        overrides.append(f"train.steps={steps}")
    if variant == "topk":
        overrides += [f"plugins.topk.{setting}" for setting in topk_settings]
    else:
        overrides.append("plugins=[]")
    started = time.perf_counter()
    run = Run.build(load_config(REPO / config, overrides)).train()
    return dataset, variant, seed, run.metrics, time.perf_counter() - started


def summarise(values: list[float], fmt: str) -> str:
    """``mean ± std`` of a list of values."""
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return "n/a"
    mean = statistics.fmean(finite)
    std = statistics.stdev(finite) if len(finite) > 1 else 0.0
    return f"{fmt.format(mean)} ± {fmt.format(std)}"


def main(argv: list[str] | None = None) -> None:
    """Run every cell (in parallel processes) and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--config", default="configs/mog25-topk.toml", help="the run file (with the topk plugin)")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the config's)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="other config overrides")
    parser.add_argument("--datasets", nargs="+", default=["mog25", "ring8"])
    parser.add_argument("--topk-set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="settings of the topk plugin, e.g. nu=0.75 schedule=progress")
    parser.add_argument("--variants", nargs="+", default=["baseline", "topk"], choices=["baseline", "topk"])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--write", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = parser.parse_args(argv)

    tasks = [(args.config, d, v, s, args.steps, args.topk_set, args.set) for d in args.datasets for v in args.variants
             for s in range(args.seeds)]
    started = time.perf_counter()
    if args.jobs == 1:
        import torch

        threads = torch.get_num_threads()
        try:
            results = [run_cell(task) for task in tasks]
        finally:
            torch.set_num_threads(threads)
    else:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(run_cell, tasks))
    wall = time.perf_counter() - started

    lines = ["| data | variant | " + " | ".join(label for _, label, _ in METRICS) + " |",
             "|---|---|" + "---|" * len(METRICS)]
    for dataset in args.datasets:
        for variant in args.variants:
            cells = [m for d, v, _, m, _ in results if d == dataset and v == variant]
            row = [summarise([c[key] for c in cells], fmt) for key, _, fmt in METRICS]
            lines.append(f"| {dataset} | {variant} | " + " | ".join(row) + " |")
    per_seed = ["| data | variant | seed | modes covered | modes hit | high-quality | KL |", "|---|---|---|---|---|---|---|"]
    for d, v, s, m, _ in sorted(results):
        per_seed.append(f"| {d} | {v} | {s} | {m['Metrics/modes_covered']:.0f} | {m['Metrics/modes_hit']:.0f} | "
                        f"{m['Metrics/high_quality']:.3f} | {m['Metrics/kl_uniform']:.3f} |")
    table = "\n".join(lines)
    command = "python benchmarks/mog_topk.py " + " ".join(sys.argv[1:])
    print(table)
    from gancore.api import load_config

    steps = args.steps or load_config(REPO / args.config, args.set).train.steps
    print(f"\n{len(tasks)} runs of {steps} steps in {wall:.0f} s with {args.jobs} processes")
    if args.write:
        machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        topk = args.config + (" with " + ", ".join([*args.set, *args.topk_set]) if args.set or args.topk_set else "")
        entry = (f"\n## {datetime.date.today().isoformat()} — top-k vs baseline on 2-D mixtures\n\n"
                 f"Machine: {machine}. Command: `{command.strip()}`\n\n"
                 f"Budget per run: {steps} steps, {args.seeds} seeds "
                 f"(0..{args.seeds - 1}); top-k settings: {topk}. Metrics on 10k samples of G_ema; "
                 f"mean ± std over seeds. Wall time: {wall:.0f} s.\n\n{table}\n\n<details><summary>per seed</summary>\n\n"
                 + "\n".join(per_seed) + "\n\n</details>\n")
        with (REPO / "benchmarks" / "RESULTS.md").open("a", encoding="utf-8") as f:
            f.write(entry)
        print("appended to benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
