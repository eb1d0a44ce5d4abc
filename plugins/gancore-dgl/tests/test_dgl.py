"""DGL: a tiny teacher trained, saved and loaded by a student run; the frozen teacher, its term, the stages."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import gancore
from gancore import hookimpl
from gancore_dgl.plugin import teacher_term
from gancore.config import ConfigError
from gancore.pretrained import export
from gancore.testing import capture_first_gradients, make_tiny_config
from gancore.run import Run


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    """A full-width tiny dcgan teacher, trained for a few steps and saved."""
    out = tmp_path_factory.mktemp("teacher") / "run"
    Run.build(make_tiny_config("dcgan", steps=3, **{"backbone.width": 16}), out_dir=out).train()
    return out


def _student(teacher, steps=2, out_dir=None, settings=None, **dgl):
    raw = make_tiny_config("dcgan", [{"name": "dgl", "teacher": str(teacher), **dgl}], steps=steps,
                           **(settings or {}))
    return Run.build(raw, out_dir=out_dir)


def test_teacher_is_frozen_outside_the_student_and_unchanged(teacher_dir, tmp_path):
    saved = gancore.checkpoint.read_tensors(teacher_dir / "checkpoints" / "step-000003" / "D.safetensors")
    student = _student(teacher_dir, out_dir=tmp_path / "student").train()
    teacher = student.plugins["dgl"].teacher
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    assert all(torch.equal(v, saved[k]) for k, v in teacher.state_dict().items())
    # Not in the student's networks, optimizers or checkpoint weights; named in its config.
    teacher_ids = {id(p) for p in teacher.parameters()}
    optimized = {id(p) for opt in (student.opt_G, student.opt_D) for g in opt.param_groups for p in g["params"]}
    assert not teacher_ids & optimized
    weights = gancore.checkpoint.read_tensors(tmp_path / "student" / "checkpoints" / "step-000002" / "D.safetensors")
    assert set(weights) == set(student.D.state_dict())
    config = json.loads((tmp_path / "student" / "config.json").read_text())
    assert config["plugins"][0]["teacher"] == str(teacher_dir)
    assert next(teacher.parameters()).device == student.device


def test_teacher_term_and_its_gradient_scale_with_lambda(teacher_dir):
    grads = {}
    for weight in (0.0, 0.1, 0.2):
        student = _student(teacher_dir, steps=1, weight=weight)
        captured = capture_first_gradients(student)
        student.train()
        grads[weight] = captured["G"]
        if weight:
            assert student.last_stats["Loss/G/dgl_teacher"] > 0
    step1 = [b - a for a, b in zip(grads[0.0], grads[0.1])]
    step2 = [b - a for a, b in zip(grads[0.0], grads[0.2])]
    assert sum(float(d.abs().sum()) for d in step1) > 0
    for d1, d2 in zip(step1, step2):
        assert torch.allclose(d2, 2 * d1, atol=1e-6)


def test_stage_one_trains_without_the_teacher_then_the_switch(teacher_dir):
    student = _student(teacher_dir, steps=4, teacher_from_step=2)
    seen = []
    for _ in range(4):
        stats = student.trainer.step()
        seen.append((stats["dgl/stage"], "Loss/G/dgl_teacher" in stats))
    assert seen == [(1.0, False), (1.0, False), (2.0, True), (2.0, True)]


@pytest.mark.parametrize("reset, g_steps, d_steps", [("none", 3, 3), ("G", 1, 3), ("both", 1, 1)])
def test_optimizer_reset_at_the_switch(teacher_dir, reset, g_steps, d_steps):
    student = _student(teacher_dir, steps=3, teacher_from_step=2, reset_optimizers=reset,
                       settings={"train.r1_gamma": 0.0, "train.pl_weight": 0.0}).train()
    g_state = next(iter(student.opt_G.state.values()))
    d_state = next(iter(student.opt_D.state.values()))
    assert (int(g_state["step"]), int(d_state["step"])) == (g_steps, d_steps)


def test_resume_in_stage_two_keeps_the_stage_and_does_not_reset_again(teacher_dir, tmp_path):
    out = tmp_path / "student"
    _student(teacher_dir, steps=3, out_dir=out, teacher_from_step=1, reset_optimizers="G").train()
    state = gancore.checkpoint.read_state(out / "checkpoints" / "step-000003")
    assert state["plugins"]["dgl"] == {"stage": 2}
    resumed = Run.resume(out, steps=4)
    assert resumed.plugins["dgl"].stage == 2
    before = int(next(iter(resumed.opt_G.state.values()))["step"])
    resumed.train()
    assert int(next(iter(resumed.opt_G.state.values()))["step"]) == before + 1
    assert resumed.last_stats["dgl/stage"] == 2.0 and "Loss/G/dgl_teacher" in resumed.last_stats


def test_sample_weights_only_when_configured(teacher_dir):
    for use, expect_masked in ((False, False), (True, True)):
        student = _student(teacher_dir, steps=1, use_sample_weights=use)
        plugin = student.plugins["dgl"]
        student.hooks.step_start(student)  # stage 2 from step 0
        fake = student.G(torch.randn(8, student.G.z_dim))
        weights = torch.tensor([1.0, 0, 1, 0, 1, 0, 1, 0])
        term = plugin.gancore_teacher_loss(student, fake, {"c": None}, weights, weights.sum())
        per_sample = torch.nn.functional.softplus(-plugin.teacher(fake))
        expected = (per_sample * weights).sum() / weights.sum() if expect_masked else per_sample.mean()
        assert torch.allclose(term.value, expected)


def test_weighted_teacher_term_under_accumulation_equals_one_big_batch(teacher_dir):
    """With top-k's mask, the teacher's weighted mean divides by the whole batch's weight sum."""
    plugins = [{"name": "topk", "gamma": 0.25, "nu": 0.25, "schedule": "progress"},
               {"name": "dgl", "teacher": str(teacher_dir), "use_sample_weights": True, "weight": 2.0}]
    settings = {"backbone.g_norm": "none"}

    def trained(**accumulation):
        raw = make_tiny_config("dcgan", plugins, steps=3, batch=16, r1_gamma=0.0, **settings, **accumulation)
        return Run.build(raw).train()

    whole, accumulated = trained(), trained(batch_per_gpu=4)
    assert accumulated.last_stats["Loss/G/dgl_teacher"] == pytest.approx(whole.last_stats["Loss/G/dgl_teacher"], rel=1e-5)
    for a, b in zip(whole.G.parameters(), accumulated.G.parameters()):
        assert torch.allclose(a, b, atol=1e-5)


