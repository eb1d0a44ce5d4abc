"""Training throughput and peak GPU memory of StyleGAN2 steps: precision, torch.compile, kernels, memory format, method plugins.

    python benchmarks/throughput.py [--cases REGEX] [--kimg 2] [--warmup-steps 20] [--json FILE]
    python benchmarks/throughput.py --list                                    # the case names
    python benchmarks/throughput.py --device cpu --tiny --compile-backend aot_eager   # a dry run

Measured like NVIDIA's training loop reports it: seconds per thousand real images shown to D,
every phase included (lazy R1 every 16 steps, path length every 4), after a warm-up; also images/s
and peak GPU memory. Cases (channel_base 32768, channel_max 512, the official stylegan2 config):
at 256 px batch 32 and 64 px batch 64, reference ops fp32, kernels fp32, kernels bf16, kernels bf16
+ torch.compile and kernels bf16 in channels_last; then at 64 px, kernels bf16, each method plugin
alone and all four. ``--tiny`` shrinks every case (32 and 16 px, batch 4, channel_max 32) for a dry
run on the CPU, where the kernels are not available and the reference ops run instead. Prints a
markdown table; ``--json`` also writes the figures.
"""

import argparse
import contextlib
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import torch

from gancore.ops import REGISTRY
from gancore.plugins import PluginManager
from gancore.run import Run

#: (resolution, batch) of the two sizes, full and ``--tiny``.
SIZES = {False: ((256, 32), (64, 64)), True: ((32, 4), (16, 4))}
#: The method plugins, each alone and all four together.
METHODS = ("topk", "glead", "eqgan_sa", "dgl")


def _config(resolution: int, batch: int, precision: str, compile_: bool, plugins: list, args: argparse.Namespace) -> dict:
    return {
        "plugins": plugins,
        "backbone": {"name": "stylegan2", "channel_base": 32768, "channel_max": 32 if args.tiny else 512,
                     "mbstd_group_size": 4},
        "data": {"name": "synthetic-images", "resolution": resolution, "channels": 3, "num_samples": 4096},
        "train": {
            "batch": batch, "device": args.device, "progress": False, "precision": precision, "compile": compile_,
            "compile_backend": args.compile_backend, "r1_gamma": 1.0, "d_reg_interval": 16, "pl_weight": 2.0,
            "g_reg_interval": 4, "steps": 10**9, "tensorboard": False,
        },
    }


def _method_plugins(name: str, teacher: str, resolution: int) -> list:
    return {
        "topk": ["topk"],
        "glead": [{"name": "glead", "distance": "mse", "r": max(4, resolution // 4)}],
        "eqgan_sa": ["eqgan_sa"],
        "dgl": [{"name": "dgl", "teacher": teacher}],
    }[name]


def cases(args: argparse.Namespace, teacher: str) -> dict[str, tuple[dict, bool, bool]]:
    """``name -> (raw config, kernels on, channels_last)``, in the order they run."""
    found = {}
    for resolution, batch in SIZES[args.tiny]:
        size = f"{resolution}px b{batch}"
        found[f"{size} ref-ops fp32"] = (_config(resolution, batch, "fp32", False, [], args), False, False)
        found[f"{size} kernels fp32"] = (_config(resolution, batch, "fp32", False, [], args), True, False)
        found[f"{size} kernels bf16"] = (_config(resolution, batch, "bf16", False, [], args), True, False)
        found[f"{size} kernels bf16 compile"] = (_config(resolution, batch, "bf16", True, [], args), True, False)
        found[f"{size} kernels bf16 channels_last"] = (_config(resolution, batch, "bf16", False, [], args), True, True)
    resolution, batch = SIZES[args.tiny][1]
    for name in (*METHODS, "all four"):
        plugins = [p for m in (METHODS if name == "all four" else (name,)) for p in _method_plugins(m, teacher, resolution)]
        found[f"{resolution}px b{batch} kernels bf16 + {name}"] = (
            _config(resolution, batch, "bf16", False, plugins, args), True, False)
    return found


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(raw: dict, kernels: bool, channels_last: bool, args: argparse.Namespace) -> dict:
    """Seconds per kimg, images/s and peak GiB (GPU only) of steady-state training."""
    with contextlib.nullcontext() if kernels else REGISTRY.reference_only():
        run = Run.build(raw)
        if channels_last:
            for net in (run.G, run.D, run.G_ema):
                net.to(memory_format=torch.channels_last)
        for _ in range(args.warmup_steps):
            run.trainer.step()
        _synchronize(run.device)
        if run.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(run.device)
        # Whole lazy-regularisation cycles (16 steps), except in a dry run, where any count proves the path.
        cycle = 1 if args.tiny else 16
        steps = max(cycle, round(args.kimg * 1000 / run.config.train.batch / cycle) * cycle)
        start = time.perf_counter()
        for _ in range(steps):
            run.trainer.step()
        _synchronize(run.device)
        seconds = time.perf_counter() - start
    images = steps * run.config.train.batch
    peak = torch.cuda.max_memory_allocated(run.device) / 2**30 if run.device.type == "cuda" else None
    return {"s_per_kimg": seconds / (images / 1000), "images_per_s": images / seconds, "peak_gib": peak,
            "timed_steps": steps, "kernels_available": kernels and run.device.type == "cuda"}


def _teacher(folder: Path, args: argparse.Namespace) -> str:
    """A full-width teacher checkpoint for the DGL cases at the method cases' size (one step: only its cost matters)."""
    resolution, batch = SIZES[args.tiny][1]
    raw = _config(resolution, batch, "fp32", False, [], args)
    raw["train"]["steps"] = 1
    Run.build(raw, out_dir=folder / "teacher").train()
    return str(folder / "teacher")


def main(argv: list[str] | None = None) -> int:
    """Run the selected cases and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="", help="regular expression selecting cases by name")
    parser.add_argument("--kimg", type=float, default=2.0, help="thousands of images timed per case")
    parser.add_argument("--warmup-steps", type=int, default=20)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="dry-run sizes (32 and 16 px, batch 4, channel_max 32)")
    parser.add_argument("--compile-backend", default="inductor")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--list", action="store_true", help="print the case names and stop")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(cases(args, "<teacher>")))
        return 0
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("throughput.py: no CUDA device (use --device cpu --tiny for a dry run)")
    PluginManager()
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(f"torch {torch.__version__}, {device_name}")
    print("| case | s/kimg | images/s | peak GiB |")
    print("|---|---|---|---|")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        teacher = _teacher(Path(tmp), args)
        for name, (raw, kernels, channels_last) in cases(args, teacher).items():
            if not re.search(args.cases, name):
                continue
            figures = {"case": name, **measure(raw, kernels, channels_last, args)}
            results.append(figures)
            peak = "n/a" if figures["peak_gib"] is None else f"{figures['peak_gib']:.1f}"
            print(f"| {name} | {figures['s_per_kimg']:.2f} | {figures['images_per_s']:.0f} | {peak} |", flush=True)
            if args.json:
                args.json.write_text(json.dumps({"torch": torch.__version__, "device": device_name,
                                                 "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
