"""Resuming through the CLI: --set that takes effect, one timeline per run folder (--fork, --discard-later), damaged state.json."""

import json
from pathlib import Path

import pytest

from gancore import checkpoint as ckpt
from gancore.checkpoint import TimelineError
from gancore.cli import main
from gancore.run import Run
from gancore.testing import make_tiny_config

@pytest.fixture
def trained(tmp_path: Path, capsys: pytest.CaptureFixture) -> Path:
    """A run folder trained for 6 steps, with checkpoints and sample grids at steps 2, 4 and 6."""
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(make_tiny_config("mlp", steps=6, checkpoint_every=2, sample_every=2, tensorboard=False)))
    run_dir = tmp_path / "run"
    assert main(["train", str(config), "--out", str(run_dir)]) == 0
    capsys.readouterr()
    return run_dir


def _steps(run_dir: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run_dir / "stats.jsonl").read_text().splitlines()]


def _checkpoints(run_dir: Path) -> list[str]:
    return [path.name for path in ckpt.list_checkpoints(run_dir / "checkpoints")]


def _snapshot(run_dir: Path) -> dict[str, bytes]:
    """Every file of a run folder (but the lock) and its bytes."""
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*"))
            if p.is_file() and p.name != ".lock"}


# -- --set on resume --------------------------------------------------------------------------


def test_a_new_learning_rate_reaches_the_optimizers_and_is_logged(trained, capsys):
    assert main(["resume", str(trained), "--steps", "8", "--set", "train.g_lr=0.0005",
                 "--set", "train.betas=[0.5, 0.9]"]) == 0
    err = capsys.readouterr().err
    assert "going on from step 6 with train.betas [0.0, 0.99] -> [0.5, 0.9], train.g_lr 0.002 -> 0.0005" in err
    optimizers = ckpt.read_state(trained / "checkpoints" / "step-000008")["optimizers"]
    g_group, d_group = optimizers["G"]["param_groups"][0], optimizers["D"]["param_groups"][0]
    # Lazy regularisation scales lr and betas by interval / (interval + 1): 4/5 for G, 2/3 for D.
    assert g_group["lr"] == pytest.approx(0.0005 * 4 / 5)
    assert g_group["betas"] == pytest.approx([0.5 ** 0.8, 0.9 ** 0.8])
    assert d_group["lr"] == pytest.approx(0.002 * 2 / 3)  # D's learning rate was not changed
    assert d_group["betas"] == pytest.approx([0.5 ** (2 / 3), 0.9 ** (2 / 3)])  # train.betas is both's
    lines = [json.loads(line) for line in (trained / "stats.jsonl").read_text().splitlines()]
    event = next(line for line in lines if line.get("event") == "config")
    assert event["step"] == 6 and event["changed"] == {
        "train.betas": {"from": [0.0, 0.99], "to": [0.5, 0.9]}, "train.g_lr": {"from": 0.002, "to": 0.0005}}
    history = [json.loads(line) for line in (trained / "config-history.jsonl").read_text().splitlines()]
    assert history[-1]["event"] == "resume" and history[-1]["step"] == 6
    assert history[-1]["changed"]["train.g_lr"] == {"from": 0.002, "to": 0.0005}
    assert history[-1]["changed"]["train.steps"] == {"from": 6, "to": 8}
    assert json.loads((trained / "config.json").read_text())["train"]["g_lr"] == 0.0005


def test_the_optimizers_follow_the_config_in_python_too(trained):
    run = Run.resume(trained, steps=8, overrides=["train.d_lr=0.01", "train.d_reg_interval=1"])
    try:
        assert run.opt_D.param_groups[0]["lr"] == pytest.approx(0.01 * 1 / 2)
        assert run.opt_G.param_groups[0]["lr"] == pytest.approx(0.002 * 4 / 5)
        assert run.opt_D.state  # the moments were loaded, not reset
    finally:
        run.lock.release()


@pytest.mark.parametrize("setting, reason", [
    ("backbone.width=48", "the checkpoint's networks were built with it"),
    ("data.num_samples=64", "the data set is part of the run"),
    ("train.seed=7", "the random streams go on from the checkpoint's state"),
    ("plugins=['topk']", "the plugins are part of the run"),
])
def test_a_setting_that_cannot_take_effect_is_refused_by_name(trained, capsys, setting, reason):
    before = _snapshot(trained)
    assert main(["resume", str(trained), "--steps", "8", "--set", setting]) == 2
    err = capsys.readouterr().err
    key = setting.split("=")[0]
    assert f"  {key}: cannot change on resume" in err and reason in err
    assert _snapshot(trained) == before  # nothing trained, logged or recorded


