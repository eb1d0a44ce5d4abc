"""GLeaD imported from the official code (EzioBy/glead) predicts and reconstructs what it does.

Fixture (tools/parity/make_fixtures.py with a checkout of EzioBy/glead): a tiny paper256-shaped
G and D with GLeaD's decoder (stages to 16 px, G's state at 8 px); D's logits on reals, its
predictions of G's state (feature map, RGB image, ws; resized and repeated as the official loss
does), G's reconstruction from them (const noise) and the MSE and LPIPS reconstruction terms
(LPIPS with stand-in weights from a formula, run through GLeaD's own LPIPS copy).
"""

import json

import numpy as np
import pytest
import torch
from nvidia_format import checkpoint, load_fixture, write_nvidia_pickle
from safetensors.torch import save_file

import gancore
from gancore.cli import main
from gancore.importing import CheckpointImportError, _map, build_run
from gancore.plugins import PluginManager
from gancore_glead.config import GLeaDConfig
from gancore_glead.distance import make_distance
from gancore_glead.lpips import LPIPS

ATOL = 1e-5
NAME = "glead-tiny"


@pytest.fixture(scope="module")
def imported():
    manager = PluginManager()
    model = _map(checkpoint(NAME), manager)
    return build_run(model, manager), model, *load_fixture(NAME)


def test_the_decoder_and_heads_are_imported_into_gancore_glead(imported):
    run, model, _, meta = imported
    assert model.plugins == ({"name": "glead", "r": 8, "decoder_resolution": 16},)
    assert set(run.D.attachments["glead"].stages) == {"b8", "b16"}
    assert any("GLeaD's decoder" in note for note in model.notes)


def test_d_predicts_gs_state_as_the_official_code(imported):
    run, _, fx, _ = imported
    plugin = run.plugins["glead"]
    with torch.no_grad():
        logits, features = run.D.eval()(fx["in.reals"], None, features=True)
        state = plugin.predict_state(run, features)
    torch.testing.assert_close(logits, fx["out.logits_real"], atol=ATOL, rtol=0)
    torch.testing.assert_close(state["x"], fx["out.glead_x"], atol=ATOL, rtol=0)
    torch.testing.assert_close(state["img"], fx["out.glead_img"], atol=ATOL, rtol=0)
    torch.testing.assert_close(state["ws"], fx["out.glead_ws"], atol=ATOL, rtol=0)


def test_g_reconstructs_and_the_mse_term_as_the_official_code(imported):
    run, _, fx, _ = imported
    G = run.G.eval()
    G.noise_mode = "const"
    state = {"x": fx["out.glead_x"], "img": fx["out.glead_img"], "ws": fx["out.glead_ws"]}
    with torch.no_grad():
        recon = G.synthesize_from(8, state)
    torch.testing.assert_close(recon, fx["out.glead_recon"], atol=ATOL, rtol=0)
    mse = make_distance(GLeaDConfig(distance="mse"), torch.device("cpu"))  # per image; the official: one mean
    torch.testing.assert_close(mse(recon, fx["in.reals"]).mean().reshape(1), fx["out.glead_mse"], atol=ATOL, rtol=0)


def test_cli_import_of_a_glead_pickle(tmp_path):
    flag = tmp_path / "ran"
    pkl = write_nvidia_pickle(tmp_path / "glead-ffhq-tiny.pkl", NAME, flag)
    out = tmp_path / "model"
    assert main(["import", str(pkl), str(out)]) == 0
    assert not flag.exists()
    assert json.loads((out / "config.json").read_text())["plugins"][0]["name"] == "glead"
    fx, _ = load_fixture(NAME)
    D = gancore.from_pretrained(out, component="D")
    with torch.no_grad():
        torch.testing.assert_close(D(fx["in.reals"]), fx["out.logits_real"], atol=ATOL, rtol=0)
    assert "GLeaD's decoder" in (out / "README.md").read_text()


def test_a_glead_checkpoint_without_gancore_glead_names_what_is_left(monkeypatch):
    manager = PluginManager()
    monkeypatch.setattr(manager, "module_importers", lambda: [])
    with pytest.raises(CheckpointImportError, match=r"D\.b16_dec\.weight.*Conv2dLayer"):
        _map(checkpoint(NAME), manager)


def _lpips_pattern(name, shape):
    """The stand-in LPIPS weights of tools/parity/make_fixtures.py (``lpips_pattern``): a formula,
    so the fixture need not carry AlexNet's 10 MB."""
    seed = sum(ord(ch) for ch in name)
    x = torch.arange(int(np.prod(shape)), dtype=torch.float64)
    scale = 0.05 if name.startswith("lins") else 1 / np.sqrt(np.prod(shape[1:]))
    values = torch.sin(x * 0.618 + seed) * scale
    return (values.abs() if name.startswith("lins") else values).reshape(shape).to(torch.float32)


def test_the_lpips_term_as_the_official_code(imported, tmp_path):
    """GLeaD's own LPIPS copy and gancore-glead's, with the same weights, on the official reconstruction."""
    _, _, fx, _ = imported
    shapes = {k: tuple(v.shape) for k, v in LPIPS(min_size=32).state_dict().items()}
    weights = tmp_path / "lpips.safetensors"
    save_file({name: _lpips_pattern(name, shape) for name, shape in shapes.items()}, str(weights))
    # The official code never resizes (its LPIPS sees the 32 px images), hence lpips_min_size 32.
    config = GLeaDConfig(distance="lpips", lpips_weights=str(weights), lpips_min_size=32)
    distance = make_distance(config, torch.device("cpu"))
    with torch.no_grad():
        ours = distance(fx["out.glead_recon"], fx["in.reals"]).mean()
    torch.testing.assert_close(ours.reshape(1), fx["out.glead_lpips"], atol=1e-6, rtol=1e-5)
