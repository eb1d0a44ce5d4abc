"""Print the parity figures of the committed StyleGAN2 fixtures (the numbers docs/import.md quotes).

    python tools/parity/report.py

For each fixture: the largest absolute difference between gancore's imported networks and NVIDIA's
outputs (G_ema, G, truncated G_ema, D on reals and fakes); for the training fixtures, the largest
relative difference (per tensor, over its largest magnitude) of every phase's gradients and of the
weights after one whole iteration.
"""

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "parity"))

from nvidia_format import NAMES, checkpoint, load_fixture  # noqa: E402

from gancore.importing import build_run  # noqa: E402
from gancore.plugins import PluginManager  # noqa: E402


class _Patch:
    """The monkeypatch the training-parity helpers expect, without pytest."""

    def setattr(self, target, name, value):
        setattr(target, name, value)


def forward_errors(name: str) -> dict[str, float]:
    """Max absolute differences of the forward passes of fixture ``name``."""
    manager = PluginManager()
    _, model = manager.hooks.import_networks(checkpoint(name))
    run = build_run(model, manager)
    fx, meta = load_fixture(name)
    c = fx["in.c"] if fx["in.c"].shape[1] else None
    t = meta["truncation"]
    with torch.no_grad():
        ws = run.G_ema.mapping_network(fx["in.z"], c, truncation_psi=t["psi"], truncation_cutoff=t["cutoff"])
        return {
            "G_ema": float((run.G_ema(fx["in.z"], c) - fx["out.images"]).abs().max()),
            "G": float((run.G.eval()(fx["in.z"], c) - fx["out.images_G"]).abs().max()),
            "G_ema truncated": float((run.G_ema.synthesis(ws) - fx["out.images_psi"]).abs().max()),
            "D reals": float((run.D.eval()(fx["in.reals"], c) - fx["out.logits_real"]).abs().max()),
            "D fakes": float((run.D(fx["out.images"], c) - fx["out.logits_fake"]).abs().max()),
        }


def training_errors(name: str) -> dict[str, float]:
    """Max relative differences of each phase's gradients and of one whole iteration's weights."""
    import test_stylegan2_training_parity as T

    from gancore.trainer import Trainer
    from gancore_stylegan2.nvidia_import import discriminator_name, generator_name

    errors = {}
    for phase, index in T.PHASE_INDEX.items():
        run, fx, meta = T._run(name)
        c = T._feed(run, fx, [fx["in.z"]], _Patch())
        trainer = Trainer(run)
        torch.manual_seed(meta["training"]["phase_seed"] + index)
        if phase.startswith("D"):
            getattr(trainer, "d_main" if phase == "Dmain" else "d_reg")(fx["in.reals"], c)
        else:
            getattr(trainer, "g_main" if phase == "Gmain" else "g_reg")(fx["in.reals"].shape[0], c)
        network, rename = (run.G, generator_name) if phase.startswith("G") else (run.D, discriminator_name)
        params = dict(network.named_parameters())
        prefix = f"phase.{phase}.grad."
        worst = 0.0
        for key in (k for k in fx if k.startswith(prefix)):
            grad = params[rename(key.removeprefix(prefix))].grad
            grad = torch.zeros_like(fx[key]) if grad is None else grad
            worst = max(worst, float((grad - fx[key]).abs().max() / fx[key].abs().max().clamp_min(1e-12)))
        errors[f"{phase} gradients"] = worst
    run, fx, meta = T._run(name)
    batch, z_dim = fx["in.z"].shape
    torch.manual_seed(meta["training"]["phase_seed"] + len(T.PHASE_INDEX))
    zs = torch.randn([len(T.PHASE_INDEX) * batch, z_dim]).split(batch)
    c = T._feed(run, fx, zs, _Patch())
    trainer = Trainer(run)
    trainer.real_batch = lambda: (fx["in.reals"], c)
    trainer.step()
    worst = 0.0
    for network, rename in (("G", generator_name), ("D", discriminator_name), ("G_ema", generator_name)):
        mine = getattr(run, network).state_dict()
        prefix = f"phase.iter.{network}."
        for key in (k for k in fx if k.startswith(prefix) and not k.endswith("resample_filter")):
            theirs = fx[key]
            worst = max(worst, float((mine[rename(key.removeprefix(prefix))] - theirs).abs().max()
                                     / theirs.abs().max().clamp_min(1e-12)))
    errors["one iteration, weights"] = worst
    return errors


def main() -> int:
    print("| fixture | " + " | ".join(["G_ema", "G", "G_ema truncated", "D reals", "D fakes"]) + " |")
    print("|---" * 6 + "|")
    for name in NAMES:
        e = forward_errors(name)
        print(f"| {name} | " + " | ".join(f"{v:.1e}" for v in e.values()) + " |")
    print()
    for name in ("configf-tiny", "cifar-cond-tiny"):
        e = training_errors(name)
        print(f"{name}: " + ", ".join(f"{k} {v:.1e}" for k, v in e.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