def test_data_path_may_change_for_data_that_moved(trained, capsys):
    assert main(["resume", str(trained), "--steps", "7", "--set", "data.path='elsewhere'"]) == 0
    assert "data.path None -> 'elsewhere'" in capsys.readouterr().err


# -- one timeline per run folder --------------------------------------------------------------


def test_an_older_checkpoint_with_later_ones_is_refused(trained, capsys):
    before = _snapshot(trained)
    assert main(["resume", str(trained / "checkpoints" / "step-000002"), "--steps", "6"]) == 2
    err = capsys.readouterr().err
    assert f"{trained} has checkpoints after step-000002 (step-000004, step-000006)" in err
    assert "--fork NEW_DIR" in err and "--discard-later" in err
    assert _snapshot(trained) == before


def test_fork_goes_on_in_a_new_folder_and_leaves_the_run_as_it_was(trained, tmp_path, capsys):
    before = _snapshot(trained)
    fork = tmp_path / "a fork"
    assert main(["resume", str(trained / "checkpoints" / "step-000002"), "--steps", "5", "--fork", str(fork)]) == 0
    assert f"Results in {fork}/" in capsys.readouterr().out
    assert _snapshot(trained) == before
    assert _steps(fork) == [1, 2, 3, 4, 5]
    assert _checkpoints(fork) == ["step-000002", "step-000004", "step-000005"]
    assert sorted(p.name for p in (fork / "samples").iterdir()) == ["step-000002.png", "step-000004.png", "step-000005.png"]
    history = [json.loads(line) for line in (fork / "config-history.jsonl").read_text().splitlines()]
    assert history[0]["event"] == "fork" and history[0]["forked_from"] == str(trained / "checkpoints" / "step-000002")
    # The fork's step-2 checkpoint is the source's: the same weights.
    assert (fork / "checkpoints" / "step-000002" / "G.safetensors").read_bytes() == before["checkpoints/step-000002/G.safetensors"]


def test_fork_refuses_a_folder_that_is_not_empty(trained, tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    assert main(["resume", str(trained), "--steps", "8", "--fork", str(tmp_path / "taken")]) == 2
    assert f"--fork {tmp_path / 'taken'}: the folder exists and is not empty" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "taken").iterdir()) == ["notes.txt"]


def test_discard_later_deletes_the_later_timeline_so_stats_and_checkpoints_agree(trained, capsys):
    before = _snapshot(trained)
    # No terminal to ask on (as under pytest): --yes confirms, and without it nothing is deleted.
    assert main(["resume", str(trained / "checkpoints" / "step-000002"), "--steps", "3", "--discard-later"]) == 2
    assert "there is no terminal to ask on, so give --yes to confirm" in capsys.readouterr().err
    assert _snapshot(trained) == before
    assert main(["resume", str(trained / "checkpoints" / "step-000002"), "--steps", "3", "--discard-later",
                 "--yes"]) == 0
    err = capsys.readouterr().err
    assert "deleted what" in err and "checkpoints/step-000004, checkpoints/step-000006" in err
    assert _steps(trained) == [1, 2, 3]
    assert _checkpoints(trained) == ["step-000002", "step-000003"]
    assert sorted(p.name for p in (trained / "samples").iterdir()) == ["step-000002.png", "step-000003.png"]
    assert json.loads((trained / "summary.json").read_text())["step"] == 3
    history = [json.loads(line) for line in (trained / "config-history.jsonl").read_text().splitlines()]
    assert history[0]["event"] == "discard" and "checkpoints/step-000006" in history[0]["deleted"]


def test_discard_later_asks_first_and_a_no_keeps_everything(trained):
    before = _snapshot(trained)
    questions = []
    with pytest.raises(TimelineError, match="nothing was deleted"):
        Run.resume(trained / "checkpoints" / "step-000004", discard_later=True,
                   confirm=lambda question: questions.append(question) or False)
    assert questions and "delete step-000006" in questions[0]
    assert _snapshot(trained) == before
    assert not (trained / ".lock").read_text()  # the lock was given back


def test_fork_and_discard_later_together_are_refused(trained, tmp_path, capsys):
    assert main(["resume", str(trained), "--fork", str(tmp_path / "f"), "--discard-later"]) == 2
    assert "give --fork or --discard-later, not both" in capsys.readouterr().err


# -- damaged checkpoints ----------------------------------------------------------------------


