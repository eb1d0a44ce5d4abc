"""The plugin: registration through its hook and entry point, and tiny training runs on both backbones."""

import math
from importlib.metadata import entry_points

import pytest

from gancore.backbone import CAPABILITIES, BackboneSpec, DataInfo
from gancore_dcgan.dcgan import DCGANDiscriminator, DCGANGenerator
from gancore_dcgan.dcgan_config import DCGANConfig
from gancore_dcgan.mlp import MLPConfig, MLPDiscriminator, MLPGenerator
from gancore_dcgan.plugin import DCGANBackbones


def registered() -> dict[str, BackboneSpec]:
    specs: list[BackboneSpec] = []
    DCGANBackbones().gancore_register_backbones(specs.append)
    return {spec.name: spec for spec in specs}


def test_registers_both_backbones_with_every_capability():
    specs = registered()
    assert list(specs) == ["mlp", "dcgan"]
    mlp, dcgan = specs["mlp"], specs["dcgan"]
    assert (mlp.config_class, mlp.generator_class, mlp.discriminator_class) == (
        MLPConfig, MLPGenerator, MLPDiscriminator
    )
    assert (dcgan.config_class, dcgan.generator_class, dcgan.discriminator_class) == (
        DCGANConfig, DCGANGenerator, DCGANDiscriminator
    )
    assert mlp.capabilities == dcgan.capabilities == frozenset(CAPABILITIES)
    assert DCGANBackbones.name == "dcgan" and DCGANBackbones.kind == "backbone"
    assert DCGANBackbones.config_class is None


def test_specs_build_networks_from_data():
    specs = registered()
    data = {"mlp": DataInfo(name="ring8", shape=(2,)), "dcgan": DataInfo(name="img", shape=(1, 8, 8))}
    for name, info in data.items():
        spec = specs[name]
        config = spec.resolve_config(spec.config_class(), info)
        G, D = spec.generator_class(config), spec.discriminator_class(config)
        assert G.img_shape == D.img_shape == info.shape


def test_entry_point_is_installed():
    (ep,) = [ep for ep in entry_points(group="gancore") if ep.name == "dcgan"]
    assert ep.value == "gancore_dcgan.plugin:DCGANBackbones"
    assert ep.load() is DCGANBackbones


@pytest.mark.parametrize("backbone", ["mlp", "dcgan"])
def test_conditional_tiny_run_with_path_length(tiny_run, backbone):
    run = tiny_run(backbone, steps=4, pl_weight=1.0, g_reg_interval=2, **{"data.labels": True})
    assert run.step == 4
    assert type(run.G) is registered()[backbone].generator_class
    assert run.G.c_dim == run.D.c_dim > 0
    assert all(math.isfinite(v) for v in run.last_stats.values())
    assert float(run.pl_mean) > 0  # the path length regulariser ran through mapping / synthesis
