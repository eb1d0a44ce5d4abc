"""benchmarks/gpu_check.py: the dry run on the CPU goes through every step, and a step over budget is cut."""

import json
import sys

from benchmark_scripts import load_benchmark


def test_a_step_over_its_budget_is_cut_and_the_check_goes_on(tmp_path):
    gpu_check = load_benchmark("gpu_check")
    check = gpu_check.Check(tmp_path, dry_run=True)
    status, _ = check.run("slow", [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"], 1.0)
    assert status == "cut at its budget of 1 s"
    assert "started" in (tmp_path / "slow.log").read_text()
    status, output = check.run("next", [sys.executable, "-c", "print('ran')"], 30.0)
    assert status == "ok" and "ran" in output
    check.save()
    figures = json.loads((tmp_path / "figures.json").read_text())
    assert figures["steps"]["slow"]["status"] == ["slow: cut at its budget of 1 s"]
    assert "| slow |" in (tmp_path / "summary.md").read_text()


def test_the_dry_run_goes_through_every_step(tmp_path):
    gpu_check = load_benchmark("gpu_check")
    assert gpu_check.main([str(tmp_path), "--dry-run", "--wheels", str(tmp_path / "no-wheels")]) == 0
    figures = json.loads((tmp_path / "figures.json").read_text())
    assert figures["dry_run"] and set(figures["steps"]) == {"install", "gpu-tests", "ops", "throughput"}
    for step in ("install", "gpu-tests", "ops"):
        assert all(s.endswith(": ok") for s in figures["steps"][step]["status"]), figures["steps"][step]
    assert figures["gpu_tests"]["skipped"] >= 2 and "failed" not in figures["gpu_tests"]
    assert len(figures["ops"]["ops"]) == 6 and figures["ops"]["step"]["reference_s_per_kimg"] > 0
    cases = figures["throughput"]["cases"]
    assert [c["case"] for c in cases][:2] == ["32px b4 ref-ops fp32", "32px b4 kernels fp32"]
    assert sum("s_per_kimg" in c for c in cases) + len(figures["throughput"]["not_run"]) >= 10
    summary = (tmp_path / "summary.md").read_text()
    assert "dry run on the CPU" in summary and "no figure here is a GPU figure" in summary
    assert (tmp_path / "install.log").is_file() and (tmp_path / "gpu-tests.log").is_file()