def test_a_deleted_state_json_is_a_damaged_newest_checkpoint_not_a_step_back(trained, capsys):
    (trained / "checkpoints" / "step-000006" / "state.json").unlink()
    before = _snapshot(trained)
    assert main(["resume", str(trained), "--steps", "8"]) == 2
    err = capsys.readouterr().err
    assert f"{trained / 'checkpoints' / 'step-000006' / 'state.json'}: file not found" in err
    assert "the newest intact checkpoint before it is step-000004" in err and "--from-previous --discard-later" in err
    assert _snapshot(trained) == before
    assert main(["resume", str(trained), "--steps", "8", "--from-previous", "--discard-later", "--yes"]) == 0
    assert _steps(trained) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert _checkpoints(trained) == ["step-000004", "step-000006", "step-000008"]
    ckpt.verify_checkpoint(trained / "checkpoints" / "step-000006")  # written anew


@pytest.mark.parametrize("damage, blamed", [
    (lambda state: state["optimizers"].pop("G"), "optimizers.G: expected a table, got NoneType"),
    (lambda state: state["optimizers"]["D"].update(param_groups="lost"), "optimizers.D: param_groups: expected a list"),
    (lambda state: state["optimizers"]["G"]["param_groups"][0]["params"].pop(), "optimizers.G: param_groups[0]: "),
    (lambda state: state["config"]["train"].update(batch=-8), "config: train.batch: must be > 0, got -8"),
    (lambda state: state["config"].update(trian={}), "config: trian: unknown key"),
])
def test_a_bad_entry_in_state_json_is_blamed_on_state_json(trained, capsys, damage, blamed):
    path = trained / "checkpoints" / "step-000006" / "state.json"
    state = json.loads(path.read_text())
    damage(state)
    path.write_text(json.dumps(state))
    assert main(["resume", str(trained), "--steps", "8"]) == 2
    err = capsys.readouterr().err
    assert f"gancore: {path}: {blamed}" in err
    assert "go on from it with" in err and "--from-previous" in err and "Traceback" not in err


def test_gancore_resume_in_python_forks_with_a_new_setting(trained, tmp_path):
    import gancore

    run = gancore.resume(trained / "checkpoints" / "step-000004", steps=5, overrides=["train.d_lr=0.001"],
                         fork=tmp_path / "fork")
    assert run.out_dir == tmp_path / "fork" and run.step == 5
    assert run.opt_D.param_groups[0]["lr"] == pytest.approx(0.001 * 2 / 3)
    assert _checkpoints(trained) == ["step-000002", "step-000004", "step-000006"]


def test_a_fork_that_cannot_go_on_writes_no_folder(trained, tmp_path, capsys):
    fork = tmp_path / "fork"
    assert main(["resume", str(trained / "checkpoints" / "step-000002"), "--fork", str(fork),
                 "--set", "train.g_lr=inf"]) == 2
    err = capsys.readouterr().err
    assert f"{trained / 'checkpoints' / 'step-000002' / 'state.json'} (--set)" in err and "train.g_lr" in err
    assert not fork.exists()
    damaged = trained / "checkpoints" / "step-000004" / "G.safetensors"
    damaged.write_bytes(damaged.read_bytes()[:-50])
    assert main(["resume", str(trained / "checkpoints" / "step-000004"), "--fork", str(fork)]) == 2
    assert "the newest intact checkpoint before it is step-000002" in capsys.readouterr().err
    assert not fork.exists()


def test_best_is_judged_by_the_step_it_holds(trained, tmp_path, capsys):
    import shutil

    shutil.copytree(trained / "checkpoints" / "step-000002", trained / "checkpoints" / "best")
    assert main(["resume", str(trained / "checkpoints" / "best"), "--steps", "7"]) == 2
    assert "has checkpoints after best (step-000004, step-000006)" in capsys.readouterr().err
    assert main(["resume", str(trained / "checkpoints" / "best"), "--steps", "3", "--fork", str(tmp_path / "f")]) == 0
    assert _checkpoints(tmp_path / "f") == ["step-000002", "step-000003"]


def test_settings_on_resume_are_the_users_and_steps_cannot_go_back(trained, capsys):
    assert main(["resume", str(trained), "--set", "train.betas=[1.5, 0.99]"]) == 2
    assert f"config error in {trained / 'checkpoints' / 'step-000006' / 'state.json'} (--set)" in capsys.readouterr().err
    assert main(["resume", str(trained), "--set", "train.steps=3"]) == 2
    assert "train.steps: the run is at step 6 already; give at least that many, got 3" in capsys.readouterr().err
    (trained / "checkpoints" / "step-000006" / "state.json").unlink()
    assert main(["resume", str(trained / "checkpoints" / "step-000006")]) == 2
    assert f"{trained / 'checkpoints' / 'step-000006' / 'state.json'}: file not found" in capsys.readouterr().err


def test_fork_to_the_current_folder_is_a_message_not_a_traceback(trained, monkeypatch, capsys):
    monkeypatch.chdir(trained)
    assert main(["resume", str(trained), "--steps", "8", "--fork", "."]) == 2
    assert "the folder exists and is not empty" in capsys.readouterr().err
