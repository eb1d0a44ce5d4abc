"""Settings for BigGAN-style training: several D steps per G step, plain Adam, a per-step EMA, uniform fake labels."""

import pytest
import torch

from gancore import hookimpl
from gancore.data import batch_indices
from gancore.run import Run
from gancore.testing import make_tiny_config


def _count_steps(optimizer):
    counted = []
    original = optimizer.step

    def step(*args, **kwargs):
        counted.append(1)
        return original(*args, **kwargs)

    optimizer.step = step
    return counted


def test_d_steps_read_a_batch_each_and_count_their_images():
    run = Run.build(make_tiny_config("dcgan", steps=2, batch=8, r1_gamma=0.5, d_reg_interval=3, d_steps=3))
    d_steps, g_steps = _count_steps(run.opt_D), _count_steps(run.opt_G)
    seen = []
    original = run.trainer.d_main

    def d_main(real, c_real=None):
        seen.append(real.clone())
        return original(real, c_real)

    run.trainer.d_main = d_main
    stats = run.trainer.step()
    # Three Dmain steps and one Dreg (D batch 0 of 0, 1, 2: every third D step) against one G step.
    assert len(g_steps) == 1 and len(d_steps) == 4 and len(seen) == 3
    expected = [run.dataset.get(batch_indices(len(run.dataset), 8, n, 0))[0] for n in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(seen, expected))  # batches 0, 1 and 2: one of its own each
    assert run.nimg == 24 and "Loss/Dreg/r1" in stats
    run.trainer.step()
    assert torch.equal(seen[3], run.dataset.get(batch_indices(len(run.dataset), 8, 3, 0))[0])
    assert len(d_steps) == 8  # D batches 3, 4, 5: R1 on batch 3
    assert run.epoch == 48 // len(run.dataset)  # six D batches of 8 over 64 images


def test_the_default_is_one_d_step():
    run = Run.build(make_tiny_config("dcgan", batch=8))
    d_steps = _count_steps(run.opt_D)
    run.trainer.step()
    assert len(d_steps) == 1 + 1 and run.nimg == 8  # Dmain and Dreg (step 0 is a regularisation step)


def test_plain_adam_where_no_lazy_regulariser_runs():
    settings = dict(g_lr=0.01, d_lr=0.02, betas=[0.5, 0.9], d_reg_interval=16, g_reg_interval=4, adam_eps=1e-6)
    plain = Run.build(make_tiny_config("mlp", r1_gamma=0.0, pl_weight=0.0, lazy_scaling="active", **settings))
    for optimizer, lr in ((plain.opt_G, 0.01), (plain.opt_D, 0.02)):
        group = optimizer.param_groups[0]
        assert group["lr"] == lr and group["betas"] == (0.5, 0.9) and group["eps"] == 1e-6
    mixed = Run.build(make_tiny_config("mlp", r1_gamma=1.0, pl_weight=0.0, lazy_scaling="active", **settings))
    assert mixed.opt_D.param_groups[0]["lr"] == pytest.approx(0.02 * 16 / 17)  # R1 runs: lazily scaled
    assert mixed.opt_G.param_groups[0]["lr"] == 0.01
    always = Run.build(make_tiny_config("mlp", r1_gamma=0.0, pl_weight=0.0, **settings))  # the default, NVIDIA's
    assert always.opt_G.param_groups[0]["lr"] == pytest.approx(0.01 * 4 / 5)


def test_plain_adam_survives_a_resume(tmp_path):
    raw = make_tiny_config("mlp", r1_gamma=0.0, lazy_scaling="active", g_lr=0.01, checkpoint_every=2)
    Run.build(raw, out_dir=tmp_path / "run").train()
    resumed = Run.resume(tmp_path / "run", steps=3)
    assert resumed.opt_G.param_groups[0]["lr"] == 0.01


def test_per_step_ema_with_a_start_and_averaged_buffers():
    raw = make_tiny_config("dcgan", ema_decay=0.75, ema_start=2, ema_buffers="average")
    run = Run.build(raw)
    run.trainer.step()  # G step 1 < ema_start: G_ema copies G, buffers included
    for a, b in zip(run.G_ema.state_dict().values(), run.G.state_dict().values()):
        assert torch.equal(a, b)
    before = {k: v.clone() for k, v in run.G_ema.state_dict().items()}
    run.trainer.step()
    G = run.G.state_dict()
    for key, value in run.G_ema.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(value, G[key].lerp(before[key], 0.75))
    running = [k for k in G if k.endswith("running_mean")]
    assert running and not torch.equal(run.G_ema.state_dict()[running[0]], G[running[0]])  # averaged, not copied


