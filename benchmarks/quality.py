"""Quality study: each method alone and stacked, on Fashion-MNIST (StyleGAN2 on a GPU, DCGAN on the CPU) or the 2-D mixture.

    python benchmarks/quality.py --study fmnist --kimg 500 --seeds 0,1,2 [--cells REGEX] [--device cuda]
    python benchmarks/quality.py --study fmnist-cpu --seeds 0,1,2 [--best topk]   # DCGAN at 32 px, the CPU preset
    python benchmarks/quality.py --study mog --steps 5000 --seeds 0,1,2
    python benchmarks/quality.py --study fmnist-cpu --merge --docs docs/results    # table, FID curves, sample grids

Every cell (variant, seed) is a gancore run folder under ``--out`` (default
``benchmarks/quality/<study>``): a cell that was interrupted resumes from its newest checkpoint, a
finished one is skipped, so the study can run one cell (or a few) per session and the folders can
travel between machines. The cells' results are committed and their checkpoints are not: a cell
with ``eval.json`` but no checkpoints counts as done, and DGL's teacher is trained (again) only
while a DGL cell is left to run. Each finished cell is measured once and the result stored next to it
(``eval.json``): domain FID, KID and precision/recall with the ``fmnist`` extractor on ``--n``
samples (fmnist study), or the mixture metrics on 10k samples (mog study). ``--merge`` prints the
table (mean ± std over seeds) and writes it to ``<out>/table.md``.

The fmnist-cpu study (:data:`CPU_PRESET`) is meant for a 2-core machine: a DCGAN of width
``--width`` at 32 px, ``--kimg`` per cell, each kept checkpoint's FID measured once on
``--curve-n`` samples (``curve.json``), and with ``--docs`` the merge also draws the FID-versus-kimg
curves (one per variant, mean ± std over seeds) and an 8x8 grid per variant from the same latents.
Its variants are the baseline, each method alone (its published defaults, scaled to the network),
DGL's half-width student with its teacher-less control, all four stacked, DiffAugment and ADA, and,
with ``--best M``, each augmentation stacked with method M.

Variants of the fmnist study: baseline, topk, glead, eqgan_sa, dgl at 1/2 and 1/4 width (teacher: the baseline trained
twice as long, a cell of its own) with their controls (the same narrow networks without a teacher),
the pairs, and all four. The mog study keeps the variants that apply to the mlp backbone (baseline,
topk, baseline-1/2, dgl-1/2, topk+dgl-1/2).
"""

import argparse
import itertools
import json
import math
import re
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from cells import (fid_curve, kept_without_weights, mean_std, median_step_time, plot_band, save_variant_grid,  # noqa: E402
                   train_cell, write_json)

METHODS = {
    "topk": ["topk"],
    "glead": [{"name": "glead", "distance": "mse", "r": 8, "decoder_resolution": 32}],
    "eqgan_sa": ["eqgan_sa"],
}


#: The fmnist-cpu study's defaults: DCGAN width, kimg per cell, steps between curve points (batch 64),
#: and Adam's learning rate for G and D. Chosen from baseline probes (benchmarks/RESULTS.md, 2026-12-01):
#: at lr 1e-3 the width-8 baseline's FID flattens by 256 kimg (119, 107, 105 at 192, 224, 256 kimg);
#: at the config's 2e-4 it is still 369 there. ``--speed`` measures what a choice costs.
CPU_PRESET = {"width": 8, "kimg": 256.0, "checkpoint_every": 250, "lr": 0.001}
#: EqGAN-SA's encoder and SEL widths in its official setting (StyleGAN2 ``paper256``: G has 64 channels at
#: 256 px, where the encoders run), as multiples of G's channels at image resolution. The fmnist-cpu
#: study keeps these ratios on its DCGAN (at width 8, 8 channels at 32 px: 2, 4 and 8 channels; width 16: 4, 8, 16).
EQGAN_SA_PER_TOP_CHANNEL = {"encoder_hidden": 16 / 64, "encoder_channels": 32 / 64, "sel_hidden": 64 / 64}
#: Augmentation plugins of the fmnist-cpu study, each with its paper's defaults (docs/methods/augment.md).
AUGMENTS = {
    "diffaugment": [{"name": "augment", "mode": "diffaugment"}],
    "ada": [{"name": "augment", "mode": "ada"}],
}


