"""The training loop: determinism, resume, EMA, regularisers, stats, samples, checkpoints."""

import json
import math

import pytest
import torch
from PIL import Image

from gancore import checkpoint as ckpt
from gancore.testing import make_tiny_config
from gancore.run import Run


def _weights(run):
    return {f"{net}.{k}": v.clone() for net in ("G", "G_ema", "D") for k, v in getattr(run, net).state_dict().items()}


@pytest.mark.parametrize("backbone", ["mlp", "dcgan"])
def test_resume_is_bit_identical(tmp_path, backbone):
    settings = dict(r1_gamma=0.5, d_reg_interval=2, pl_weight=0.5, g_reg_interval=2, log_every=2)
    straight = Run.build(make_tiny_config(backbone, steps=6, **settings), out_dir=tmp_path / "a").train()

    half = Run.build(make_tiny_config(backbone, steps=3, **settings), out_dir=tmp_path / "b").train()
    assert half.step == 3
    resumed = Run.resume(tmp_path / "b", steps=6)
    assert resumed.step == 3 and resumed.nimg == 24
    resumed.train()
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    for opt in ("opt_G", "opt_D"):
        state_a = getattr(straight, opt).state_dict()["state"]
        state_b = getattr(resumed, opt).state_dict()["state"]
        for index in state_a:
            assert torch.equal(state_a[index]["exp_avg_sq"], state_b[index]["exp_avg_sq"])
    assert torch.equal(straight.pl_mean, resumed.pl_mean)
    # The stats of the resumed run continue the file of the first half.
    steps = [json.loads(line)["step"] for line in (tmp_path / "b" / "stats.jsonl").read_text().splitlines()]
    assert steps == [2, 3, 4, 6]


def test_same_seed_same_weights_other_seed_other_weights():
    a = Run.build(make_tiny_config("mlp", steps=3)).train()
    b = Run.build(make_tiny_config("mlp", steps=3)).train()
    c = Run.build(make_tiny_config("mlp", steps=3, seed=1)).train()
    assert all(torch.equal(x, y) for x, y in zip(a.G.parameters(), b.G.parameters()))
    assert not all(torch.equal(x, y) for x, y in zip(a.G.parameters(), c.G.parameters()))


def test_ema_follows_g_with_rampup():
    run = Run.build(make_tiny_config("mlp", steps=1, ema_kimg=1.0, ema_rampup=None))
    before = [p.clone() for p in run.G_ema.parameters()]
    run.train()
    batch, ema_nimg = 8, 1000
    beta = 0.5 ** (batch / ema_nimg)
    for p_ema, p_old, p in zip(run.G_ema.parameters(), before, run.G.parameters()):
        assert torch.allclose(p_ema, p + (p_old - p) * beta, atol=1e-7)
    # With ramp-up, the first step's half-life is capped by nimg * rampup (tiny): G_ema ~= G.
    ramped = Run.build(make_tiny_config("mlp", steps=1, ema_kimg=1.0, ema_rampup=0.05)).train()
    beta = 0.5 ** (8 / (8 * 0.05))
    for p_ema, p in zip(ramped.G_ema.parameters(), ramped.G.parameters()):
        assert torch.allclose(p_ema, p, atol=1e-5 + beta)


def test_g_ema_gets_no_gradients_and_stays_in_eval_mode():
    run = Run.build(make_tiny_config("dcgan", steps=2)).train()
    assert not run.G_ema.training
    assert all(not p.requires_grad and p.grad is None for p in run.G_ema.parameters())


@pytest.mark.parametrize("loss", ["nonsaturating", "hinge"])
def test_losses_and_regularisers_are_reported(loss):
    run = Run.build(make_tiny_config("dcgan", steps=2, loss=loss, pl_weight=1.0, g_reg_interval=1,
                                     r1_gamma=1.0, d_reg_interval=1)).train()
    stats = run.log.history[0]
    for key in ("Loss/D/real", "Loss/D/fake", "Loss/G/adversarial", "Loss/Dreg/r1", "Loss/Greg/pl_penalty",
                "Loss/Greg/pl_length"):
        assert key in stats and stats[key] == stats[key]  # present and not NaN
    assert stats["Loss/Dreg/r1"] > 0 and stats["Loss/Greg/pl_length"] > 0
    assert float(run.pl_mean) > 0


def test_bf16_autocast_trains_on_cpu():
    run = Run.build(make_tiny_config("dcgan", steps=2, precision="bf16")).train()
    assert all(p.dtype == torch.float32 for p in run.G.parameters())
    assert torch.isfinite(torch.tensor(run.last_stats["Loss/G/total"]))


