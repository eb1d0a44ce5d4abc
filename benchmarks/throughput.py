"""Training throughput and peak GPU memory of StyleGAN2 steps: precision, torch.compile, kernels, method plugins.

    python benchmarks/throughput.py [--cases REGEX] [--kimg 2] [--warmup-steps 20]

Needs a CUDA device. Measured like NVIDIA's training loop reports it: seconds per thousand real
images shown to D, every phase included (lazy R1 every 16 steps, path length every 4), after a
warm-up. Cases: 256 px at batch 32 and 64 px at batch 64 (channel_base 32768 and channel_max 512,
the official stylegan2 config), fp32 and bf16, with and without torch.compile and the kernel
plugin's ops, and each method plugin alone (and all four, with and without their weights) at
256 px fp32. Prints a markdown table.
"""

import argparse
import contextlib
import re
import tempfile
import time
from pathlib import Path

import torch

from gancore.ops import REGISTRY
from gancore.plugins import PluginManager
from gancore.run import Run


def _config(resolution: int, batch: int, precision: str, compile_: bool, plugins: list) -> dict:
    return {
        "plugins": plugins,
        "backbone": {"name": "stylegan2", "channel_base": 32768, "channel_max": 512},
        "data": {"name": "synthetic-images", "resolution": resolution, "channels": 3, "num_samples": 4096},
        "train": {
            "batch": batch, "device": "cuda", "progress": False, "precision": precision, "compile": compile_,
            "r1_gamma": 1.0, "d_reg_interval": 16, "pl_weight": 2.0, "g_reg_interval": 4, "steps": 10**9,
        },
    }


def _measure(raw: dict, kimg: float, warmup_steps: int, kernels: bool) -> tuple[float, float]:
    """(seconds per kimg, peak GiB) of steady-state training."""
    with contextlib.nullcontext() if kernels else REGISTRY.reference_only():
        run = Run.build(raw)
        for _ in range(warmup_steps):
            run.trainer.step()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        steps = max(16, round(kimg * 1000 / run.config.train.batch / 16) * 16)
        start = time.perf_counter()
        for _ in range(steps):
            run.trainer.step()
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    return seconds / (steps * run.config.train.batch / 1000), torch.cuda.max_memory_allocated() / 2**30


def _teacher(folder: Path) -> str:
    """A full-width 256 px teacher checkpoint for the DGL cases (trained one step: only its cost matters)."""
    raw = _config(256, 32, "fp32", False, [])
    raw["train"]["steps"] = 1
    Run.build(raw, out_dir=folder / "teacher").train()
    return str(folder / "teacher")


def _cases(teacher: str) -> dict[str, tuple[dict, bool]]:
    cases = {}
    for resolution, batch in ((256, 32), (64, 64)):
        for precision in ("fp32", "bf16"):
            for compile_ in (False, True):
                for kernels in (False, True):
                    name = (f"{resolution}px b{batch} {precision}{' compile' if compile_ else ''}"
                            f"{' kernels' if kernels else ' ref-ops'}")
                    cases[name] = (_config(resolution, batch, precision, compile_, []), kernels)
    methods = {
        "topk": ["topk"],
        "glead": [{"name": "glead", "distance": "mse", "r": 64}],
        "eqgan_sa": ["eqgan_sa"],
        "dgl": [{"name": "dgl", "teacher": teacher}],
    }
    for name, plugins in methods.items():
        cases[f"256px b32 fp32 kernels + {name}"] = (_config(256, 32, "fp32", False, plugins), True)
    everything = [p for plugins in methods.values() for p in plugins]
    cases["256px b32 fp32 kernels + all four"] = (_config(256, 32, "fp32", False, everything), True)
    inert = ["topk", {"name": "glead", "distance": "mse", "r": 64, "lambda_real": 0.0, "lambda_fake": 0.0},
             {"name": "eqgan_sa", "sel": False, "align": False}, {"name": "dgl", "teacher": teacher, "weight": 0.0}]
    cases["256px b32 fp32 kernels + all four inert"] = (_config(256, 32, "fp32", False, inert), True)
    return cases


def main() -> None:
    """Run the selected cases and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="", help="regular expression selecting cases by name")
    parser.add_argument("--kimg", type=float, default=2.0, help="thousands of images timed per case")
    parser.add_argument("--warmup-steps", type=int, default=20)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("throughput.py needs a CUDA device")
    PluginManager()
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    print("| case | s/kimg | images/s | peak GiB |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        teacher = _teacher(Path(tmp))
        for name, (raw, kernels) in _cases(teacher).items():
            if not re.search(args.cases, name):
                continue
            seconds, peak = _measure(raw, args.kimg, args.warmup_steps, kernels)
            print(f"| {name} | {seconds:.2f} | {1000 / seconds:.0f} | {peak:.1f} |", flush=True)


if __name__ == "__main__":
    main()
