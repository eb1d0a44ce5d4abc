"""The GPU check in one command: install, GPU tests, op timings, training throughput; figures into one folder.

    python benchmarks/gpu_check.py OUT              # on a machine with one NVIDIA GPU and its own torch
    python benchmarks/gpu_check.py OUT --dry-run    # every step at tiny size on the CPU, first

Run from the repository root. The steps, each a subprocess with its own time budget (a step that
overruns is cut and reported, and the next one still runs):

1. ``install``: gancore and every plugin with ``pip install --no-deps --no-build-isolation``, so the
   machine's torch is never touched; pure-Python dependencies it lacks travel as wheels in
   ``--wheels`` (default ``.whl``), installed the same way first. The dry run asks pip for a plan
   only (``--dry-run``).
2. ``gpu-tests``: ``pytest -m gpu`` (kernel parity in fp32 and bf16, gradients and second-order
   gradients, odd shapes, a training run with kernels, bf16 and torch.compile); on the CPU they
   are collected and skipped.
3. ``ops``: benchmarks/bench_ops.py, each op reference vs Triton, forward + backward, at the 256 px
   StyleGAN2 shapes (dry run: the reference against itself, on the CPU, at tiny shapes).
4. ``throughput``: benchmarks/throughput.py, one subprocess per case so that a slow case (a
   compile) cannot take the others' time: StyleGAN2 at 256 px batch 32 and 64 px batch 64 with
   reference ops fp32, kernels fp32, kernels bf16, kernels bf16 + compile, kernels bf16 in
   channels_last; then at 64 px each method plugin alone and all four.

Writes into OUT: one log per step (``<step>.log``), ``figures.json`` (every figure, the versions,
each step's status and seconds) and ``summary.md`` (the tables), as soon as each step ends.
"""

import argparse
import datetime
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: The plugins installed with gancore, in dependency order.
PLUGINS = ("gancore-dcgan", "gancore-stylegan2", "gancore-cuda-ops", "gancore-topk", "gancore-glead",
           "gancore-eqgan-sa", "gancore-dgl", "gancore-augment")
#: Seconds each step may take on the GPU (about 9 minutes in all, inside the device's 10-minute limit).
BUDGET = {"install": 60, "gpu-tests": 120, "ops": 60, "throughput": 300}
#: How much longer a dry run's op timings and throughput cases may take: the CPU runs them, often beside other work.
DRY_RUN_SLOWDOWN = 6
#: Seconds per throughput case (a compile case gets three times as much).
CASE_BUDGET = 20
#: Leave the throughput step when less than this remains of its budget.
CASE_MIN_LEFT = 8


class Check:
    """The state of one check: where it writes, what it found so far."""

    def __init__(self, out: Path, dry_run: bool):
        self.out = out
        self.dry_run = dry_run
        self.figures: dict = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "dry_run": dry_run,
                              "python": platform.python_version(), "steps": {}}
        self.notes: list[str] = []

    def run(self, step: str, command: list[str], budget: float, log_name: str | None = None) -> tuple[str, str]:
        """Run ``command`` with a time budget; returns (status, output). The output goes to ``<log>.log``."""
        log = self.out / f"{log_name or step}.log"
        started = time.perf_counter()
        # A session of its own, so that a cut kills the whole process group (pytest workers, compilers).
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            output, _ = process.communicate(timeout=budget)
            status = "ok" if process.returncode == 0 else f"failed (exit {process.returncode})"
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
            status = f"cut at its budget of {budget:.0f} s"
        seconds = time.perf_counter() - started
        log.write_text(f"$ {' '.join(command)}\n{output}\n[{status}; {seconds:.1f} s]\n")
        entry = self.figures["steps"].setdefault(step, {"seconds": 0.0, "status": []})
        entry["seconds"] = round(entry["seconds"] + seconds, 1)
        entry["status"].append(f"{log_name or step}: {status}")
        print(f"[{step}] {log_name or ''} {status} in {seconds:.1f} s", flush=True)
        return status, output

    def save(self) -> None:
        """Write figures.json and summary.md (after every step: a cut run keeps what it measured)."""
        (self.out / "figures.json").write_text(json.dumps(self.figures, indent=2) + "\n")
        (self.out / "summary.md").write_text(summary(self.figures, self.notes))


def versions() -> dict:
    """torch, Triton, CUDA and the GPU, as this machine reports them."""
    import torch

    found = {"torch": torch.__version__, "cuda": torch.version.cuda, "gpu": None, "triton": None}
    if torch.cuda.is_available():
        found["gpu"] = torch.cuda.get_device_name()
    try:
        import triton

        found["triton"] = triton.__version__
    except ImportError:
        pass
    return found


def step_install(check: Check, wheels: Path) -> None:
    """pip install gancore, its plugins and the carried wheels, never touching torch."""
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "-q"]
    if check.dry_run:
        pip.append("--dry-run")
    carried = sorted(str(p) for p in wheels.glob("*.whl")) if wheels.is_dir() else []
    if carried:
        check.run("install", [*pip, *carried], BUDGET["install"] / 3, "install-wheels")
    check.run("install", [*pip, ".", *(f"./plugins/{p}" for p in PLUGINS)], BUDGET["install"] * 2 / 3)


def step_gpu_tests(check: Check) -> None:
    """pytest -m gpu; counts of passed, failed and skipped tests."""
    xml = check.out / "gpu-tests.xml"
    status, output = check.run("gpu-tests", [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-rfEs", "-p",
                                             "no:cacheprovider", f"--junitxml={xml}"], BUDGET["gpu-tests"])
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|skipped|error|errors|deselected)", output)}
    check.figures["gpu_tests"] = {"status": status, **counts}


