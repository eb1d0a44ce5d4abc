"""The augment plugin in training: every phase, adaptive p, resume, stacking with the methods, errors, the model card."""

import pytest
import torch

import gancore
from gancore import hookimpl
from gancore.modelcard import render_model_card
from gancore.run import Run
from gancore.testing import make_tiny_config
from gancore_augment import AdaptiveP


def _config(plugins, backbone="dcgan", **settings):
    return make_tiny_config(backbone, plugins, **settings)


def test_adaptive_p_follows_the_sign_of_d_on_reals():
    ada = AdaptiveP(p=0.5, target=0.6, interval=4, ada_kimg=1.0)  # one unit per 1000 images
    step = 64 * 4 / 1000
    for i in range(3):
        ada.observe(torch.ones(64))  # D certain every real is real: r_t = 1 > 0.6
        assert not ada.step(i, 64) and ada.p == 0.5  # adjusted only after every 4th step
    ada.observe(torch.ones(64))
    assert ada.step(3, 64) and ada.rt == 1.0 and ada.p == pytest.approx(0.5 + step)
    for i in range(4, 8):
        ada.observe(torch.tensor([1.0, -1.0, -1.0, 1.0]))  # r_t = 0 < 0.6: p falls
        ada.step(i, 64)
    assert ada.rt == 0.0 and ada.p == pytest.approx(0.5)
    for i in range(8, 80):
        ada.observe(-torch.ones(8))
        ada.step(i, 64)
    assert ada.p == 0.0  # clamped at 0
    ada = AdaptiveP(p=0.99, target=0.6, interval=1, ada_kimg=1.0)
    ada.observe(torch.ones(8))
    ada.step(0, 64)
    assert ada.p == 1.0  # clamped at 1


class Spy:
    """Records the images of each (phase, source) as it receives them."""

    def __init__(self, name):
        self.name = name
        self.seen = {}

    @hookimpl
    def gancore_augment(self, images, phase, source):
        self.seen[(phase, source)] = images.detach().clone()


@pytest.mark.parametrize("mode", ["ada", "diffaugment"])
def test_every_batch_d_scores_is_augmented(register_plugin, mode):
    before, after = Spy("before"), Spy("after")
    register_plugin(before)
    register_plugin(after)
    augment = {"name": "augment", "mode": mode, "p": 1.0, "adaptive": False}
    Run.build(_config(["before", augment, "after"], steps=1, d_reg_interval=1)).train()
    phases = [("Dmain", "real"), ("Dmain", "fake"), ("Dreg", "real"), ("Gmain", "fake")]
    assert sorted(before.seen) == sorted(after.seen) == sorted(phases)
    for key in phases:
        assert not torch.allclose(before.seen[key], after.seen[key]), key


def test_adaptive_p_moves_is_reported_and_resumes_exactly(tmp_path):
    augment = {"name": "augment", "ada_kimg": 0.1, "interval": 2, "target": 0.0}
    straight = Run.build(_config([augment], steps=6)).train()
    p_values = [line["ADA/p"] for line in straight.log.history]
    assert p_values[0] == 0.0 and max(p_values) > 0  # r_t above the target of 0: p rose from 0
    assert "ADA/rt" in straight.log.history[1]  # reported from the first adjustment on
    out = tmp_path / "run"
    Run.build(_config([augment], steps=3, checkpoint_every=3), out_dir=out).train()
    resumed = Run.resume(out, steps=6)
    assert resumed.plugins["augment"].p == pytest.approx(straight.log.history[2]["ADA/p"])
    resumed.train()
    assert resumed.plugins["augment"].p == straight.plugins["augment"].p
    for a, b in zip(straight.D.parameters(), resumed.D.parameters()):
        assert torch.equal(a, b)  # the augmentation's random numbers were restored too


def test_fixed_p_stays():
    run = Run.build(_config([{"name": "augment", "p": 0.3, "adaptive": False}], steps=5)).train()
    assert [line["ADA/p"] for line in run.log.history] == [0.3] * 5


@pytest.mark.parametrize("backbone", ["dcgan", "stylegan2"])
@pytest.mark.parametrize("mode", ["ada", "diffaugment"])
def test_stacks_with_every_method_plugin(backbone, mode, tmp_path):
    teacher = tmp_path / "teacher"
    Run.build(_config([], backbone, steps=1, **{"data.resolution": 16}), out_dir=teacher).train()
    plugins = [{"name": "augment", "mode": mode, "p": 0.5, "adaptive": False}, "topk",
               {"name": "glead", "distance": "mse", "real_in_dreg": True}, "eqgan_sa", {"name": "dgl", "teacher": str(teacher)}]
    run = Run.build(_config(plugins, backbone, steps=2, d_reg_interval=1, **{"data.resolution": 16})).train()
    stats = run.last_stats
    keys = ["Loss/D/glead_real", "Loss/Dreg/glead_real", "Loss/G/eqgan_sa_align", "Loss/G/dgl_teacher"]
    for key in keys + (["ADA/p"] if mode == "ada" else []):
        assert key in stats and torch.isfinite(torch.tensor(stats[key])), key


def test_points_are_refused():
    with pytest.raises(gancore.ConfigError, match="plugins.augment: augments images of 1 or 3 channels, "
                                                  "but the data are of shape \\[2\\]"):
        Run.build(_config(["augment"], "mlp"))


def test_bad_policy_is_a_config_error():
    with pytest.raises(gancore.ConfigError, match="plugins.augment.policy: must list ops among color, "
                                                  "translation, cutout separated by commas, got 'color,blur'"):
        gancore.load_config(_config([{"name": "augment", "mode": "diffaugment", "policy": "color,blur"}]))


def test_model_card_says_what_was_applied(tmp_path):
    raw = _config([{"name": "augment", "p": 0.2, "adaptive": False}], steps=1,
                  **{"data.channels": 1, "data.max_items": 32})
    run = Run.build(raw).train()
    card = render_model_card(run, "someone/limited", {}, {}, {})
    assert "NVIDIA's `bgc` pipeline" in card and "p at the last step: 0.2000" in card
    assert "hue, saturation skipped: no effect on one-channel images" in card
    assert "its first 32 items only" in card
    diff = Run.build(_config([{"name": "augment", "mode": "diffaugment"}], steps=1)).train()
    assert "DiffAugment (Zhao et al. 2020), policy `color,translation,cutout`" in diff.hooks.model_card(diff)
