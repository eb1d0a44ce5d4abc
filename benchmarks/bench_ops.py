"""Op and training-step timings of the reference ops against a kernel plugin's (default: gancore-cuda-ops' ``triton``).

    python benchmarks/bench_ops.py [--impl triton] [--repeats 50] [--step-batch 32] [--skip-step]

Needs a CUDA device. For each op at the shapes a 256 px StyleGAN2 step uses (batch 32,
channel_base 16384, channel_max 512), forward and forward+backward are timed with CUDA events after
warm-up, and the medians printed as a markdown table with the speed-up. Then a whole StyleGAN2
training step at 256 px (all four phases) with the kernels and with the reference ops.
"""

import argparse
import contextlib
import statistics

import torch

from gancore import ops
from gancore.ops import REGISTRY
from gancore.plugins import PluginManager


def _median_ms(fn, repeats: int, warmup: int = 10) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def _cases(batch: int) -> list[tuple[str, str, callable]]:
    """(op, description, make(impl) -> callable running forward and backward)."""
    cases = []
    f = ops.setup_filter([1, 3, 3, 1], device="cuda")
    for res in (8, 32, 128, 256):
        channels = min(16384 // res, 512)
        x = torch.randn(batch, channels, res, res, device="cuda", requires_grad=True)
        b = torch.randn(channels, device="cuda", requires_grad=True)

        def bias_act(impl, x=x, b=b):
            return lambda: ops.bias_act(x, b, act="lrelu", clamp=256, impl=impl).sum().backward()

        cases.append(("bias_act", f"lrelu+clamp [{batch}, {channels}, {res}, {res}]", bias_act))
        if res >= 8:
            y = torch.randn(batch, channels, res, res, device="cuda", requires_grad=True)

            def down(impl, y=y):
                return lambda: ops.downsample2d(y, f, impl=impl).sum().backward()

            cases.append(("upfirdn2d", f"down 2 [{batch}, {channels}, {res}, {res}]", down))
        img = torch.randn(batch, 3, res // 2, res // 2, device="cuda", requires_grad=True)

        def up(impl, img=img):
            return lambda: ops.upsample2d(img, f, impl=impl).sum().backward()

        cases.append(("upfirdn2d", f"up 2 (ToRGB skip) [{batch}, 3, {res // 2}, {res // 2}]", up))
    return cases


def _step_seconds_per_kimg(impl_present: bool, batch: int, steps: int) -> float:
    from gancore.run import Run

    with contextlib.nullcontext() if impl_present else REGISTRY.reference_only():
        raw = {
            "backbone": {"name": "stylegan2", "channel_base": 16384, "channel_max": 512},
            "data": {"name": "synthetic-images", "resolution": 256, "channels": 3, "num_samples": 1024},
            "train": {"batch": batch, "device": "cuda", "progress": False, "r1_gamma": 1.0, "pl_weight": 2.0,
                      "steps": 10**9},
        }
        run = Run.build(raw)
        for _ in range(5):
            run.trainer.step()
        torch.cuda.synchronize()
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(steps):
            run.trainer.step()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / 1000 / (steps * batch / 1000)


def main() -> None:
    """Print the op table and the step comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", default="triton")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--step-batch", type=int, default=32)
    parser.add_argument("--step-count", type=int, default=32, help="timed training steps (a multiple of 16)")
    parser.add_argument("--skip-step", action="store_true")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("bench_ops.py needs a CUDA device (the kernels run on the GPU only)")
    PluginManager()  # registers installed kernel plugins
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, impl {args.impl!r}")
    print("| op | case | reference ms | kernel ms | speed-up |")
    print("|---|---|---|---|---|")
    for op, name, make in _cases(args.step_batch):
        ref = _median_ms(make("ref"), args.repeats)
        fast = _median_ms(make(args.impl), args.repeats)
        print(f"| {op} | {name} (fwd+bwd) | {ref:.3f} | {fast:.3f} | {ref / fast:.2f}x |")
    if not args.skip_step:
        with_kernels = _step_seconds_per_kimg(True, args.step_batch, args.step_count)
        reference = _step_seconds_per_kimg(False, args.step_batch, args.step_count)
        print(f"\nStyleGAN2 256 px, batch {args.step_batch}, all phases: reference ops {reference:.2f} s/kimg, "
              f"kernels {with_kernels:.2f} s/kimg ({reference / with_kernels:.2f}x)")


if __name__ == "__main__":
    main()