def _cpu_variants(best: str | None) -> dict[str, dict]:
    """The fmnist-cpu study's variants (``best``: the method each augmentation is also stacked with):
    the fmnist study's single methods, DGL's half-width student and control and all four, then the augmentations."""
    full = _variants("fmnist")
    variants = {name: full[name] for name in ("baseline", *METHODS, "baseline-1/2", "dgl-1/2", "all four (dgl-1/2)")}
    for name, plugins in AUGMENTS.items():
        variants[name] = {"plugins": plugins, "width": 1.0, "dgl": False}
    if best is not None:
        if best not in METHODS:
            raise ValueError(f"--best: {best!r} is not a method of the study ({', '.join(METHODS)})")
        for name, plugins in AUGMENTS.items():
            variants[f"{name}+{best}"] = {"plugins": plugins + METHODS[best], "width": 1.0, "dgl": False}
    return variants


def eqgan_sa_scaled(top_channels: int) -> dict:
    """The ``eqgan_sa`` plugin entry for a G with ``top_channels`` channels at image resolution
    (:data:`EQGAN_SA_PER_TOP_CHANNEL`; every width at least 1)."""
    return {"name": "eqgan_sa", **{key: max(1, round(ratio * top_channels))
                                   for key, ratio in EQGAN_SA_PER_TOP_CHANNEL.items()}}


def _variants(study: str, best: str | None = None) -> dict[str, dict]:
    """``{name: {"plugins": [...], "width": multiplier, "dgl": bool}}``."""
    if study == "fmnist-cpu":
        return _cpu_variants(best)
    if study == "mog":
        return {
            "baseline": {"plugins": [], "width": 1.0, "dgl": False},
            "topk": {"plugins": ["topk"], "width": 1.0, "dgl": False},
            "baseline-1/2": {"plugins": [], "width": 0.5, "dgl": False},
            "dgl-1/2": {"plugins": [], "width": 0.5, "dgl": True},
            "topk+dgl-1/2": {"plugins": ["topk"], "width": 0.5, "dgl": True},
        }
    variants = {"baseline": {"plugins": [], "width": 1.0, "dgl": False}}
    for name, plugins in METHODS.items():
        variants[name] = {"plugins": plugins, "width": 1.0, "dgl": False}
    # The students' controls: the same narrow networks without a teacher.
    variants["baseline-1/2"] = {"plugins": [], "width": 0.5, "dgl": False}
    variants["baseline-1/4"] = {"plugins": [], "width": 0.25, "dgl": False}
    variants["dgl-1/2"] = {"plugins": [], "width": 0.5, "dgl": True}
    variants["dgl-1/4"] = {"plugins": [], "width": 0.25, "dgl": True}
    for (a, pa), (b, pb) in itertools.combinations(METHODS.items(), 2):
        variants[f"{a}+{b}"] = {"plugins": pa + pb, "width": 1.0, "dgl": False}
    for name, plugins in METHODS.items():
        variants[f"{name}+dgl-1/2"] = {"plugins": plugins, "width": 0.5, "dgl": True}
    variants["all four (dgl-1/2)"] = {"plugins": [p for ps in METHODS.values() for p in ps], "width": 0.5, "dgl": True}
    return variants


def _slug(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z]+", "-", name).strip("-")


