"""`gancore compare`: variants over paired seeds, resumable cells, and a report that reads the differences against the noise."""

import json
from pathlib import Path

import pytest

from gancore.cli import main
from gancore.comparison.cells import parse_vary, variants_from
from gancore.comparison.statistics import bootstrap_interval, paired_difference, paired_t_test
from gancore.testing import make_tiny_config

# -- the statistics ---------------------------------------------------------------------------


@pytest.mark.parametrize("differences", [[1.0, 2.0, 0.5], [0.1, -0.2, 0.3, 0.05], [3.0, 3.5, 2.9, 3.1, 3.3]])
def test_the_paired_t_test_agrees_with_scipy(differences):
    from scipy import stats

    assert paired_t_test(differences) == pytest.approx(stats.ttest_1samp(differences, 0).pvalue, rel=1e-9)


def test_the_bootstrap_interval_holds_the_mean_and_is_reproducible():
    differences = [-2.0, -1.5, -2.5, -1.0, -3.0]
    low, high = bootstrap_interval(differences)
    assert low < -2.0 < high and low >= -3.0 and high <= -1.0
    assert bootstrap_interval(differences) == (low, high)


def test_the_reading_follows_the_metrics_direction():
    assert paired_difference("fid", [10, 11, 12, 13], [8, 9.5, 10, 11.2]).reading == "better"
    assert paired_difference("fid", [10, 11, 12, 13], [12, 13.5, 14, 15.2]).reading == "worse"
    assert paired_difference("precision", [0.5, 0.6, 0.55, 0.52], [0.6, 0.7, 0.66, 0.61]).reading == "better"
    noisy = paired_difference("fid", [10, 11, 12], [12, 9, 13])
    assert noisy.reading == "within noise" and noisy.interval[0] < 0 < noisy.interval[1]


# -- variants ---------------------------------------------------------------------------------


def test_variants_from_run_files_or_vary(tmp_path):
    base = tmp_path / "base.toml"
    assert parse_vary("lowlr=--set train.g_lr=0.001 --set train.d_lr=0.001") == (
        "lowlr", ("train.g_lr=0.001", "train.d_lr=0.001"))
    # TOML values keep their quotes, whether or not the change is quoted as a whole.
    ada = ("plugins=[{name=\"augment\", mode=\"ada\"}]",)
    assert parse_vary('ada=--set plugins=[{name="augment", mode="ada"}]') == ("ada", ada)
    assert parse_vary("""ada=--set 'plugins=[{name="augment", mode="ada"}]'""") == ("ada", ada)
    assert parse_vary('tag=--set=train.seed=3') == ("tag", ("train.seed=3",))
    with pytest.raises(ValueError, match="got '--set'"):
        parse_vary("x=--set")
    variants = variants_from([base], ["baseline=--set plugins=[]"])
    assert [(v.name, v.overrides) for v in variants] == [("base", ()), ("baseline", ("plugins=[]",))]
    # A change for every variant comes first, so that a variant's own change wins.
    variants = variants_from([base, tmp_path / "other.toml"], common=["data.max_items=100"])
    assert [(v.name, v.overrides) for v in variants] == [("base", ("data.max_items=100",)), ("other", ("data.max_items=100",))]
    variants = variants_from([base], ["big=--set data.max_items=500"], common=["data.max_items=100"])
    assert variants[1].overrides == ("data.max_items=100", "data.max_items=500")
    with pytest.raises(ValueError, match="needs two variants or more"):
        variants_from([base])
    with pytest.raises(ValueError, match="given twice: base"):
        variants_from([base], ["base=--set train.seed=1"])
    with pytest.raises(ValueError, match="expected --set key=value, got 'train.g_lr=1'"):
        variants_from([base], ["x=train.g_lr=1"])
    with pytest.raises(ValueError, match="names a folder"):
        variants_from([base], ["../up=--set train.seed=1"])


# -- the command ------------------------------------------------------------------------------


def _logs(out: Path) -> dict[str, list[str]]:
    return {p.stem: [line for line in p.read_text().splitlines() if line.startswith("$ ")]
            for p in sorted((out / "logs").glob("*.log"))}


