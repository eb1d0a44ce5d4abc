"""benchmarks/augment.py: the limited-data study is one `gancore compare` per size, resumable, with one table over sizes."""

import json

import pytest
from benchmark_scripts import load_benchmark

from gancore.testing import write_fake_fmnist


def test_one_comparison_per_size_then_one_table(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    benchmark = load_benchmark("augment")
    data = write_fake_fmnist(tmp_path / "fmnist", train=40, test=24)
    out = tmp_path / "out"
    args = ["--sizes", "16", "--seeds", "0", "--curve-every", "0.016", "--out", str(out),
            "--set", f"data.path={data}", "--set", "train.steps=4", "--set", "train.batch=8",
            "--set", "backbone.width=8", "--set", "train.eval_samples=16"]
    assert benchmark.main(args + ["--docs", str(tmp_path / "docs")]) == 0
    folder = out / "16-images"
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == [
        "ada", "diffaugment", "fmnist-dcgan-limited", "logs", "samples"]
    configs = {name: json.loads((folder / name / "seed-0" / "config.json").read_text())
               for name in ("fmnist-dcgan-limited", "diffaugment", "ada")}
    assert all(c["data"]["max_items"] == 16 and c["train"]["metrics_split"] == "test" for c in configs.values())
    assert configs["fmnist-dcgan-limited"]["plugins"] == []
    assert [p["mode"] for p in configs["diffaugment"]["plugins"]] == ["diffaugment"]
    assert [p["mode"] for p in configs["ada"]["plugins"]] == ["ada"]
    report = json.loads((folder / "report.json").read_text())
    assert report["baseline"] == "fmnist-dcgan-limited" and set(report["metrics"]["ada"]) >= {"fid", "memorisation"}
    table = capsys.readouterr().out
    memorised = report["metrics"]["ada"]["memorisation"]["0"]
    assert "| 16 | baseline | 1 |" in table and "| 16 | ada | 1 | " in table and f"{memorised:.4g} ± 0" in table
    assert sorted(p.name for p in (tmp_path / "docs").iterdir()) == [
        "curves.png", "grid-16-ada.png", "grid-16-baseline.png", "grid-16-diffaugment.png", "table.md"]
    # Done cells are not trained again.
    stamp = (folder / "ada" / "seed-0" / "summary.json").stat().st_mtime_ns
    assert benchmark.main(args) == 0
    assert (folder / "ada" / "seed-0" / "summary.json").stat().st_mtime_ns == stamp