def _base_config(args: argparse.Namespace) -> dict:
    """The shared settings: the study's config (fmnist-stylegan2, fmnist-dcgan or the mog demo) at its widths,
    with ``--set`` applied before the budget in steps."""
    from gancore.config import apply_overrides, load_raw_config

    name = {"mog": "mog25-topk.toml", "fmnist-cpu": "fmnist-dcgan.toml"}.get(args.study, "fmnist-stylegan2.toml")
    raw = load_raw_config(REPO / "configs" / name)
    if args.study == "fmnist-cpu":
        raw["backbone"]["width"] = args.width
        raw["train"].update({"g_lr": CPU_PRESET["lr"], "d_lr": CPU_PRESET["lr"], "tensorboard": False})
    elif args.study == "fmnist":
        raw["backbone"].update({"channel_base": args.channel_base, "channel_max": args.channel_max})
    # Before the budget (train.batch sets the steps per kimg); plugins.* keys wait for the cell's plugins.
    raw = apply_overrides(raw, [item for item in args.set if not _is_plugin_override(item)])
    if args.study == "mog":
        raw["plugins"] = []
        raw["train"].update({"steps": args.steps})
    else:
        raw["train"].update({"steps": max(1, round(args.kimg * 1000 / raw["train"]["batch"]))})
    if args.study == "fmnist-cpu":  # every checkpoint kept for the curves, the teacher's twice as many too
        raw["train"]["keep_checkpoints"] = 2 * raw["train"]["steps"] // args.checkpoint_every + 1
    if args.data_path and args.study != "mog":
        raw["data"]["path"] = args.data_path
    raw["train"].update({"device": args.device, "progress": False, "checkpoint_every": args.checkpoint_every,
                         "sample_every": 0, "log_every": 100})
    return raw


