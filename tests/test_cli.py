"""The ``gancore`` command line, end to end, in-process."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from gancore.cli import main
from gancore.hookdocs import hook_names, render_hooks_markdown

REPO = Path(__file__).resolve().parents[1]

TINY_TOML = """
plugins = []
[backbone]
name = "dcgan"
width = 8
z_dim = 16
max_width = 32
[data]
name = "synthetic-images"
resolution = 8
channels = 1
num_samples = 64
[train]
steps = 4
batch = 8
device = "cpu"
progress = false
log_every = 2
"""


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_TOML)
    return path


def test_train_resume_sample(config_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", str(config_file), "--out", str(out), "--set", "train.steps=2"]) == 0
    printed = capsys.readouterr().out
    assert f"Results in {out}/" in printed and "step-000002.png" in printed
    assert json.loads((out / "config.json").read_text())["train"]["steps"] == 2

    assert main(["resume", str(out), "--steps", "4"]) == 0
    assert (out / "checkpoints" / "step-000004" / "state.json").is_file()
    steps = [json.loads(line)["step"] for line in (out / "stats.jsonl").read_text().splitlines()]
    assert steps == [2, 4]

    grid = tmp_path / "grid.png"
    assert main(["sample", str(out), "--n", "6", "--out", str(grid)]) == 0
    image = Image.open(grid)
    assert image.size == (3 * 8, 2 * 8) and image.mode == "L"
    assert "wrote 6 samples of step 4" in capsys.readouterr().out
    # A checkpoint folder works as well as a run folder.
    assert main(["sample", str(out / "checkpoints" / "step-000004"), "--n", "4", "--out", str(grid)]) == 0


def test_config_error_exits_2_and_writes_nothing(config_file, tmp_path, capsys):
    out = tmp_path / "run"
    status = main(["train", str(config_file), "--out", str(out), "--set", "train.batch=-4",
                   "--set", "train.gama=1"])
    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith(f"gancore: config error in {config_file}")
    assert "  train.batch: must be > 0, got -4" in err
    assert "  train.gama: unknown key (did you mean 'r1_gamma'?)" in err
    assert not out.exists()


def test_unknown_plugin_message(config_file, tmp_path, capsys):
    assert main(["info", str(config_file), "--set", 'plugins=["fancy"]']) == 2
    err = capsys.readouterr().err
    assert "plugins.fancy: plugin 'fancy' is not installed; installed: " in err and "dcgan" in err
    assert "Try: pip install gancore-fancy" in err


def test_train_refuses_a_non_empty_out_dir(config_file, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    assert main(["train", str(config_file), "--out", str(out)]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert (out / "precious.txt").read_text() == "keep me"


def test_info_json_reports_parameter_counts(config_file, capsys):
    assert main(["info", str(config_file), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["params"]["G"] > 0 and report["params"]["D"] > 0
    assert report["params"]["G"] == report["params"]["G_ema"]
    assert report["config"]["backbone"]["resolution"] == 8  # resolved from the data set
    assert report["data"]["shape"] == [1, 8, 8] and report["data"]["size"] == 64
    assert report["backbone"]["plugin"] == "dcgan"


def test_info_counts_modules_that_plugins_attach(config_file, capsys, register_plugin):
    import torch

    from gancore import hookimpl

    class Heads:
        name = "heads"

        @hookimpl
        def gancore_setup(self, run):
            run.D.attach("heads", torch.nn.Linear(10, 10))

    register_plugin(Heads)
    assert main(["info", str(config_file), "--json", "--set", 'plugins=["heads"]']) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["params"]["D.attachments.heads"] == 110
    assert main(["info", str(config_file), "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert report["params"]["D"] == plain["params"]["D"] + 110


def test_plugins_lists_installed_with_versions_and_hooks(capsys):
    assert main(["plugins", "--json"]) == 0
    plugins = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    dcgan = plugins["dcgan"]
    assert dcgan["distribution"] == "gancore-dcgan" and dcgan["version"]
    assert dcgan["hooks"] == ["gancore_register_backbones"] and dcgan["kind"] == "backbone"
    assert main(["plugins"]) == 0
    text = capsys.readouterr().out
    assert "backbones: dcgan, mlp" in text


def test_hooks_reference_lists_every_hook(capsys):
    assert main(["hooks"]) == 0
    text = capsys.readouterr().out
    for name in hook_names():
        assert f"## {name}" in text
        assert "Combine rule" in text.split(f"## {name}")[1].split("## ")[0]


def test_docs_hooks_md_is_up_to_date():
    committed = (REPO / "docs" / "hooks.md").read_text()
    assert committed == render_hooks_markdown(), "docs/hooks.md is stale: run `gancore hooks > docs/hooks.md`"


def test_every_hook_spec_documents_its_contract():
    from gancore import hookspecs

    for name in hook_names():
        doc = getattr(hookspecs, name).__doc__ or ""
        assert "Called" in doc, f"{name}: say when it is called"
        assert "Combine rule:" in doc, f"{name}: state its combine rule"
        for param in __import__("inspect").signature(getattr(hookspecs, name)).parameters:
            assert f":param {param}:" in doc, f"{name}: document argument {param}"


def test_python_dash_m_gancore_works():
    result = subprocess.run([sys.executable, "-m", "gancore", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("gancore ")


def test_backbone_data_mismatch_is_a_config_error(config_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", str(config_file), "--out", str(out), "--set", "backbone.resolution=16"]) == 2
    err = capsys.readouterr().err
    assert "backbone: resolution = 16 does not match data set 'synthetic-images'" in err
    assert not out.exists()
    assert main(["train", str(config_file), "--set", "data.name=mog25"]) == 2
    assert "backbone: the dcgan backbone models images" in capsys.readouterr().err


def test_missing_data_is_a_clear_error(config_file, tmp_path, capsys):
    missing = ["--set", "data.name=fmnist", "--set", f"data.path={json.dumps(str(tmp_path / 'nowhere'))}"]
    assert main(["train", str(config_file), "--out", str(tmp_path / "run"), *missing]) == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and "dataset-fashion-mnist" in err
    # info still describes the networks, from the shape the config declares, and says what is missing.
    assert main(["info", str(config_file), *missing, "--set", "data.resolution=32", "--set", "data.channels=1"]) == 0
    out = capsys.readouterr().out
    assert "is not available here" in out and "nowhere" in out and "dataset-fashion-mnist" in out


def test_bad_paths_are_clear_errors(config_file, tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert main(["train", str(config_file), "--out", str(a_file)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    out = tmp_path / "run"
    assert main(["train", str(config_file), "--out", str(out), "--set", "train.steps=1"]) == 0
    assert main(["sample", str(out), "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main(["sample", str(out), "--out", str(tmp_path / "grid.xyz")]) == 2
    assert "unknown image extension '.xyz'" in capsys.readouterr().err
    assert main(["sample", str(out), "--n", "4", "--out", str(tmp_path / "grid.jpg")]) == 0
    assert Image.open(tmp_path / "grid.jpg").format == "JPEG"
    checkpoint = out / "checkpoints" / "step-000001"
    (checkpoint / "G_ema.safetensors").write_bytes(b"\x00\x01garbage")
    assert main(["sample", str(out), "--out", str(tmp_path / "g.png")]) == 2
    assert "G_ema.safetensors: not a readable safetensors file" in capsys.readouterr().err
    (checkpoint / "state.json").write_text("{}")
    assert main(["resume", str(out)]) == 2
    assert "state.json: incomplete, missing step, nimg, config" in capsys.readouterr().err


def test_divergence_is_reported_without_a_traceback(config_file, tmp_path, capsys):
    status = main(["train", str(config_file), "--out", str(tmp_path / "run"), "--set", "train.g_lr=1e38",
                   "--set", "train.d_lr=1e38", "--set", "train.steps=20"])
    assert status == 1
    assert "training diverged: loss became" in capsys.readouterr().err



def test_sample_cond_file(config_file, tmp_path, capsys, register_plugin):
    from safetensors.torch import save_file

    from test_hooks import _Tagger

    register_plugin(_Tagger)
    out = tmp_path / "run"
    assert main(["train", str(config_file), "--out", str(out), "--set", "train.steps=1",
                 "--set", 'plugins=["tagger"]']) == 0
    cond = tmp_path / "cond.safetensors"
    save_file({"tag": torch.arange(4.0)}, str(cond))
    assert main(["sample", str(out), "--n", "4", "--cond", str(cond), "--out", str(tmp_path / "g.png")]) == 0
    assert main(["sample", str(out), "--n", "5", "--cond", str(cond), "--out", str(tmp_path / "g.png")]) == 2
    assert "must be a tensor with 5 rows" in capsys.readouterr().err
    assert main(["sample", str(out), "--n", "4", "--cond", str(tmp_path / "none.safetensors")]) == 2
    assert "none.safetensors: file not found" in capsys.readouterr().err
