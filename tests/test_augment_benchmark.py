"""benchmarks/augment.py: cells train on the first N images, are measured against held-out images once, and merge."""

import json
import shutil

import attrs
import pytest
import torch
from benchmark_scripts import load_benchmark

from gancore.data import build_dataset
from gancore.pretrained import load_run
from gancore.testing import write_fake_fmnist


def test_cells_train_measure_once_and_merge(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    benchmark = load_benchmark("augment")
    data = write_fake_fmnist(tmp_path / "fmnist", train=96, test=10)
    args = ["--sizes", "32", "--variants", "baseline,ada", "--seeds", "0", "--steps", "4", "--width", "8",
            "--curve-every", "2", "--curve-n", "40", "--n", "48", "--data-path", str(data), "--out", str(tmp_path / "out"),
            "--set", "backbone.d_channel_multiplier=2"]
    assert benchmark.main(args) == 0
    cell = tmp_path / "out" / "cells" / "32-ada-seed0"
    config = json.loads((cell / "config.json").read_text())
    assert config["data"]["max_items"] == 32 and config["plugins"] == [{"name": "augment", **config["plugins"][0]}]
    assert config["backbone"]["d_channel_multiplier"] == 2  # --set reaches every cell
    curve = json.loads((cell / "curve.json").read_text())
    assert list(curve) == ["step-000002", "step-000004"] and all(point["fid"] >= 0 for point in curve.values())
    # D's mean logit on the 32 images it trained on and on 32 held-out ones (items 32..63), un-augmented.
    run = load_run(cell / "checkpoints" / "step-000004", components=("D",))
    images, _ = build_dataset(run.config.data).get(torch.arange(32))
    held_out, _ = build_dataset(attrs.evolve(run.config.data, max_items=None)).get(torch.arange(32, 64))
    with torch.no_grad():
        expected = run.D.eval()(images, None).mean().item(), run.D(held_out, None).mean().item()
    point = curve["step-000004"]
    assert (point["d_train"], point["d_heldout"]) == pytest.approx(expected, rel=1e-5)
    result = json.loads((cell / "eval.json").read_text())
    assert result["checkpoint"] == "step-000004" and result["protocol"]["real_samples"] == 48
    assert result["reference_from_item"] == 32  # images 32..79: none of the 32 the cell trained on
    # Nothing is measured twice.
    stamp = (cell / "eval.json").stat().st_mtime_ns
    assert benchmark.main(args) == 0 and (cell / "eval.json").stat().st_mtime_ns == stamp
    capsys.readouterr()
    assert benchmark.main(["--merge", "--out", str(tmp_path / "out"), "--docs", str(tmp_path / "docs")]) == 0
    table = capsys.readouterr().out
    assert "| 32 | baseline | 1 |" in table and "| 32 | ada | 1 |" in table
    assert f"| {point['d_train'] - point['d_heldout']:.4g} ± 0 |" in table
    assert sorted(p.name for p in (tmp_path / "docs").iterdir()) == [
        "fid-curves.png", "grid-32-ada.png", "grid-32-baseline.png"]
    # A cell kept without its checkpoints (results only) falls back on its trainer's last grid.
    shutil.rmtree(cell / "checkpoints")
    (tmp_path / "docs" / "grid-32-ada.png").unlink()
    assert benchmark.main(["--merge", "--out", str(tmp_path / "out"), "--docs", str(tmp_path / "docs")]) == 0
    last = sorted((cell / "samples").glob("step-*.png"))[-1]
    assert (tmp_path / "docs" / "grid-32-ada.png").read_bytes() == last.read_bytes()
