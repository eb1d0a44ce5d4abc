"""benchmarks/quality.py: cells train, resume and are measured once; the merge builds the table."""

import json
from pathlib import Path

import pytest
from benchmark_scripts import load_benchmark

from gancore.config import ConfigError
from gancore.testing import write_fake_fmnist


def test_mog_study_is_a_comparison_that_resumes(tmp_path, capsys):
    quality = load_benchmark("quality")
    args = ["--study", "mog", "--steps", "20", "--seeds", "0", "--cells", "^(baseline|dgl-1/2)$",
            "--device", "cpu", "--checkpoint-every", "10", "--n", "500", "--out", str(tmp_path)]
    assert quality.main(args) == 0
    assert sorted(p.name for p in (tmp_path / "variants").iterdir()) == ["baseline.json", "dgl-1-2.json"]
    assert sorted(p.name for p in (tmp_path / "dgl-1-2").iterdir()) == ["seed-0"]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["baseline"] == "baseline" and report["variants"] == ["baseline", "dgl-1-2"]
    assert set(report["metrics"]["dgl-1-2"]["modes_covered"]) == {"0"}
    assert "modes_covered" in report["differences"]["dgl-1-2"]
    assert (tmp_path / "teacher" / "summary.json").is_file()
    # A second call finds everything done: neither the teacher nor a cell is trained again.
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/**/summary.json")}
    capsys.readouterr()
    assert quality.main(args) == 0
    assert "teacher" not in capsys.readouterr().out.splitlines()[:1]
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/**/summary.json")} == stamps
    # A longer budget goes on from the cells' checkpoints.
    assert quality.main([*args[:2], "--steps", "30", *args[4:]]) == 0
    assert json.loads((tmp_path / "baseline" / "seed-0" / "summary.json").read_text())["step"] == 30
    commands = [line for line in (tmp_path / "logs" / "baseline-seed-0.log").read_text().splitlines() if line.startswith("$")]
    assert len(commands) == 2 and " resume " in commands[1] and commands[1].endswith("--steps 30")


def test_fmnist_variants_cover_the_study():
    names = set(load_benchmark("quality")._variants("fmnist"))
    assert {"baseline", "topk", "glead", "eqgan_sa", "dgl-1/2", "dgl-1/4", "topk+glead", "glead+eqgan_sa",
            "all four (dgl-1/2)"} <= names


def test_cpu_variants_cover_the_study_and_check_best():
    quality = load_benchmark("quality")
    names = set(quality._variants("fmnist-cpu", "glead"))
    assert names == {"baseline", "topk", "glead", "eqgan_sa", "baseline-1/2", "dgl-1/2", "all four (dgl-1/2)",
                     "diffaugment", "ada", "diffaugment+glead", "ada+glead"}
    assert "ada+topk" not in quality._variants("fmnist-cpu")  # stacked only once the best method is named
    with pytest.raises(ValueError, match="--best: 'adam' is not a method"):
        quality._variants("fmnist-cpu", "adam")


def test_cpu_study_scales_eqgan_sa_to_the_generator():
    import argparse

    quality = load_benchmark("quality")
    # The official ratios: 16, 32 and 64 channels beside a G with 64 channels at image resolution.
    assert quality.eqgan_sa_scaled(64) == {"name": "eqgan_sa", "encoder_hidden": 16, "encoder_channels": 32,
                                           "sel_hidden": 64}
    args = argparse.Namespace(study="fmnist-cpu", width=16, kimg=1.0, checkpoint_every=8, data_path=None,
                              device="cpu", set=["train.batch=32"])
    variants = quality._variants("fmnist-cpu")
    raw = quality._cell_config(args, variants["eqgan_sa"], 0, None)
    assert (raw["train"]["batch"], raw["train"]["steps"]) == (32, 31)  # --set comes before the budget in steps
    assert raw["train"]["g_lr"] == raw["train"]["d_lr"] == quality.CPU_PRESET["lr"]
    alone = raw["plugins"]
    assert alone == [{"name": "eqgan_sa", "encoder_hidden": 4, "encoder_channels": 8, "sel_hidden": 16}]
    stacked = quality._cell_config(args, variants["all four (dgl-1/2)"], 0, Path("teacher"))["plugins"]
    assert {"name": "eqgan_sa", "encoder_hidden": 2, "encoder_channels": 4, "sel_hidden": 8} in stacked
    # plugins.* overrides reach the cell's own plugins (the DGL term added last too); a cell without the plugin
    # is a named error.
    args.set = ["train.batch=32", "plugins.dgl.weight=1.0", "plugins.eqgan_sa.sel_hidden=4"]
    stacked = quality._cell_config(args, variants["all four (dgl-1/2)"], 0, Path("teacher"))["plugins"]
    assert {"name": "dgl", "weight": 1.0} == {k: v for k, v in stacked[-1].items() if k in ("name", "weight")}
    assert {"name": "eqgan_sa", "encoder_hidden": 2, "encoder_channels": 4, "sel_hidden": 4} in stacked
    with pytest.raises(ConfigError, match="plugin 'dgl' is not in the run's plugins list"):
        quality._cell_config(args, variants["baseline"], 0, None)


