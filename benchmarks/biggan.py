"""The BigGAN benchmark: a small class-conditional BigGAN on Fashion-MNIST, baseline vs top-k and DGL's half-width student vs its control, as one `gancore compare`.

    python benchmarks/biggan.py --jobs 2                          # seeds 0-2 (resumable)
    python benchmarks/biggan.py --report-only --docs docs/biggan  # the tables and pictures of what is done

The comparison is

    gancore compare configs/fmnist-biggan.toml \\
        --vary topk='--set plugins=[{name="topk", schedule="progress", gamma=0.00657}]' \\
        --vary control-half='--set backbone.g_ch=H --set backbone.d_ch=H' \\
        --vary dgl-half='--set backbone.g_ch=H --set backbone.d_ch=H --set plugins=[{name="dgl", teacher="<out>/teacher", ...}]'

under ``<out>`` (H: half the run file's widths). Top-k keeps the paper's schedule in the run's own
length: gamma 0.99 per epoch over CIFAR's 500 epochs is 0.99 ** 500 = 0.00657 over the whole run, so
k reaches nu * B (nu = 0.5) after the same 13.8 % of it. DGL runs as its BigGAN code does (weight 0.1
on -mean(D_T), the teacher in train mode, the student alone for the first half, then fresh Adam
state); its teacher is the baseline trained twice as long, ``<out>/teacher``, trained first beside the
first seed's baseline and top-k cells. Metrics compare with the Fashion-MNIST test split: FID,
the shipped classifier's accuracy on each class's samples, and intra-class FID.
"""

import argparse
import json
import sys
from pathlib import Path

from gancore.comparison import compare, plan_cells
from gancore.comparison.cells import Cell, Variant, cell_status, run_cell, variants_from
from gancore.comparison.report import collect
from gancore.comparison.statistics import mean_std, paired_difference
from gancore.config import apply_overrides, load_raw_config
from gancore.files import portable_path

REPO = Path(__file__).resolve().parents[1]
RUN_FILE = REPO / "configs" / "fmnist-biggan.toml"
#: Top-k's decay over a whole run: the paper's 0.99 per epoch over its 500 CIFAR-10 epochs.
TOPK_GAMMA = round(0.99**500, 5)
TABLE_METRICS = ("fid", "class_accuracy", "intra_fid")


def _common(extra: list[str]) -> list[str]:
    return ["train.tensorboard=false", "train.progress=false", *extra]


def _base_raw(extra: list[str]) -> dict:
    """The run file with the common changes (what the baseline trains, but its seed)."""
    return apply_overrides(load_raw_config(RUN_FILE), _common(extra))


def _label(name: str) -> str:
    """A variant's name in tables and file names: the run file itself is the baseline."""
    return "baseline" if name == RUN_FILE.stem else name