def test_path_length_needs_the_capability_or_is_off():
    run = Run.build(make_tiny_config("mlp", steps=1, pl_weight=0.0))
    assert "Loss/Greg/pl_penalty" not in run.train().last_stats


def test_run_folder_contents(tmp_path):
    out = tmp_path / "run"
    run = Run.build(make_tiny_config("dcgan", steps=4, log_every=2, sample_every=2, checkpoint_every=2,
                                     keep_checkpoints=1), out_dir=out).train()
    config = json.loads((out / "config.json").read_text())
    assert config["backbone"]["resolution"] == 8 and config["backbone"]["channels"] == 3  # resolved from data
    assert config["gancore"]["plugins"]["dcgan"]["distribution"] == "gancore-dcgan"
    lines = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [2, 4]
    assert lines[-1]["kimg"] == pytest.approx(0.032)
    assert all(line["sec_per_step"] > 0 for line in lines)
    grids = sorted(p.name for p in (out / "samples").iterdir())
    assert grids == ["step-000002.png", "step-000004.png"]
    image = Image.open(out / "samples" / "step-000004.png")
    assert image.size == (8 * 8, 8 * 8) and image.mode == "RGB"  # 64 samples of 8 px in an 8x8 grid
    assert [p.name for p in ckpt.list_checkpoints(out / "checkpoints")] == ["step-000004"]  # keep = 1
    assert sorted(p.name for p in (out / "checkpoints" / "step-000004").iterdir()) == [
        "D.safetensors", "G.safetensors", "G_ema.safetensors", "optim-D.safetensors", "optim-G.safetensors",
        "run.safetensors", "state.json"]
    assert run.step == 4


def test_scatter_plot_for_points(tmp_path):
    out = tmp_path / "run"
    Run.build(make_tiny_config("mlp", steps=1), out_dir=out).train()
    image = Image.open(out / "samples" / "step-000001.png")
    assert image.size == (512, 512)
    colours = {colour for _, colour in image.getcolors(maxcolors=100000)}
    assert (31, 119, 180) in colours and (180, 180, 180) in colours  # fake and real points drawn


def test_sample_grid_uses_fixed_latents():
    run = Run.build(make_tiny_config("dcgan", steps=1))
    assert torch.equal(run.sample(4, seed=3), run.sample(4, seed=3))
    assert not torch.equal(run.sample(4, seed=3), run.sample(4, seed=4))


def test_crash_while_checkpointing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "run"
    run = Run.build(make_tiny_config("mlp", steps=2, checkpoint_every=1), out_dir=out)
    run.train(steps=1)
    good = ckpt.latest_checkpoint(out)
    assert good.name == "step-000001"

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt, "save_module", explode)
    with pytest.raises(OSError, match="disk full"):
        run.train(steps=2)
    monkeypatch.undo()
    assert ckpt.latest_checkpoint(out) == good  # the half-written step-000002 is not visible
    assert [p.name for p in ckpt.list_checkpoints(out / "checkpoints")] == ["step-000001"]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-000001"]  # the temp folder is gone
    resumed = Run.resume(out)
    assert resumed.step == 1


def test_loading_a_mismatching_checkpoint_is_a_clear_error(tmp_path):
    out = tmp_path / "run"
    Run.build(make_tiny_config("mlp", steps=1), out_dir=out).train()
    other = Run.build(make_tiny_config("mlp", steps=1, **{"backbone.width": 16}))
    with pytest.raises(ckpt.CheckpointError, match="G.safetensors: does not match the network"):
        other.load_checkpoint(ckpt.latest_checkpoint(out))


def test_for_sampling_needs_no_data_set(tmp_path, monkeypatch):
    out = tmp_path / "run"
    trained = Run.build(make_tiny_config("dcgan", steps=1), out_dir=out).train()
    import gancore.run

    monkeypatch.setattr(gancore.run, "build_dataset", lambda config: pytest.fail("data set loaded"))
    run = Run.for_sampling(out)
    assert run.dataset is None and run.step == 1
    assert torch.equal(run.sample(4, seed=0), trained.sample(4, seed=0))


