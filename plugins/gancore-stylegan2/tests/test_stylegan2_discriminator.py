"""StyleGAN2Discriminator: shapes, features, minibatch stddev, conditioning, hub round trip."""

import pytest
import torch

from gancore_stylegan2.discriminator import MinibatchStdLayer
from gancore_stylegan2.networks import StyleGAN2Discriminator
from stylegan2_helpers import labels, make_config

N = 4


@pytest.mark.parametrize("resolution", [8, 16, 32])
def test_logits_and_features_at_every_resolution(resolution):
    torch.manual_seed(0)
    D = StyleGAN2Discriminator(make_config(resolution))
    assert list(D.blocks) == [f"b{r}" for r in (32, 16, 8) if r <= resolution]
    x = torch.randn(N, 3, resolution, resolution)
    assert D(x).shape == (N,)
    logits, feats = D(x, features=True)
    assert torch.equal(logits, D(x))
    channels = D.feature_channels()
    assert list(feats) == list(channels) == [r for r in (16, 8, 4) if r < resolution]
    for r, f in feats.items():
        assert f.shape == (N, channels[r], r, r)


def test_features_are_attached_to_the_graph():
    torch.manual_seed(1)
    D = StyleGAN2Discriminator(make_config(16))
    _, feats = D(torch.randn(N, 3, 16, 16), features=True)
    sum(f.square().mean() for f in feats.values()).backward()
    for name, block in D.blocks.items():
        for pname, p in block.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, f"{name}.{pname}"
    assert D.blocks["b16"].fromrgb is not None and D.blocks["b8"].fromrgb is None  # fromRGB at the top only


def test_r1_double_backward():
    torch.manual_seed(2)
    D = StyleGAN2Discriminator(make_config(8))
    x = torch.randn(N, 3, 8, 8, requires_grad=True)
    (grad,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
    grad.square().sum().backward()
    weights = [p for name, p in D.named_parameters() if name.endswith("weight")]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in weights)


def test_minibatch_stddev():
    torch.manual_seed(3)
    layer = MinibatchStdLayer(group_size=2, num_channels=1)
    x = torch.randn(4, 3, 2, 2)
    y = layer(x)
    assert y.shape == (4, 4, 2, 2) and torch.equal(y[:, :3], x)
    groups = x.reshape(2, 2, 3, 2, 2)  # sample i belongs to group i % 2
    std = (groups.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=[1, 2, 3])
    assert torch.allclose(y[:, 3, 0, 0], std.repeat(2), atol=1e-6)
    assert MinibatchStdLayer(group_size=8)(x).shape == (4, 4, 2, 2)  # group capped at the batch
    with pytest.raises(ValueError, match="batch size 6 is not divisible by the group size 4"):
        StyleGAN2Discriminator(make_config(8))(torch.randn(6, 3, 8, 8))
    D = StyleGAN2Discriminator(make_config(8, mbstd_num_channels=0))
    assert D.epilogue.mbstd is None and D(torch.randn(6, 3, 8, 8)).shape == (6,)


def test_conditional_discriminator_projects_mapped_labels():
    torch.manual_seed(4)
    D = StyleGAN2Discriminator(make_config(8, c_dim=10))
    assert D.label_mapping is not None and D.epilogue.out.out_features == D.config.width_at(4)
    x, c = torch.randn(N, 3, 8, 8), labels(10, N)
    assert not torch.equal(D(x, c), D(x, c.roll(1, dims=0)))
    with pytest.raises(ValueError, match=r"StyleGAN2Discriminator is conditional \(c_dim = 10\) but no labels"):
        D(x)
    with pytest.raises(ValueError, match=r"unconditional \(c_dim = 0\) but labels were given"):
        StyleGAN2Discriminator(make_config(8))(x, c)
    with pytest.raises(ValueError, match=r"StyleGAN2Discriminator input: expected shape \[None, 3, 8, 8\]"):
        D(torch.randn(N, 1, 8, 8), c)
    small = StyleGAN2Discriminator(make_config(8, c_dim=10, cmap_dim=7))
    assert small.epilogue.out.out_features == 7


def test_hub_round_trip(tmp_path):
    torch.manual_seed(5)
    cfg = make_config(16, c_dim=10, channel_multiplier=0.5)
    D = StyleGAN2Discriminator(cfg)
    D.save_pretrained(tmp_path / "D")
    loaded = StyleGAN2Discriminator.from_pretrained(tmp_path / "D", strict=True)
    assert loaded.config == cfg
    x, c = torch.randn(N, 3, 16, 16), labels(10, N)
    assert torch.equal(loaded(x, c), D(x, c))
