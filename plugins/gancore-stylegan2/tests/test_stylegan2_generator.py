"""StyleGAN2Generator: parameter counts, shapes, resume state, mapping, mixing, truncation, noise, adapters."""

import copy

import pytest
import torch

from gancore.backbone import DataInfo
from gancore_stylegan2.config import StyleGAN2Config
from gancore_stylegan2.networks import StyleGAN2Discriminator, StyleGAN2Generator
from stylegan2_helpers import labels, make_config, scale, set_noise_strength

N = 4


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    ("resolution", "channel_base", "g_params", "d_params"),
    [
        (256, 16384, 24_767_458, 24_001_089),  # paper256
        (1024, 32768, 30_370_060, 29_012_513),  # config F
        (32, 32768, 21_523_475, 21_507_073),
    ],
)
def test_parameter_counts_match_the_official_networks(resolution, channel_base, g_params, d_params):
    cfg = StyleGAN2Config(channel_base=channel_base).with_data(DataInfo(name="rgb", shape=(3, resolution, resolution)))
    G, D = StyleGAN2Generator(cfg), StyleGAN2Discriminator(cfg)
    assert count(G) == g_params
    assert count(G.mapping_network) == 2_101_248
    assert count(D) == d_params


@pytest.mark.parametrize("resolution", [8, 16, 32])
def test_shapes_layers_and_features_at_every_resolution(resolution):
    torch.manual_seed(0)
    G = StyleGAN2Generator(make_config(resolution, channels=1))
    R = resolution
    assert (G.z_dim, G.w_dim, G.c_dim, G.img_shape) == (32, 32, 0, (1, R, R))
    assert G.block_resolutions() == [2**k for k in range(2, R.bit_length())]
    assert G.num_ws == 2 * (R.bit_length() - 1) - 2
    z = torch.randn(N, 32)
    ws = G.mapping(z)
    assert ws.shape == (N, G.num_ws, 32)
    img, feats = G(z, features=True)
    assert img.shape == (N, 1, R, R) and img.isfinite().all()
    assert list(feats) == G.block_resolutions()
    for r, f in feats.items():
        assert f.shape == (N, *G.resume_state(r)["x"])
    layers = G.synthesis_layers()
    later = [f"b{r}.{n}" for r in G.block_resolutions()[1:] for n in ("conv0", "conv1", "torgb")]
    expected = ["b4.conv1", "b4.torgb", *later]
    assert [layer.name for layer in layers] == expected
    cfg = G.config
    for layer in layers:
        res = int(layer.name.split(".")[0][1:])
        conv0 = layer.name.endswith("conv0")
        assert layer.resolution == (res // 2 if conv0 else res)
        assert layer.channels == cfg.width_at(layer.resolution)


def test_resume_state_shapes_and_errors():
    G = StyleGAN2Generator(make_config(32))
    assert G.resume_state(4) == {"x": (32, 4, 4), "img": (3, 4, 4), "ws": (7, 32)}
    assert G.resume_state(16) == {"x": (16, 16, 16), "img": (3, 16, 16), "ws": (3, 32)}
    assert G.resume_state(32) == {"x": (8, 32, 32), "img": (3, 32, 32), "ws": (0, 32)}
    for bad in (2, 12, 64):
        with pytest.raises(ValueError, match=f"no block at resolution {bad}"):
            G.resume_state(bad)
    state = G.state_at(8, torch.randn(2, 32))
    with pytest.raises(ValueError, match=r"state img at resolution 8: expected shape \[None, 3, 8, 8\]"):
        G.synthesize_from(8, {**state, "img": torch.zeros(2, 3, 4, 4)})
    with pytest.raises(ValueError, match=r"lacks \['ws'\]"):
        G.synthesize_from(8, {"x": state["x"], "img": state["img"]})


@pytest.mark.parametrize("mode", ["eval-const", "train-random"])
def test_synthesize_from_state_at_is_exact(mode, adapter_factory, counting_encoder):
    """Eval with const noise; and training mode (random noise, style mixing) with the same RNG state."""
    torch.manual_seed(1)
    G = StyleGAN2Generator(make_config(32, c_dim=10, style_mixing=1.0, noise_mode="random"))
    G.add_cond_encoder("scale2", counting_encoder)
    G.add_adapter(adapter_factory(key="scale2"))
    set_noise_strength(G)
    if mode == "eval-const":
        G.eval()
        G.noise_mode = "const"
        G.truncation_psi = 0.7
    z, c, cond = torch.randn(N, 32), labels(10, N), scale(N)
    torch.manual_seed(7)
    full = G(z, c, cond)
    for r in G.block_resolutions():
        torch.manual_seed(7)
        state = G.state_at(r, z, c, cond)
        assert {k: tuple(v.shape[1:]) for k, v in state.items()} == G.resume_state(r)
        assert torch.equal(G.synthesize_from(r, state, cond), full), r
    if mode == "train-random":  # the noise and the mixing really are random
        assert not torch.equal(G(z, c, cond), full)


def test_every_w_is_used_and_path_length_gradients_flow():
    torch.manual_seed(2)
    G = StyleGAN2Generator(make_config(16))
    w = G.mapping(torch.randn(N, 32))
    assert w.requires_grad
    (grad,) = torch.autograd.grad((G.synthesis(w) * torch.randn(N, 3, 16, 16)).sum(), w, create_graph=True)
    assert grad.shape == (N, G.num_ws, 32)
    assert (grad.abs().sum(dim=(0, 2)) > 0).all()  # every layer's w (incl. the last torgb's) matters
    grad.square().sum().backward()  # double backward, as the path length penalty does
    assert G.mapping_network.layers[0].weight.grad.abs().sum() > 0
    flat = G.synthesis(w[:, 0])  # a single [N, w_dim] w is broadcast to every layer
    assert torch.equal(flat, G.synthesis(w[:, :1].repeat(1, G.num_ws, 1)))


def test_w_avg_tracking_and_truncation():
    torch.manual_seed(3)
    G = StyleGAN2Generator(make_config(16, style_mixing=1.0, noise_mode="const"))
    set_noise_strength(G)
    z = torch.randn(8, 32)
    beta = G.config.w_avg_beta
    G.train()
    w = G.mapping_network(z, update_w_avg=False)[:, 0]
    expected = w.mean(0).lerp(torch.zeros(32), beta)
    G(z)  # updates w_avg once (the mixing latent does not)
    assert torch.allclose(G.mapping_network.w_avg, expected, atol=1e-6)
    G.eval()
    assert torch.allclose(G.mapping(z), w[:, None].expand(-1, G.num_ws, -1), atol=1e-6)  # psi = 1: none
    G.truncation_psi = 0.0
    ws = G.mapping(z)
    assert torch.allclose(ws, G.mapping_network.w_avg.expand_as(ws))
    img = G(z)
    assert torch.allclose(img, img[:1].expand_as(img), atol=1e-6)  # every sample is the average image
    G.truncation_psi = 0.5
    half = G.mapping_network.w_avg.lerp(w[:, None], 0.5).expand(-1, G.num_ws, -1)
    assert torch.allclose(G.mapping(z), half, atol=1e-6)
    cut = StyleGAN2Generator(make_config(16, truncation_psi=0.0, truncation_cutoff=2)).eval()
    cut.mapping_network.w_avg.copy_(torch.ones(32))
    ws = cut.mapping(z)
    assert torch.equal(ws[:, :2], torch.ones(8, 2, 32)) and not torch.equal(ws[:, 2:], torch.ones(8, G.num_ws - 2, 32))
    G.train()
    assert torch.allclose(G.mapping(z)[:, 0], w, atol=1e-6)  # no truncation in training


def test_style_mixing_uses_two_latents_in_training_only():
    torch.manual_seed(4)
    z = torch.randn(N, 32)

    def synthesized_ws(G: StyleGAN2Generator) -> torch.Tensor:
        seen = []
        original = G.synthesis
        G.synthesis = lambda w, cond=None, features=False: seen.append(w) or original(w, cond, features)
        G(z)
        return seen[0]

    def distinct_layers(ws: torch.Tensor) -> int:
        return len({tuple(ws[0, i].tolist()) for i in range(ws.shape[1])})

    G = StyleGAN2Generator(make_config(16, style_mixing=1.0))
    cutoffs = set()
    for _ in range(20):
        ws = synthesized_ws(G.train())
        assert distinct_layers(ws) == 2
        own = G.mapping_network(z, update_w_avg=False)
        assert torch.equal(ws[:, 0], own[:, 0])
        cutoffs.add(int((ws[0] != own[0]).any(dim=1).nonzero()[0]))
    assert cutoffs <= set(range(1, G.num_ws)) and len(cutoffs) > 1  # random crossover points
    assert distinct_layers(synthesized_ws(G.eval())) == 1
    never = StyleGAN2Generator(make_config(16, style_mixing=0.0)).train()
    assert distinct_layers(synthesized_ws(never)) == 1


def test_noise_modes():
    torch.manual_seed(5)
    G = StyleGAN2Generator(make_config(16)).eval()
    z = torch.randn(N, 32)
    base = G(z)
    assert torch.equal(G(z), base)  # noise strengths start at zero
    set_noise_strength(G)
    assert not torch.equal(G(z), G(z))  # "random"
    G.noise_mode = "const"
    const = G(z)
    assert torch.equal(G(z), const) and not torch.equal(const, base)
    G.noise_mode = "none"
    assert torch.equal(G(z), base)
    with pytest.raises(ValueError, match="noise_mode must be one of"):
        G.noise_mode = "fixed"


def test_fused_and_separate_modconv_agree():
    torch.manual_seed(6)
    fused = StyleGAN2Generator(make_config(16, fused_modconv=True, noise_mode="const"))
    separate = StyleGAN2Generator(make_config(16, fused_modconv=False, noise_mode="const"))
    separate.load_state_dict(fused.state_dict())
    set_noise_strength(fused)
    set_noise_strength(separate)
    ws = fused.mapping_network(torch.randn(N, 32), update_w_avg=False)
    for training in (True, False):
        a, b = fused.train(training).synthesis(ws), separate.train(training).synthesis(ws)
        assert torch.allclose(a, b, atol=1e-4)


def test_adapters_train_with_g_and_survive_copies(adapter_factory):
    torch.manual_seed(7)
    G = StyleGAN2Generator(make_config(16, noise_mode="const"))
    before = {id(p) for p in G.parameters()}
    added = G.add_adapter(adapter_factory())
    assert added == [layer.name for layer in G.synthesis_layers()]
    new = [p for p in G.parameters() if id(p) not in before]
    assert len(new) == len(added) == 8
    assert "adapters.b8_conv0.0.bias" in G.state_dict()
    G.eval()
    z = torch.randn(N, 32)
    out0, out1 = G(z, cond=scale(N, 0.0)), G(z, cond=scale(N, 1.0))
    assert not torch.allclose(out0, out1)
    shapes = {name: G.adapters[name.replace(".", "_")][0].shapes[-1] for name in added}
    assert shapes["b8.conv0"] == (N, 32, 4, 4) and shapes["b16.torgb"] == (N, 16, 16, 16)

    G_ema = copy.deepcopy(G)
    assert torch.equal(G_ema(z, cond=scale(N, 1.0)), out1)
    assert all(p is not q for p, q in zip(G_ema.parameters(), G.parameters()))
    fresh = StyleGAN2Generator(make_config(16, noise_mode="const"))
    fresh.add_adapter(adapter_factory())
    fresh.load_state_dict(G.state_dict())
    assert torch.equal(fresh.eval()(z, cond=scale(N, 1.0)), out1)

    G.train()
    G(z, cond=scale(N)).square().mean().backward()
    for p in new:
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_only_named_layers_get_adapters_and_torgb_adapters_leave_the_main_path(adapter_factory):
    torch.manual_seed(8)
    G = StyleGAN2Generator(make_config(16, noise_mode="const")).eval()
    z = torch.randn(N, 32)
    img, feats = G(z, cond=scale(N), features=True)
    assert G.add_adapter(adapter_factory(only={"b8.torgb"})) == ["b8.torgb"]
    img2, feats2 = G(z, cond=scale(N), features=True)
    assert all(torch.equal(feats[r], feats2[r]) for r in feats)  # the feature maps are untouched
    assert not torch.equal(img, img2)  # only the RGB branch of b8 changed


def test_cond_encoders_run_once_per_synthesis_call(adapter_factory, counting_encoder):
    G = StyleGAN2Generator(make_config(16))
    G.add_cond_encoder("scale2", counting_encoder)
    G.add_adapter(adapter_factory(key="scale2"))
    z = torch.randn(N, 32)
    G(z, cond=scale(N))
    assert counting_encoder.calls == 1
    G.synthesize_from(8, G.state_at(8, z, cond=scale(N)), scale(N))
    assert counting_encoder.calls == 3


def test_conditional_generator_and_label_errors():
    torch.manual_seed(9)
    G = StyleGAN2Generator(make_config(8, c_dim=10, noise_mode="const")).eval()
    z, c = torch.randn(N, 32), labels(10, N)
    assert G.c_dim == 10
    assert G.mapping_network.layers[0].in_features == 64  # [norm(z), norm(embed(c))]
    img = G(z, c)
    assert not torch.equal(img, G(z, c.roll(1, dims=0)))
    with pytest.raises(ValueError, match=r"StyleGAN2Generator is conditional \(c_dim = 10\) but no labels"):
        G(z)
    with pytest.raises(ValueError, match=r"labels c: expected shape \[4, 10\], got \[4, 3\]"):
        G(z, labels(3, N))
    with pytest.raises(ValueError, match=r"unconditional \(c_dim = 0\) but labels were given"):
        StyleGAN2Generator(make_config(8))(z, c)
    with pytest.raises(ValueError, match=r"latents z: expected shape \[None, 32\], got \[4, 8\]"):
        G(torch.randn(N, 8), c)


def test_hub_round_trip_of_g_and_g_ema(tmp_path):
    torch.manual_seed(10)
    cfg = make_config(16, c_dim=10, channel_multiplier=1.5, truncation_psi=0.8, noise_mode="const", conv_clamp=256.0)
    G = StyleGAN2Generator(cfg)
    set_noise_strength(G)
    z, c = torch.randn(N, 32), labels(10, N)
    G.train()(z, c)  # move w_avg away from zero
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    for name, net in (("G", G), ("G_ema", G_ema)):
        net.save_pretrained(tmp_path / name)
        loaded = StyleGAN2Generator.from_pretrained(tmp_path / name, strict=True)
        assert loaded.config == cfg and isinstance(loaded.config, StyleGAN2Config)
        assert torch.equal(loaded.mapping_network.w_avg, net.mapping_network.w_avg)
        assert torch.equal(loaded.eval()(z, c), net.eval()(z, c))