def test_compare_trains_paired_cells_reports_and_resumes(tmp_path, capsys):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(make_tiny_config("mlp", steps=4, checkpoint_every=2, eval_samples=200, tensorboard=False)))
    out = tmp_path / "cmp"
    args = ["compare", str(config), "--vary", "lowlr=--set train.g_lr=0.0005", "--seeds", "2", "--out", str(out),
            "--curve-every", "0.016"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"report: {out / 'report.md'}" in printed and "lowlr vs tiny: modes_covered" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["variants"] == ["tiny", "lowlr"] and report["seeds"] == [0, 1]
    assert set(report["metrics"]["tiny"]["modes_covered"]) == {"0", "1"}
    difference = report["differences"]["lowlr"]["modes_covered"]
    assert difference["seeds"] == [0, 1] and difference["reading"] in ("better", "worse", "within noise")
    markdown = (out / "report.md").read_text()
    assert "| variant | high_quality | kl_uniform | modes_covered | modes_hit | s/step | params G / D |" in markdown
    assert "## Paired differences" in markdown and "Rule:" in markdown
    assert (out / "samples" / "tiny.png").is_file() and (out / "samples" / "lowlr.png").is_file()
    assert (out / "curve-modes_covered.png").is_file()
    # Every cell an ordinary run folder, trained once with its seed.
    for variant in ("tiny", "lowlr"):
        for seed in (0, 1):
            folder = out / variant / f"seed-{seed}"
            assert json.loads((folder / "config.json").read_text())["train"]["seed"] == seed
    assert all(len(commands) == 1 for commands in _logs(out).values())

    # Again: nothing is trained twice. A cell killed after its first checkpoint goes on from it.
    killed = out / "lowlr" / "seed-1"
    (killed / "summary.json").unlink()
    import shutil

    shutil.rmtree(killed / "checkpoints" / "step-000004")
    assert main(args) == 0
    logs = _logs(out)
    assert logs["lowlr-seed-1"][-1].endswith(f"resume {killed} --steps 4") and len(logs["lowlr-seed-1"]) == 2
    assert all(len(commands) == 1 for name, commands in logs.items() if name != "lowlr-seed-1")
    assert json.loads((killed / "summary.json").read_text())["step"] == 4


def test_compare_checks_every_variant_before_training_any(tmp_path, capsys):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(make_tiny_config("mlp", steps=4, checkpoint_every=2, eval_samples=200, tensorboard=False)))
    out = tmp_path / "cmp"
    assert main(["compare", str(config), "--vary", "bad=--set train.g_lr=-1", "--out", str(out)]) == 2
    assert "train.g_lr: must be > 0.0, got -1" in capsys.readouterr().err
    assert not out.exists()


def test_a_job_array_through_submitit_gives_the_same_layout(tmp_path, capsys):
    """--launcher slurm submits the cells as a job array; submitit's local executor runs the same array here."""
    pytest.importorskip("submitit")
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(make_tiny_config("mlp", steps=2, checkpoint_every=2, eval_samples=200, tensorboard=False)))
    out = tmp_path / "cmp"
    assert main(["compare", str(config), "--vary", "lowlr=--set train.g_lr=0.0005", "--seeds", "1", "--out", str(out),
                 "--launcher", "submitit-local", "--launcher-param", "timeout_min=10"]) == 0
    assert "submitted 2 cell(s) as job" in capsys.readouterr().err
    for variant in ("tiny", "lowlr"):
        assert json.loads((out / variant / "seed-0" / "summary.json").read_text())["step"] == 2
    assert set(json.loads((out / "report.json").read_text())["differences"]["lowlr"]) >= {"modes_covered"}
    assert all(len(commands) == 1 for commands in _logs(out).values())


def test_a_terminated_compare_stops_its_cells_with_a_checkpoint(tmp_path):
    """SIGTERM (what `kill` and schedulers send; background jobs may ignore SIGINT) reaches the running cells."""
    import signal
    import subprocess
    import sys
    import time

    config = tmp_path / "long.json"  # a run's config.json is a run file too
    config.write_text(json.dumps(make_tiny_config("mlp", steps=10**6, log_every=50)))
    out = tmp_path / "cmp"
    process = subprocess.Popen([sys.executable, "-m", "gancore", "compare", str(config), "--vary", "b=--set train.g_lr=0.001",
                                "--seeds", "1", "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    stats = out / "long" / "seed-0" / "stats.jsonl"
    deadline = time.monotonic() + 120
    while not (stats.is_file() and stats.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stats.is_file(), process.communicate()[0].decode()[-2000:]
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=120)[0].decode()
    assert process.returncode == 130, output[-2000:]
    assert "interrupted" in output
    assert sorted(p.name for p in (out / "long" / "seed-0" / "checkpoints").iterdir())  # the cell wrote one
    assert not (out / "b").exists()  # the next cell never started


def test_a_metrics_own_spread_gets_no_reading(tmp_path):
    from gancore.comparison.cells import Cell, Variant
    from gancore.comparison.report import write_report

    cells = []
    for name, fids in (("baseline", (10.0, 12.0)), ("b", (8.0, 9.0))):
        for seed, fid in enumerate(fids):
            folder = tmp_path / name / f"seed-{seed}"
            folder.mkdir(parents=True)
            (folder / "summary.json").write_text(json.dumps({"metrics": {"Metrics/fid": fid, "Metrics/kid_std": 0.1 * fid}}))
            cells.append(Cell(Variant(name, tmp_path / "x.toml"), seed, folder))
    report = write_report(tmp_path, cells, [0, 1])
    assert set(report["differences"]["b"]) == {"fid"} and report["metrics"]["b"]["kid_std"] == {"0": 0.8, "1": 0.9}


def test_lower_is_better_for_the_distances():
    assert paired_difference("intra_fid", [30.0, 31.0, 32.0], [25.0, 26.5, 27.0]).reading == "better"
    assert paired_difference("memorisation", [1.0, 1.2, 1.1], [0.1, 0.0, 0.05]).reading == "better"
