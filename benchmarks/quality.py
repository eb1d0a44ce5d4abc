"""Quality study: each method alone and stacked, on Fashion-MNIST (StyleGAN2 on a GPU, DCGAN on the CPU) or the 2-D mixture, as one `gancore compare`.

    python benchmarks/quality.py --study fmnist --kimg 500 --seeds 0,1,2 [--cells REGEX] [--device cuda]
    python benchmarks/quality.py --study fmnist-cpu --seeds 0,1,2 [--best topk]   # DCGAN at 32 px, the CPU preset
    python benchmarks/quality.py --study mog --steps 5000 --seeds 0,1,2
    python benchmarks/quality.py --study fmnist-cpu --speed 20                    # time each variant, estimate the cost

The study defines its variants (the baseline, each method with its published defaults scaled to
the network, pairs, DGL students and their controls, augmentations); each variant is written as a
run file, ``<out>/variants/<variant>.json``, and the cells are those of ``gancore compare`` over
these files (:func:`gancore.compare`): an ordinary run folder per (variant, seed),
``<out>/<variant>/seed-<s>``, resumable, never trained twice, with ``report.md``/``report.json``
(mean ± std, paired differences against the baseline, curves, grids). DGL's teacher, the baseline
trained twice as long, is a run of its own (``<out>/teacher``), trained first while a DGL cell
is left to run. Metrics: FID, KID and precision/recall with the ``fmnist`` extractor on ``--n``
samples (fmnist studies; the fmnist-cpu study also every ``--checkpoint-every`` steps, for the FID
curves), or the mixture metrics (mog).

The fmnist-cpu study (:data:`CPU_PRESET`) is meant for a 2-core machine: a DCGAN of width
``--width`` at 32 px, ``--kimg`` per cell. Its variants are the baseline, each method alone, DGL's
half-width student with its teacher-less control, all four stacked, DiffAugment and ADA, and, with
``--best M``, each augmentation stacked with method M.

Variants of the fmnist study: baseline, topk, glead, eqgan_sa, dgl at 1/2 and 1/4 width (teacher: the baseline trained
twice as long) with their controls (the same narrow networks without a teacher), the pairs, and
all four. The mog study keeps the variants that apply to the mlp backbone (baseline, topk,
baseline-1/2, dgl-1/2, topk+dgl-1/2).

Results of the studies run before the comparison machinery (``<out>/cells/*/eval.json``) are kept
as they were written; their figures are in benchmarks/RESULTS.md and docs/results.md.
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
        from gancore.files import portable_path

        dgl = {"name": "dgl", "teacher": portable_path(teacher)}
        if args.study == "fmnist-cpu":  # configs/fmnist-dcgan-dgl-half.toml: the student alone for half the run
            dgl.update({"teacher_from_step": raw["train"]["steps"] // 2, "reset_optimizers": "both"})
        raw["plugins"].append(dgl)
    from gancore.config import apply_overrides

    return apply_overrides(raw, [item for item in args.set if _is_plugin_override(item)])


def _is_plugin_override(item: str) -> bool:
    """Whether a ``--set`` item addresses a plugin (``plugins.<name>.<field>=value``)."""
    return item.strip().startswith("plugins.")


def _train(folder: Path, raw: dict) -> None:
    """Train the run in ``folder`` to ``raw``'s ``train.steps``: from scratch, from its newest
    checkpoint, or not at all when it got there already."""
    from gancore.checkpoint import latest_checkpoint, read_state
    from gancore.run import Run

    latest = latest_checkpoint(folder)
    if latest is None:
        Run.build(raw, out_dir=folder).train()
    elif read_state(latest)["step"] < raw["train"]["steps"]:
        Run.resume(folder, steps=raw["train"]["steps"]).train()


def write_variants(args: argparse.Namespace, variants: dict[str, dict], teacher: Path, out: Path) -> list[Path]:
    """Each variant's run file, ``<out>/variants/<slug>.json`` (the seed is the comparison's to set)."""
    from gancore.files import write_json_atomically

    paths = []
    (out / "variants").mkdir(parents=True, exist_ok=True)
    for name, variant in variants.items():
        raw = _cell_config(args, variant, 0, teacher)
        del raw["train"]["seed"]
        path = out / "variants" / f"{_slug(name)}.json"
        write_json_atomically(path, raw)
        paths.append(path)
    return paths


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
            _train(teacher, raw)
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
    """Train the teacher where DGL cells need it, then compare the selected variants (or time them)."""
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
    parser.add_argument("--n", type=int, default=None,
                        help="samples per evaluation (fmnist 10000, fmnist-cpu 2000, mog 10000)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-path", default=None, help="fmnist studies: folder of the Fashion-MNIST idx files")
    parser.add_argument("--checkpoint-every", type=int, default=None,
                        help=f"steps between checkpoints (fmnist-cpu: also the FID curve's points, "
                             f"{CPU_PRESET['checkpoint_every']})")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides for every cell and the teacher, e.g. train.batch=32 train.g_lr=0.001; "
                        "plugins.<name>.<field>=value applies to the selected cells, each of which must use that plugin")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--jobs", type=int, default=1, help="cells trained at once")
    parser.add_argument("--teacher", type=Path, default=None,
                        help="DGL's teacher: a finished run folder to use instead of training one under --out "
                        "(e.g. another study's teacher, for probes)")
    parser.add_argument("--speed", type=int, default=0, metavar="STEPS",
                        help="only time each selected variant (windows of at least STEPS steps, whole R1/path-length "
                        "cycles) and estimate the study's cost")
    args = parser.parse_args(argv)
    cpu = args.study == "fmnist-cpu"
    if args.kimg is None:
        args.kimg = CPU_PRESET["kimg"] if cpu else 500.0
    if args.checkpoint_every is None:
        args.checkpoint_every = CPU_PRESET["checkpoint_every"] if cpu else 1000
    if args.n is None:
        args.n = 2000 if cpu else 10000
    args.set = [*args.set, f"train.eval_samples={args.n}"]
    out = args.out or REPO / "benchmarks" / "quality" / args.study
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
    from gancore.comparison import compare, plan_cells
    from gancore.comparison.cells import cell_status, variants_from

    teacher = args.teacher or out / "teacher"
    if args.teacher is not None and latest_checkpoint(args.teacher) is None:
        parser.error(f"--teacher {args.teacher}: no checkpoint in that folder (a finished run of the study's baseline)")
    files = write_variants(args, variants, teacher, out)
    curve_every = args.checkpoint_every * _base_config(args)["train"]["batch"] / 1000 if cpu else None
    cells, steps = plan_cells(variants_from(files), seeds, out, curve_every)
    students = [c for c in cells if c.variant.name in {_slug(n) for n, v in variants.items() if v["dgl"]}]
    if args.teacher is None and any(cell_status(c, steps[c.variant.name]) != "done" for c in students):
        raw = _base_config(args)
        raw["train"]["steps"] *= 2  # the teacher: the baseline trained twice as long
        print("teacher", flush=True)
        _train(teacher, raw)
    compare(files, seeds=seeds, out=out, jobs=args.jobs, curve_every=curve_every)
    print((out / "report.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
