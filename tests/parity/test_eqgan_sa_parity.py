"""EqGAN-SA imported from the official code (genforce/eqgan-sa) generates and trains as it does.

Fixture (tools/parity/make_fixtures.py with a checkout of genforce/eqgan-sa): a tiny G with SEL
layers and its D; heat maps drawn by the official code; G_ema's images from them (const noise);
and the official loss's Gmain with those heat maps and G's noise off: the adversarial term, the
alignment loss, D's Grad-CAM weights and every gradient of G.
"""

import pytest
import torch
from nvidia_format import checkpoint, load_fixture, write_nvidia_pickle

import gancore
from gancore.cli import main
from gancore.importing import _map, build_run
from gancore.plugins import PluginManager
from gancore.trainer import Trainer
from gancore_eqgan_sa.alignment import cam_weights
from gancore_eqgan_sa.nvidia_import import official_name_to_ours
from gancore_stylegan2.nvidia_import import generator_name

NAME = "eqgan-sa-tiny"
ATOL = 1e-5
RELATIVE = 1e-4


@pytest.fixture
def imported():
    manager = PluginManager()
    model = _map(checkpoint(NAME), manager)
    run = build_run(model, manager, backbone={"style_mixing": 0.0}, train={"r1_gamma": 0.0})
    fx, _ = load_fixture(NAME)
    heatmap = torch.cat([fx[f"in.heatmap.{k}"] for k in ("b8", "b16", "b32")], dim=1)
    return run, model, fx, heatmap


def test_the_encoders_and_sel_layers_are_imported(imported):
    run, model, _, _ = imported
    assert [p["name"] for p in model.plugins] == ["eqgan_sa"]
    assert model.plugins[0]["encoder_hidden"] == 16 and model.plugins[0]["sel_hidden"] == 64
    assert len(run.G.adapters) == len(run.G.synthesis_layers())


def test_g_ema_with_given_heat_maps_matches_official(imported):
    run, _, fx, heatmap = imported
    with torch.no_grad():
        images = run.G_ema(fx["in.z"], None, cond={"heatmap": heatmap})
    torch.testing.assert_close(images, fx["out.images"], atol=ATOL, rtol=0)


def test_gmain_with_the_alignment_loss_matches_official(imported, monkeypatch):
    run, _, fx, heatmap = imported
    z = fx["in.z"]
    monkeypatch.setattr(run, "generator_inputs", lambda n, c=None, rng=None: {"z": z[:n], "c": None, "cond": {"heatmap": heatmap[:n]}})
    run.G.train()
    run.D.train()
    stats = Trainer(run).g_main(z.shape[0])
    assert stats["Loss/G/adversarial"] == pytest.approx(float(fx["out.loss_adv"]), rel=1e-5)
    assert stats["Loss/G/eqgan_sa_align"] == pytest.approx(float(fx["out.loss_align"]), rel=1e-5)
    params = dict(run.G.named_parameters())
    compared = 0
    # The noise strengths are 0 on both sides, but their gradient is the noise itself, which
    # NVIDIA's code draws at random: those are the only gradients not compared.
    for key in (k for k in fx if k.startswith("grad.") and not k.endswith("noise_strength")):
        official = key.removeprefix("grad.")
        ours = generator_name(official) or official_name_to_ours(official)
        grad = params[ours].grad
        scale = fx[key].abs().max().clamp_min(1e-12)
        error = float((grad - fx[key]).abs().max() / scale)
        assert error <= RELATIVE, f"gradient of {official}: relative error {error:.1e}"
        compared += 1
    assert compared == sum(1 for k, p in params.items() if p.grad is not None and not k.endswith("noise_strength"))


def test_d_grad_cam_weights_match_official(imported):
    run, _, fx, heatmap = imported
    G = run.G.eval()
    G.noise_mode = "none"
    with torch.no_grad():
        fake = G(fx["in.z"], None, cond={"heatmap": heatmap})
    weights = cam_weights(run.D, fake, None, (4, 8, 16))
    for res, official in ((4, "b8"), (8, "b16"), (16, "b32")):
        torch.testing.assert_close(weights[res].reshape(fx[f"out.cam.{official}"].shape), fx[f"out.cam.{official}"],
                                   atol=1e-6, rtol=1e-4)


def test_cli_import_of_an_eqgan_sa_pickle(tmp_path, imported):
    _, _, fx, heatmap = imported
    pkl = write_nvidia_pickle(tmp_path / "cat.pkl", NAME, tmp_path / "ran")
    out = tmp_path / "model"
    assert main(["import", str(pkl), str(out)]) == 0
    G = gancore.from_pretrained(out)
    with torch.no_grad():
        torch.testing.assert_close(G(fx["in.z"], None, cond={"heatmap": heatmap}), fx["out.images"], atol=ATOL, rtol=0)
    assert G.sample(2, seed=0).shape == (2, 3, 32, 32)  # draws its heat maps through gancore-eqgan-sa
