"""GLeaD: the decoder's predicted state, the D step it adds, its terms, errors, resume and stacking."""

import pytest
import torch

import gancore
from gancore.config import ConfigError
from gancore.plugins import PluginError
from gancore.testing import make_tiny_config
from gancore.run import Run
from gancore_glead.distance import mse
from gancore_glead.plugin import ATTACHMENT

BACKBONES = ["dcgan", "stylegan2"]


def _real(run: Run, n: int = 8) -> torch.Tensor:
    return run.dataset.get(torch.arange(n))[0]


@pytest.mark.parametrize("backbone", BACKBONES)
def test_predicted_state_matches_resume_state(backbone):
    run = Run.build(make_tiny_config(backbone, [{"name": "glead", "distance": "mse"}]))
    plugin = run.plugins["glead"]
    assert plugin.r == run.G.block_resolutions()[0]  # a quarter of 8 px, at least G's first block
    _, features = run.D(_real(run, 4), features=True)
    state = plugin.predict_state(run, features)
    assert {k: tuple(v.shape) for k, v in state.items()} == {k: (4, *s) for k, s in run.G.resume_state(plugin.r).items()}
    assert plugin.reconstruct(run, state).shape == (4, *run.G.img_shape)


def test_state_at_larger_r_on_stylegan2():
    run = Run.build(make_tiny_config("stylegan2", [{"name": "glead", "distance": "mse", "r": 8, "decoder_resolution": 16},
                                                   ], **{"data.resolution": 16}))
    plugin = run.plugins["glead"]
    state = plugin.predict_state(run, run.D(_real(run, 2), features=True)[1])
    assert state["x"].shape[2:] == (8, 8) and state["img"].shape[1:] == (3, 8, 8)
    # One w vector repeated for every remaining layer of G.
    assert state["ws"].shape[1] == run.G.resume_state(8)["ws"][0] and torch.equal(state["ws"][:, 0], state["ws"][:, -1])


@pytest.mark.parametrize("backbone", BACKBONES)
def test_d_step_trains_the_heads_and_leaves_g_alone(backbone):
    run = Run.build(make_tiny_config(backbone, [{"name": "glead", "distance": "mse"}], steps=1))
    run.train()  # G's optimizer now has state
    run.G.zero_grad(set_to_none=True)
    g_params = {k: v.clone() for k, v in run.G.named_parameters()}
    g_opt = {i: {k: v.clone() for k, v in s.items()} for i, s in enumerate(run.opt_G.state.values())}
    stats = run.trainer.d_main(_real(run))
    assert stats["Loss/D/glead_real"] > 0 and stats["Loss/D/glead_fake"] > 0
    for name, p in run.G.named_parameters():
        assert torch.equal(p, g_params[name]), name
        assert p.grad is None, name
    for i, s in enumerate(run.opt_G.state.values()):
        assert all(torch.equal(v, g_opt[i][k]) for k, v in s.items())
    decoder = run.D.attachments[ATTACHMENT]
    for name, p in decoder.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_reconstruction_leaves_g_batchnorm_statistics_alone():
    run = Run.build(make_tiny_config("dcgan", [{"name": "glead", "distance": "mse"}]))
    plugin = run.plugins["glead"]
    before = {k: v.clone() for k, v in run.G.named_buffers()}
    assert any("running_mean" in k for k in before)
    plugin.reconstruct(run, plugin.predict_state(run, run.D(_real(run), features=True)[1])).sum().backward()
    assert all(torch.equal(v, before[k]) for k, v in run.G.named_buffers())


@pytest.mark.parametrize(
    "backbone, settings",
    [("dcgan", {"backbone.width": 32, "backbone.max_width": 64}), ("stylegan2", {})],
)
def test_reconstruction_of_a_fixed_batch_is_learnable(backbone, settings):
    torch.manual_seed(0)
    run = Run.build(make_tiny_config(backbone, [{"name": "glead", "distance": "mse"}], **settings))
    plugin = run.plugins["glead"]
    real = _real(run)
    run.G.requires_grad_(False)
    losses = []
    for _ in range(250):
        reconstruction = plugin.reconstruct(run, plugin.predict_state(run, run.D(real, features=True)[1]))
        loss = mse(reconstruction, real).mean()
        run.opt_D.zero_grad(set_to_none=True)
        loss.backward()
        run.opt_D.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])


