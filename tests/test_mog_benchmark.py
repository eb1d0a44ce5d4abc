"""benchmarks/mog_topk.py: every cell trains with the chosen run file and reports both mode counts."""

from benchmark_scripts import load_benchmark


def test_cells_report_every_metric(capsys):
    benchmark = load_benchmark("mog_topk")
    benchmark.main(["--config", "configs/recipes/topk-mog25.toml", "--seeds", "1", "--steps", "3", "--datasets", "mog25",
                    "--jobs", "1", "--set", "train.eval_samples=500", "backbone.width=16"])
    out = capsys.readouterr().out
    assert "| data | variant | modes covered | modes hit | high-quality share | KL(modes ‖ uniform) |" in out
    assert "| mog25 | baseline |" in out and "| mog25 | topk |" in out
    assert "2 runs of 3 steps" in out