def test_compressed_student_reports_both_sizes(teacher_dir, tmp_path):
    out = tmp_path / "student"
    student = _student(teacher_dir, out_dir=out, settings={"backbone.width": 16,
                                                                   "backbone.channel_multiplier": 0.5,
                                                                   "backbone.d_channel_multiplier": 1.0}).train()
    params = json.loads((out / "summary.json").read_text())["params"]
    assert params["dgl.teacher.D"] == params["D"]  # a full-width student D
    assert params["G"] < params["dgl.teacher.G"] / 2.5  # half the width: about a quarter of the weights
    assert f"({params['dgl.teacher.D']:,} parameters" in student.hooks.model_card(student)


def test_teacher_from_checkpoint_and_exported_folders(teacher_dir, tmp_path):
    checkpoint = teacher_dir / "checkpoints" / "step-000003"
    exported = export(teacher_dir, tmp_path / "exported")
    assert {"D.safetensors", "config.json", "gan_index.json"} <= {p.name for p in exported.iterdir()}
    teachers = [_student(source, steps=1).plugins["dgl"].teacher for source in (checkpoint, exported)]
    assert all(torch.equal(a, b) for a, b in zip(teachers[0].state_dict().values(), teachers[1].state_dict().values()))


def test_mismatched_teacher_is_an_error_before_step_one(teacher_dir, tmp_path):
    with pytest.raises(ConfigError) as info:
        _student(teacher_dir, settings={"data.resolution": 16})
    assert "plugins.dgl.teacher: the teacher at" in str(info.value) and "[3, 8, 8]" in str(info.value)
    labelled = tmp_path / "labelled"
    Run.build(make_tiny_config("dcgan", steps=1, **{"data.labels": True}), out_dir=labelled).train()
    with pytest.raises(ConfigError, match="has c_dim"):
        _student(labelled)


def test_missing_or_empty_teacher_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="plugins.dgl.teacher: required key missing"):
        Run.build(make_tiny_config("dcgan", ["dgl"]))
    with pytest.raises(ConfigError, match="plugins.dgl.teacher: cannot load a teacher D: .*nowhere: no such run, checkpoint"):
        _student(tmp_path / "nowhere")


def test_stacks_with_topk(teacher_dir):
    student = Run.build(make_tiny_config("dcgan", ["topk", {"name": "dgl", "teacher": str(teacher_dir)}], steps=2))
    stats = student.train().last_stats
    assert {"topk/k_fraction", "Loss/G/dgl_teacher", "Loss/G/weight_sum"} <= set(stats)


def test_docs_list_every_config_field():
    import attrs

    from gancore_dgl.config import DGLConfig

    page = (Path(__file__).resolve().parents[3] / "docs" / "methods" / "dgl.md").read_text()
    missing = [f.name for f in attrs.fields(DGLConfig) if f"| `{f.name}` |" not in page]
    assert not missing, f"docs/methods/dgl.md lacks {missing}"