@pytest.mark.parametrize("backbone", BACKBONES)
def test_feature_target_compares_with_g_block_output(backbone):
    run = Run.build(make_tiny_config(backbone, [{"name": "glead", "distance": "mse", "fake_target": "feature"}], steps=2))
    run.train()
    stats = run.last_stats
    assert 0.0 <= stats["Loss/D/glead_fake_feature"] <= 2.0 and "Loss/D/glead_fake" not in stats
    # The term's gradient reaches the feature head.
    run.trainer.d_main(_real(run))
    assert run.D.attachments[ATTACHMENT].heads["x"].weight.grad.abs().sum() > 0


def test_terms_are_the_weighted_distances():
    run = Run.build(make_tiny_config("dcgan", [{"name": "glead", "distance": "mse", "lambda_real": 2.0, "lambda_fake": 0.5}]))
    plugin = run.plugins["glead"]
    real = _real(run)
    fake = run.G(torch.randn(8, run.G.z_dim)).detach()
    real_feats, fake_feats = run.D(real, features=True)[1], run.D(fake, features=True)[1]
    terms = {t.name: t for t in plugin.gancore_d_loss(run, real, fake, real_feats, fake_feats, {})}
    assert (terms["real"].weight, terms["fake"].weight) == (2.0, 0.5)
    # dcgan's G has no noise, so the reconstruction is deterministic.
    expected = mse(plugin.reconstruct(run, plugin.predict_state(run, real_feats)), real).mean()
    assert terms["real"].value.ndim == 0 and torch.allclose(terms["real"].value, expected)


def test_the_r1_phase_real_term_carries_the_interval_gain():
    run = Run.build(make_tiny_config("dcgan", [{"name": "glead", "distance": "mse", "lambda_real": 2.0}], d_reg_interval=4))
    plugin = run.plugins["glead"]
    real = _real(run)
    real_feats = run.D(real, features=True)[1]
    main = next(t for t in plugin.gancore_d_loss(run, real, real, real_feats, real_feats, {}) if t.name == "real")
    lazy = plugin.gancore_d_reg_loss(run, real, real_feats)
    assert lazy.name == "real" and lazy.weight == 2.0 * 4  # lambda_real times d_reg_interval, as the official Dreg
    assert torch.allclose(lazy.value, main.value)


def test_real_term_in_the_r1_phase_is_optional():
    on = Run.build(make_tiny_config("dcgan", [{"name": "glead", "distance": "mse", "real_in_dreg": True}], steps=1, d_reg_interval=4))
    on.train()
    assert on.last_stats["Loss/Dreg/glead_real"] > 0
    off = Run.build(make_tiny_config("dcgan", [{"name": "glead", "distance": "mse", "real_in_dreg": False}], steps=1, d_reg_interval=4)).train()
    assert "Loss/Dreg/r1" in off.last_stats and "Loss/Dreg/glead_real" not in off.last_stats


def test_checkpoint_round_trip_of_the_heads(tmp_path):
    run = Run.build(make_tiny_config("stylegan2", [{"name": "glead", "distance": "mse"}], steps=2), out_dir=tmp_path / "run").train()
    saved = {k: v.clone() for k, v in run.D.attachments[ATTACHMENT].state_dict().items()}
    resumed = gancore.resume(tmp_path / "run", steps=2)
    loaded = resumed.D.attachments[ATTACHMENT].state_dict()
    assert saved.keys() == loaded.keys() and all(torch.equal(saved[k], loaded[k]) for k in saved)
    assert any(k.startswith(f"attachments.{ATTACHMENT}.heads.") for k in resumed.D.state_dict())