def test_lazy_regularisation_scales_adam():
    run = Run.build(make_tiny_config("mlp", g_lr=0.01, d_lr=0.02, betas=[0.5, 0.9], r1_gamma=1.0, d_reg_interval=4,
                                     pl_weight=1.0, g_reg_interval=2))
    d_ratio, g_ratio = 4 / 5, 2 / 3
    assert run.opt_D.param_groups[0]["lr"] == pytest.approx(0.02 * d_ratio)
    assert run.opt_D.param_groups[0]["betas"] == pytest.approx((0.5**d_ratio, 0.9**d_ratio))
    assert run.opt_G.param_groups[0]["lr"] == pytest.approx(0.01 * g_ratio)



def test_lazy_adam_scaling_depends_on_the_interval_not_the_weight():
    # NVIDIA's training loop rescales whenever the interval is set: a run with pl_weight = 0 (the
    # EqGAN-SA recipe) or r1_gamma = 0 still trains at the official effective learning rate.
    off = Run.build(make_tiny_config("mlp", g_lr=0.01, d_lr=0.02, betas=[0.5, 0.9], r1_gamma=0.0, d_reg_interval=16,
                                     pl_weight=0.0, g_reg_interval=4))
    assert off.opt_G.param_groups[0]["lr"] == pytest.approx(0.01 * 4 / 5)
    assert off.opt_G.param_groups[0]["betas"] == pytest.approx((0.5 ** (4 / 5), 0.9 ** (4 / 5)))
    assert off.opt_D.param_groups[0]["lr"] == pytest.approx(0.02 * 16 / 17)


def _loss_of_phase(run, phase_optimizer):
    """Run one step and return the loss passed to ``backward`` for the given optimizer."""
    seen = []
    original = run.trainer.optimize

    def spy(optimizer, loss):
        seen.append((optimizer, float(loss.detach())))
        original(optimizer, loss)

    run.trainer.optimize = spy
    run.trainer.step()
    return [loss for optimizer, loss in seen if optimizer is getattr(run, phase_optimizer)]


def test_r1_term_is_gamma_half_times_interval():
    run = Run.build(make_tiny_config("mlp", r1_gamma=3.0, d_reg_interval=4))
    x, _ = run.trainer.real_batch()
    seen = []
    original = run.trainer.optimize

    def spy(optimizer, loss):
        if optimizer is run.opt_D:
            real = x.clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(run.D(real).sum(), real)  # D as the phase sees it
            seen.append((float(loss.detach()), float(grad.square().sum(1).mean() * 3.0 / 2 * 4)))
        original(optimizer, loss)

    run.trainer.optimize = spy
    run.trainer.step()
    assert len(seen) == 2  # Dmain, then Dreg at step 0
    loss, expected = seen[1]
    assert loss == pytest.approx(expected, rel=1e-4)


def test_path_length_term_has_the_interval_gain():
    run = Run.build(make_tiny_config("mlp", pl_weight=2.0, g_reg_interval=3, r1_gamma=0.0, pl_decay=1.0))
    g_losses = _loss_of_phase(run, "opt_G")
    assert len(g_losses) == 2  # Gmain, then Greg at step 0
    # With pl_decay = 1 the running mean is this batch's mean length, so the penalty is the
    # variance of the lengths: the logged mean penalty times weight times interval is the loss.
    assert g_losses[1] == pytest.approx(run.last_stats["Loss/Greg/pl_penalty"] * 2.0 * 3, rel=1e-5)
    assert float(run.pl_mean) == pytest.approx(run.last_stats["Loss/Greg/pl_length"], rel=1e-5)


def test_path_length_averages_per_layer_lengths():
    from gancore.losses import path_length_penalty

    torch.manual_seed(0)
    w = torch.randn(3, 5, 4, requires_grad=True)
    images = (w.sum(1) * 2).view(3, 4, 1, 1).expand(3, 4, 2, 2)
    torch.manual_seed(1)
    _, lengths, _ = path_length_penalty(images, w, torch.zeros(()), 0.01)
    torch.manual_seed(1)
    noise = torch.randn_like(images) / 2
    (grad,) = torch.autograd.grad((images * noise).sum(), w)
    assert torch.allclose(lengths, grad.square().sum(2).mean(1).sqrt())


def test_ema_beta_matches_the_formula_and_buffers_are_copied():
    run = Run.build(make_tiny_config("dcgan", steps=3, ema_kimg=0.1, ema_rampup=0.5))
    run.train(steps=2)  # nimg = 16 before the third step
    before = [p.clone() for p in run.G_ema.parameters()]
    run.train(steps=3)
    ema_nimg = min(100.0, 16 * 0.5)  # the ramp-up caps the half-life at half the images seen
    beta = 0.5 ** (8 / ema_nimg)
    for p_ema, p_old, p in zip(run.G_ema.parameters(), before, run.G.parameters()):
        assert torch.allclose(p_ema, p + (p_old - p) * beta, atol=1e-6)
    buffers = dict(run.G.named_buffers())
    assert buffers  # batch norm statistics
    for name, b_ema in run.G_ema.named_buffers():
        assert torch.equal(b_ema, buffers[name])


