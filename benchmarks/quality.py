"""Quality study: each method alone, in pairs and all four, on Fashion-MNIST (StyleGAN2) or the 2-D mixture (mlp).

    python benchmarks/quality.py --study fmnist --kimg 500 --seeds 0,1,2 [--cells REGEX] [--device cuda]
    python benchmarks/quality.py --study mog --steps 5000 --seeds 0,1,2
    python benchmarks/quality.py --study fmnist --merge            # the table of every finished cell

Every cell (variant, seed) is a gancore run folder under ``--out`` (default
``benchmarks/quality/<study>``): a cell that was interrupted resumes from its newest checkpoint, a
finished one is skipped, so the study can run one cell (or a few) per session and the folders can
travel between machines. Each finished cell is measured once and the result stored next to it
(``eval.json``): domain FID, KID and precision/recall with the ``fmnist`` extractor on ``--n``
samples (fmnist study), or the mixture metrics on 10k samples (mog study). ``--merge`` prints the
table (mean ± std over seeds) and writes it to ``<out>/table.md``.

Variants: baseline, topk, glead, eqgan_sa, dgl at 1/2 and 1/4 width (teacher: the baseline trained
twice as long, a cell of its own) with their controls (the same narrow networks without a teacher),
the pairs, and all four. The mog study keeps the variants that apply to the mlp backbone (baseline,
topk, baseline-1/2, dgl-1/2, topk+dgl-1/2).
"""

import argparse
import itertools
import json
import math
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from cells import mean_std, train_cell  # noqa: E402

METHODS = {
    "topk": ["topk"],
    "glead": [{"name": "glead", "distance": "mse", "r": 8, "decoder_resolution": 32}],
    "eqgan_sa": ["eqgan_sa"],
}


def _variants(study: str) -> dict[str, dict]:
    """``{name: {"plugins": [...], "width": multiplier, "dgl": bool}}``."""
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
    """The shared settings: configs/fmnist-stylegan2.toml at the study's widths, or the mog demo."""
    from gancore.config import load_raw_config

    if args.study == "mog":
        raw = load_raw_config(REPO / "configs" / "mog25-topk.toml")
        raw["plugins"] = []
        raw["train"].update({"steps": args.steps})
    else:
        raw = load_raw_config(REPO / "configs" / "fmnist-stylegan2.toml")
        raw["backbone"].update({"channel_base": args.channel_base, "channel_max": args.channel_max})
        raw["train"].update({"steps": max(1, round(args.kimg * 1000 / raw["train"]["batch"]))})
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
    if variant["dgl"]:
        raw["plugins"].append({"name": "dgl", "teacher": str(teacher)})
    return raw


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
    if args.study == "mog":
        metrics = dataset.quality_metrics(run.sample(10000, seed=12345))
        result = {"metrics": metrics, "protocol": {"samples": 10000}}
    else:
        evaluation = run.measure(("fid", "kid", "pr"), args.n, 0, "fmnist", dataset, default_cache_dir())
        result = evaluation.as_json()
    result["step"] = run.step
    result["params_G"] = sum(p.numel() for p in run.G_ema.parameters())
    result_path.write_text(json.dumps(result, indent=2) + "\n")
    return result


def merge(out: Path, study: str) -> str:
    """The markdown table of every evaluated cell under ``out``."""
    rows: dict[str, list[dict]] = {}
    for result_path in sorted(out.glob("cells/*/eval.json")):
        variant = result_path.parent.name.rsplit("-seed", 1)[0]
        rows.setdefault(variant, []).append(json.loads(result_path.read_text()))
    if not rows:
        return "no finished cells yet"
    keys = sorted({k for results in rows.values() for r in results for k in r["metrics"]})
    header = "| variant | seeds | G params | " + " | ".join(k.removeprefix("Metrics/") for k in keys) + " |"
    lines = [header, "|" + "---|" * (len(keys) + 3)]
    for variant, results in rows.items():
        cells = [mean_std([r["metrics"].get(k, math.nan) for r in results]) for k in keys]
        lines.append(f"| {variant} | {len(results)} | {results[0].get('params_G', 0):,} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    (out / "table.md").write_text(table + "\n")
    return table


def main(argv: list[str] | None = None) -> int:
    """Train and measure the selected cells, or merge the finished ones."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", choices=["fmnist", "mog"], default="fmnist")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--cells", default="", help="regular expression over variant names")
    parser.add_argument("--kimg", type=float, default=500.0, help="fmnist: training length per cell")
    parser.add_argument("--steps", type=int, default=5000, help="mog: training steps per cell")
    parser.add_argument("--channel-base", type=int, default=8192)
    parser.add_argument("--channel-max", type=int, default=256)
    parser.add_argument("--n", type=int, default=10000, help="fmnist: samples for the metrics")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--checkpoint-every", type=int, default=1000)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--merge", action="store_true")
    args = parser.parse_args(argv)
    out = args.out or REPO / "benchmarks" / "quality" / args.study
    if args.merge:
        print(merge(out, args.study))
        return 0
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    variants = {k: v for k, v in _variants(args.study).items() if re.search(args.cells, k)}
    teacher = out / "cells" / "teacher"
    if any(v["dgl"] for v in variants.values()):
        raw = _base_config(args)
        raw["train"]["steps"] *= 2  # the teacher: the baseline trained twice as long
        print("teacher", flush=True)
        train_cell(teacher, raw)
    for name, variant in variants.items():
        for seed in seeds:
            folder = out / "cells" / f"{_slug(name)}-seed{seed}"
            print(f"{name}, seed {seed}", flush=True)
            train_cell(folder, _cell_config(args, variant, seed, teacher))
            result = _evaluate(folder, args)
            print("  " + ", ".join(f"{k.removeprefix('Metrics/')} {v:.4g}" for k, v in result["metrics"].items()),
                  flush=True)
    print(merge(out, args.study))
    return 0


if __name__ == "__main__":
    sys.exit(main())
