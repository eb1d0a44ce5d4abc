"""The report of a comparison: per-variant figures over seeds, paired differences, curves and sample grids."""

import json
import math
import statistics as stats
from pathlib import Path
from typing import Any, Sequence

from gancore.comparison.cells import Cell
from gancore.comparison.statistics import ALPHA, LOWER_IS_BETTER, mean_std, paired_difference
from gancore.files import write_json_atomically, write_text_atomically

__all__ = ["collect", "median_step_time", "plot_band", "write_report"]

#: The variant the others are compared with, when one has this name (else the first variant).
BASELINE = "baseline"
RULE = (f"a variant reads *better* or *worse* than the baseline (the variant named {BASELINE!r}, else the first) on a metric when "
        f"the paired t-test over seeds gives p < {ALPHA} and the {int((1 - ALPHA) * 100)}% bootstrap "
        f"interval of the mean paired difference excludes zero; otherwise *within noise*. Lower is "
        f"better for {', '.join(sorted(LOWER_IS_BETTER))}; higher for the rest.")


def _stats_lines(folder: Path) -> list[dict[str, Any]]:
    from gancore.stats import read_stats

    path = folder / "stats.jsonl"
    return read_stats(path) if path.is_file() else []


def median_step_time(folder: Path) -> float:
    """The median ``sec_per_step`` of a run folder's logged steps (nan when none)."""
    times = [line["sec_per_step"] for line in _stats_lines(folder) if math.isfinite(line.get("sec_per_step", math.nan))]
    return stats.median(times) if times else math.nan


def plot_band(axis: Any, x: Sequence[float], values: Sequence[Sequence[float]], label: str,
              colour: str | tuple[float, ...] | None = None) -> None:
    """On a matplotlib ``axis``: the mean over seeds of ``values`` (one list per ``x``) with a
    shaded ± one standard deviation (``colour``: matplotlib's next one unless given)."""
    mean = [stats.fmean(v) for v in values]
    spread = [stats.stdev(v) if len(v) > 1 else 0.0 for v in values]
    (line,) = axis.plot(x, mean, label=label, color=colour)
    axis.fill_between(x, [m - s for m, s in zip(mean, spread)], [m + s for m, s in zip(mean, spread)], alpha=0.2,
                      color=line.get_color())


def collect(cells: Sequence[Cell]) -> dict[str, Any]:
    """Everything the report shows, read from the cells' folders: final metrics per seed, curves
    (``Metrics/*`` lines of stats.jsonl by kimg), median step time and parameter counts."""
    variants: dict[str, dict[str, Any]] = {}
    for cell in cells:
        entry = variants.setdefault(cell.variant.name, {"metrics": {}, "curves": {}, "step_time": [], "params": {}})
        summary_path = cell.folder / "summary.json"
        if not summary_path.is_file():
            continue
        summary = json.loads(summary_path.read_text())
        for key, value in (summary.get("metrics") or {}).items():
            entry["metrics"].setdefault(key.removeprefix("Metrics/"), {})[cell.seed] = value
        entry["params"] = {k: v for k, v in (summary.get("params") or {}).items() if k in ("G", "D")}
        time = median_step_time(cell.folder)
        if math.isfinite(time):
            entry["step_time"].append(time)
        for line in _stats_lines(cell.folder):
            for key, value in line.items():
                if key.startswith("Metrics/"):
                    curve = entry["curves"].setdefault(key.removeprefix("Metrics/"), {})
                    curve.setdefault(cell.seed, []).append((line["kimg"], value))
    return variants


def write_report(out: Path, cells: Sequence[Cell], seeds: Sequence[int]) -> dict[str, Any]:
    """Write ``report.json`` and ``report.md`` (and curves and grids where they can be drawn) into
    ``out``; returns the JSON."""
    out = Path(out)
    collected = collect(cells)
    names = list(dict.fromkeys(cell.variant.name for cell in cells))
    if BASELINE in names:  # the reference of the paired differences goes first
        names.remove(BASELINE)
        names.insert(0, BASELINE)
    baseline = names[0]
    metrics = sorted({m for v in collected.values() for m in v["metrics"]})
    differences: dict[str, dict[str, Any]] = {}
    for name in names[1:]:
        for metric in metrics:
            if metric.endswith("_std"):  # a metric's own spread (KID's), not a quality to compare
                continue
            base = collected[baseline]["metrics"].get(metric, {})
            mine = collected[name]["metrics"].get(metric, {})
            paired = [s for s in seeds if s in base and s in mine]
            if len(paired) < 1:
                continue
            diff = paired_difference(metric, [base[s] for s in paired], [mine[s] for s in paired])
            differences.setdefault(name, {})[metric] = {
                "seeds": paired, "differences": list(diff.differences), "mean": diff.mean,
                "interval": list(diff.interval), "p_value": diff.p_value, "reading": diff.reading,
            }
    pictures = _curves(out, collected, names) + _grids(out, cells, names)
    report = {
        "baseline": baseline, "variants": names, "seeds": list(seeds), "rule": RULE,
        "metrics": {n: {m: {str(s): v for s, v in collected[n]["metrics"].get(m, {}).items()} for m in metrics}
                    for n in names},
        "differences": differences,
        "step_time": {n: stats.median(collected[n]["step_time"]) if collected[n]["step_time"] else None for n in names},
        "params": {n: collected[n]["params"] for n in names},
        "pictures": [str(p.relative_to(out)) for p in pictures],
    }
    write_json_atomically(out / "report.json", report)
    write_text_atomically(out / "report.md", _markdown(report, metrics))
    return report


