"""gancore's training phases give NVIDIA's StyleGAN2 losses and gradients, from the same weights and draws.

Fixtures (tools/parity/make_fixtures.py): for each phase of NVIDIA's ``StyleGAN2Loss`` (Gmain,
Greg, Dmain, Dreg), run from the same weights with ``torch.manual_seed`` set before it, the
reported losses, every parameter's gradient, and the draws NVIDIA took outside torch's global
stream order (the path-length noise). gancore draws its noise inputs and style-mixing cut-offs from
torch's global generator in NVIDIA's order, so the same seed gives the same draws; latents and
labels are handed over. Tolerance: for every tensor, the largest difference is at most 1e-4 of
the largest magnitude of NVIDIA's tensor.
"""

import pytest
import torch
from nvidia_format import checkpoint, load_fixture

from gancore.importing import build_run
from gancore.plugins import PluginManager
from gancore.trainer import Trainer
from gancore_stylegan2.nvidia_import import discriminator_name, generator_name

NAMES = ("configf-tiny", "cifar-cond-tiny")
PHASE_INDEX = {"Gmain": 0, "Greg": 1, "Dmain": 2, "Dreg": 3}
RELATIVE = 1e-4


def _run(name):
    manager = PluginManager()
    _, model = manager.hooks.import_networks(checkpoint(name))
    fx, meta = load_fixture(name)
    loss, opt = meta["training"]["loss"], meta["training"]["opt"]
    train = {
        "batch": fx["in.z"].shape[0], "r1_gamma": loss["r1_gamma"], "pl_weight": loss["pl_weight"],
        "pl_decay": loss["pl_decay"], "pl_batch_shrink": loss["pl_batch_shrink"],
        "g_reg_interval": opt["G_reg_interval"], "d_reg_interval": opt["D_reg_interval"],
        "g_lr": opt["lr"], "d_lr": opt["lr"], "betas": opt["betas"], "ema_kimg": opt["ema_kimg"], "ema_rampup": "none",
    }
    backbone = {"style_mixing": loss["style_mixing_prob"], "noise_mode": "random"}
    run = build_run(model, manager, train=train, backbone=backbone)
    run.G.train()
    run.D.train()
    return run, fx, meta


def _feed(run, fx, zs, monkeypatch):
    """Hand the fixture's latents (one batch per G forward, in order) and labels to the run."""
    c = fx["in.c"] if fx["in.c"].shape[1] else None
    queue = list(zs)

    def generator_inputs(batch_size, c_given=None, rng=None):
        z = queue.pop(0)[:batch_size]
        return {"z": z, "c": None if c_given is None else c_given[:batch_size], "cond": {}}

    monkeypatch.setattr(run, "generator_inputs", generator_inputs)
    # NVIDIA draws the path-length noise from torch's global stream, after the G forward.
    monkeypatch.setattr(run, "randn", lambda n, *shape, dtype=torch.float32: torch.randn(n, *shape, dtype=dtype))
    return c


def assert_close_relative(ours, theirs, what):
    scale = theirs.abs().max().clamp_min(1e-12)
    error = (ours - theirs).abs().max() / scale
    assert error <= RELATIVE, f"{what}: max relative error {float(error):.2e}"


def _gradients(run, fx, phase, network):
    rename = generator_name if network == "G" else discriminator_name
    mine = dict(getattr(run, network).named_parameters())
    prefix = f"phase.{phase}.grad."
    compared = 0
    for key in fx:
        if key.startswith(prefix):
            official = key.removeprefix(prefix)
            param = mine[rename(official)]
            grad = param.grad if param.grad is not None else torch.zeros_like(param)
            assert_close_relative(grad, fx[key], f"{phase} gradient of {official}")
            compared += 1
    assert compared == len(mine)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("phase", ["Dmain", "Dreg", "Gmain", "Greg"])
def test_phase_losses_and_gradients_match_official(name, phase, monkeypatch):
    run, fx, meta = _run(name)
    c = _feed(run, fx, [fx["in.z"]], monkeypatch)
    trainer = Trainer(run)
    torch.manual_seed(meta["training"]["phase_seed"] + PHASE_INDEX[phase])
    reals = fx["in.reals"]
    if phase == "Dmain":
        stats = trainer.d_main(reals, c)
        official = fx["phase.Dmain.report.Loss/D/loss"].mean()
        assert abs(stats["Loss/D/real"] + stats["Loss/D/fake"] - float(official)) <= RELATIVE * abs(float(official))
    elif phase == "Dreg":
        stats = trainer.d_reg(reals, c)
        r1 = float(fx["phase.Dreg.report.Loss/r1_penalty"].mean())
        assert abs(stats["Loss/Dreg/r1"] - r1) <= RELATIVE * abs(r1)
    elif phase == "Gmain":
        stats = trainer.g_main(reals.shape[0], c)
        official = float(fx["phase.Gmain.report.Loss/G/loss"].mean())
        assert abs(stats["Loss/G/adversarial"] - official) <= RELATIVE * abs(official)
    else:
        stats = trainer.g_reg(reals.shape[0], c)
        penalty = float(fx["phase.Greg.report.Loss/pl_penalty"].mean())
        assert abs(stats["Loss/Greg/pl_penalty"] - penalty) <= RELATIVE * abs(penalty)
        assert_close_relative(run.pl_mean.reshape(1), fx["phase.Greg.pl_mean"], "pl_mean")
        assert_close_relative(run.G.mapping_network.w_avg, fx["phase.Greg.w_avg"], "w_avg")
    _gradients(run, fx, phase, "G" if phase.startswith("G") else "D")


@pytest.mark.parametrize("name", NAMES)
def test_one_whole_iteration_gives_the_official_weights(name, monkeypatch):
    """All four phases in NVIDIA's order, lazy-scaled Adam for G and D, and the EMA of G."""
    run, fx, meta = _run(name)
    batch, z_dim = fx["in.z"].shape
    torch.manual_seed(meta["training"]["phase_seed"] + len(PHASE_INDEX))
    zs = torch.randn([len(PHASE_INDEX) * batch, z_dim]).split(batch)  # NVIDIA draws every phase's z first
    c = _feed(run, fx, zs, monkeypatch)
    trainer = Trainer(run)
    monkeypatch.setattr(trainer, "real_batch", lambda number=None: (fx["in.reals"], c))
    trainer.step()
    assert_close_relative(run.pl_mean.reshape(1), fx["phase.iter.pl_mean"], "pl_mean")
    for network, rename in (("G", generator_name), ("D", discriminator_name), ("G_ema", generator_name)):
        mine = getattr(run, network).state_dict()
        prefix = f"phase.iter.{network}."
        for key in (k for k in fx if k.startswith(prefix) and not k.endswith("resample_filter")):
            official = key.removeprefix(prefix)
            assert_close_relative(mine[rename(official)], fx[key], f"{network}.{official} after one iteration")
