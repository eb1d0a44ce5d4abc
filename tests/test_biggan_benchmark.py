"""benchmarks/biggan.py: the BigGAN benchmark is one `gancore compare` (with DGL's teacher trained first), resumable, with class grids."""

import json

import pytest
from benchmark_scripts import load_benchmark
from PIL import Image

from gancore.testing import write_fake_fmnist

pytest.importorskip("gancore_biggan")
pytest.importorskip("gancore_topk")
pytest.importorskip("gancore_dgl")


def test_teacher_then_one_comparison_with_paired_tables_and_class_grids(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    benchmark = load_benchmark("biggan")
    data = write_fake_fmnist(tmp_path / "fmnist", train=40, test=40)
    out = tmp_path / "out"
    args = ["--seeds", "0", "--curve-every", "0.032", "--out", str(out),
            "--set", f"data.path={data}", "--set", "train.steps=2", "--set", "train.batch=8",
            "--set", "backbone.g_ch=2", "--set", "backbone.d_ch=2", "--set", "train.eval_samples=20"]
    assert benchmark.main(args + ["--docs", str(tmp_path / "docs")]) == 0

    teacher = json.loads((out / "teacher" / "summary.json").read_text())
    assert teacher["step"] == 4  # the baseline, twice as long
    configs = {name: json.loads((out / name / "seed-0" / "config.json").read_text())
               for name in ("fmnist-biggan", "topk", "control-half", "dgl-half")}
    assert configs["fmnist-biggan"]["plugins"] == [] and configs["fmnist-biggan"]["backbone"]["g_ch"] == 2
    assert configs["fmnist-biggan"]["train"]["metrics"] == ["fid", "class_accuracy", "intra_fid"]
    (topk,) = configs["topk"]["plugins"]
    assert topk["schedule"] == "progress" and topk["gamma"] == pytest.approx(0.99**500, rel=1e-3)
    assert [configs[n]["backbone"][k] for n in ("control-half", "dgl-half") for k in ("g_ch", "d_ch")] == [1] * 4
    assert configs["control-half"]["plugins"] == []
    (dgl,) = configs["dgl-half"]["plugins"]
    assert dgl["teacher"] == str(out / "teacher") and dgl["teacher_from_step"] == 1
    assert dgl["teacher_train_mode"] and dgl["reset_optimizers"] == "both" and dgl["weight"] == 0.1
    lines = [json.loads(line) for line in (out / "dgl-half" / "seed-0" / "stats.jsonl").read_text().splitlines()]
    assert lines[0]["dgl/stage"] == 1.0 and "Loss/G/dgl_teacher" not in lines[0]  # the student alone first
    assert "Loss/G/dgl_teacher" in lines[-1]

    table = capsys.readouterr().out
    assert "| baseline | 1 |" in table and "| dgl-half | 1 |" in table
    assert "| topk - baseline | fid | 1 |" in table and "| dgl-half - control-half | intra_fid | 1 |" in table
    docs = sorted(p.name for p in (tmp_path / "docs").iterdir())
    assert {"grid-baseline.png", "grid-topk.png", "grid-dgl-half.png", "curve-fid.png", "table.md"} <= set(docs)
    grid = Image.open(tmp_path / "docs" / "grid-baseline.png")
    # One row per class: 10 rows of 6 samples (64 samples asked for, 6 per class).
    assert round(grid.height / (grid.width / 6)) == 10

    # Done cells and the teacher are not trained again.
    stamps = {p: (out / p / "summary.json").stat().st_mtime_ns for p in ("teacher", "dgl-half/seed-0")}
    assert benchmark.main(args) == 0
    assert {p: (out / p / "summary.json").stat().st_mtime_ns for p in stamps} == stamps
