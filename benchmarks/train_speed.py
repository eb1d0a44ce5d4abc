"""Training throughput of the core loop: steps and images per second for the bundled backbones.

    python benchmarks/train_speed.py [--device cpu|cuda] [--steps 50] [--repeats 3] [--cases REGEX]

Each case builds a run in memory, warms up, then times ``--repeats`` windows of ``--steps`` steps
and reports the median. Cases: the quick-start MLP on mog25 (batch 256), dcgan on 32 px synthetic
images (batch 64) and a narrow StyleGAN2 at 32 px (batch 32), each with lazy R1 on (interval 16),
and the image backbones again with method plugins (their overhead).
"""

import argparse
import platform
import re
import statistics
import time

import torch

from gancore.run import Run

CASES = {
    "mlp / mog25 / batch 256": {
        "backbone": {"name": "mlp"},
        "data": {"name": "mog25"},
        "train": {"batch": 256, "r1_gamma": 0.1},
    },
    "dcgan 32px / synthetic / batch 64": {
        "backbone": {"name": "dcgan", "width": 32},
        "data": {"name": "synthetic-images", "resolution": 32, "channels": 3, "num_samples": 4096},
        "train": {"batch": 64, "r1_gamma": 0.1},
    },
    "stylegan2 32px (channel_max 64) / synthetic / batch 32": {
        "backbone": {"name": "stylegan2", "channel_base": 2048, "channel_max": 64, "z_dim": 128, "w_dim": 128},
        "data": {"name": "synthetic-images", "resolution": 32, "channels": 3, "num_samples": 4096},
        "train": {"batch": 32, "r1_gamma": 0.1, "d_reg_interval": 16, "pl_weight": 2.0, "g_reg_interval": 4},
    },
}
#: The same backbones with method plugins: their cost per step.
for _name, _plugins in (
    ("glead (r 8)", [{"name": "glead", "distance": "mse", "r": 8}]),
    ("eqgan_sa", ["eqgan_sa"]),
    ("topk", ["topk"]),
    ("ADA (p 0.5)", [{"name": "augment", "p": 0.5, "adaptive": False}]),
    ("DiffAugment", [{"name": "augment", "mode": "diffaugment"}]),
):
    for _case in ("dcgan 32px / synthetic / batch 64", "stylegan2 32px (channel_max 64) / synthetic / batch 32"):
        CASES[f"{_case} + {_name}"] = {**CASES[_case], "plugins": _plugins}


def time_case(raw: dict, device: str, steps: int, repeats: int) -> tuple[float, float]:
    """Median seconds per step and images per second of one case."""
    raw = {**raw, "train": {**raw["train"], "device": device, "progress": False, "steps": 10**9}}
    run = Run.build(raw)
    for _ in range(5):
        run.trainer.step()
    windows = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            run.trainer.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        windows.append((time.perf_counter() - start) / steps)
    per_step = statistics.median(windows)
    return per_step, run.config.train.batch / per_step


def main() -> None:
    """Run every case and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", default="", help="only the cases whose name matches this regular expression")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, device {args.device}")
    print("| case | ms / step | images / s |")
    print("|---|---|---|")
    for name, raw in CASES.items():
        if not re.search(args.cases, name):
            continue
        per_step, images = time_case(raw, args.device, args.steps, args.repeats)
        print(f"| {name} | {per_step * 1000:.1f} | {images:,.0f} |")


if __name__ == "__main__":
    main()
