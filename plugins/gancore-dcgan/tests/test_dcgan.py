"""Behaviour of the ``dcgan`` backbone: config, shapes, resume state, features, adapters, hub."""

import copy

import attrs
import pytest
import torch
from torch.nn.utils import parametrize

from gancore.backbone import DataInfo
from gancore_dcgan.dcgan import DCGANDiscriminator, DCGANGenerator
from gancore_dcgan.dcgan_config import DCGANConfig

N = 4


def make_config(resolution: int = 16, channels: int = 3, c_dim: int = 0, **kw) -> DCGANConfig:
    kw = {"z_dim": 8, "width": 4, "max_width": 32, **kw}
    info = DataInfo(name="toy", shape=(channels, resolution, resolution), c_dim=c_dim)
    return DCGANConfig(**kw).with_data(info)


def labels(c_dim: int, n: int = N) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.arange(n) % c_dim, c_dim).float()


def scale(n: int = N, value: float | None = None) -> dict[str, torch.Tensor]:
    return {"scale": torch.full((n,), value) if value is not None else torch.linspace(0.0, 1.0, n)}


# -- config -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"resolution": 12}, "must be a power of two from 8 to 64, got 12"),
        ({"resolution": 128}, "must be a power of two from 8 to 64, got 128"),
        ({"resolution": 4}, "must be a power of two"),
        ({"channels": 2}, "must be 1 or 3, got 2"),
        ({"width": -4}, "must be > 0, got -4"),
        ({"g_norm": "layer"}, "must be one of 'batch', 'none', got 'layer'"),
        ({"resample": "bilinear"}, "must be one of 'stride', 'nearest'"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DCGANConfig(**kwargs)


def test_with_data_fills_fields_and_checks_them():
    info = DataInfo(name="cifar", shape=(3, 32, 32), c_dim=10)
    cfg = DCGANConfig().with_data(info)
    assert (cfg.resolution, cfg.channels, cfg.c_dim) == (32, 3, 10)
    assert DCGANConfig(resolution=32).with_data(info) == cfg
    with pytest.raises(ValueError, match="resolution = 64 does not match data set 'cifar'"):
        DCGANConfig(resolution=64).with_data(info)
    with pytest.raises(ValueError, match="must be a power of two.*got 28"):
        DCGANConfig().with_data(DataInfo(name="mnist", shape=(1, 28, 28)))
    with pytest.raises(ValueError, match="use the mlp backbone"):
        DCGANConfig().with_data(DataInfo(name="mog25", shape=(2,)))


def test_unresolved_config_is_refused():
    with pytest.raises(ValueError, match="resolution, channels, c_dim are None.*with_data"):
        DCGANGenerator(DCGANConfig())
    with pytest.raises(ValueError, match="c_dim is None"):
        DCGANDiscriminator(DCGANConfig(resolution=8, channels=1))


def test_widths_double_per_halving_capped_and_multiplied():
    cfg = DCGANConfig(resolution=64, channels=3, c_dim=0, width=64, max_width=256)
    assert [cfg.width_at(r) for r in (64, 32, 16, 8, 4)] == [64, 128, 256, 256, 256]
    half = attrs.evolve(cfg, channel_multiplier=0.5)
    assert [half.width_at(r) for r in (64, 32, 4)] == [32, 64, 128]
    tiny = attrs.evolve(cfg, width=1, channel_multiplier=0.1)
    assert tiny.width_at(64) == 1
    small = make_config(channel_multiplier=0.5)
    G, D = DCGANGenerator(small), DCGANDiscriminator(small)
    assert G.resume_state(16)["x"][0] == 2 and D.feature_channels()[4] == 8


# -- generator ----------------------------------------------------------------------------------


@pytest.mark.parametrize("resolution", [8, 32])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("resample", ["stride", "nearest"])
def test_shapes_and_range(resolution, channels, resample):
    torch.manual_seed(0)
    cfg = make_config(resolution, channels, resample=resample)
    G, D = DCGANGenerator(cfg), DCGANDiscriminator(cfg)
    assert G.img_shape == D.img_shape == (channels, resolution, resolution)
    assert (G.z_dim, G.c_dim, G.w_dim) == (8, 0, 8)
    img = G(torch.randn(N, 8))
    assert img.shape == (N, channels, resolution, resolution)
    assert img.abs().max() <= 1.0 and img.std() > 0
    assert D(img).shape == (N,)
    with pytest.raises(ValueError, match=r"DCGANDiscriminator input: expected shape"):
        D(torch.randn(N, channels, resolution * 2, resolution * 2))
    with pytest.raises(ValueError, match=r"latents z: expected shape \[None, 8\], got \[4, 9\]"):
        G(torch.randn(N, 9))


def test_synthesis_layers_and_block_resolutions():
    G = DCGANGenerator(make_config(32))
    names = [(l.name, l.channels, l.resolution) for l in G.synthesis_layers()]
    assert names == [("b8.conv", 32, 4), ("b16.conv", 16, 8), ("b32.conv", 8, 16), ("torgb", 4, 32)]
    assert G.block_resolutions() == [4, 8, 16, 32]
    assert G.resume_state(8) == {"x": (16, 8, 8)}
    for bad in (2, 12, 64):
        with pytest.raises(ValueError, match=f"no block at resolution {bad}; its blocks are at"):
            G.resume_state(bad)
        with pytest.raises(ValueError, match="no block at resolution"):
            G.state_at(bad, torch.randn(N, 8))


@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("g_norm", ["batch", "none"])
def test_synthesize_from_state_at_is_exact(mode, g_norm, adapter_factory, counting_encoder):
    torch.manual_seed(1)
    G = DCGANGenerator(make_config(32, c_dim=10, g_norm=g_norm))
    G.add_cond_encoder("scale2", counting_encoder)
    G.add_adapter(adapter_factory(key="scale2"))
    G.train(mode == "train")
    z, c, cond = torch.randn(N, 8), labels(10), scale()
    with torch.no_grad():
        full = G(z, c, cond)
        for r in G.block_resolutions():
            state = G.state_at(r, z, c, cond)
            assert {k: tuple(v.shape[1:]) for k, v in state.items()} == G.resume_state(r)
            assert torch.equal(G.synthesize_from(r, state, cond), full), r


def test_synthesize_from_asserts_state_shape():
    G = DCGANGenerator(make_config(16))
    with pytest.raises(ValueError, match=r"state x at resolution 8: expected shape \[None, 8, 8, 8\]"):
        G.synthesize_from(8, {"x": torch.randn(N, 8, 4, 4)})


def test_g_features_match_resume_state():
    G = DCGANGenerator(make_config(16))
    img, feats = G(torch.randn(N, 8), features=True)
    assert img.shape == (N, 3, 16, 16)
    assert sorted(feats) == G.block_resolutions()
    for r, f in feats.items():
        assert tuple(f.shape) == (N, *G.resume_state(r)["x"])
        assert f.requires_grad


def test_mapping_gives_w_for_path_length():
    G = DCGANGenerator(make_config(8, c_dim=10))
    assert G.w_dim == 16
    z = torch.randn(N, 8)
    w = G.mapping(z, labels(10)).requires_grad_(True)
    assert w.shape == (N, 16) and torch.equal(w[:, :8], z)
    (grad,) = torch.autograd.grad(G.synthesis(w).sum(), w)
    assert grad.shape == w.shape and grad.abs().sum() > 0


# -- adapters, cond encoders, attachments ---------------------------------------------------------


def test_adapters_train_with_g_and_follow_cond(adapter_factory):
    torch.manual_seed(2)
    G = DCGANGenerator(make_config(16))
    before = {id(p) for p in G.parameters()}
    added = G.add_adapter(adapter_factory())
    assert added == ["b8.conv", "b16.conv", "torgb"]
    new = [p for p in G.parameters() if id(p) not in before]
    assert len(new) == 3
    assert sum(k.startswith("adapters.") for k in G.state_dict()) == 3
    G.eval()
    z = torch.randn(N, 8)
    out0, out1 = G(z, cond=scale(value=0.0)), G(z, cond=scale(value=1.0))
    assert not torch.allclose(out0, out1)
    shapes = [m.shapes[-1] for lst in G.adapters.values() for m in lst]
    assert shapes == [(N, 16, 4, 4), (N, 8, 8, 8), (N, 4, 16, 16)]

    G_ema = copy.deepcopy(G)
    assert torch.equal(G_ema(z, cond=scale(value=1.0)), out1)
    assert G_ema.state_dict().keys() == G.state_dict().keys()
    assert all(p is not q for p, q in zip(G_ema.parameters(), G.parameters()))

    G.train()
    G(z, cond=scale()).square().mean().backward()
    for p in new:
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_cond_encoders_run_once_per_forward(adapter_factory, counting_encoder):
    G = DCGANGenerator(make_config(16))
    G.add_cond_encoder("scale2", counting_encoder)
    G.add_adapter(adapter_factory(key="scale2"))
    z = torch.randn(N, 8)
    G(z, cond=scale())
    assert counting_encoder.calls == 1
    G(z, cond=scale(), features=True)
    assert counting_encoder.calls == 2
    G.synthesize_from(8, G.state_at(8, z, cond=scale()), scale())
    assert counting_encoder.calls == 4  # once in each half


def test_attached_modules_are_saved():
    cfg = make_config(8)
    for net in (DCGANGenerator(cfg), DCGANDiscriminator(cfg)):
        net.attach("head", torch.nn.Linear(3, 2))
        assert {"attachments.head.weight", "attachments.head.bias"} <= set(net.state_dict())
        with pytest.raises(ValueError, match="already attached"):
            net.attach("head", torch.nn.Linear(3, 2))


# -- discriminator --------------------------------------------------------------------------------


def test_d_features_are_attached_and_match_feature_channels():
    torch.manual_seed(3)
    D = DCGANDiscriminator(make_config(32))
    logits, feats = D(torch.randn(N, 3, 32, 32), features=True)
    assert logits.shape == (N,)
    assert list(feats) == [32, 16, 8, 4] == list(D.feature_channels())
    for r, f in feats.items():
        assert f.shape == (N, D.feature_channels()[r], r, r)
    sum(f.square().mean() for f in feats.values()).backward()
    for name, block in D.blocks.items():
        grads = [p.grad for p in block.parameters()]
        assert all(g is not None and g.abs().sum() > 0 for g in grads), name


def test_spectral_norm_option():
    plain = DCGANDiscriminator(make_config(16))
    sn = DCGANDiscriminator(make_config(16, c_dim=10, spectral_norm=True))
    layers = [b.conv for b in sn.blocks.values()] + [sn.out.fc, sn.out.embed]
    assert all(parametrize.is_parametrized(m, "weight") for m in layers)
    assert not any(parametrize.is_parametrized(m) for m in plain.modules())
    assert any("parametrizations.weight.original" in k for k in sn.state_dict())
    assert sn(torch.randn(N, 3, 16, 16), labels(10)).shape == (N,)


# -- conditioning ---------------------------------------------------------------------------------


def test_conditional_networks_and_label_errors():
    torch.manual_seed(4)
    cfg = make_config(8, c_dim=10)
    G, D = DCGANGenerator(cfg), DCGANDiscriminator(cfg)
    G.eval()
    z, c = torch.randn(N, 8), labels(10)
    img = G(z, c)
    assert not torch.equal(img, G(z, c.roll(1, dims=0)))
    logits = D(img, c)
    assert not torch.equal(logits, D(img, c.roll(1, dims=0)))
    with pytest.raises(ValueError, match=r"DCGANGenerator is conditional \(c_dim = 10\) but no labels"):
        G(z)
    with pytest.raises(ValueError, match=r"DCGANDiscriminator is conditional \(c_dim = 10\) but no labels"):
        D(img)
    with pytest.raises(ValueError, match=r"labels c: expected shape \[4, 10\], got \[4, 3\]"):
        G(z, labels(3))
    U = make_config(8)
    with pytest.raises(ValueError, match=r"unconditional \(c_dim = 0\) but labels were given"):
        DCGANGenerator(U)(z, c)
    with pytest.raises(ValueError, match=r"unconditional \(c_dim = 0\) but labels were given"):
        DCGANDiscriminator(U)(img, c)


# -- the hub --------------------------------------------------------------------------------------


def test_hub_round_trip(tmp_path):
    torch.manual_seed(5)
    cfg = make_config(16, c_dim=10, channel_multiplier=1.5, spectral_norm=True, resample="nearest")
    G, D = DCGANGenerator(cfg), DCGANDiscriminator(cfg)
    z, c = torch.randn(N, 8), labels(10)
    G(z, c)  # move the batch-norm running statistics away from their defaults
    G.eval(), D.eval()
    img = G(z, c)
    G.save_pretrained(tmp_path / "G")
    D.save_pretrained(tmp_path / "D")
    G2 = DCGANGenerator.from_pretrained(tmp_path / "G", strict=True)
    D2 = DCGANDiscriminator.from_pretrained(tmp_path / "D", strict=True)
    assert G2.config == cfg and D2.config == cfg
    assert isinstance(G2.config, DCGANConfig)
    assert torch.equal(G2.eval()(z, c), img)
    assert torch.equal(D2.eval()(img, c), D(img, c))
