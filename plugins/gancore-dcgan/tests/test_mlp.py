"""Behaviour of the ``mlp`` backbone: config, shapes, resume state, features, adapters, hub."""

import copy

import pytest
import torch

from gancore.backbone import DataInfo
from gancore_dcgan.mlp import MLPConfig, MLPDiscriminator, MLPGenerator

N = 5


def make_config(c_dim: int = 0, dim: int = 2, **kw) -> MLPConfig:
    kw = {"z_dim": 4, "width": 16, "g_layers": 3, "d_layers": 2, **kw}
    return MLPConfig(**kw).with_data(DataInfo(name="mog25", shape=(dim,), c_dim=c_dim))


def labels(c_dim: int, n: int = N) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.arange(n) % c_dim, c_dim).float()


def scale(n: int = N, value: float | None = None) -> dict[str, torch.Tensor]:
    return {"scale": torch.full((n,), value) if value is not None else torch.linspace(0.0, 1.0, n)}


def test_with_data_fills_fields():
    cfg = MLPConfig().with_data(DataInfo(name="mog25", shape=(2,), c_dim=3))
    assert (cfg.dim, cfg.c_dim, cfg.z_dim, cfg.width) == (2, 3, 8, 256)
    with pytest.raises(ValueError, match="mlp backbone models flat points.*'mnist'.*use an image backbone"):
        MLPConfig().with_data(DataInfo(name="mnist", shape=(1, 28, 28)))
    with pytest.raises(ValueError, match="dim = 3 does not match data set 'mog25'"):
        MLPConfig(dim=3).with_data(DataInfo(name="mog25", shape=(2,)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"width": 0}, "must be > 0, got 0"),
        ({"g_layers": 0}, "must be >= 1, got 0"),
        ({"dim": -1}, "must be > 0"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MLPConfig(**kwargs)


def test_unresolved_config_is_refused():
    with pytest.raises(ValueError, match="MLPGenerator needs a resolved MLPConfig, but dim, c_dim are None"):
        MLPGenerator(MLPConfig())


def test_shapes_and_linear_output():
    torch.manual_seed(0)
    G, D = MLPGenerator(make_config(dim=3)), MLPDiscriminator(make_config(dim=3))
    assert (G.z_dim, G.c_dim, G.w_dim, G.img_shape) == (4, 0, 4, (3,))
    x = G(torch.randn(N, 4))
    assert x.shape == (N, 3)
    with torch.no_grad():
        G.out.bias.fill_(5.0)  # no tanh: points are not squashed into [-1, 1]
    assert G(torch.randn(N, 4)).min() > 1.0
    assert D(x).shape == (N,)
    with pytest.raises(ValueError, match=r"MLPDiscriminator input: expected shape \[None, 3\], got \[5, 2\]"):
        D(torch.randn(N, 2))


def test_layers_and_resume_state():
    G = MLPGenerator(make_config())
    layers = [(l.name, l.channels, l.resolution) for l in G.synthesis_layers()]
    assert layers == [("fc1", 4, 1), ("fc2", 16, 2), ("fc3", 16, 3)]
    assert G.block_resolutions() == [1, 2, 3]
    assert G.resume_state(2) == {"x": (16,)}
    for bad in (0, 4):
        with pytest.raises(ValueError, match=f"no block at resolution {bad}"):
            G.resume_state(bad)
    with pytest.raises(ValueError, match=r"state x at layer 2: expected shape \[None, 16\]"):
        G.synthesize_from(2, {"x": torch.randn(N, 4)})


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_synthesize_from_state_at_is_exact(mode, adapter_factory, counting_encoder):
    torch.manual_seed(1)
    G = MLPGenerator(make_config(c_dim=10))
    G.add_cond_encoder("scale2", counting_encoder)
    G.add_adapter(adapter_factory(key="scale2"))
    G.train(mode == "train")
    z, c, cond = torch.randn(N, 4), labels(10), scale()
    full = G(z, c, cond)
    for i in G.block_resolutions():
        state = G.state_at(i, z, c, cond)
        assert state["x"].shape == (N, *G.resume_state(i)["x"])
        assert torch.equal(G.synthesize_from(i, state, cond), full), i


def test_features():
    torch.manual_seed(2)
    G, D = MLPGenerator(make_config()), MLPDiscriminator(make_config())
    x, g_feats = G(torch.randn(N, 4), features=True)
    assert sorted(g_feats) == [1, 2, 3]
    assert all(f.shape == (N, *G.resume_state(i)["x"]) for i, f in g_feats.items())
    logits, d_feats = D(x.detach(), features=True)
    assert D.feature_channels() == {1: 16, 2: 16}
    assert {i: f.shape[1] for i, f in d_feats.items()} == D.feature_channels()
    sum(f.square().mean() for f in d_feats.values()).backward()
    for layer in D.layers.values():
        assert layer.fc.weight.grad is not None and layer.fc.weight.grad.abs().sum() > 0


def test_path_length_through_w():
    G = MLPGenerator(make_config(c_dim=3))
    w = G.mapping(torch.randn(N, 4), labels(3)).requires_grad_(True)
    assert w.shape == (N, G.w_dim) == (N, 8)
    (grad,) = torch.autograd.grad(G.synthesis(w).sum(), w)
    assert grad.abs().sum() > 0


def test_adapters(adapter_factory):
    torch.manual_seed(3)
    G = MLPGenerator(make_config())
    assert G.add_adapter(adapter_factory(only={"fc2"})) == ["fc2"]
    assert {"adapters.fc2.0.bias"} <= set(G.state_dict())
    bias = G.adapters["fc2"][0].bias
    assert any(p is bias for p in G.parameters())
    z = torch.randn(N, 4)
    out0, out1 = G(z, cond=scale(value=0.0)), G(z, cond=scale(value=1.0))
    assert not torch.allclose(out0, out1)
    assert G.adapters["fc2"][0].shapes[-1] == (N, 16)
    G_ema = copy.deepcopy(G)
    assert torch.equal(G_ema(z, cond=scale(value=1.0)), out1)
    assert G_ema.adapters["fc2"][0].bias is not bias
    G(z, cond=scale()).square().sum().backward()
    assert bias.grad is not None and bias.grad.abs().sum() > 0


def test_conditioning_and_label_errors():
    torch.manual_seed(4)
    cfg = make_config(c_dim=10)
    G, D = MLPGenerator(cfg), MLPDiscriminator(cfg)
    z, c = torch.randn(N, 4), labels(10)
    x = G(z, c)
    assert not torch.equal(x, G(z, c.roll(1, dims=0)))
    assert not torch.equal(D(x, c), D(x, c.roll(1, dims=0)))
    with pytest.raises(ValueError, match=r"MLPGenerator is conditional \(c_dim = 10\) but no labels"):
        G(z)
    with pytest.raises(ValueError, match=r"MLPDiscriminator is conditional \(c_dim = 10\) but no labels"):
        D(x)
    with pytest.raises(ValueError, match="unconditional .* but labels were given"):
        MLPDiscriminator(make_config())(x, c)


def test_attached_modules_are_saved():
    cfg = make_config()
    for net in (MLPGenerator(cfg), MLPDiscriminator(cfg)):
        net.attach("extra", torch.nn.Linear(2, 2))
        assert {"attachments.extra.weight", "attachments.extra.bias"} <= set(net.state_dict())


def test_hub_round_trip(tmp_path):
    torch.manual_seed(5)
    cfg = make_config(c_dim=2, lrelu_slope=0.1)
    G, D = MLPGenerator(cfg), MLPDiscriminator(cfg)
    G.save_pretrained(tmp_path / "G")
    D.save_pretrained(tmp_path / "D")
    G2 = MLPGenerator.from_pretrained(tmp_path / "G", strict=True)
    D2 = MLPDiscriminator.from_pretrained(tmp_path / "D", strict=True)
    assert G2.config == D2.config == cfg and isinstance(G2.config, MLPConfig)
    z, c = torch.randn(N, 4), labels(2)
    x = G(z, c)
    assert torch.equal(G2(z, c), x)
    assert torch.equal(D2(x, c), D(x, c))