class LabelSpy:
    """Records the labels of the real and the fake batch that D scores."""

    name = "label_spy"

    def __init__(self):
        self.pairs = []

    @hookimpl
    def gancore_d_loss(self, run, c_real, c_fake):
        self.pairs.append((c_real.clone(), c_fake.clone()))
        return None


@pytest.mark.parametrize("mode", ["real", "uniform"])
def test_fake_labels_follow_the_real_batch_or_are_drawn_uniformly(register_plugin, mode):
    spy = LabelSpy()
    register_plugin(spy)
    raw = make_tiny_config("dcgan", ["label_spy"], batch=32, fake_labels=mode)
    raw["data"]["labels"] = True
    run = Run.build(raw)
    run.trainer.step()
    c_real, c_fake = spy.pairs[0]
    assert c_fake.shape == c_real.shape == (32, 10) and torch.equal(c_fake.sum(1), torch.ones(32))
    assert torch.equal(c_real, c_fake) == (mode == "real")


class BatchNormOnly(torch.nn.Module):
    """A 'generator' that batch-normalises its latents: its samples show which statistics were used."""

    z_dim, c_dim = 3, 0

    def __init__(self):
        super().__init__()
        self.bn = torch.nn.BatchNorm2d(3)

    def forward(self, z, c=None, cond=None):
        return self.bn(z.view(-1, 3, 1, 1)).flatten(1)


def test_sampling_with_running_batch_or_standing_statistics():
    from gancore.sampling import STANDING_SEED_OFFSET, draw_samples

    G = BatchNormOnly()
    with torch.no_grad():
        G.bn.running_mean.fill_(0.5)
        G.bn.running_var.fill_(4.0)
    before = {k: v.clone() for k, v in G.state_dict().items()}
    rng = torch.Generator().manual_seed(7)
    z = torch.cat([torch.randn(5, 3, generator=rng) for _ in range(2)])  # drawn chunk by chunk
    eps = G.bn.eps
    running = draw_samples(G, 10, seed=7, chunk=5)
    torch.testing.assert_close(running, (z - 0.5) / (4.0 + eps) ** 0.5)
    batch = draw_samples(G, 10, seed=7, chunk=5, batch_norm="batch")
    for part, out in zip(z.split(5), batch.split(5)):  # each chunk by its own statistics
        torch.testing.assert_close(out, (part - part.mean(0)) / (part.var(0, unbiased=False) + eps) ** 0.5)
    standing = draw_samples(G, 10, seed=7, chunk=5, batch_norm="standing", standing_passes=3)
    rng = torch.Generator().manual_seed(7 + STANDING_SEED_OFFSET)
    passes = [torch.randn(5, 3, generator=rng) for _ in range(3)]
    mean = torch.stack([p.mean(0) for p in passes]).mean(0)
    var = torch.stack([p.var(0) for p in passes]).mean(0)  # batch norm keeps the unbiased variance
    torch.testing.assert_close(standing, (z - mean) / (var + eps) ** 0.5)
    for key, value in G.state_dict().items():  # sampling leaves no trace
        assert torch.equal(value, before[key]), key
    assert G.bn.momentum == 0.1 and G.training and G.bn.training  # modes as they were
    with pytest.raises(ValueError, match="batch_norm must be one of running, batch, standing"):
        draw_samples(G, 2, batch_norm="moving")


def test_runs_and_exported_models_sample_with_the_configured_statistics(tmp_path):
    from gancore.pretrained import export, from_pretrained
    from gancore.sampling import draw_samples

    run = Run.build(make_tiny_config("dcgan", sample_bn="batch", checkpoint_every=2), out_dir=tmp_path / "run").train()
    torch.testing.assert_close(run.sample(8), draw_samples(run.G_ema, 8, batch_norm="batch"))
    assert not torch.allclose(run.sample(8), draw_samples(run.G_ema, 8))
    export(tmp_path / "run", tmp_path / "model")
    G = from_pretrained(tmp_path / "model")
    assert (G.sample_bn, G.standing_passes) == ("batch", 16)
    torch.testing.assert_close(G.sample(8), run.sample(8))
