"""benchmarks/quality.py: cells train, resume and are measured once; the merge builds the table."""

import json
import shutil
from pathlib import Path

import pytest
from benchmark_scripts import load_benchmark

from gancore.config import ConfigError
from gancore.testing import write_fake_fmnist


def test_mog_cells_train_resume_and_merge(tmp_path, capsys):
    quality = load_benchmark("quality")
    args = ["--study", "mog", "--steps", "20", "--seeds", "0,1", "--cells", "^(baseline|dgl-1/2)$",
            "--device", "cpu", "--checkpoint-every", "10", "--out", str(tmp_path)]
    assert quality.main(args) == 0
    cells = sorted(p.name for p in (tmp_path / "cells").iterdir())
    assert cells == ["baseline-seed0", "baseline-seed1", "dgl-1-2-seed0", "dgl-1-2-seed1", "teacher"]
    result = json.loads((tmp_path / "cells" / "dgl-1-2-seed0" / "eval.json").read_text())
    assert result["step"] == 20 and "Metrics/modes_covered" in result["metrics"]
    table = (tmp_path / "table.md").read_text()
    assert "| baseline | 2 |" in table and "| dgl-1/2 | 2 |" in table
    # A second call finds everything done: nothing is trained or measured again.
    stamp = (tmp_path / "cells" / "baseline-seed0" / "eval.json").stat().st_mtime_ns
    capsys.readouterr()
    assert quality.main(args) == 0
    assert "resuming" not in capsys.readouterr().out
    assert (tmp_path / "cells" / "baseline-seed0" / "eval.json").stat().st_mtime_ns == stamp
    # A longer budget resumes the cells from their checkpoints and measures them again.
    assert quality.main([*args[:2], "--steps", "30", *args[4:]]) == 0
    assert "resuming baseline-seed0 at step-000020" in capsys.readouterr().out
    assert json.loads((tmp_path / "cells" / "baseline-seed0" / "eval.json").read_text())["step"] == 30
    # A fresh clone holds the results without the checkpoints: the cells count as done, and the teacher
    # is not trained again for DGL cells that are done.
    for folder in (tmp_path / "cells").iterdir():
        shutil.rmtree(folder / "checkpoints")
    capsys.readouterr()
    assert quality.main([*args[:2], "--steps", "30", *args[4:]]) == 0
    assert capsys.readouterr().out.count("done (its results are kept without its checkpoints)") == 4
    assert not any((tmp_path / "cells" / name / "checkpoints").exists() for name in ("teacher", "baseline-seed0"))


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


def test_cpu_study_curves_grids_and_table(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    quality = load_benchmark("quality")
    monkeypatch.chdir(tmp_path)  # the study runs from the repository's root; its configs name the teacher from there
    data = write_fake_fmnist(tmp_path / "fmnist", train=96, test=10)
    out = tmp_path / "out"
    args = ["--study", "fmnist-cpu", "--width", "4", "--kimg", "0.256", "--checkpoint-every", "2", "--curve-n", "40",
            "--n", "48", "--seeds", "0", "--best", "topk", "--cells", "^(baseline|dgl-1/2|ada\\+topk)$",
            "--device", "cpu", "--data-path", str(data), "--out", str(out)]
    assert quality.main(args) == 0
    cells = out / "cells"
    assert sorted(p.name for p in cells.iterdir()) == ["ada-topk-seed0", "baseline-seed0", "dgl-1-2-seed0", "teacher"]
    student = json.loads((cells / "dgl-1-2-seed0" / "config.json").read_text())
    dgl = [p for p in student["plugins"] if p["name"] == "dgl"][0]
    assert (dgl["teacher_from_step"], dgl["reset_optimizers"]) == (2, "both")  # the student alone for half the run
    assert dgl["teacher"] == "out/cells/teacher"  # committed with the results: no machine's folders in it
    assert student["backbone"]["width"] == 4 and student["backbone"]["channel_multiplier"] == 0.5
    assert [p["name"] for p in json.loads((cells / "ada-topk-seed0" / "config.json").read_text())["plugins"]] == [
        "augment", "topk"]
    curve = json.loads((cells / "baseline-seed0" / "curve.json").read_text())
    assert list(curve) == ["step-000002", "step-000004"] and [p["kimg"] for p in curve.values()] == [0.128, 0.256]
    teacher = json.loads((cells / "teacher" / "curve.json").read_text())  # the baseline over twice the budget
    assert [p["kimg"] for p in teacher.values()] == [0.128, 0.256, 0.384, 0.512]
    baseline = json.loads((cells / "baseline-seed0" / "eval.json").read_text())
    small = json.loads((cells / "dgl-1-2-seed0" / "eval.json").read_text())
    assert baseline["protocol"]["real_samples"] == 48 and small["params_G"] < baseline["params_G"] / 2
    assert small["params_D"] < baseline["params_D"] / 2
    capsys.readouterr()
    assert quality.main(["--study", "fmnist-cpu", "--merge", "--out", str(out), "--docs", str(tmp_path / "docs")]) == 0
    table = capsys.readouterr().out
    assert f"| baseline | 1 | {baseline['params_G']:,} | {baseline['params_D']:,} | 1.00 |" in table
    # Rows in the study's order, by variant name.
    assert [line.split(" | ")[0] for line in table.splitlines()[2:]] == ["| baseline", "| dgl-1/2", "| ada+topk"]
    assert sorted(p.name for p in (tmp_path / "docs").iterdir()) == [
        "fid-curves.png", "grid-ada-topk.png", "grid-baseline.png", "grid-dgl-1-2.png"]
    # A probe reuses the study's teacher and changes one constant of its cells' plugin.
    probe = ["--out", "probe", "--teacher", "out/cells/teacher", "--cells", "^dgl-1/2$", "--set", "plugins.dgl.weight=1.0"]
    assert quality.main([*args[:-2], *probe]) == 0
    assert sorted(p.name for p in (tmp_path / "probe" / "cells").iterdir()) == ["dgl-1-2-seed0"]
    dgl = [p for p in json.loads((tmp_path / "probe" / "cells" / "dgl-1-2-seed0" / "config.json").read_text())["plugins"]
           if p["name"] == "dgl"][0]
    assert (dgl["teacher"], dgl["weight"]) == ("out/cells/teacher", 1.0)
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
