"""StyleGAN2Config: data-dependent fields, validation, widths, the w layout, the shipped run file."""

from pathlib import Path

import pytest

import gancore
from gancore.backbone import DataInfo
from gancore.config import ConfigError
from gancore_stylegan2.config import StyleGAN2Config
from gancore_stylegan2.networks import StyleGAN2Discriminator, StyleGAN2Generator

REPO = Path(__file__).resolve().parents[3]


def test_defaults_are_the_official_stylegan2_config():
    cfg = StyleGAN2Config()
    assert (cfg.z_dim, cfg.w_dim, cfg.mapping_layers, cfg.mapping_lr_multiplier) == (512, 512, 8, 0.01)
    assert (cfg.channel_base, cfg.channel_max, cfg.channel_multiplier) == (32768, 512, 1.0)
    assert (cfg.style_mixing, cfg.w_avg_beta, cfg.truncation_psi) == (0.9, 0.995, 1.0)
    assert (cfg.mbstd_group_size, cfg.mbstd_num_channels, cfg.conv_clamp) == (4, 1, None)


def test_with_data_fills_fields():
    cfg = StyleGAN2Config().with_data(DataInfo(name="fmnist", shape=(1, 32, 32), c_dim=10))
    assert (cfg.resolution, cfg.channels, cfg.c_dim) == (32, 1, 10)
    with pytest.raises(ValueError, match="stylegan2 backbone models images.*'mog25'"):
        StyleGAN2Config().with_data(DataInfo(name="mog25", shape=(2,)))
    with pytest.raises(ValueError, match="needs square images, data set 'wide' has 16x32"):
        StyleGAN2Config().with_data(DataInfo(name="wide", shape=(3, 16, 32)))
    with pytest.raises(ValueError, match="resolution = 64 does not match data set 'fmnist'"):
        StyleGAN2Config(resolution=64).with_data(DataInfo(name="fmnist", shape=(1, 32, 32)))


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((3, 12, 12), "'odd' does not fit the stylegan2 backbone: resolution must be a power of two from 8 to 1024"),
        ((3, 2048, 2048), "resolution must be a power of two from 8 to 1024, got 2048"),
        ((3, 4, 4), "resolution must be a power of two from 8 to 1024, got 4"),
        ((2, 16, 16), "channels must be one of None, 1, 3, got 2"),
    ],
)
def test_data_that_does_not_fit(shape, match):
    with pytest.raises(ValueError, match=match):
        StyleGAN2Config().with_data(DataInfo(name="odd", shape=shape))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"resolution": 12}, "must be a power of two from 8 to 1024, got 12"),
        ({"resolution": 2048}, "must be a power of two from 8 to 1024, got 2048"),
        ({"channels": 2}, "must be one of None, 1, 3, got 2"),
        ({"z_dim": 0}, "must be > 0, got 0"),
        ({"mapping_layers": 0}, "must be >= 1, got 0"),
        ({"style_mixing": 1.5}, "must be <= 1.0, got 1.5"),
        ({"w_avg_beta": 1.0}, "must be < 1.0, got 1.0"),
        ({"noise_mode": "fixed"}, "must be one of 'random', 'const', 'none', got 'fixed'"),
        ({"channel_multiplier": 0.0}, "must be > 0.0, got 0.0"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StyleGAN2Config(**kwargs)


def test_unresolved_config_is_refused():
    with pytest.raises(ValueError, match="StyleGAN2Generator needs a resolved StyleGAN2Config, but resolution, "
                                         "channels, c_dim are None"):
        StyleGAN2Generator(StyleGAN2Config())
    with pytest.raises(ValueError, match="c_dim is None"):
        StyleGAN2Discriminator(StyleGAN2Config(resolution=8, channels=3))


def test_widths_and_w_layout():
    cfg = StyleGAN2Config(resolution=256, channels=3, c_dim=0, channel_base=16384)
    assert cfg.block_resolutions == [4, 8, 16, 32, 64, 128, 256]
    assert [cfg.width_at(r) for r in cfg.block_resolutions] == [512, 512, 512, 512, 256, 128, 64]
    assert cfg.num_ws == 14
    assert [cfg.ws_start(r) for r in cfg.block_resolutions] == [0, 1, 3, 5, 7, 9, 11]
    assert [cfg.ws_remaining(r) for r in cfg.block_resolutions] == [13, 11, 9, 7, 5, 3, 0]
    half = StyleGAN2Config(resolution=256, channels=3, c_dim=0, channel_base=16384, channel_multiplier=0.5)
    assert [half.width_at(r) for r in half.block_resolutions] == [256, 256, 256, 256, 128, 64, 32]
    tiny = StyleGAN2Config(resolution=8, channels=1, c_dim=0, channel_base=4, channel_multiplier=0.1)
    assert tiny.width_at(8) == 1  # rounded, at least one channel


def test_fmnist_run_file_parses():
    config = gancore.load_config(REPO / "configs" / "fmnist-stylegan2.toml")
    assert config.backbone.name == "stylegan2"
    assert isinstance(config.backbone.config, StyleGAN2Config)
    assert config.data.name == "fmnist" and config.data.resolution == 32
    train = config.train
    assert (train.g_lr, train.d_lr, train.betas) == (0.0025, 0.0025, (0.0, 0.99))
    assert (train.d_reg_interval, train.pl_weight, train.g_reg_interval, train.batch) == (16, 2.0, 4, 64)
    assert (train.ema_kimg, train.ema_rampup) == (10.0, 0.05)


def test_bad_backbone_keys_are_reported_with_paths():
    raw = {"backbone": {"name": "stylegan2", "resolution": 12, "style_mixng": 0.5}, "data": {"name": "fmnist"}}
    with pytest.raises(ConfigError) as info:
        gancore.load_config(raw)
    text = str(info.value)
    assert "backbone.resolution: must be a power of two from 8 to 1024, got 12" in text
    assert "backbone.style_mixng: unknown key (did you mean 'style_mixing'?)" in text
