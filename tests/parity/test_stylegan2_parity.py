"""The stylegan2 backbone, imported from NVIDIA's networks, computes what NVIDIA's code computes.

Fixtures: outputs of NVlabs/stylegan2-ada-pytorch (fp32, CPU) for small networks shaped like its
paper256, config-f (stylegan2) and conditional cifar configs, plus its skip D; written by
tools/parity/make_fixtures.py. NVIDIA's float16 layers are a GPU path gancore does not copy (it
offers bf16 autocast instead): every comparison here is of the float32 path.
"""

import json

import pytest
import torch
from nvidia_format import NAMES, checkpoint, load_fixture, persistent_module, write_nvidia_pickle

import gancore
from gancore.cli import main
from gancore.importing import build_run
from gancore.plugins import PluginManager

ATOL = 1e-5


@pytest.fixture(scope="module", params=NAMES)
def imported(request):
    manager = PluginManager()
    plugin, model = manager.hooks.import_networks(checkpoint(request.param))
    assert plugin == "stylegan2"
    tensors, meta = load_fixture(request.param)
    return build_run(model, manager), tensors, meta


def _c(tensors):
    return tensors["in.c"] if tensors["in.c"].shape[1] else None


def test_generator_matches_official(imported):
    run, fx, _ = imported
    with torch.no_grad():
        torch.testing.assert_close(run.G_ema.mapping(fx["in.z"], _c(fx)), fx["out.ws"], atol=ATOL, rtol=0)
        torch.testing.assert_close(run.G_ema(fx["in.z"], _c(fx)), fx["out.images"], atol=ATOL, rtol=0)
        torch.testing.assert_close(run.G.eval()(fx["in.z"], _c(fx)), fx["out.images_G"], atol=ATOL, rtol=0)


def test_truncation_matches_official(imported):
    run, fx, meta = imported
    psi, cutoff = meta["truncation"]["psi"], meta["truncation"]["cutoff"]
    G = run.G_ema
    with torch.no_grad():
        ws = G.mapping_network(fx["in.z"], _c(fx), truncation_psi=psi, truncation_cutoff=cutoff)
        torch.testing.assert_close(G.synthesis(ws), fx["out.images_psi"], atol=ATOL, rtol=0)


def test_discriminator_matches_official(imported):
    run, fx, _ = imported
    D = run.D.eval()
    with torch.no_grad():
        torch.testing.assert_close(D(fx["in.reals"], _c(fx)), fx["out.logits_real"], atol=ATOL, rtol=0)
        torch.testing.assert_close(D(fx["out.images"], _c(fx)), fx["out.logits_fake"], atol=ATOL, rtol=0)


def test_settings_come_from_the_modules(imported):
    run, _, meta = imported
    config = run.config.backbone.config
    d_tree = meta["networks"]["D"]
    assert config.d_architecture == d_tree["children"]["b4"]["attributes"]["architecture"]
    assert config.mapping_layers == meta["networks"]["G"]["children"]["mapping"]["attributes"]["num_layers"]
    mbstd = d_tree["children"]["b4"]["children"]["mbstd"]["attributes"]
    assert config.mbstd_group_size == mbstd["group_size"]
    assert config.noise_mode == "const"


@pytest.mark.parametrize("name", ["configf-tiny", "cifar-cond-tiny"])
def test_cli_import_of_an_nvidia_pickle_renders_the_official_images(tmp_path, name):
    flag = tmp_path / "module_src-ran"
    augment_pipe = persistent_module("AugmentPipe", {"p": torch.tensor(0.3)}, {"xflip": 1.0}, flag)
    pkl = write_nvidia_pickle(tmp_path / "network-snapshot-000120.pkl", name, flag, extras={
        "training_set_kwargs": {"path": "~/datasets/cifar10.zip", "use_labels": True}, "augment_pipe": augment_pipe})
    out = tmp_path / "model"
    assert main(["import", str(pkl), str(out)]) == 0
    assert not flag.exists(), "the pickle's module_src was executed"
    fx, _ = load_fixture(name)
    G = gancore.from_pretrained(out)
    D = gancore.from_pretrained(out, component="D")
    with torch.no_grad():
        torch.testing.assert_close(G(fx["in.z"], _c(fx)), fx["out.images"], atol=ATOL, rtol=0)
        torch.testing.assert_close(D(fx["in.reals"], _c(fx)), fx["out.logits_real"], atol=ATOL, rtol=0)
    index = json.loads((out / "gan_index.json").read_text())
    assert index["nimg"] == 120_000 and index["imported_from"]["file"] == pkl.name
    card = (out / "README.md").read_text()
    assert index["imported_from"]["sha256"] in card and "licence of their source" in card
    assert "not imported: the file's training state augment_pipe (AugmentPipe)" in card
    config = json.loads((out / "config.json").read_text())
    assert config["gancore"]["data_info"]["name"] == "cifar10"
    assert main(["sample", str(out), "--n", "4", "--out", str(tmp_path / "grid.png")]) == 0
    assert (tmp_path / "grid.png").stat().st_size > 0