def _markdown(report: dict[str, Any], metrics: list[str]) -> str:
    names, seeds = report["variants"], report["seeds"]
    lines = [f"# Comparison: {', '.join(names)}", "",
             f"Seeds {', '.join(map(str, seeds))}, the same for every variant; baseline: {report['baseline']}.", ""]
    lines += ["| variant | " + " | ".join(metrics) + " | s/step | params G / D |",
              "|---|" + "---|" * (len(metrics) + 2)]
    for name in names:
        cells = []
        for metric in metrics:
            values = report["metrics"][name].get(metric, {})
            per_seed = ", ".join(f"{values[str(s)]:.4g}" for s in seeds if str(s) in values)
            cells.append(f"{mean_std([values[str(s)] for s in seeds if str(s) in values])} ({per_seed})")
        time = report["step_time"][name]
        params = report["params"][name]
        time_text = f"{time:.3g}" if time is not None else "n/a"
        lines.append(f"| {name} | {' | '.join(cells)} | {time_text} | {params.get('G', 'n/a')} / {params.get('D', 'n/a')} |")
    lines += ["", "Each cell: mean ± standard deviation over seeds (each seed's value).", ""]
    if report["differences"]:
        lines += ["## Paired differences (variant - baseline, seed by seed)", "",
                  "| variant | metric | mean difference | 95% interval | p (paired t) | reading |", "|---|---|---|---|---|---|"]
        for name, per_metric in report["differences"].items():
            for metric, d in per_metric.items():
                low, high = d["interval"]
                lines.append(f"| {name} | {metric} | {d['mean']:+.4g} | [{low:+.4g}, {high:+.4g}] | "
                             f"{d['p_value']:.3g} | {d['reading']} |")
        lines += ["", f"Rule: {report['rule']}", ""]
    for picture in report["pictures"]:
        lines += [f"![{Path(picture).stem}]({picture})", ""]
    return "\n".join(lines)


def _curves(out: Path, collected: dict[str, Any], names: list[str]) -> list[Path]:
    """One PNG per metric: its value against kimg, the mean over seeds with a ± one-std band."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []  # curves need matplotlib (pip install matplotlib); the tables do not
    made = []
    for metric in sorted({m for n in names for m in collected[n]["curves"]}):
        figure, axis = plt.subplots(figsize=(6, 4))
        for name in names:
            per_seed = collected[name]["curves"].get(metric, {})
            if not per_seed:
                continue
            points = sorted({kimg for curve in per_seed.values() for kimg, _ in curve})
            rows = [[dict(curve).get(kimg) for curve in per_seed.values()] for kimg in points]
            kept = [(k, [v for v in row if v is not None and math.isfinite(v)]) for k, row in zip(points, rows)]
            kept = [(k, v) for k, v in kept if v]
            plot_band(axis, [k for k, _ in kept], [v for _, v in kept], name)
        axis.set_xlabel("kimg")
        axis.set_ylabel(metric)
        axis.legend()
        path = out / f"curve-{metric}.png"
        figure.tight_layout()
        figure.savefig(path, dpi=100)
        plt.close(figure)
        made.append(path)
    return made


def _grids(out: Path, cells: Sequence[Cell], names: list[str]) -> list[Path]:
    """Samples of each variant's first-seed G_ema from the same latents (seed 0); a class-conditional
    G's grid has one row per class."""
    from gancore.checkpoint import latest_checkpoint
    from gancore.run import Run

    made = []
    for name in names:
        cell = next((c for c in cells if c.variant.name == name and latest_checkpoint(c.folder) is not None), None)
        if cell is None:
            continue
        run = Run.for_sampling(cell.folder)
        count = 64 if run.data_info.is_image else 2000
        made.append(run.save_sample_grid(out / "samples" / f"{name}.png", n=count, seed=0))
    return made
