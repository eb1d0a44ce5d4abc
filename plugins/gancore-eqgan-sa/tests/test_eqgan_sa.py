"""EqGAN-SA in training: encoders and SELs in G, the alignment loss and its gradients, switches, stacking."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import gancore
from gancore.backbone import BackboneSpec, Discriminator, hub_coders
from gancore.config import ConfigError
from gancore.testing import make_tiny_config
from gancore.run import Run
from gancore_eqgan_sa.alignment import cam, cam_weights, level_target, thresholded_l1
from gancore_eqgan_sa.encoders import ENCODED_KEYS
from gancore_eqgan_sa.heatmaps import sample_heatmaps

BACKBONES = ["dcgan", "stylegan2"]
SIZE = {"data.resolution": 16}


def _build(backbone: str, plugins=("eqgan_sa",), **settings) -> Run:
    return Run.build(make_tiny_config(backbone, list(plugins), **{**SIZE, **settings}))


def _heatmaps(run: Run, n: int, seed: int) -> torch.Tensor:
    return sample_heatmaps(n, 16, generator=torch.Generator().manual_seed(seed)).heatmap


@pytest.mark.parametrize("backbone", BACKBONES)
def test_sel_before_every_synthesis_layer_and_the_heatmap_changes_the_image(backbone):
    # StyleGAN2's noise inputs held constant, so only the heatmap differs between the calls.
    run = _build(backbone, **({"backbone.noise_mode": "const"} if backbone == "stylegan2" else {}))
    layers = [layer.name for layer in run.G.synthesis_layers()]
    assert len(run.G.adapters) == len(layers)
    assert set(ENCODED_KEYS) == set(run.G.cond_encoders)
    z = torch.randn(4, run.G.z_dim)
    run.G.eval()
    a = run.G(z, cond={"heatmap": _heatmaps(run, 4, 0)})
    b = run.G(z, cond={"heatmap": _heatmaps(run, 4, 1)})
    again = run.G(z, cond={"heatmap": _heatmaps(run, 4, 0)})
    assert torch.equal(a, again)
    assert (a - b).abs().mean() > 1e-4


def test_blocks_read_their_level():
    run = _build("stylegan2")
    keys = {name: modules[0].key for name, modules in run.G.adapters.items()}
    assert keys["b4_conv1"] == "eqgan_sa_level1" and keys["b8_conv0"] == "eqgan_sa_level2"
    assert keys["b16_torgb"] == "eqgan_sa_level3"
    wide = _build("stylegan2", **{"data.resolution": 32})
    assert {m[0].key for n, m in wide.G.adapters.items() if n.startswith("b32")} == {"eqgan_sa_levels"}
    assert wide.G.adapters["b32_conv1"][0].shared.in_channels == 96


def test_missing_heatmap_is_a_clear_error():
    run = _build("dcgan")
    with pytest.raises(ValueError, match=r"this generator uses EqGAN-SA heatmaps: give cond\['heatmap'\] of shape \[N, 7, 16, 16\]"):
        run.G(torch.randn(2, run.G.z_dim))


def test_encoders_and_sels_train_with_g_live_in_g_ema_and_are_saved(tmp_path):
    run = Run.build(make_tiny_config("dcgan", ["eqgan_sa"], steps=2, **SIZE), out_dir=tmp_path / "run").train()
    in_optimizer = {id(p) for group in run.opt_G.param_groups for p in group["params"]}
    plugin_params = list(run.G.adapters.parameters()) + list(run.G.cond_encoders.parameters())
    assert plugin_params and all(id(p) in in_optimizer for p in plugin_params)
    assert set(run.G_ema.cond_encoders) == set(ENCODED_KEYS)
    resumed = gancore.resume(tmp_path / "run", steps=2)
    for name, tensor in run.G_ema.state_dict().items():
        assert torch.equal(tensor, resumed.G_ema.state_dict()[name]), name
    assert any(k.startswith("adapters.") for k in resumed.G.state_dict())


def test_sampling_takes_the_users_heatmap(tmp_path):
    from safetensors.torch import save_file

    from gancore.cli import main

    out = tmp_path / "run"
    Run.build(make_tiny_config("dcgan", ["eqgan_sa"], steps=1, **SIZE), out_dir=out).train()
    run = Run.for_sampling(out)
    heatmap = _heatmaps(run, 3, 7)
    a = run.sample(3, seed=0, cond={"heatmap": heatmap})
    assert torch.equal(a, run.sample(3, seed=0, cond={"heatmap": heatmap}))
    assert not torch.equal(a, run.sample(3, seed=0))  # a drawn heatmap differs
    path = tmp_path / "hm.safetensors"
    save_file({"heatmap": heatmap}, str(path))
    assert main(["sample", str(out), "--n", "3", "--cond", str(path), "--out", str(tmp_path / "grid.png")]) == 0


@pytest.mark.parametrize("backbone", BACKBONES)
def test_alignment_reaches_g_and_leaves_d_alone(backbone):
    run = _build(backbone)
    d_before = {k: v.clone() for k, v in run.D.state_dict().items()}
    run.G.zero_grad(set_to_none=True)
    stats = run.trainer.g_main(8)
    assert stats["Loss/G/eqgan_sa_align"] > 0
    assert all(torch.equal(v, d_before[k]) for k, v in run.D.state_dict().items())
    assert all(p.grad is None for p in run.D.parameters())
    # The alignment term alone has a gradient in G (through the attached D features).
    inputs = run.generator_inputs(8)
    fake = run.G(inputs["z"], None, inputs["cond"])
    _, features = run.D(fake, None, features=True)
    term = run.plugins["eqgan_sa"].gancore_g_loss(run, fake, inputs, features)
    grads = torch.autograd.grad(term.value, [p for p in run.G.parameters() if p.requires_grad], allow_unused=True)
    assert sum(float(g.abs().sum()) for g in grads if g is not None) > 0


def test_grad_cam_pieces():
    # Channel weights are the spatial means of the gradient; ReLU per channel before the sum.
    w = torch.tensor([1.0, -1.0]).view(1, 2, 1, 1)
    a = torch.tensor([[[1.0, 0.0], [0.0, 0.0]], [[0.0, 2.0], [0.0, 0.0]]])[None]
    m = cam(w, a, 2)
    assert torch.equal(m, torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]]))
    assert torch.equal(cam(w, torch.zeros(1, 2, 2, 2), 4), torch.zeros(1, 1, 4, 4))  # constant map -> 0, no NaN
    # Level 1's target is raw; levels 2 and 3 are channel means, min-max normalised.
    h = sample_heatmaps(2, 8, generator=torch.Generator().manual_seed(0)).heatmap
    assert torch.equal(level_target(h, 1), h[:, :1])
    t3 = level_target(h, 3)
    assert torch.allclose(t3.amin((1, 2, 3)), torch.zeros(2)) and torch.allclose(t3.amax((1, 2, 3)), torch.ones(2))
    # Only differences above the threshold count, unless at most one does.
    p, t = torch.tensor([0.0, 0.0, 0.0, 0.0]), torch.tensor([0.1, 0.5, 0.9, 0.2])
    assert torch.isclose(thresholded_l1(p, t, 0.25), torch.tensor(0.7))
    assert torch.isclose(thresholded_l1(p, torch.tensor([0.1, 0.5, 0.1, 0.2]), 0.25), torch.tensor(0.225))


def test_cam_weights_leave_d_in_its_mode_and_without_gradients():
    run = _build("dcgan")
    fake = torch.randn(4, 3, 16, 16)
    run.D.train()
    weights = cam_weights(run.D, fake, None, [4, 8])
    assert run.D.training and all(p.grad is None for p in run.D.parameters())
    assert weights[4].shape == (4, run.D.feature_channels()[4], 1, 1)
    # They equal the spatial mean of d softplus(-D(x)) / dA.
    x = fake.clone()
    logits, feats = run.D(x, None, features=True)
    (g,) = torch.autograd.grad(F.softplus(-logits).sum(), [feats[8]])
    assert torch.allclose(weights[8], g.mean(dim=(2, 3), keepdim=True), atol=1e-6)


class _BrightnessD(Discriminator, coders=hub_coders(__import__("gancore_dcgan.dcgan_config", fromlist=["DCGANConfig"]).DCGANConfig)):
    """A D whose features are the image's brightness pooled to 4, 8 and 16 px; it calls dark images real.

    Its Grad-CAM for G's loss therefore highlights bright regions: an attention G can steer.
    """

    def __init__(self, config):
        super().__init__()
        self.c_dim = 0
        self.img_shape = (config.channels, config.resolution, config.resolution)
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x, c=None, features=False):
        brightness = x.mean(1, keepdim=True) + 1
        feats = {r: F.adaptive_avg_pool2d(brightness, r) * self.scale for r in (4, 8, 16)}
        logits = -sum(f.flatten(1).mean(1) for f in feats.values())
        return (logits, feats) if features else logits

    def feature_channels(self):
        return {4: 1, 8: 1, 16: 1}


def test_alignment_loss_decreases_where_d_attention_can_follow(register_plugin):
    from gancore_dcgan.dcgan import DCGANGenerator
    from gancore_dcgan.dcgan_config import DCGANConfig

    class Toy:
        name = "toy"
        kind = "backbone"

        @gancore.hookimpl
        def gancore_register_backbones(self, register):
            register(BackboneSpec(name="toy", config_class=DCGANConfig, generator_class=DCGANGenerator,
                                  discriminator_class=_BrightnessD, capabilities=frozenset({"adapters", "d_features"})))

    register_plugin(Toy)
    torch.manual_seed(0)
    raw = make_tiny_config("dcgan", ["eqgan_sa"], **{**SIZE, "backbone.g_norm": "none"})
    raw["backbone"]["name"] = "toy"
    run = Run.build(raw)
    plugin = run.plugins["eqgan_sa"]
    optimizer = torch.optim.Adam(run.G.parameters(), lr=0.003, betas=(0.0, 0.99))
    losses = []
    for _ in range(200):
        inputs = run.generator_inputs(16)
        fake = run.G(inputs["z"], None, inputs["cond"])
        _, features = run.D(fake, None, features=True)
        loss = plugin.gancore_g_loss(run, fake, inputs, features).value
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    first, last = sum(losses[:20]) / 20, sum(losses[-20:]) / 20
    assert last < 0.85 * first, (first, last)


def test_switches():
    no_sel = _build("dcgan", [{"name": "eqgan_sa", "sel": False}], steps=1).train()
    assert not len(no_sel.G.adapters) and not len(no_sel.G.cond_encoders)
    assert "Loss/G/eqgan_sa_align" in no_sel.last_stats
    no_align = _build("dcgan", [{"name": "eqgan_sa", "align": False}], steps=1).train()
    assert len(no_align.G.adapters) and "Loss/G/eqgan_sa_align" not in no_align.last_stats
    both_off = _build("dcgan", [{"name": "eqgan_sa", "sel": False, "align": False}], steps=1).train()
    assert both_off.last_stats["Loss/G/total"] == both_off.last_stats["Loss/G/adversarial"]


def test_errors_name_the_problem():
    with pytest.raises(ConfigError, match="eqgan_sa draws image heatmaps, but backbone 'mlp'"):
        Run.build(make_tiny_config("mlp", ["eqgan_sa"]))
    with pytest.raises(ConfigError, match=r"plugins.eqgan_sa.cam_resolutions: D has no feature maps of sizes \[32, 64, 128\]"):
        _build("dcgan", [{"name": "eqgan_sa", "cam_resolutions": [32, 64, 128]}])
    with pytest.raises(ConfigError, match=r"plugins.eqgan_sa.sigma_max: must be >= sigma_min \(0.5\), got 0.2"):
        _build("dcgan", [{"name": "eqgan_sa", "sigma_max": 0.2}])


@pytest.mark.parametrize("backbone", BACKBONES)
def test_stacks_with_topk_and_glead(backbone):
    run = _build(backbone, ["topk", "eqgan_sa", {"name": "glead", "distance": "mse"}], steps=2).train()
    stats = run.last_stats
    assert {"topk/k_fraction", "Loss/G/eqgan_sa_align", "Loss/D/glead_real", "Loss/D/glead_fake"} <= set(stats)


def test_docs_list_every_config_field():
    import attrs

    from gancore_eqgan_sa.config import EqGANSAConfig

    page = (Path(__file__).resolve().parents[3] / "docs" / "methods" / "eqgan-sa.md").read_text()
    missing = [f.name for f in attrs.fields(EqGANSAConfig) if f"| `{f.name}` |" not in page]
    assert not missing, f"docs/methods/eqgan-sa.md lacks {missing}"
