"""Faults and bad input, through the CLI: signals, a full disk, divergence, killed writers, damaged checkpoints, two writers."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gancore import LossTerm, checkpoint as ckpt, hookimpl
from gancore.cli import main

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
from gancore.run import Run
from gancore.testing import make_tiny_config

TINY = """
[backbone]
name = "mlp"
width = 16

[data]
name = "mog25"
num_samples = 256

[train]
steps = {steps}
batch = 8
device = "cpu"
progress = false
log_every = 1
eval_samples = 100
tensorboard = false
checkpoint_every = {checkpoint_every}
{extra}
"""


def _config(tmp_path: Path, steps: int = 4, checkpoint_every: int = 0, extra: str = "", name: str = "tiny") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(TINY.format(steps=steps, checkpoint_every=checkpoint_every, extra=extra))
    return path


def _gancore(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "gancore", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_steps(run_dir: Path, steps: int, process: subprocess.Popen, timeout: float = 120) -> None:
    stats = run_dir / "stats.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        if stats.is_file() and len(stats.read_text().splitlines()) >= steps:
            return
        time.sleep(0.05)
    raise AssertionError(f"{run_dir}: fewer than {steps} steps after {timeout} s")


# -- signals ----------------------------------------------------------------------------------


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_signal_finishes_the_step_writes_a_checkpoint_and_says_where(tmp_path, signum, status):
    run_dir = tmp_path / "run"
    process = _gancore("train", str(_config(tmp_path, steps=100000)), "--out", str(run_dir))
    _wait_for_steps(run_dir, 3, process)
    process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    assert process.returncode == status, err
    latest = ckpt.latest_checkpoint(run_dir)
    assert latest is not None  # although train.checkpoint_every = 0
    ckpt.verify_checkpoint(latest)
    assert f"checkpoint written: {latest}" in err and f"continue with: gancore resume {run_dir}" in err
    step = ckpt.read_state(latest)["step"]
    assert [json.loads(line)["step"] for line in (run_dir / "stats.jsonl").read_text().splitlines()][-1] == step
    assert not (run_dir / "summary.json").exists()
    assert main(["resume", str(run_dir), "--steps", str(step + 2)]) == 0
    assert ckpt.read_state(ckpt.latest_checkpoint(run_dir))["step"] == step + 2


class _Signaller:
    """Sends SIGINT from inside training: once at a step end, and again while a checkpoint is written."""

    name = "signaller"

    def __init__(self, at_step: int, second_in_checkpoint: bool):
        self.at_step = at_step
        self.second_in_checkpoint = second_in_checkpoint

    @hookimpl
    def gancore_step_end(self, run):
        if run.step == self.at_step:
            os.kill(os.getpid(), signal.SIGINT)

    @hookimpl
    def gancore_state_dict(self, run):
        if self.second_in_checkpoint and run.step > self.at_step:
            os.kill(os.getpid(), signal.SIGINT)  # the second signal, while the checkpoint is being written
        return None

    @hookimpl
    def gancore_load_state_dict(self, state):
        pass  # it saves nothing: the pair is required all the same


def test_a_second_signal_aborts_at_once_and_leaves_the_previous_checkpoint(register_plugin, tmp_path):
    register_plugin(_Signaller(at_step=3, second_in_checkpoint=True))
    out = tmp_path / "run"
    run = Run.build(make_tiny_config("mlp", ["signaller"], steps=50, checkpoint_every=2), out_dir=out)
    with pytest.raises(KeyboardInterrupt):
        run.train()
    assert [p.name for p in ckpt.list_checkpoints(out / "checkpoints")] == ["step-000002"]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-000002"]  # no half-written folder
    ckpt.verify_checkpoint(out / "checkpoints" / "step-000002")
    assert signal.getsignal(signal.SIGINT) is not None  # the previous handler is back


def test_a_second_sigterm_exits_143_like_the_first(tmp_path):
    run_dir = tmp_path / "run"
    process = _gancore("train", str(_config(tmp_path, steps=100000)), "--out", str(run_dir))
    _wait_for_steps(run_dir, 3, process)
    process.send_signal(signal.SIGTERM)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    latest = ckpt.latest_checkpoint(run_dir)
    if latest is not None:  # an abort leaves no half checkpoint: whatever is there is whole
        ckpt.verify_checkpoint(latest)


def test_interrupting_an_in_memory_run_says_nothing_was_saved(register_plugin):
    from gancore.signals import TrainingInterrupted

    register_plugin(_Signaller(at_step=1, second_in_checkpoint=False))
    run = Run.build(make_tiny_config("mlp", ["signaller"], steps=50))
    with pytest.raises(TrainingInterrupted, match="SIGINT: stopped after step 2; the run has no folder, nothing was saved"):
        run.train()


# -- a full disk ------------------------------------------------------------------------------


def test_a_full_disk_is_one_line_and_earlier_checkpoints_survive(tmp_path):
    run_dir = tmp_path / "run"
    config = _config(tmp_path, steps=6, checkpoint_every=2)
    script = (
        "import errno, sys\n"
        "import gancore.checkpoint as c\n"
        "original, calls = c._save_tensors, []\n"
        "def full(tensors, path):\n"
        "    calls.append(path)\n"
        "    if 'step-000004' in str(path) and path.name == 'D.safetensors':\n"
        "        raise OSError(errno.ENOSPC, 'No space left on device', str(path))\n"
        "    return original(tensors, path)\n"
        "c._save_tensors = full\n"
        "from gancore.cli import main\n"
        f"sys.exit(main(['train', {str(config)!r}, '--out', {str(run_dir)!r}]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("gancore:")]
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert (f"could not write checkpoint {run_dir / 'checkpoints' / 'step-000004'}: No space left on device "
            "(D.safetensors); it needs about") in lines[0]
    assert f"the newest complete checkpoint is {run_dir / 'checkpoints' / 'step-000002'}" in lines[0]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-000002"]  # temp folder gone
    ckpt.verify_checkpoint(run_dir / "checkpoints" / "step-000002")


def test_old_checkpoints_go_before_a_new_one_is_written(tmp_path, monkeypatch):
    """A quota that holds exactly `keep_checkpoints` checkpoints can still rotate."""
    original = ckpt._write_files

    def quota(tmp, *args, **kwargs):
        if len(ckpt.list_checkpoints(tmp.parent)) >= 2:
            raise OSError(28, "Disk quota exceeded", str(tmp / "G.safetensors"))
        return original(tmp, *args, **kwargs)

    monkeypatch.setattr(ckpt, "_write_files", quota)
    out = tmp_path / "run"
    Run.build(make_tiny_config("mlp", steps=8, checkpoint_every=2, keep_checkpoints=2), out_dir=out).train()
    assert [p.name for p in ckpt.list_checkpoints(out / "checkpoints")] == ["step-000006", "step-000008"]


# -- divergence -------------------------------------------------------------------------------


def test_a_divergent_run_stops_with_the_step_the_value_and_no_false_promise(tmp_path, capsys):
    diverging = 'g_lr = 5.0\nd_lr = 5.0\nbetas = [0.5, 0.99]\nr1_gamma = 0.0\ndivergence_steps = 5'
    run_dir = tmp_path / "a"
    assert main(["train", str(_config(tmp_path, steps=400, extra=diverging)), "--out", str(run_dir)]) == 1
    err = capsys.readouterr().err
    assert "training diverged at step" in err and "beyond train.divergence_limit (10000) for 5 steps in a row" in err
    assert "no checkpoint was written before it (train.checkpoint_every = 0)" in err
    assert "intact" not in err
    lines = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert lines[-1]["step"] < 400 and not (run_dir / "summary.json").exists()  # stopped, and said why
    warn = _config(tmp_path, steps=60, extra=diverging + '\ndivergence = "warn"', name="warn")
    capsys.readouterr()
    assert main(["train", str(warn), "--out", str(tmp_path / "b")]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if line.startswith("gancore: warning: ")]
    assert len(warned) == 1 and "training diverged at step" in warned[0]  # a message, not a Python warning


class _NaN:
    name = "nan"

    @hookimpl
    def gancore_g_loss(self, run, fake):
        return LossTerm("poison", fake.sum() * (float("nan") if run.step == 3 else 0.0))


def test_a_nan_loss_names_the_newest_checkpoint(register_plugin, tmp_path):
    from gancore.divergence import DivergenceError

    register_plugin(_NaN)
    out = tmp_path / "run"
    run = Run.build(make_tiny_config("mlp", ["nan"], steps=10, checkpoint_every=2), out_dir=out)
    with pytest.raises(DivergenceError, match=f"loss became nan at step 3; the newest checkpoint is "
                                              f"{out / 'checkpoints' / 'step-000002'} \\(step 2\\)"):
        run.train()


# -- killed writers and damaged checkpoints ---------------------------------------------------


def test_temporary_folders_of_killed_writers_are_removed_on_resume(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", str(_config(tmp_path, steps=2, checkpoint_every=2)), "--out", str(run_dir)]) == 0
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    for name in (f".tmp-step-000004-{dead_pid}", f".old-step-000002-{dead_pid}", f".tmp-step-000099-{os.getpid()}"):
        (run_dir / "checkpoints" / name).mkdir()
        (run_dir / "checkpoints" / name / "G.safetensors").write_bytes(b"x" * 1000)
    capsys.readouterr()
    assert main(["resume", str(run_dir), "--steps", "4"]) == 0
    assert "removed 2 temporary folder(s) left by killed checkpoint writers" in capsys.readouterr().err
    left = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert left == [f".tmp-step-000099-{os.getpid()}", "step-000002", "step-000004"]  # a live writer's is kept


def test_a_damaged_newest_checkpoint_names_the_file_and_the_way_back(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", str(_config(tmp_path, steps=4, checkpoint_every=2)), "--out", str(run_dir)]) == 0
    damaged = run_dir / "checkpoints" / "step-000004" / "G.safetensors"
    damaged.write_bytes(damaged.read_bytes()[:-100])
    capsys.readouterr()
    assert main(["resume", str(run_dir), "--steps", "6"]) == 2
    err = capsys.readouterr().err
    assert str(damaged) in err
    assert f"the newest intact checkpoint before it is step-000002: go on from it with `gancore resume {run_dir} " \
           "--from-previous --discard-later`" in err
    # Going back without saying what becomes of the damaged checkpoint would mix two timelines.
    assert main(["resume", str(run_dir), "--steps", "6", "--from-previous"]) == 2
    assert "has checkpoints after step-000002 (step-000004)" in capsys.readouterr().err
    assert main(["resume", str(run_dir), "--steps", "6", "--from-previous", "--discard-later", "--yes"]) == 0
    err = capsys.readouterr().err
    assert "deleted what" in err and "checkpoints/step-000004" in err and "resuming at step 2 of 6" in err
    assert ckpt.read_state(ckpt.latest_checkpoint(run_dir))["step"] == 6
    steps = [json.loads(line)["step"] for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_a_wrongly_typed_state_json_is_a_clear_error(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", str(_config(tmp_path, steps=2, checkpoint_every=2)), "--out", str(run_dir)]) == 0
    state_path = run_dir / "checkpoints" / "step-000002" / "state.json"
    state = json.loads(state_path.read_text())
    state["step"], state["nimg"] = "two hundred", -1
    state_path.write_text(json.dumps(state))
    capsys.readouterr()
    assert main(["resume", str(run_dir), "--steps", "4"]) == 2
    err = capsys.readouterr().err
    assert f"{state_path}: step: expected an integer, got 'two hundred'; nimg: must be >= 0, got -1" in err
    assert "Traceback" not in err


# -- nothing written on bad input -------------------------------------------------------------


def test_config_and_data_errors_write_nothing(tmp_path):
    glead_on_points = _config(tmp_path, extra="", name="glead").read_text().replace("[backbone]", 'plugins = ["glead"]\n[backbone]')
    (tmp_path / "glead.toml").write_text(glead_on_points)
    assert main(["train", str(tmp_path / "glead.toml"), "--out", str(tmp_path / "a")]) == 2
    assert not (tmp_path / "a").exists()
    images = tmp_path / "images"
    images.mkdir()
    from PIL import Image

    for i in range(4):
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(images / f"{i}.png")
    (images / "9.png").write_bytes(b"not an image")
    folder = TINY.format(steps=2, checkpoint_every=0, extra="").replace(
        'name = "mlp"\nwidth = 16', 'name = "dcgan"\nwidth = 8').replace(
        'name = "mog25"\nnum_samples = 256', f'name = "folder"\npath = "{images.as_posix()}"\nresolution = 8')
    (tmp_path / "folder.toml").write_text(folder)
    assert main(["train", str(tmp_path / "folder.toml"), "--out", str(tmp_path / "b")]) == 2
    assert not (tmp_path / "b").exists()


# -- one writer per run folder ----------------------------------------------------------------


def test_a_second_writer_is_refused_and_a_stale_lock_is_taken_over(tmp_path, capsys):
    run_dir = tmp_path / "run"
    trainer = _gancore("train", str(_config(tmp_path, steps=100000, checkpoint_every=2)), "--out", str(run_dir))
    try:
        _wait_for_steps(run_dir, 3, trainer)
        busy = subprocess.run([sys.executable, "-m", "gancore", "resume", str(run_dir)], capture_output=True,
                              text=True, timeout=120)
        assert busy.returncode == 2, busy.stderr
        assert f"{run_dir} is in use by process {trainer.pid} on" in busy.stderr and "gancore train" in busy.stderr
    finally:
        trainer.send_signal(signal.SIGTERM)
        trainer.communicate(timeout=120)
    assert trainer.returncode == 143
    lines = [json.loads(line)["step"] for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert lines == sorted(lines) and len(lines) == len(set(lines))  # one writer's stats, in order
    # A lock left by a process that died without releasing it: taken over, with a warning.
    (run_dir / ".lock").write_text(json.dumps({"pid": 999999, "host": "gone", "since": "then", "command": "x"}))
    step = ckpt.read_state(ckpt.latest_checkpoint(run_dir))["step"]
    capsys.readouterr()
    assert main(["resume", str(run_dir), "--steps", str(step + 1)]) == 0
    err = capsys.readouterr().err  # one message line, no source path and code line
    assert "gancore: warning: " in err and "taking over the lock left by process 999999 on gone" in err


def test_two_trainings_started_together_on_one_folder(tmp_path):
    run_dir = tmp_path / "run"
    config = _config(tmp_path, steps=300)
    first, second = (_gancore("train", str(config), "--out", str(run_dir)) for _ in range(2))
    results = [(p.wait(timeout=300), p.communicate()[1]) for p in (first, second)]
    assert sorted(code for code, _ in results) == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    assert "is in use by process" in refused or "is not empty" in refused
    steps = [json.loads(line)["step"] for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 301))  # one run's records only


# -- the smaller items ------------------------------------------------------------------------


def test_resume_takes_set_and_refuses_to_go_backwards(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", str(_config(tmp_path, steps=4, checkpoint_every=2)), "--out", str(run_dir)]) == 0
    capsys.readouterr()
    assert main(["resume", str(run_dir), "--steps", "3"]) == 2
    assert "train.steps: the run is at step 4 already; give at least that many, got 3" in capsys.readouterr().err
    assert main(["resume", str(run_dir), "--steps", "6", "--set", "train.log_every=2"]) == 0
    assert json.loads((run_dir / "config.json").read_text())["train"]["log_every"] == 2


def test_names_are_spelled_either_way(tmp_path):
    from gancore import load_config

    config = load_config({"backbone": {"name": "dcgan"}, "data": {"name": "Fashion_MNIST"},
                          "plugins": ["eqgan-sa", {"name": "TopK"}]})
    assert config.data.name == "fmnist" and config.plugin_names == ["eqgan_sa", "topk"]
    raw = make_tiny_config("dcgan", ["eqgan-sa"], steps=1)
    assert main(["info", "--json", "--set", "plugins.eqgan_sa.align_weight=2.0", str(_write_json(tmp_path, raw))]) == 0


def _write_json(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw))
    return path


def test_an_unknown_key_in_an_exported_config_names_the_file(tmp_path):
    from gancore.config import ConfigError
    from gancore.pretrained import export, from_pretrained

    out = tmp_path / "run"
    Run.build(make_tiny_config("mlp", steps=1), out_dir=out).train()
    folder = export(out, tmp_path / "model")
    config = json.loads((folder / "config.json").read_text())
    config["train"]["leraning_rate"] = 1.0
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=f"config error in {folder / 'config.json'}\n  train.leraning_rate: unknown key"):
        from_pretrained(folder)


def test_eval_keeps_earlier_results_and_says_what_kid_is(tmp_path, capsys, monkeypatch):
    from gancore.testing import write_fake_fmnist

    monkeypatch.setenv("GANCORE_CACHE", str(tmp_path / "cache"))
    data = write_fake_fmnist(tmp_path / "fmnist", train=64, test=8)
    raw = make_tiny_config("dcgan", steps=1, **{"data.name": "fmnist", "data.path": str(data), "data.resolution": 8,
                                                "data.channels": 1})
    out = tmp_path / "run"
    Run.build(raw, out_dir=out).train()
    assert main(["eval", str(out), "--metrics", "kid", "--n", "40"]) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / "eval-step-000001.json").read_text())
    assert result["metrics"]["Metrics/kid_std"] > 0  # subsets of 20 of the 40, not 40 of 40
    assert "kid: unbiased MMD², cubic polynomial kernel, raw (not x10³), 100 subsets of 20" in printed
    assert main(["eval", str(out), "--metrics", "kid", "--n", "40"]) == 2
    assert "eval-step-000001.json exists (an earlier evaluation)" in capsys.readouterr().err
    assert json.loads((out / "eval-step-000001.json").read_text()) == result
    assert main(["eval", str(out), "--metrics", "kid", "--n", "40", "--force"]) == 0


def test_the_checkpoint_integrity_check(tmp_path):
    out = tmp_path / "run"
    Run.build(make_tiny_config("mlp", steps=2, checkpoint_every=1), out_dir=out).train()
    newest = ckpt.latest_checkpoint(out)
    ckpt.verify_checkpoint(newest)
    (newest / "run.safetensors").write_bytes((newest / "run.safetensors").read_bytes() + b"extra")
    with pytest.raises(ckpt.CheckpointError, match="run.safetensors: damaged or truncated"):
        ckpt.verify_checkpoint(newest)
    assert ckpt.newest_intact_checkpoint(out) == out / "checkpoints" / "step-000001"


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "-1", "0"])
def test_a_learning_rate_out_of_range_is_refused_before_anything_is_written(tmp_path, capsys, value):
    out = tmp_path / "run"
    assert main(["train", str(CONFIGS / "mog25-topk.toml"), "--steps", "2", "--set", f"train.g_lr={value}",
                 "--out", str(out)]) == 2
    assert "train.g_lr: must be " in capsys.readouterr().err
    assert not out.exists()


def test_a_typo_in_a_set_value_gets_a_toml_message(tmp_path, capsys):
    assert main(["train", str(CONFIGS / "mog25-topk.toml"), "--set", "train.betas=[0.5,", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "train.betas: '[0.5,' is not a TOML value" in err and "Too many values" not in err
    assert not (tmp_path / "r").exists()


def test_printed_commands_can_be_pasted_with_spaces_and_accents(tmp_path, capsys):
    import shlex

    out = tmp_path / "my runs é" / "run 1"
    assert main(["train", str(CONFIGS / "mog25-topk.toml"), "--steps", "2", "--out", str(out),
                 "--set", "train.progress=false"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if "continue with: " in l)
    command = line.split("continue with: ", 1)[1].removesuffix(")").replace("--steps N", "--steps 3")
    words = shlex.split(command)
    assert words[:2] == ["gancore", "resume"] and words[2] == str(out)
    assert main(words[1:]) == 0
    assert ckpt.read_state(ckpt.latest_checkpoint(out))["step"] == 3


def test_a_torn_last_stats_line_is_dropped_and_resume_goes_on(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", str(CONFIGS / "mog25-topk.toml"), "--steps", "4", "--out", str(out),
                 "--set", "train.progress=false", "--set", "train.log_every=1"]) == 0
    stats = out / "stats.jsonl"
    with stats.open("a") as f:
        f.write('{"step": 5, "kimg": 1.2, "Loss/D/to')  # a disk that filled, or a kill, mid-line
    capsys.readouterr()
    assert main(["resume", str(out), "--steps", "6"]) == 0
    assert f"gancore: warning: {stats}: dropped a torn last line" in capsys.readouterr().err
    assert [json.loads(line)["step"] for line in stats.read_text().splitlines()] == [1, 2, 3, 4, 5, 6]


def test_a_stats_line_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    import errno

    from gancore import stats as stats_module

    log = stats_module.StatsLog(tmp_path / "stats.jsonl")
    log.add({"Loss/D/total": 1.0})
    log.flush(1, 0.1, 0.5)
    real_write = os.write

    def half_then_full(fd, data):
        real_write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(stats_module.os, "write", half_then_full)
    log.add({"Loss/D/total": 2.0})
    with pytest.raises(OSError):
        log.flush(2, 0.2, 0.5)
    monkeypatch.undo()
    assert [line["step"] for line in stats_module.read_stats(tmp_path / "stats.jsonl")] == [1]
    assert (tmp_path / "stats.jsonl").read_text().endswith("\n")


def test_checkpoint_files_follow_the_umask(tmp_path):
    out = tmp_path / "run"
    old = os.umask(0o022)
    try:
        assert main(["train", str(CONFIGS / "mog25-topk.toml"), "--steps", "2", "--out", str(out),
                     "--set", "train.progress=false"]) == 0
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in ckpt.latest_checkpoint(out).iterdir()}
    assert set(modes.values()) == {0o644}, modes


@pytest.mark.parametrize("entry", ["../elsewhere.safetensors", "/etc/hostname", "link.safetensors"])
def test_a_model_folder_pointing_outside_itself_is_refused(tmp_path, entry):
    import gancore

    out = tmp_path / "run"
    assert main(["train", str(CONFIGS / "mog25-topk.toml"), "--steps", "2", "--out", str(out),
                 "--set", "train.progress=false"]) == 0
    model = gancore.export(out, tmp_path / "model")
    (tmp_path / "elsewhere.safetensors").write_bytes((model / "D.safetensors").read_bytes())
    (model / "link.safetensors").symlink_to(tmp_path / "elsewhere.safetensors")
    index = json.loads((model / "gan_index.json").read_text())
    index["components"]["D"] = entry
    (model / "gan_index.json").write_text(json.dumps(index))
    with pytest.raises(ckpt.CheckpointError, match="points outside the folder"):
        gancore.from_pretrained(model)  # G_ema is asked for; the D entry is checked too


def test_every_listed_network_file_is_checked(tmp_path):
    import gancore

    out = tmp_path / "run"
    assert main(["train", str(CONFIGS / "mog25-topk.toml"), "--steps", "2", "--out", str(out),
                 "--set", "train.progress=false"]) == 0
    model = gancore.export(out, tmp_path / "model")
    (model / "D.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ckpt.CheckpointError, match=r"D\.safetensors: component 'D' is not a readable safetensors"):
        gancore.from_pretrained(model)


def test_checkpoint_rotation_renames_before_it_deletes(tmp_path, monkeypatch):
    """A kill in the middle of deleting an old checkpoint leaves no half checkpoint under a step name."""
    import shutil

    out = tmp_path / "run"
    deleted = []

    def killed_mid_delete(path, ignore_errors=False):
        deleted.append(Path(path).name)
        (Path(path) / "state.json").unlink(missing_ok=True)  # part of it gone, then the process dies
        raise SystemExit("killed")

    run = Run.build(make_tiny_config("mlp", steps=6, checkpoint_every=2, keep_checkpoints=1), out_dir=out)
    run.train(steps=4)
    monkeypatch.setattr(ckpt.shutil, "rmtree", killed_mid_delete)
    with pytest.raises(SystemExit):
        run.train(steps=6)
    monkeypatch.undo()
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert all(n.startswith((".old-", ".tmp-", "step-")) for n in names)
    assert all(ckpt.verify_checkpoint(c) is None for c in ckpt.list_checkpoints(out / "checkpoints"))
    assert deleted and deleted[0].startswith(".old-step-")


def test_out_of_memory_is_one_line_naming_the_phase_the_batch_and_what_to_try(tmp_path, capsys, monkeypatch):
    import torch

    from gancore.trainer import Trainer

    out = tmp_path / "run"
    assert main(["train", str(CONFIGS / "mog25-topk.toml"), "--steps", "2", "--out", str(out),
                 "--set", "train.progress=false", "--set", "train.batch=64"]) == 0
    newest = ckpt.latest_checkpoint(out)

    def exhausted(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(Trainer, "d_main", exhausted)
    capsys.readouterr()
    assert main(["resume", str(out), "--steps", "4"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].startswith("resuming at step 2")  # the status line, then one message
    message = err[1]
    assert message.startswith("gancore: out of memory in Dmain at step 2 on cpu (batch 64: CUDA out of memory.")
    assert "train.batch_per_gpu = 32" in message and f"the newest checkpoint is {newest}" in message


# -- every write atomic; failed starts leave nothing; restarts; a one-checkpoint quota; damaged images


def _truncated_image_folder(tmp_path: Path) -> Path:
    """A config of the folder data set on eight 32x32 PNGs, the sixth cut off after its header."""
    import torch
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    noise = torch.Generator().manual_seed(0)
    for i in range(8):
        pixels = torch.randint(0, 256, (32, 32, 3), generator=noise, dtype=torch.uint8).numpy()
        Image.fromarray(pixels).save(images / f"{i}.png")
    data = (images / "5.png").read_bytes()
    (images / "5.png").write_bytes(data[: len(data) // 2])  # the header reads, the pixels do not
    config = TINY.format(steps=2, checkpoint_every=0, extra="data_workers = {workers}").replace(
        'name = "mlp"\nwidth = 16', 'name = "dcgan"\nwidth = 8').replace(
        'name = "mog25"\nnum_samples = 256', f'name = "folder"\npath = "{images.as_posix()}"\nresolution = 8')
    path = tmp_path / "folder.toml"
    path.write_text(config)
    return path


@pytest.mark.parametrize("workers", [0, 1])
def test_a_truncated_image_found_in_training_is_one_line_and_leaves_no_folder(tmp_path, workers):
    config = _truncated_image_folder(tmp_path)
    config.write_text(config.read_text().format(workers=workers))
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "gancore", "train", str(config), "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("gancore:")]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"cannot read image {tmp_path / 'images' / '5.png'}: image file is truncated" in lines[0]
    assert f"nothing is kept in {out}" in lines[0]
    assert not out.exists()  # no .lock, no config.json: the next `gancore train` finds nothing in the way


def test_a_failure_before_the_first_step_keeps_a_folder_the_user_made_but_empties_it(tmp_path, monkeypatch, capsys):
    from gancore.trainer import Trainer

    def broken(self):
        raise RuntimeError("CUDA out of memory. Tried to allocate 1 GiB")

    monkeypatch.setattr(Trainer, "step", broken)
    out = tmp_path / "mine"
    out.mkdir()
    assert main(["train", str(_config(tmp_path)), "--out", str(out)]) == 1
    assert "out of memory" in capsys.readouterr().err
    assert out.is_dir() and list(out.iterdir()) == []


def test_a_run_without_a_checkpoint_says_so_and_can_be_started_again(tmp_path, capsys):
    out = tmp_path / "run"
    diverging = ["--set", "train.divergence_limit=0.001", "--set", "train.divergence_steps=2"]
    assert main(["train", str(_config(tmp_path, steps=20)), "--out", str(out), *diverging]) == 1
    err = capsys.readouterr().err
    assert "no checkpoint was written before it (train.checkpoint_every = 0)" in err
    assert f"{out} keeps its stats.jsonl and samples to look at, and `gancore train` with the same --out starts" in err
    assert len((out / "stats.jsonl").read_text().splitlines()) == 2  # kept to look at
    assert main(["train", str(_config(tmp_path, steps=3)), "--out", str(out)]) == 0
    assert f"{out} holds a run that wrote no checkpoint; starting it again" in capsys.readouterr().err
    assert [json.loads(line)["step"] for line in (out / "stats.jsonl").read_text().splitlines()] == [1, 2, 3]
    # Now it has a checkpoint: `train` refuses, with the true way on.
    assert main(["train", str(_config(tmp_path, steps=3)), "--out", str(out)]) == 2
    assert f"{out} holds a run with checkpoints; go on with `gancore resume {out}`" in capsys.readouterr().err
    other = tmp_path / "other"
    other.mkdir()
    (other / "photo.jpg").write_bytes(b"x")
    assert main(["train", str(_config(tmp_path, steps=3)), "--out", str(other)]) == 2
    assert "is not empty and holds no failed gancore run to start again" in capsys.readouterr().err
    assert sorted(p.name for p in other.iterdir()) == ["photo.jpg"]


@pytest.mark.parametrize("layout", ["another tool's run", "a finished run without its checkpoints"])
def test_train_never_clears_a_folder_that_is_not_a_failed_gancore_run(tmp_path, capsys, layout):
    out = tmp_path / "kept"
    if layout == "another tool's run":
        (out / "checkpoints" / "epoch=3").mkdir(parents=True)
        (out / "checkpoints" / "epoch=3" / "model.ckpt").write_bytes(b"weights")
        (out / "config.json").write_text('{"lr": 0.1}')
    else:
        assert main(["train", str(_config(tmp_path, steps=2, checkpoint_every=2)), "--out", str(out)]) == 0
        import shutil

        shutil.rmtree(out / "checkpoints")
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    capsys.readouterr()
    assert main(["train", str(_config(tmp_path)), "--out", str(out)]) == 2
    assert "holds no failed gancore run to start again" in capsys.readouterr().err
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before


def test_a_failed_start_in_python_leaves_a_folder_with_other_files_alone(register_plugin, tmp_path):
    from gancore.plugins import HookError

    class Boom:
        name = "boom"

        @hookimpl
        def gancore_step_start(self, run):
            (run.out_dir / "notes.txt").write_text("a plugin's own file")
            raise RuntimeError("boom")

    register_plugin(Boom)
    fresh = tmp_path / "fresh"
    with pytest.raises(HookError, match="boom"):  # the plugin's error, not a failed clean-up
        Run.build(make_tiny_config("mlp", ["boom"]), out_dir=fresh).train()
    assert sorted(p.name for p in fresh.iterdir()) == ["notes.txt"]  # gancore's files gone, the plugin's kept
    used = tmp_path / "used"
    (used / "checkpoints").mkdir(parents=True)
    (used / "checkpoints" / "model.pt").write_bytes(b"x")
    (used / "tensorboard").mkdir()
    with pytest.raises(HookError):
        Run.build(make_tiny_config("mlp", ["boom"]), out_dir=used).train()
    assert (used / "checkpoints" / "model.pt").read_bytes() == b"x" and (used / "tensorboard").is_dir()


def test_the_first_checkpoint_that_does_not_fit_gives_the_space_it_needs(tmp_path, monkeypatch, capsys):
    import errno

    def full(tmp, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp / "G.safetensors"))

    monkeypatch.setattr(ckpt, "_write_files", full)
    out = tmp_path / "run"
    assert main(["train", str(_config(tmp_path, steps=2, checkpoint_every=2)), "--out", str(out)]) == 1
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"could not write checkpoint {out / 'checkpoints' / 'step-000002'}: No space left on device (G.safetensors)" in message
    assert "; it needs about 0." in message and "MiB are free; no complete checkpoint exists yet" in message
    assert list((out / "checkpoints").iterdir()) == []


@pytest.mark.parametrize("target", ["samples", "summary"])
def test_a_sample_grid_or_summary_that_cannot_be_written_names_it_and_leaves_no_temporary(
    tmp_path, monkeypatch, capsys, target
):
    import errno

    from gancore import files

    original = files.write_atomically

    def failing(path, write):
        def cut_short(tmp):
            write(tmp)
            raise OSError(errno.ENOSPC, "No space left on device")
        hit = Path(path).parent.name == "samples" if target == "samples" else Path(path).name == "summary.json"
        return original(path, cut_short if hit else write)

    monkeypatch.setattr(files, "write_atomically", failing)
    monkeypatch.setattr("gancore.samples.write_atomically", failing)
    monkeypatch.setattr("gancore.files.write_text_atomically",
                        lambda path, text: failing(path, lambda tmp: tmp.write_text(text, encoding="utf-8")))
    out = tmp_path / "run"
    assert main(["train", str(_config(tmp_path, steps=2, checkpoint_every=2, extra="sample_every = 2")),
                 "--out", str(out)]) == 1
    message = capsys.readouterr().err.strip().splitlines()[-1]
    name = out / "samples" / "step-000002.png" if target == "samples" else out / "summary.json"
    assert message == f"gancore: could not write {name}: No space left on device"
    assert not [p for p in out.rglob(".*tmp*")]  # no temporary left anywhere
    assert not name.exists()


def test_keep_checkpoints_1_rotates_in_a_quota_that_holds_one(tmp_path, monkeypatch, capsys):
    import errno

    original = ckpt._write_files

    def quota_of_one(tmp, *args, **kwargs):
        if ckpt.list_checkpoints(tmp.parent):
            raise OSError(errno.EDQUOT, "Disk quota exceeded", str(tmp / "G.safetensors"))
        return original(tmp, *args, **kwargs)

    monkeypatch.setattr(ckpt, "_write_files", quota_of_one)
    out = tmp_path / "run"
    config = _config(tmp_path, steps=6, checkpoint_every=2, extra="keep_checkpoints = 1")
    assert main(["train", str(config), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "gancore: warning: no room for step-000004 beside step-000002 (train.keep_checkpoints = 1)" in err
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-000006"]
    ckpt.verify_checkpoint(out / "checkpoints" / "step-000006")
