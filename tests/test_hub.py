"""Publishing to and loading from a Hub with the real huggingface_hub client, over HTTP on 127.0.0.1."""

import json

import pytest
import torch

import gancore
from gancore.cli import main
from gancore.config import ConfigError
from gancore.pretrained import UnsafeFilesError, export, from_pretrained
from gancore.testing import make_tiny_config
from gancore.run import Run
from hub_server import go_offline, hub_fixture  # noqa: F401  (the "hub" fixture)


@pytest.fixture
def trained(tmp_path):
    out = tmp_path / "run"
    run = Run.build(make_tiny_config("dcgan", ["topk"], steps=4, checkpoint_every=2), out_dir=out).train()
    return run, out


def test_push_and_load_by_repo_id_with_and_without_revision(hub, trained, tmp_path, capsys):
    run, out = trained
    assert main(["push", str(out), "someone/tiny", "--checkpoint", "step-000002"]) == 0
    assert "pushed to someone/tiny" in capsys.readouterr().out
    assert main(["push", str(out), "someone/tiny", "--branch", "v1"]) == 0
    files = hub.repo_files("someone/tiny")
    assert {"config.json", "gan_index.json", "G.safetensors", "D.safetensors", "G_ema.safetensors", "README.md",
            "samples.png"} <= set(files)
    assert json.loads(files["gan_index.json"])["step"] == 2
    assert json.loads(hub.repo_files("someone/tiny", "v1")["gan_index.json"])["step"] == 4

    G = from_pretrained("someone/tiny", revision="v1")
    assert torch.equal(G.sample(3, seed=1), run.sample(3, seed=1))  # the newest checkpoint, on branch v1
    older = from_pretrained("someone/tiny")
    assert not torch.equal(older.sample(3, seed=1), G.sample(3, seed=1))
    # The model card carries the Hub metadata the server parsed from README.md.
    info = __import__("huggingface_hub").HfApi().model_info("someone/tiny")
    assert info.card_data["library_name"] == "gancore" and {"gan", "dcgan", "topk"} <= set(info.card_data["tags"])
    assert main(["sample", "someone/tiny", "--n", "4", "--out", str(tmp_path / "grid.png")]) == 0


def test_offline_loading_comes_from_the_cache(hub, trained, monkeypatch):
    run, out = trained
    gancore.push_to_hub(out, "someone/cached")
    expected = from_pretrained("someone/cached").sample(2, seed=0)
    hub.stop()
    go_offline(monkeypatch)
    assert torch.equal(from_pretrained("someone/cached").sample(2, seed=0), expected)


def test_run_push_to_hub_checkpoints_the_current_step(hub, tmp_path):
    run = Run.build(make_tiny_config("dcgan", steps=3, checkpoint_every=0), out_dir=tmp_path / "run")
    for _ in range(2):
        run.trainer.step()
    gancore.push_to_hub(run, "someone/live", private=True)
    assert json.loads(hub.repo_files("someone/live")["gan_index.json"])["step"] == 2
    assert torch.equal(from_pretrained("someone/live").sample(2), run.sample(2))


def test_a_repo_holding_a_pickle_is_refused(hub, trained, tmp_path):
    _, out = trained
    folder = export(out, tmp_path / "model")
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    hub.commit("someone/bad", {**files, "pytorch_model.pkl": b"\x80\x04K\x01."})
    with pytest.raises(UnsafeFilesError, match=r"Hub repo someone/bad holds files gancore never loads \(pytorch_model.pkl\)"):
        from_pretrained("someone/bad")


def test_tampered_configs_are_refused(hub, trained, tmp_path):
    _, out = trained
    folder = export(out, tmp_path / "model")
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    config = json.loads(files["config.json"])
    config["train"]["batchsize"] = 3
    hub.commit("someone/tampered", {**files, "config.json": json.dumps(config).encode()})
    with pytest.raises(ConfigError, match="train.batchsize: unknown key"):
        from_pretrained("someone/tampered")
    config["train"].pop("batchsize")
    config["backbone"]["width"] = 16  # the weights no longer fit
    hub.commit("someone/tampered", {"config.json": json.dumps(config).encode()})
    with pytest.raises(gancore.checkpoint.CheckpointError, match="vs"):
        from_pretrained("someone/tampered")


def test_unknown_repo_is_a_clear_error(hub):
    with pytest.raises(gancore.checkpoint.CheckpointError, match="someone/nothing: neither a local folder nor a reachable Hub repo"):
        from_pretrained("someone/nothing")


def test_dgl_teacher_from_a_hub_repo(hub, tmp_path):
    teacher = tmp_path / "teacher"
    Run.build(make_tiny_config("dcgan", steps=1), out_dir=teacher).train()
    gancore.push_to_hub(teacher, "someone/teacher")
    student = Run.build(make_tiny_config("dcgan", [{"name": "dgl", "teacher": "someone/teacher"}], steps=1)).train()
    assert student.last_stats["Loss/G/dgl_teacher"] > 0
    loaded = gancore.checkpoint.read_tensors(teacher / "checkpoints" / "step-000001" / "D.safetensors")
    assert all(torch.equal(v, loaded[k]) for k, v in student.plugins["dgl"].teacher.state_dict().items())