def test_cpu_study_curves_grids_and_report(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    quality = load_benchmark("quality")
    monkeypatch.chdir(tmp_path)  # the study runs from the repository's root; its configs name the teacher from there
    data = write_fake_fmnist(tmp_path / "fmnist", train=96, test=10)
    out = tmp_path / "out"
    args = ["--study", "fmnist-cpu", "--width", "4", "--kimg", "0.256", "--checkpoint-every", "2",
            "--n", "48", "--seeds", "0", "--best", "topk", "--cells", "^(baseline|dgl-1/2|ada\\+topk)$",
            "--device", "cpu", "--data-path", str(data), "--out", str(out)]
    assert quality.main(args) == 0
    student = json.loads((out / "dgl-1-2" / "seed-0" / "config.json").read_text())
    dgl = [p for p in student["plugins"] if p["name"] == "dgl"][0]
    assert (dgl["teacher_from_step"], dgl["reset_optimizers"]) == (2, "both")  # the student alone for half the run
    assert dgl["teacher"] == "out/teacher"  # committed with the results: no machine's folders in it
    assert student["backbone"]["width"] == 4 and student["backbone"]["channel_multiplier"] == 0.5
    assert [p["name"] for p in json.loads((out / "ada-topk" / "seed-0" / "config.json").read_text())["plugins"]] == [
        "augment", "topk"]
    lines = [json.loads(line) for line in (out / "baseline" / "seed-0" / "stats.jsonl").read_text().splitlines()]
    assert [line["kimg"] for line in lines if "Metrics/fid" in line] == [0.128, 0.256]  # the curve's points
    report = json.loads((out / "report.json").read_text())
    assert report["variants"] == ["baseline", "dgl-1-2", "ada-topk"]  # the study's order
    assert report["params"]["dgl-1-2"]["G"] < report["params"]["baseline"]["G"] / 2
    assert report["params"]["dgl-1-2"]["D"] < report["params"]["baseline"]["D"] / 2
    assert {"curve-fid.png", "samples/baseline.png", "samples/ada-topk.png"} <= set(report["pictures"])
    assert "| baseline |" in capsys.readouterr().out  # the report is printed
    # A probe reuses the study's teacher and changes one constant of its cells' plugin.
    probe = ["--out", "probe", "--teacher", "out/teacher", "--cells", "^dgl-1/2$", "--set", "plugins.dgl.weight=1.0"]
    with pytest.raises(ValueError, match="two variants or more"):
        quality.main([*args[:-2], *probe])  # one variant alone is no comparison
    probe[5] = "^(baseline|dgl-1/2)$"
    assert quality.main([*args[:-2], *probe[:6]]) == 0
    dgl = [p for p in json.loads((tmp_path / "probe" / "variants" / "dgl-1-2.json").read_text())["plugins"]
           if p["name"] == "dgl"][0]
    assert dgl["teacher"] == "out/teacher" and not (tmp_path / "probe" / "teacher").exists()
    with pytest.raises(SystemExit):
        quality.main([*args[:-2], "--out", "probe", "--teacher", "probe", "--cells", "^dgl-1/2$"])
    assert "--teacher probe: no checkpoint" in capsys.readouterr().err


def test_speed_times_each_variant_and_estimates_the_study(tmp_path, capsys):
    quality = load_benchmark("quality")
    data = write_fake_fmnist(tmp_path / "fmnist", train=96, test=10)
    args = ["--study", "fmnist-cpu", "--width", "4", "--kimg", "0.64", "--seeds", "0,1", "--speed", "1",
            "--cells", "^(baseline|dgl-1/2)$", "--device", "cpu", "--data-path", str(data), "--out", str(tmp_path / "out")]
    assert quality.main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in lines if line.startswith("| ") and "ms" not in line}
    assert set(rows) == {"baseline", "dgl-1/2"} and rows["baseline"][2] == "1.00"
    assert int(rows["dgl-1/2"][3].replace(",", "")) < int(rows["baseline"][3].replace(",", "")) / 2  # G params
    assert "estimated training time of these cells (2 seeds, 0.64 kimg)" in lines[-1]
    assert not (tmp_path / "out").exists()  # a measurement trains no cell
