"""Exported folders and from_pretrained: round trips for every bundled backbone and each method plugin,
strict loading, refusal of anything but JSON and safetensors, missing plugins."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

import gancore
from gancore.checkpoint import CheckpointError
from gancore.cli import main
from gancore.config import ConfigError
from gancore.pretrained import MissingPluginError, UnsafeFilesError, export, from_pretrained
from gancore.testing import make_tiny_config
from gancore.run import Run

DETERMINISTIC = {"stylegan2": {"backbone.noise_mode": "const"}}


def _trained(tmp_path, backbone="dcgan", plugins=(), **settings):
    out = tmp_path / "run"
    raw = make_tiny_config(backbone, list(plugins), steps=2, **{**DETERMINISTIC.get(backbone, {}), **settings})
    return Run.build(raw, out_dir=out).train(), out


@pytest.mark.parametrize("backbone", ["mlp", "dcgan", "stylegan2"])
def test_round_trip_of_every_bundled_backbone(tmp_path, backbone):
    run, out = _trained(tmp_path, backbone)
    folder = export(out, tmp_path / "model")
    assert sorted(p.name for p in folder.iterdir()) == [
        "D.safetensors", "G.safetensors", "G_ema.safetensors", "README.md", "config.json", "gan_index.json",
        "samples.png"]
    G = from_pretrained(folder)
    assert type(G) is type(run.G_ema) and not G.training
    for name, tensor in run.G_ema.state_dict().items():
        assert torch.equal(tensor, G.state_dict()[name]), name
    assert torch.equal(G.sample(5, seed=4), run.sample(5, seed=4))
    D = from_pretrained(folder, component="D")
    assert all(torch.equal(v, D.state_dict()[k]) for k, v in run.D.state_dict().items())
    index = json.loads((folder / "gan_index.json").read_text())
    assert index["step"] == 2 and index["components"]["G_ema"] == "G_ema.safetensors"


def test_config_json_names_everything_needed(tmp_path):
    _, out = _trained(tmp_path, "dcgan", ["topk"])
    config = json.loads((export(out, tmp_path / "model") / "config.json").read_text())
    assert config["backbone"]["name"] == "dcgan" and config["backbone"]["resolution"] == 8
    assert config["plugins"][0]["name"] == "topk" and "gamma" in config["plugins"][0]
    assert config["gancore"]["plugins"]["topk"] and config["gancore"]["data_info"]["shape"] == [3, 8, 8]
    assert config["data"]["name"] == "synthetic-images" and config["train"]["steps"] == 2 and config["train"]["seed"] == 0


def test_model_card_has_hub_metadata_and_each_plugin(tmp_path):
    _, out = _trained(tmp_path, "dcgan", ["topk", {"name": "glead", "distance": "mse"}])
    card = (export(out, tmp_path / "model", repo_id="someone/tiny") / "README.md").read_text()
    front = card.split("---")[1]
    assert "library_name: gancore" in front and '- "gan"' in front and '- "topk"' in front and '- "glead"' in front
    assert '- "synthetic-images"' in front
    assert 'gancore.from_pretrained("someone/tiny")' in card
    assert "### topk" in card and "### glead" in card


def test_mixture_metrics_reach_the_card_with_their_protocol(tmp_path):
    _, out = _trained(tmp_path, "mlp", eval_samples=200)
    card = (export(out, tmp_path / "model") / "README.md").read_text()
    assert "- \"modes_covered\"" in card and "| modes_covered |" in card and "200 samples" in card


@pytest.mark.parametrize("plugins", [[{"name": "glead", "distance": "mse"}], ["eqgan_sa"], ["topk"]])
def test_round_trip_with_method_plugins(tmp_path, plugins):
    run, out = _trained(tmp_path, "dcgan", plugins)
    folder = export(out, tmp_path / "model")
    G = from_pretrained(folder)
    assert torch.equal(G.sample(3, seed=1), run.sample(3, seed=1))
    D = from_pretrained(folder, component="D")
    assert set(D.state_dict()) == set(run.D.state_dict())  # GLeaD's heads come back with D


def test_an_eqgan_sa_generator_samples_with_heatmaps_out_of_the_box(tmp_path):
    from gancore_eqgan_sa.heatmaps import sample_heatmaps

    run, out = _trained(tmp_path, "dcgan", ["eqgan_sa"])
    G = from_pretrained(export(out, tmp_path / "model"))
    assert G.sample(2, seed=0).shape == (2, 3, 8, 8)
    heatmap = sample_heatmaps(2, 8, generator=torch.Generator().manual_seed(9)).heatmap
    assert torch.equal(G.sample(2, seed=0, heatmap=heatmap), run.sample(2, seed=0, cond={"heatmap": heatmap}))


def test_a_dgl_student_loads_without_its_teacher(tmp_path):
    teacher = tmp_path / "teacher"
    Run.build(make_tiny_config("dcgan", steps=1), out_dir=teacher).train()
    student = tmp_path / "student"
    Run.build(make_tiny_config("dcgan", [{"name": "dgl", "teacher": str(teacher)}], steps=1), out_dir=student).train()
    folder = export(student, tmp_path / "model")
    card = (folder / "README.md").read_text()
    assert "| dgl.teacher.D |" in card
    shutil.rmtree(teacher)
    assert from_pretrained(folder).sample(2).shape == (2, 3, 8, 8)


def test_dtype_and_device(tmp_path):
    _, out = _trained(tmp_path, "dcgan")
    G = from_pretrained(export(out, tmp_path / "model"), dtype=torch.float64, device="cpu")
    assert next(G.parameters()).dtype == torch.float64 and G.sample(2).dtype == torch.float32


def test_strict_loading_and_tampered_configs(tmp_path):
    _, out = _trained(tmp_path, "dcgan")
    folder = export(out, tmp_path / "model")
    tensors = load_file(str(folder / "G_ema.safetensors"))
    name = next(iter(tensors))
    save_file({**tensors, "extra.weight": torch.zeros(1)}, str(folder / "G_ema.safetensors"))
    with pytest.raises(CheckpointError, match="unexpected"):
        from_pretrained(folder)
    save_file({k: v for k, v in tensors.items() if k != name}, str(folder / "G_ema.safetensors"))
    with pytest.raises(CheckpointError, match="missing"):
        from_pretrained(folder)
    save_file(tensors, str(folder / "G_ema.safetensors"))
    config = json.loads((folder / "config.json").read_text())
    config["backbone"]["widht"] = 3
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="backbone.widht: unknown key"):
        from_pretrained(folder)
    config["backbone"].pop("widht")
    config["backbone"]["width"] = 16  # the weights no longer fit
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="vs"):
        from_pretrained(folder)


def test_anything_but_json_and_safetensors_is_refused(tmp_path):
    _, out = _trained(tmp_path, "dcgan")
    folder = export(out, tmp_path / "model")
    (folder / "pytorch_model.bin").write_bytes(b"not even a pickle")
    with pytest.raises(UnsafeFilesError, match=r"holds files gancore never loads \(pytorch_model.bin\)"):
        from_pretrained(folder)


def test_a_missing_plugin_names_the_package(tmp_path):
    _, out = _trained(tmp_path, "dcgan")
    folder = export(out, tmp_path / "model")
    config = json.loads((folder / "config.json").read_text())
    config["plugins"] = [{"name": "fancy_method"}]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(MissingPluginError, match="this model needs gancore-fancy-method; pip install gancore-fancy-method"):
        from_pretrained(folder)
    config["plugins"], config["backbone"]["name"] = [], "progan"
    config["gancore"]["backbone_plugin"] = "progan"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(MissingPluginError, match="this model needs backbone 'progan' from gancore-progan "
                                                 r"\(registered backbones: biggan, dcgan, mlp, stylegan2\); pip install gancore-progan"):
        from_pretrained(folder)
    # The plugin that registered it is installed, but provides no such backbone: say so, not "install it".
    config["backbone"]["name"], config["gancore"]["backbone_plugin"] = "dcgan_xl", "dcgan"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(MissingPluginError, match="this model needs backbone 'dcgan_xl', which the installed "
                                                 "gancore-dcgan does not provide"):
        from_pretrained(folder)


def test_cli_export_and_sample_from_the_folder(tmp_path, capsys):
    _, out = _trained(tmp_path, "dcgan")
    assert main(["export", str(out), str(tmp_path / "model"), "--checkpoint", "step-000002"]) == 0
    assert main(["sample", str(tmp_path / "model"), "--n", "4", "--out", str(tmp_path / "g.png")]) == 0
    assert f"wrote 4 samples of {tmp_path / 'model'}" in capsys.readouterr().out
    assert main(["export", str(out), str(tmp_path / "model")]) == 2
    assert "not empty" in capsys.readouterr().err


def test_from_pretrained_is_exported_at_the_top():
    assert gancore.from_pretrained is from_pretrained


def test_subfolder(tmp_path):
    run, out = _trained(tmp_path, "dcgan")
    export(out, tmp_path / "repo" / "generators" / "tiny")
    G = from_pretrained(tmp_path / "repo", subfolder="generators/tiny")
    assert torch.equal(G.sample(2, seed=0), run.sample(2, seed=0))
    with pytest.raises(CheckpointError, match="not an exported gancore folder"):
        from_pretrained(tmp_path / "repo")