def test_stacks_with_topk():
    run = Run.build(make_tiny_config("dcgan", ["topk", {"name": "glead", "distance": "mse"}], steps=2)).train()
    stats = run.last_stats
    assert {"topk/k_fraction", "Loss/D/glead_real", "Loss/D/glead_fake", "Loss/G/weight_sum"} <= set(stats)


def test_backbone_without_the_capabilities_is_a_clear_error(register_plugin):
    from gancore_dcgan.dcgan import DCGANDiscriminator, DCGANGenerator
    from gancore_dcgan.dcgan_config import DCGANConfig

    from gancore.backbone import BackboneSpec

    class Plain:
        name = "plain"
        kind = "backbone"

        @gancore.hookimpl
        def gancore_register_backbones(self, register):
            register(BackboneSpec(name="plain", config_class=DCGANConfig, generator_class=DCGANGenerator,
                                  discriminator_class=DCGANDiscriminator, capabilities=frozenset({"adapters"})))

    register_plugin(Plain)
    raw = make_tiny_config("dcgan", [{"name": "glead", "distance": "mse"}])
    raw["backbone"]["name"] = "plain"
    with pytest.raises(PluginError, match="plugin 'glead' requires backbone capability 'd_features'.*which backbone 'plain' lacks"):
        Run.build(raw)


def test_point_backbones_are_refused():
    with pytest.raises(ConfigError, match="glead reconstructs images, but backbone 'mlp' generates samples of shape"):
        Run.build(make_tiny_config("mlp", [{"name": "glead", "distance": "mse"}]))


def test_bad_resolutions_name_the_config_key():
    with pytest.raises(ConfigError, match=r"plugins.glead.r: G has no block at 8 with layers after it; choose one of \[4\]"):
        Run.build(make_tiny_config("dcgan", [{"name": "glead", "distance": "mse", "r": 8}]))
    with pytest.raises(ConfigError, match="plugins.glead.r: must be a power of two >= 4, got 12"):
        Run.build(make_tiny_config("dcgan", [{"name": "glead", "distance": "mse", "r": 12}]))


def test_model_card_names_the_settings():
    run = Run.build(make_tiny_config("dcgan", [{"name": "glead", "distance": "mse", "fake_target": "feature"}]))
    card = run.hooks.model_card(run)
    assert "GLeaD" in card and "mse" in card and "GGDR" in card


def test_docs_list_every_config_field():
    import attrs

    from gancore_glead.config import GLeaDConfig

    from pathlib import Path

    page = (Path(__file__).resolve().parents[3] / "docs" / "methods" / "glead.md").read_text()
    missing = [f.name for f in attrs.fields(GLeaDConfig) if f"| `{f.name}` |" not in page]
    assert not missing, f"docs/methods/glead.md lacks {missing}"


def test_d_sees_augmented_images_and_the_targets_are_the_originals(register_plugin):
    """As in the official code: D's features come from the augmented batch, the reconstruction
    targets are the images before augmentation (in Dmain and, with real_in_dreg, in Dreg)."""
    from gancore import hookimpl

    class Negate:
        name = "negate"

        @hookimpl
        def gancore_augment(self, images):
            return -images

    register_plugin(Negate)
    run = Run.build(make_tiny_config("dcgan", ["negate", {"name": "glead", "distance": "mse", "real_in_dreg": True}], d_reg_interval=1))
    plugin = run.plugins["glead"]
    targets, d_inputs = [], []
    distance = plugin.distance
    plugin.distance = lambda reconstruction, target: targets.append(target) or distance(reconstruction, target)
    run.D.register_forward_pre_hook(lambda module, args: d_inputs.append(args[0].detach().clone()))
    real = _real(run)
    run.trainer.d_main(real)
    assert torch.equal(d_inputs[0], -real) and torch.equal(targets[0], real)  # reals
    assert torch.equal(targets[1], -d_inputs[1])  # fakes: D saw -fake, the target is fake
    run.trainer.d_reg(real)
    assert torch.equal(d_inputs[2], -real) and torch.equal(targets[2], real)