def _cell_config(args: argparse.Namespace, variant: dict, seed: int, teacher: Path | None) -> dict:
    raw = json.loads(json.dumps(_base_config(args)))
    raw["train"]["seed"] = seed
    raw["plugins"] = list(variant["plugins"])
    if variant["width"] != 1.0:
        if args.study == "mog":  # the mlp has one width for every layer
            from gancore_dcgan.mlp import MLPConfig

            base = raw["backbone"].get("width", MLPConfig().width)
            raw["backbone"]["width"] = max(1, round(base * variant["width"]))
        else:
            raw["backbone"]["channel_multiplier"] = variant["width"]
    if args.study == "fmnist-cpu":  # EqGAN-SA's encoders and SELs scaled to this G
        from gancore_dcgan.dcgan_config import DCGANConfig

        resolution = raw["data"]["resolution"]
        top = DCGANConfig(width=raw["backbone"]["width"], channel_multiplier=variant["width"],
                          resolution=resolution).width_at(resolution)
        raw["plugins"] = [eqgan_sa_scaled(top) if p == "eqgan_sa" else p for p in raw["plugins"]]
    if variant["dgl"]:
        dgl = {"name": "dgl", "teacher": _portable(teacher)}
        if args.study == "fmnist-cpu":  # configs/fmnist-dcgan-dgl-half.toml: the student alone for half the run
            dgl.update({"teacher_from_step": raw["train"]["steps"] // 2, "reset_optimizers": "both"})
        raw["plugins"].append(dgl)
    from gancore.config import apply_overrides

    return apply_overrides(raw, [item for item in args.set if _is_plugin_override(item)])


def _is_plugin_override(item: str) -> bool:
    """Whether a ``--set`` item addresses a plugin (``plugins.<name>.<field>=value``)."""
    return item.strip().startswith("plugins.")


def _portable(path: Path) -> str:
    """``path`` relative to the working directory where it lies below it (configs are committed with
    the cells' results, and must not carry one machine's folders), else as it is."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _measure_curve(folder: Path, args: argparse.Namespace, dataset=None) -> dict:
    """``curve.json`` of a cell: FID on ``--curve-n`` samples at each kept checkpoint (each measured once),
    against ``dataset`` (default: the cell's own data set)."""
    from gancore.data import build_dataset
    from gancore.metrics.evaluate import default_cache_dir
    from gancore.pretrained import load_run
    from gancore.run import resolve_device

    device = resolve_device(args.device)

    def measure_fid(checkpoint: Path) -> tuple[float, float]:
        nonlocal dataset
        at = load_run(checkpoint, components=("G_ema",)).to(device)
        dataset = dataset or build_dataset(at.config.data)
        fid = at.measure(("fid",), args.curve_n, 0, "fmnist", dataset, default_cache_dir())
        return at.kimg, fid.metrics["Metrics/fid"]

    return fid_curve(folder, measure_fid)


def _evaluate(folder: Path, args: argparse.Namespace) -> dict:
    from gancore.checkpoint import latest_checkpoint, read_state

    result_path = folder / "eval.json"
    step = read_state(latest_checkpoint(folder))["step"]
    if result_path.is_file():
        result = json.loads(result_path.read_text())
        if result.get("step") == step:  # measured at this step already
            return result
    from gancore.data import build_dataset
    from gancore.metrics.evaluate import default_cache_dir
    from gancore.pretrained import load_run
    from gancore.run import resolve_device

    run = load_run(folder, components=("G_ema",)).to(resolve_device(args.device))
    dataset = build_dataset(run.config.data)
    if args.study == "fmnist-cpu":
        _measure_curve(folder, args, dataset)
    if args.study == "mog":
        metrics = dataset.quality_metrics(run.sample(10000, seed=12345))
        result = {"metrics": metrics, "protocol": {"samples": 10000}}
    else:
        evaluation = run.measure(("fid", "kid", "pr"), args.n, 0, "fmnist", dataset, default_cache_dir())
        result = evaluation.as_json()
    result["step"] = run.step
    result["kimg"] = run.kimg
    result["params_G"] = sum(p.numel() for p in run.G_ema.parameters())
    result["params_D"] = sum(p.numel() for p in load_run(folder, components=("D",)).D.parameters())
    write_json(result_path, result)
    return result


def _finished_cells(out: Path, study: str) -> dict[str, list[Path]]:
    """Evaluated cell folders by variant name, in the study's order (variants it does not know, by slug, last)."""
    names = list(_variants(study))
    if study == "fmnist-cpu":  # the augmentations stacked with each possible --best
        names += [name for best in METHODS for name in _variants(study, best) if name not in names]
    by_slug = {_slug(name): name for name in names}
    found: dict[str, list[Path]] = {}
    for result_path in sorted(out.glob("cells/*/eval.json")):
        found.setdefault(result_path.parent.name.rsplit("-seed", 1)[0], []).append(result_path.parent)
    order = list(by_slug) + sorted(set(found) - set(by_slug))
    return {by_slug.get(slug, slug): found[slug] for slug in order if slug in found}


def merge(out: Path, study: str, docs: Path | None = None) -> str:
    """The markdown table of every evaluated cell under ``out``; with ``docs``, the FID curves and
    sample grids (studies that keep curves) as PNGs."""
    cells = _finished_cells(out, study)
    if not cells:
        return "no finished cells yet"
    rows = {variant: [json.loads((f / "eval.json").read_text()) for f in folders] for variant, folders in cells.items()}
    times = {variant: statistics.fmean(median_step_time(f) for f in folders) for variant, folders in cells.items()}
    keys = sorted({k for results in rows.values() for r in results for k in r["metrics"]})
    header = ("| variant | seeds | G params | D params | step time vs baseline | "
              + " | ".join(k.removeprefix("Metrics/") for k in keys) + " |")
    lines = [header, "|" + "---|" * (len(keys) + 5)]
    for variant, results in rows.items():
        figures = [mean_std([r["metrics"].get(k, math.nan) for r in results]) for k in keys]
        relative = times[variant] / times["baseline"] if "baseline" in times else math.nan
        params_d = f"{results[0]['params_D']:,}" if "params_D" in results[0] else "n/a"
        lines.append(f"| {variant} | {len(results)} | {results[0].get('params_G', 0):,} | {params_d} | "
                     f"{relative:.2f} | " + " | ".join(figures) + " |")
    table = "\n".join(lines)
    (out / "table.md").write_text(table + "\n")
    if docs is not None:
        with_curves = {v: fs for v, fs in cells.items() if all((f / "curve.json").is_file() for f in fs)}
        if with_curves:
            docs.mkdir(parents=True, exist_ok=True)
            _plot_curves(with_curves, docs / "fid-curves.png", out / "cells" / "teacher" / "curve.json")
            for variant, folders in with_curves.items():
                save_variant_grid(folders, docs / f"grid-{_slug(variant)}.png")
    return table


def _plot_curves(cells: dict[str, list[Path]], path: Path, teacher_curve: Path | None = None) -> None:
    """FID against kimg, one curve per variant (mean ± std over the seeds' common points), and the
    teacher's (the baseline at twice the budget, dashed) where ``teacher_curve`` exists. Variants with
    an augmentation get a panel of their own, beside the baseline again (the same colour in both)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    augmented = [v for v in cells if v.split("+")[0] in AUGMENTS]
    panels = [[v for v in cells if v not in augmented]]
    if augmented:
        panels.append([v for v in cells if v == "baseline"] + augmented)
    palette = plt.get_cmap("tab10").colors
    figure, axes = plt.subplots(1, len(panels), figsize=(8 * len(panels), 5.5), sharey=True, squeeze=False)
    for axis, variants in zip(axes[0], panels):
        if teacher_curve is not None and teacher_curve.is_file() and axis is axes[0][0]:
            points = sorted((p["kimg"], p["fid"]) for p in json.loads(teacher_curve.read_text()).values())
            axis.plot(*zip(*points), "k--", linewidth=1, label="baseline, twice the budget (DGL's teacher)")
        for index, variant in enumerate(variants):
            curves = [{round(p["kimg"], 3): p["fid"] for p in json.loads((f / "curve.json").read_text()).values()}
                      for f in cells[variant]]
            kimg = sorted(set.intersection(*(set(c) for c in curves)))
            plot_band(axis, kimg, [[c[k] for c in curves] for k in kimg], variant, colour=palette[index % 10])
        axis.set_xlabel("kimg")
        axis.set_yscale("log")
        axis.legend(fontsize="small")
    axes[0][0].set_ylabel("FID (fmnist features, 2k samples per point)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def measure_speed(args: argparse.Namespace, variants: dict[str, dict], steps: int, seeds: int) -> str:
    """Each variant's time per step (median of three windows of ``steps`` after a warm-up, DGL's
    teacher term on) and the estimated training time of ``seeds`` seeds at ``--kimg``, as a markdown table.
    Times are relative to the first variant (the baseline, unless ``--cells`` leaves it out),
    whose cost also stands for the teacher's."""
    import tempfile
    import time

    import torch

    from gancore.run import Run

    rows, total = [], 0.0
    with tempfile.TemporaryDirectory() as tmp:
        teacher = Path(tmp) / "teacher"
        if any(v["dgl"] for v in variants.values()):  # a one-step teacher: the cost is the same
            raw = _base_config(args)
            raw["train"].update({"steps": 1, "checkpoint_every": 1})
            train_cell(teacher, raw)
        for name, variant in variants.items():
            raw = _cell_config(args, variant, 0, teacher)
            budget = raw["train"]["steps"]
            for plugin in raw["plugins"]:
                if isinstance(plugin, dict) and plugin.get("name") == "dgl":
                    plugin["teacher_from_step"] = 0
            raw["train"].update({"steps": 10**9, "checkpoint_every": 0, "sample_every": 0, "log_every": 10**9})
            run = Run.build(raw, out_dir=Path(tmp) / _slug(name))
            # Whole regularisation cycles, so that every window holds the same number of R1 and path-length steps.
            cycle = math.lcm(run.config.train.d_reg_interval, run.config.train.g_reg_interval)
            window = math.ceil(steps / cycle) * cycle
            for _ in range(3):
                run.trainer.step()
            windows = []
            for _ in range(3):
                started = time.perf_counter()
                for _ in range(window):
                    run.trainer.step()
                windows.append((time.perf_counter() - started) / window)
            seconds = statistics.median(windows)
            total += seconds * budget * seeds
            params = [sum(p.numel() for p in net.parameters()) for net in (run.G, run.D)]
            rows.append((name, seconds, params))
    base = rows[0][1]
    if any(v["dgl"] for v in variants.values()):
        total += base * 2 * _base_config(args)["train"]["steps"]  # the teacher: the baseline, twice as long
    lines = [f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), windows of {steps} steps or more "
             "(whole regularisation cycles)",
             "| variant | ms / step | vs first | G params | D params |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {1000 * sec:.0f} | {sec / base:.2f} | {g:,} | {d:,} |" for name, sec, (g, d) in rows]
    lines.append(f"estimated training time of these cells ({seeds} seeds, {args.kimg:g} kimg): "
                 f"{total / 3600:.1f} core-hours")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Train and measure the selected cells, or merge the finished ones."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", choices=["fmnist", "fmnist-cpu", "mog"], default="fmnist")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--cells", default="", help="regular expression over variant names")
    parser.add_argument("--kimg", type=float, default=None,
                        help=f"fmnist studies: training length per cell (fmnist 500, fmnist-cpu {CPU_PRESET['kimg']:g})")
    parser.add_argument("--steps", type=int, default=5000, help="mog: training steps per cell")
    parser.add_argument("--channel-base", type=int, default=8192)
    parser.add_argument("--channel-max", type=int, default=256)
    parser.add_argument("--width", type=int, default=CPU_PRESET["width"], help="fmnist-cpu: DCGAN width")
    parser.add_argument("--best", default=None, help="fmnist-cpu: the method each augmentation is also stacked with")
    parser.add_argument("--n", type=int, default=10000, help="fmnist studies: samples for the metrics")
    parser.add_argument("--curve-n", type=int, default=2000, help="fmnist-cpu: samples per FID curve point")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-path", default=None, help="fmnist studies: folder of the Fashion-MNIST idx files")
    parser.add_argument("--checkpoint-every", type=int, default=None,
                        help=f"steps between checkpoints (fmnist-cpu: the curve's points, {CPU_PRESET['checkpoint_every']})")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides for every cell and the teacher, e.g. train.batch=32 train.g_lr=0.001; "
                        "plugins.<name>.<field>=value applies to the selected cells, each of which must use that plugin")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--teacher", type=Path, default=None,
                        help="DGL's teacher: a finished run folder to use instead of training one under --out "
                        "(e.g. another study's cells/teacher, for probes)")
    parser.add_argument("--merge", action="store_true")
    parser.add_argument("--speed", type=int, default=0, metavar="STEPS",
                        help="only time each selected variant (windows of at least STEPS steps, whole R1/path-length "
                        "cycles) and estimate the study's cost")
    parser.add_argument("--docs", type=Path, default=None, help="with --merge: where the curves and grids go")
    args = parser.parse_args(argv)
    cpu = args.study == "fmnist-cpu"
    if args.kimg is None:
        args.kimg = CPU_PRESET["kimg"] if cpu else 500.0
    if args.checkpoint_every is None:
        args.checkpoint_every = CPU_PRESET["checkpoint_every"] if cpu else 1000
    out = args.out or REPO / "benchmarks" / "quality" / args.study
    if args.merge:
        print(merge(out, args.study, args.docs))
        return 0
    try:
        study_variants = _variants(args.study, args.best)
    except ValueError as exc:
        parser.error(str(exc))
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    variants = {k: v for k, v in study_variants.items() if re.search(args.cells, k)}
    if not variants:
        parser.error(f"--cells {args.cells!r} matches no variant of the {args.study} study")
    if args.speed:
        print(measure_speed(args, variants, args.speed, len(seeds)))
        return 0
    from gancore.checkpoint import latest_checkpoint

    teacher = args.teacher or out / "cells" / "teacher"
    if args.teacher is not None and latest_checkpoint(args.teacher) is None:
        parser.error(f"--teacher {args.teacher}: no checkpoint in that folder (a finished run of the study's baseline)")
    folders = {(name, seed): out / "cells" / f"{_slug(name)}-seed{seed}" for name in variants for seed in seeds}
    if args.teacher is None and any(
            variants[name]["dgl"] and not kept_without_weights(folder) for (name, _), folder in folders.items()):
        raw = _base_config(args)
        raw["train"]["steps"] *= 2  # the teacher: the baseline trained twice as long
        print("teacher", flush=True)
        train_cell(teacher, raw)
        if cpu:  # the baseline's FID curve over twice the budget: has it flattened by the end of the cells'?
            _measure_curve(teacher, args)
    for name, variant in variants.items():
        for seed in seeds:
            folder = folders[name, seed]
            print(f"{name}, seed {seed}", flush=True)
            if kept_without_weights(folder):
                print("  done (its results are kept without its checkpoints)", flush=True)
                continue
            train_cell(folder, _cell_config(args, variant, seed, teacher))
            result = _evaluate(folder, args)
            print("  " + ", ".join(f"{k.removeprefix('Metrics/')} {v:.4g}" for k, v in result["metrics"].items()),
                  flush=True)
    print(merge(out, args.study))
    return 0


if __name__ == "__main__":
    sys.exit(main())
