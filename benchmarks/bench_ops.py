"""Op and training-step timings of the reference ops against a kernel plugin's (default: gancore-cuda-ops' ``triton``).

    python benchmarks/bench_ops.py [--impl triton] [--repeats 50] [--step-batch 32] [--skip-step] [--json FILE]
    python benchmarks/bench_ops.py --device cpu --tiny --impl ref        # a dry run on the CPU

For each op at the shapes a 256 px StyleGAN2 step uses (batch 32, channel_base 16384,
channel_max 512), forward + backward is timed after warm-up (CUDA events on a GPU), and the medians
printed as a markdown table with the speed-up. Then a whole StyleGAN2 training step at 256 px (all
four phases) with the kernels and with the reference ops. ``--tiny`` shrinks the shapes (batch 2,
channel_max 16, up to 32 px) for a dry run; ``--json`` also writes the figures.
"""

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from gancore import ops
from gancore.ops import REGISTRY
from gancore.plugins import PluginManager


def _median_ms(fn, repeats: int, device: torch.device, warmup: int = 10) -> float:
    for _ in range(warmup):
        fn()
    _synchronize(device)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end))
        else:
            start_s = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start_s) * 1000)
    return statistics.median(times)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cases(batch: int, device: torch.device, tiny: bool) -> list[tuple[str, str, callable]]:
    """(op, description, make(impl) -> callable running forward and backward)."""
    cases = []
    f = ops.setup_filter([1, 3, 3, 1], device=device)
    channel_max = 16 if tiny else 512
    for res in (8, 32) if tiny else (8, 32, 128, 256):
        channels = min(16384 // res, channel_max)
        x = torch.randn(batch, channels, res, res, device=device, requires_grad=True)
        b = torch.randn(channels, device=device, requires_grad=True)

        def bias_act(impl, x=x, b=b):
            return lambda: ops.bias_act(x, b, act="lrelu", clamp=256, impl=impl).sum().backward()

        cases.append(("bias_act", f"lrelu+clamp [{batch}, {channels}, {res}, {res}]", bias_act))
        y = torch.randn(batch, channels, res, res, device=device, requires_grad=True)

        def down(impl, y=y):
            return lambda: ops.downsample2d(y, f, impl=impl).sum().backward()

        cases.append(("upfirdn2d", f"down 2 [{batch}, {channels}, {res}, {res}]", down))
        img = torch.randn(batch, 3, res // 2, res // 2, device=device, requires_grad=True)

        def up(impl, img=img):
            return lambda: ops.upsample2d(img, f, impl=impl).sum().backward()

        cases.append(("upfirdn2d", f"up 2 (ToRGB skip) [{batch}, 3, {res // 2}, {res // 2}]", up))
    return cases


def _step_seconds_per_kimg(impl_present: bool, batch: int, steps: int, device: str, tiny: bool) -> float:
    from gancore.run import Run

    with contextlib.nullcontext() if impl_present else REGISTRY.reference_only():
        raw = {
            "backbone": {"name": "stylegan2", "channel_base": 16384, "channel_max": 16 if tiny else 512},
            "data": {"name": "synthetic-images", "resolution": 32 if tiny else 256, "channels": 3, "num_samples": 1024},
            "train": {"batch": batch, "device": device, "progress": False, "r1_gamma": 1.0, "pl_weight": 2.0,
                      "steps": 10**9, "tensorboard": False},
        }
        run = Run.build(raw)
        for _ in range(5):
            run.trainer.step()
        _synchronize(run.device)
        start = time.perf_counter()
        for _ in range(steps):
            run.trainer.step()
        _synchronize(run.device)
        return (time.perf_counter() - start) / (steps * batch / 1000)


def main(argv: list[str] | None = None) -> int:
    """Print the op table and the step comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", default="triton")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--step-batch", type=int, default=32)
    parser.add_argument("--step-count", type=int, default=32, help="timed training steps (a multiple of 16)")
    parser.add_argument("--skip-step", action="store_true")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="dry-run shapes (batch 2, channel_max 16, up to 32 px)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_ops.py: no CUDA device (the kernels run on the GPU only; --device cpu --tiny --impl ref "
                         "is a dry run)")
    PluginManager()  # registers installed kernel plugins
    batch = 2 if args.tiny else args.step_batch
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"torch {torch.__version__}, {device_name}, impl {args.impl!r}")
    print("| op | case | reference ms | kernel ms | speed-up |")
    print("|---|---|---|---|---|")
    figures: dict = {"torch": torch.__version__, "device": device_name, "impl": args.impl, "ops": []}
    for op, name, make in _cases(batch, device, args.tiny):
        ref = _median_ms(make("ref"), args.repeats, device)
        fast = _median_ms(make(args.impl), args.repeats, device)
        figures["ops"].append({"op": op, "case": f"{name} (fwd+bwd)", "reference_ms": ref, "kernel_ms": fast})
        print(f"| {op} | {name} (fwd+bwd) | {ref:.3f} | {fast:.3f} | {ref / fast:.2f}x |", flush=True)
    if not args.skip_step:
        steps = 16 if args.tiny else args.step_count
        with_kernels = _step_seconds_per_kimg(True, batch, steps, args.device, args.tiny)
        reference = _step_seconds_per_kimg(False, batch, steps, args.device, args.tiny)
        case = f"{32 if args.tiny else 256} px, batch {batch}, all phases"
        figures["step"] = {"case": case, "reference_s_per_kimg": reference, "kernel_s_per_kimg": with_kernels}
        print(f"\nStyleGAN2 {case}: reference ops {reference:.2f} s/kimg, "
              f"kernels {with_kernels:.2f} s/kimg ({reference / with_kernels:.2f}x)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
