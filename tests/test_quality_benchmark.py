"""benchmarks/quality.py: cells train, resume and are measured once; the merge builds the table."""

import json

from benchmark_scripts import load_benchmark


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
    assert "| baseline | 2 |" in table and "| dgl-1-2 | 2 |" in table
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


def test_fmnist_variants_cover_the_study():
    names = set(load_benchmark("quality")._variants("fmnist"))
    assert {"baseline", "topk", "glead", "eqgan_sa", "dgl-1/2", "dgl-1/4", "topk+glead", "glead+eqgan_sa",
            "all four (dgl-1/2)"} <= names