def step_ops(check: Check) -> None:
    """benchmarks/bench_ops.py with --json."""
    path = check.out / "ops.json"
    command = [sys.executable, "benchmarks/bench_ops.py", "--json", str(path)]
    if check.dry_run:
        command += ["--device", "cpu", "--tiny", "--impl", "ref", "--repeats", "3"]
    status, _ = check.run("ops", command, BUDGET["ops"] * (DRY_RUN_SLOWDOWN if check.dry_run else 1))
    check.figures["ops"] = {"status": status, **(json.loads(path.read_text()) if path.is_file() else {})}


def step_throughput(check: Check) -> None:
    """benchmarks/throughput.py, one case per subprocess, until the step's budget is spent."""
    common = [sys.executable, "benchmarks/throughput.py"]
    if check.dry_run:
        common += ["--device", "cpu", "--tiny", "--compile-backend", "aot_eager", "--kimg", "0.008", "--warmup-steps", "1"]
    else:
        common += ["--kimg", "1", "--warmup-steps", "10"]
    listed = subprocess.run([*common, "--list"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split("\n")
    names = [n for n in listed if n.strip()]
    results, skipped = [], []
    check.figures["throughput"] = {"cases": results, "not_run": skipped}  # filled as the cases run
    deadline = time.perf_counter() + BUDGET["throughput"]
    for index, name in enumerate(names):
        left = deadline - time.perf_counter()
        if left < CASE_MIN_LEFT:
            skipped.append(name)
            continue
        budget = min(left, CASE_BUDGET * (3 if "compile" in name else 1) * (DRY_RUN_SLOWDOWN if check.dry_run else 1))
        path = check.out / f"throughput-case-{index:02d}.json"
        status, _ = check.run("throughput", [*common, "--cases", f"^{re.escape(name)}$", "--json", str(path)], budget,
                              f"throughput-{index:02d}")
        row = {"case": name, "status": status}
        if path.is_file():
            row.update(json.loads(path.read_text())["results"][0])
            path.unlink()
        results.append(row)
        check.save()


def summary(figures: dict, notes: list[str]) -> str:
    """The markdown report: versions, step statuses, the op table and the throughput table."""
    v = figures.get("versions", {})
    lines = [f"# GPU check{' (dry run on the CPU)' if figures['dry_run'] else ''}, {figures['date']}", "",
             f"GPU: {v.get('gpu') or 'none'}; torch {v.get('torch')}, CUDA {v.get('cuda')}, Triton {v.get('triton')}, "
             f"Python {figures['python']}.", "", "| step | seconds | status |", "|---|---|---|"]
    for step, entry in figures["steps"].items():
        lines.append(f"| {step} | {entry['seconds']} | {'; '.join(entry['status'])} |")
    tests = figures.get("gpu_tests")
    if tests:
        lines += ["", "GPU tests: " + ", ".join(f"{k} {v}" for k, v in tests.items() if k != "status")]
    ops = figures.get("ops", {}).get("ops")
    if ops:
        lines += ["", "| op | case | reference ms | kernel ms | speed-up |", "|---|---|---|---|---|"]
        lines += [f"| {o['op']} | {o['case']} | {o['reference_ms']:.3f} | {o['kernel_ms']:.3f} | "
                  f"{o['reference_ms'] / o['kernel_ms']:.2f}x |" for o in ops]
    step = figures.get("ops", {}).get("step")
    if step:
        lines += ["", f"Whole StyleGAN2 step ({step['case']}): reference ops {step['reference_s_per_kimg']:.2f} s/kimg, "
                      f"kernels {step['kernel_s_per_kimg']:.2f} s/kimg."]
    throughput = figures.get("throughput")
    if throughput:
        lines += ["", "| case | s/kimg | images/s | peak GiB | status |", "|---|---|---|---|---|"]
        for row in throughput["cases"]:
            if "s_per_kimg" in row:
                peak = "n/a" if row["peak_gib"] is None else f"{row['peak_gib']:.1f}"
                lines.append(f"| {row['case']} | {row['s_per_kimg']:.2f} | {row['images_per_s']:.0f} | {peak} | "
                             f"{row['status']} |")
            else:
                lines.append(f"| {row['case']} | | | | {row['status']} |")
        if throughput["not_run"]:
            lines += ["", "Not run (the step's budget was spent): " + ", ".join(throughput["not_run"])]
    if notes:
        lines += ["", *[f"- {note}" for note in notes]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run every step; exit 0 when each step ran to its end (a failing test or case is reported, not fatal)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the logs, figures.json and summary.md")
    parser.add_argument("--dry-run", action="store_true", help="every step at tiny size on the CPU")
    parser.add_argument("--wheels", type=Path, default=REPO / ".whl", help="folder of wheels to install first")
    parser.add_argument("--steps", default="install,gpu-tests,ops,throughput", help="the steps to run, in order")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    check = Check(args.out.resolve(), args.dry_run)
    check.figures["versions"] = versions()
    if not check.figures["versions"]["gpu"]:
        if not args.dry_run:
            print("gpu_check.py: no CUDA device; run with --dry-run on the CPU", file=sys.stderr)
            return 2
        check.notes.append("Dry run: no CUDA device, so the GPU tests skip, the ops are timed reference against "
                           "reference, the throughput cases use the reference ops (the Triton kernels need CUDA), "
                           "tiny sizes and the aot_eager compile backend; no figure here is a GPU figure.")
    steps = {"install": lambda: step_install(check, args.wheels), "gpu-tests": lambda: step_gpu_tests(check),
             "ops": lambda: step_ops(check), "throughput": lambda: step_throughput(check)}
    for name in (s for s in args.steps.split(",") if s):
        steps[name]()
        check.save()
    print(f"wrote {check.out / 'summary.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
