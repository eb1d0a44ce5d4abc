"""The plugin: registration through its hook and entry point, and tiny training runs through the trainer."""

import math
from importlib.metadata import entry_points

import pytest
import torch

from gancore.backbone import CAPABILITIES, BackboneSpec, DataInfo
from gancore.run import Run
from gancore_stylegan2.config import StyleGAN2Config
from gancore_stylegan2.networks import StyleGAN2Discriminator, StyleGAN2Generator
from gancore_stylegan2.plugin import StyleGAN2Backbone
from stylegan2_helpers import TINY


def registered() -> dict[str, BackboneSpec]:
    specs: list[BackboneSpec] = []
    StyleGAN2Backbone().gancore_register_backbones(specs.append)
    return {spec.name: spec for spec in specs}


def tiny_raw(**train) -> dict:
    """A raw run config: tiny StyleGAN2 on 16 px synthetic images, every phase every step."""
    return {
        "backbone": {"name": "stylegan2", **TINY},
        "data": {"name": "synthetic-images", "resolution": 16, "channels": 3, "num_samples": 64},
        "train": {
            "steps": 2, "batch": 8, "seed": 0, "device": "cpu", "progress": False, "log_every": 1,
            "r1_gamma": 1.0, "d_reg_interval": 1, "pl_weight": 2.0, "g_reg_interval": 1, "ema_kimg": 0.01,
            **train,
        },
    }


def test_registers_the_backbone_with_every_capability():
    (spec,) = registered().values()
    assert spec.name == "stylegan2"
    assert (spec.config_class, spec.generator_class, spec.discriminator_class) == (
        StyleGAN2Config, StyleGAN2Generator, StyleGAN2Discriminator
    )
    assert spec.capabilities == frozenset(CAPABILITIES)
    assert StyleGAN2Backbone.name == "stylegan2" and StyleGAN2Backbone.kind == "backbone"
    config = spec.resolve_config(spec.config_class(**TINY), DataInfo(name="img", shape=(1, 8, 8)))
    G, D = spec.generator_class(config), spec.discriminator_class(config)
    assert G.img_shape == D.img_shape == (1, 8, 8)


def test_entry_point_is_installed():
    (ep,) = [ep for ep in entry_points(group="gancore") if ep.name == "stylegan2"]
    assert ep.value == "gancore_stylegan2.plugin:StyleGAN2Backbone"
    assert ep.load() is StyleGAN2Backbone


def test_training_steps_run_every_phase():
    run = Run.build(tiny_raw()).train()
    assert run.step == 2
    assert type(run.G) is StyleGAN2Generator and type(run.D) is StyleGAN2Discriminator
    stats = run.last_stats
    assert all(math.isfinite(v) for v in stats.values())
    assert stats["Loss/Dreg/r1"] > 0
    assert stats["Loss/Greg/pl_length"] > 0 and stats["Loss/Greg/pl_penalty"] > 0
    assert float(run.pl_mean) > 0
    assert run.G.mapping_network.w_avg.abs().sum() > 0  # tracked in training ...
    assert torch.equal(run.G_ema.mapping_network.w_avg, run.G.mapping_network.w_avg)  # ... and copied to G_ema
    samples = run.sample(4)
    assert samples.shape == (4, 3, 16, 16) and samples.isfinite().all()


def test_conditional_run_with_truncated_samples():
    raw = tiny_raw(steps=1)
    raw["data"]["labels"] = True
    raw["backbone"]["truncation_psi"] = 0.5
    run = Run.build(raw).train()
    assert run.G.c_dim == run.D.c_dim > 0 and run.D.label_mapping is not None
    assert all(math.isfinite(v) for v in run.last_stats.values())
    assert run.sample(4).isfinite().all()


def test_resolution_errors_reach_the_run_config():
    raw = tiny_raw()
    raw["data"]["resolution"] = 12
    with pytest.raises(ValueError, match="resolution must be a power of two from 8 to 1024, got 12"):
        Run.build(raw)