def test_cli_import_from_a_url_downloads_once_and_records_it(tmp_path, http_files):
    pkl = write_nvidia_pickle(http_files.folder / "stylegan2-tiny.pkl", "skip-d-tiny", tmp_path / "ran")
    url = http_files.url(pkl.name)
    assert main(["import", url, str(tmp_path / "a")]) == 0
    assert main(["import", url, str(tmp_path / "b")]) == 0
    assert http_files.requests == ["/stylegan2-tiny.pkl"]  # the second import used the cache
    index = json.loads((tmp_path / "b" / "gan_index.json").read_text())
    assert index["imported_from"]["url"] == url
    assert url in (tmp_path / "b" / "README.md").read_text()
    fx, _ = load_fixture("skip-d-tiny")
    G = gancore.from_pretrained(tmp_path / "b")
    with torch.no_grad():
        torch.testing.assert_close(G(fx["in.z"], _c(fx)), fx["out.images"], atol=ATOL, rtol=0)
    assert main(["import", http_files.url("missing.pkl"), str(tmp_path / "c")]) == 1
    assert not (tmp_path / "c").exists()


def test_an_imported_model_pushes_and_loads_from_the_hub(hub, tmp_path):
    pkl = write_nvidia_pickle(tmp_path / "ffhq-tiny.pkl", "cifar-cond-tiny", tmp_path / "ran")
    out = tmp_path / "model"
    assert main(["import", str(pkl), str(out)]) == 0
    assert main(["push", str(out), "someone/imported"]) == 0
    assert json.loads(hub.repo_files("someone/imported")["gan_index.json"])["imported_from"]["file"] == "ffhq-tiny.pkl"
    fx, _ = load_fixture("cifar-cond-tiny")
    with torch.no_grad():
        G = gancore.from_pretrained("someone/imported")
        torch.testing.assert_close(G(fx["in.z"], _c(fx)), fx["out.images"], atol=ATOL, rtol=0)


def test_train_init_fine_tunes_an_imported_model(tmp_path):
    pkl = write_nvidia_pickle(tmp_path / "net.pkl", "configf-tiny", tmp_path / "ran")
    model = tmp_path / "model"
    assert main(["import", str(pkl), str(model)]) == 0
    backbone = json.loads((model / "config.json").read_text())["backbone"]
    run_file = tmp_path / "finetune.json"
    run_file.write_text(json.dumps({
        "backbone": {**backbone, "noise_mode": "random"},
        "data": {"name": "synthetic-images", "resolution": 32, "channels": 3, "num_samples": 16},
        "train": {"steps": 1, "batch": 8, "progress": False, "tensorboard": False, "grid": 4},
    }))
    from gancore.api import load_config
    from gancore.run import Run

    run = Run.build(load_config(run_file, [f"train.init={model}"]))
    reference = gancore.from_pretrained(model, component="D")
    for (key, mine), theirs in zip(run.D.state_dict().items(), reference.state_dict().values()):
        assert torch.equal(mine, theirs), key
    assert main(["train", str(run_file), "--init", str(model), "--out", str(tmp_path / "run")]) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["init"] == str(model)
    # Settings that do not fit the model are refused by name, before anything is written.
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({**json.loads(run_file.read_text()), "backbone": {**backbone, "channel_max": 16}}))
    assert main(["train", str(wrong), "--init", str(model), "--out", str(tmp_path / "run2")]) == 2
    assert not (tmp_path / "run2").exists()