def variant_specs(out: Path, extra: list[str]) -> tuple[str, ...]:
    """The ``--vary`` entries: top-k, the half-width control, and DGL's half-width student."""
    raw = _base_raw(extra)
    half = {key: max(1, raw["backbone"][key] // 2) for key in ("g_ch", "d_ch")}
    widths = f"--set backbone.g_ch={half['g_ch']} --set backbone.d_ch={half['d_ch']}"
    dgl = (f'{{name="dgl", teacher="{portable_path(out / "teacher")}", weight=0.1, teacher_loss="adversarial", '
           f'teacher_train_mode=true, teacher_from_step={raw["train"]["steps"] // 2}, reset_optimizers="both"}}')
    return (
        f"""topk=--set 'plugins=[{{name="topk", schedule="progress", gamma={TOPK_GAMMA}}}]'""",
        f"control-half={widths}",
        f"dgl-half={widths} --set 'plugins=[{dgl}]'",
    )


def teacher_cell(out: Path, extra: list[str]) -> tuple[Cell, int]:
    """DGL's teacher: the baseline (seed 0) trained twice as long, and its length in steps."""
    steps = 2 * _base_raw(extra)["train"]["steps"]
    return Cell(Variant("teacher", RUN_FILE, (*_common(extra), f"train.steps={steps}")), 0, out / "teacher"), steps


def train_teacher_beside(out: Path, extra: list[str], first: list[str], seed: int, curve_every: float) -> None:
    """Train the teacher in a process of its own while ``first`` variants train with ``seed`` (one cell at a time)."""
    cell, steps = teacher_cell(out, extra)
    process = run_cell(cell, steps, out / "logs" / "teacher.txt")
    specs = tuple(spec for spec in variant_specs(out, extra) if spec.split("=", 1)[0] in first)
    compare([RUN_FILE], vary=specs, overrides=_common(extra), seeds=[seed], out=out, curve_every=curve_every)
    if process is not None and process.wait() != 0:
        raise SystemExit(f"the teacher's training failed; see {out / 'logs' / 'teacher.txt'}")
    if cell_status(cell, steps) != "done":
        raise SystemExit(f"the teacher in {cell.folder} did not finish; see {out / 'logs' / 'teacher.txt'}")


def tables(out: Path, seeds: list[int], curve_every: float, extra: list[str]) -> str:
    """The markdown tables: final metrics of every variant (mean ± std over the seeds done, each
    seed's value), and the paired differences that answer the benchmark's two questions."""
    variants = variants_from([RUN_FILE], variant_specs(out, extra), _common(extra))
    cells, _ = plan_cells(variants, seeds, out, curve_every)
    collected = collect(cells)
    lines = ["| variant | seeds | " + " | ".join(TABLE_METRICS) + " | params G / D |", "|---|---|" + "---|" * (len(TABLE_METRICS) + 1)]
    for name, entry in collected.items():
        done = sorted(entry["metrics"].get("fid", {}))
        if not done:
            continue
        figures = []
        for metric in TABLE_METRICS:
            values = [entry["metrics"].get(metric, {}).get(s, float("nan")) for s in done]
            figures.append(f"{mean_std(values)} ({', '.join(f'{v:.3g}' for v in values)})")
        params = entry["params"]
        lines.append(f"| {_label(name)} | {len(done)} | " + " | ".join(figures) + f" | {params.get('G', 0):,} / {params.get('D', 0):,} |")
    lines += ["", "| question | metric | seeds | mean difference | 95% interval | p (paired t) | reading |",
              "|---|---|---|---|---|---|---|"]
    for variant, reference in (("topk", RUN_FILE.stem), ("dgl-half", "control-half")):
        for metric in TABLE_METRICS:
            mine, base = collected[variant]["metrics"].get(metric, {}), collected[reference]["metrics"].get(metric, {})
            paired = [s for s in seeds if s in mine and s in base]
            if not paired:
                continue
            diff = paired_difference(metric, [base[s] for s in paired], [mine[s] for s in paired])
            low, high = diff.interval
            lines.append(f"| {variant} - {_label(reference)} | {metric} | {len(paired)} | {diff.mean:+.3g} | [{low:+.3g}, {high:+.3g}] "
                         f"| {diff.p_value:.3g} | {diff.reading} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Train the teacher and the comparison's cells (resumable), then print the tables; with --docs,
    copy the curves and class grids there."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--curve-every", type=float, default=32.0, help="kimg (images D reads) between the curves' points")
    parser.add_argument("--jobs", type=int, default=1, help="cells trained at once (give each one thread: OMP_NUM_THREADS=1)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a change for every cell and the teacher (e.g. data.path=DIR, train.steps=100)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "biggan" / "fmnist")
    parser.add_argument("--report-only", action="store_true", help="train nothing: the tables and pictures of what is done")
    parser.add_argument("--docs", type=Path, help="where the curves and class grids go")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if not args.report_only:
        teacher, steps = teacher_cell(args.out, args.set)
        if cell_status(teacher, steps) != "done":
            print("the teacher, beside the first seed's baseline and top-k cells", flush=True)
            train_teacher_beside(args.out, args.set, ["topk"], seeds[0], args.curve_every)
        compare([RUN_FILE], vary=variant_specs(args.out, args.set), overrides=_common(args.set), seeds=seeds,
                out=args.out, curve_every=args.curve_every, jobs=args.jobs)
    text = tables(args.out, seeds, args.curve_every, args.set)
    print(text)
    if args.docs is not None:
        import shutil

        args.docs.mkdir(parents=True, exist_ok=True)
        for picture in json.loads((args.out / "report.json").read_text())["pictures"]:
            path = Path(picture)
            name = f"grid-{_label(path.stem)}.png" if path.parent.name == "samples" else path.name
            shutil.copyfile(args.out / picture, args.docs / name)
        (args.docs / "table.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