def test_bf16_autocast_is_active_in_the_main_phases():
    run = Run.build(make_tiny_config("dcgan", steps=1, precision="bf16", r1_gamma=1.0, d_reg_interval=1))
    dtypes = []
    run.D.register_forward_hook(lambda module, args, output: dtypes.append(output.dtype))
    run.train()
    # Gmain and Dmain (real, fake) run in bf16; the R1 pass stays in fp32.
    assert dtypes == [torch.bfloat16, torch.bfloat16, torch.bfloat16, torch.float32]


def test_resume_drops_stats_logged_after_the_checkpoint(tmp_path):
    out = tmp_path / "run"
    run = Run.build(make_tiny_config("mlp", steps=6, log_every=1, checkpoint_every=2), out_dir=out)
    run.train(steps=3)  # checkpoint at 2, stats up to 3: as if the run had stopped at step 3
    resumed = Run.resume(out, steps=4)
    resumed.train()
    steps = [json.loads(line)["step"] for line in (out / "stats.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_compiled_main_phases_train_like_eager():
    compiled = Run.build(make_tiny_config("mlp", steps=3, d_reg_interval=2, compile=True, compile_backend="aot_eager"))
    assert compiled.G_main is not compiled.G and compiled.D_main is not compiled.D
    compiled.train()
    eager = Run.build(make_tiny_config("mlp", steps=3, d_reg_interval=2)).train()
    for a, b in zip(compiled.G.parameters(), eager.G.parameters()):
        assert torch.allclose(a, b, atol=1e-5)


def test_compile_with_the_method_plugins():
    run = Run.build(make_tiny_config("dcgan", ["topk", {"name": "glead", "distance": "mse"}, "eqgan_sa"], steps=2, compile=True,
                                     compile_backend="aot_eager", **{"data.resolution": 16})).train()
    assert all(math.isfinite(v) for v in run.last_stats.values())


def test_path_length_batch_has_style_mixing():
    """As in NVIDIA's loss, the Greg batch goes through style mixing: its ws differ across layers."""
    pytest.importorskip("gancore_stylegan2")
    recorded = {}

    def run_greg(mixing):
        run = Run.build(make_tiny_config("stylegan2", pl_weight=1.0, **{"backbone.style_mixing": mixing}))
        synthesis = run.G.synthesis
        run.G.synthesis = lambda ws, **kw: recorded.__setitem__(mixing, ws.detach().clone()) or synthesis(ws, **kw)
        torch.manual_seed(3)
        run.trainer.g_reg(8)
        return recorded[mixing]

    mixed, plain = run_greg(1.0), run_greg(0.0)
    assert plain.shape[1] > 1 and torch.equal(plain, plain[:, :1].expand_as(plain))  # one w broadcast to every layer
    assert not torch.equal(mixed[:, :1].expand_as(mixed), mixed)  # later layers' ws from a second latent
    assert torch.equal(mixed[:, 0], plain[:, 0])


def test_path_length_penalty_keeps_the_gradient_of_the_running_mean():
    """NVIDIA: pl_mean = lerp(pl_mean, lengths.mean(), decay) enters the penalty attached; only the stored copy is detached."""
    from gancore.losses import path_length_penalty

    torch.manual_seed(0)
    w = torch.randn(4, 3, requires_grad=True)
    images = (w * torch.arange(1.0, 4.0)).view(4, 3, 1, 1) ** 2
    noise = torch.randn_like(images)
    pl_mean = torch.tensor(0.5)
    penalty, lengths, stored = path_length_penalty(images, w, pl_mean, 0.3, noise=noise)
    (grad,) = torch.autograd.grad(penalty.mean(), w, retain_graph=True)
    attached = (lengths - pl_mean.lerp(lengths.mean(), 0.3)).square().mean()
    detached = (lengths - pl_mean.lerp(lengths.mean().detach(), 0.3)).square().mean()
    (expected,) = torch.autograd.grad(attached, w, retain_graph=True)
    (other,) = torch.autograd.grad(detached, w)
    assert torch.allclose(grad, expected) and not torch.allclose(grad, other)
    assert not stored.requires_grad and torch.allclose(stored, pl_mean.lerp(lengths.mean(), 0.3))