def test_pathreg_ens_term_on_hand_made_scores():
    from gancore_dgl.plugin import teacher_term

    logits = torch.tensor([-2.0, -0.5, 0.0, 1.5], requires_grad=True)
    term = teacher_term(logits, "pathreg_ens")
    softplus = torch.nn.functional.softplus
    expected = torch.tensor([2.0 * float(softplus(torch.tensor(2.0))), 0.5 * float(softplus(torch.tensor(0.5))), 0.0, 0.0])
    assert torch.allclose(term, expected)
    (grad,) = torch.autograd.grad(term.sum(), logits)
    # The weight -D_T is held constant: d/dD [c * softplus(-D)] = -c * sigmoid(-D); nothing where D_T >= 0.
    assert torch.allclose(grad, torch.tensor([-2.0 * float(torch.sigmoid(torch.tensor(2.0))),
                                              -0.5 * float(torch.sigmoid(torch.tensor(0.5))), 0.0, 0.0]))
    assert torch.allclose(teacher_term(logits, "adversarial"), softplus(-logits))


def test_pathreg_ens_and_train_mode_in_a_run(teacher_dir):
    student = _student(teacher_dir, steps=1, teacher_loss="pathreg_ens", weight=0.5, teacher_train_mode=True)
    assert student.plugins["dgl"].teacher.training
    student.train()
    assert "Loss/G/dgl_teacher" in student.last_stats
    assert "pathreg_ens" in student.hooks.model_card(student)
    assert not _student(teacher_dir, steps=1).plugins["dgl"].teacher.training


# -- parity with yuesongtian/DGL-GAN's StyleGAN2 losses ---------------------------------------------
# Its StyleGAN2 side is TensorFlow 1, which does not run here; these are numpy transcriptions of its
# expressions in stylegan2_dgl/training/loss.py (commit 21cbaba), per fake, before the training
# loop's reduce_mean:
#   G_dg_logistic_ns (lines 70-81), the plain teacher term:
#       loss = softplus(-D(G(z))) + alpha * softplus(-D_bar(G(z)))
#   G_pathreg_ens (lines 678-698), with one teacher D_bar:
#       coeff = stop_gradient(-D_bar); ignore = stop_gradient(D_bar < 0)
#       loss = softplus(-D(G(z))) + alpha * coeff * softplus(-D_bar) * ignore


def _np_softplus(x):
    return np.logaddexp(0.0, x)


def _official_g_loss(d, d_bar, alpha, kind):
    """The per-fake G loss of DGL-GAN's StyleGAN2 code, and its derivative in D_bar (stop_gradient held)."""
    if kind == "adversarial":
        term, dterm = _np_softplus(-d_bar), -1 / (1 + np.exp(d_bar))
    else:
        coeff, ignore = -d_bar, (d_bar < 0).astype(d_bar.dtype)
        term, dterm = coeff * _np_softplus(-d_bar) * ignore, coeff * (-1 / (1 + np.exp(d_bar))) * ignore
    return _np_softplus(-d) + alpha * term, alpha * dterm


@pytest.mark.parametrize("kind,alpha", [("adversarial", 0.1), ("pathreg_ens", 0.5)])
def test_g_loss_equals_dgl_gans_official_expressions(teacher_dir, register_plugin, kind, alpha):
    seen = {}

    class Spy:
        name = "spy"

        @hookimpl
        def gancore_g_loss(self, fake, d_fake):
            seen["fake"], seen["d_fake"] = fake, d_fake.detach()

    register_plugin(Spy)
    raw = make_tiny_config("dcgan", [{"name": "dgl", "teacher": str(teacher_dir), "teacher_loss": kind,
                                      "weight": alpha}, "spy"], steps=1)
    student = Run.build(raw)
    teacher = student.plugins["dgl"].teacher
    with torch.no_grad():  # centre the tiny teacher's scores on 0, so both sides of pathreg_ens's mask occur
        bias = [p for n, p in teacher.named_parameters() if n.endswith("bias") and p.numel() == 1][-1]
        bias -= teacher(student.G(torch.randn(16, student.G.z_dim))).median()
    student.hooks.step_start(student)  # stage 2: the teacher term is on
    stats = student.trainer.g_main(8)
    assert "Loss/G/dgl_teacher" in stats
    d_bar = teacher(seen["fake"].detach().requires_grad_(True), None)
    official, d_official = _official_g_loss(seen["d_fake"].double().numpy(), d_bar.detach().double().numpy(), alpha, kind)
    if kind == "pathreg_ens":  # both sides of the mask occur, so the test sees it
        assert (d_bar < 0).any() and (d_bar >= 0).any()
    assert stats["Loss/G/total"] == pytest.approx(float(official.mean()), rel=1e-5, abs=1e-6)
    # The gradient the teacher term sends back through D_bar, as TF's stop_gradient semantics give it.
    term = alpha * teacher_term(d_bar, kind).mean()
    (grad,) = torch.autograd.grad(term, d_bar)
    np.testing.assert_allclose(grad.double().numpy(), d_official / len(d_official), rtol=1e-5, atol=1e-8)
