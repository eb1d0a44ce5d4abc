"""The augmentation ops: identity at p = 0, what each op does, constants kept, gradients, determinism."""

import pytest
import torch

from gancore_augment import GeneratorDraws, ada_augment, diffaugment
from gancore_augment.ada import COLOR_OPS, GEOMETRIC_OPS, PRESETS
from gancore_augment.diffaugment import random_brightness, random_contrast, random_cutout, random_translation


def _draws(seed: int = 0) -> GeneratorDraws:
    return GeneratorDraws(torch.Generator().manual_seed(seed))


class Fixed:
    """Draws that always return the same uniform value (and its normal counterpart)."""

    def __init__(self, q: float):
        self.q = q

    def uniform(self, *shape: int) -> torch.Tensor:
        return torch.full(shape, self.q)

    def normal(self, *shape: int) -> torch.Tensor:
        return torch.full(shape, float(torch.erfinv(torch.tensor(self.q * 2 - 1))))


def _images(n=4, channels=3, size=16, seed=0):
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_ada_is_the_identity_at_p_zero():
    x = _images()
    assert ada_augment(x, 0.0, PRESETS["bgc"], _draws()) is x


@pytest.mark.parametrize("op", GEOMETRIC_OPS + COLOR_OPS)
def test_every_op_changes_the_images_at_p_one(op):
    x = _images(n=8)
    assert not torch.allclose(ada_augment(x, 1.0, (op,), _draws()), x, atol=1e-3)


@pytest.mark.parametrize("op", GEOMETRIC_OPS)
def test_geometric_ops_keep_a_constant_image_constant_away_from_the_borders(op):
    x = torch.full((8, 3, 32, 32), 0.3)
    y = ada_augment(x, 1.0, (op,), _draws(1))
    assert torch.allclose(y[:, :, 8:24, 8:24], x[:, :, 8:24, 8:24], atol=1e-4)


def test_xflip_and_rotate90_move_pixels_where_they_belong():
    x = torch.zeros(1, 1, 16, 16)
    x[0, 0, 5, 3] = 1.0
    flipped = ada_augment(x, 1.0, ("xflip",), Fixed(0.75))  # chosen, i = floor(1.5) = 1
    assert divmod(int(flipped.abs().argmax()), 16) == (5, 12)
    turned = ada_augment(x, 1.0, ("rotate90",), Fixed(0.6))  # i = floor(2.4) = 2: half a turn
    assert divmod(int(turned.abs().argmax()), 16) == (10, 12)


def test_colour_ops_on_known_values():
    x = _images(n=2)
    brighter = ada_augment(x, 1.0, ("brightness",), Fixed(0.7))
    offset = float(torch.erfinv(torch.tensor(0.4)) * 0.2)
    assert torch.allclose(brighter - x, torch.full_like(x, offset), atol=1e-6)
    flipped = ada_augment(x, 1.0, ("lumaflip",), Fixed(0.75))  # reflected through the plane across grey
    grey = x.mean(dim=1, keepdim=True)
    assert torch.allclose(flipped, x - 2 * grey, atol=1e-5)


def test_grayscale_images_skip_hue_and_saturation_only():
    x = _images(channels=1)
    assert torch.equal(ada_augment(x, 1.0, ("hue", "saturation"), _draws()), x)
    assert torch.allclose(ada_augment(x, 1.0, ("lumaflip",), Fixed(0.75)), -x, atol=1e-6)  # grey flips about 0


def test_ada_gradients_flow_to_the_input_twice():
    """R1 differentiates D's score through the augmentation: first and second derivatives are exact."""
    def augment(x):
        return ada_augment(x, 1.0, PRESETS["bgc"], _draws(3))

    x = torch.rand(1, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(augment, (x,), eps=1e-6, atol=1e-5)
    assert torch.autograd.gradgradcheck(augment, (x,), eps=1e-6, atol=1e-5)


def test_seeded_draws_are_deterministic():
    x = _images()
    a = ada_augment(x, 0.8, PRESETS["bgc"], _draws(5))
    assert torch.equal(a, ada_augment(x, 0.8, PRESETS["bgc"], _draws(5)))
    assert not torch.equal(a, ada_augment(x, 0.8, PRESETS["bgc"], _draws(6)))
    d = diffaugment(x, ("color", "translation", "cutout"), _draws(5))
    assert torch.equal(d, diffaugment(x, ("color", "translation", "cutout"), _draws(5)))


def test_p_is_the_probability_per_sample():
    x = torch.zeros(4000, 1, 4, 4)
    y = ada_augment(x, 0.3, ("brightness",), _draws())
    changed = (y.flatten(1).abs().amax(dim=1) > 0).float().mean()
    assert abs(float(changed) - 0.3) < 0.03


def test_diffaugment_ops_use_the_papers_constants():
    x = _images(n=64, channels=3, size=16)
    offsets = (random_brightness(x, _draws()) - x)[:, 0, 0, 0]
    assert bool((offsets >= -0.5).all() and (offsets < 0.5).all()) and float(offsets.std()) > 0.2
    contrasted = random_contrast(x, _draws())
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    factor = ((contrasted - mean) / (x - mean))[:, 0, 0, 0]
    assert bool((factor >= 0.5 - 1e-4).all() and (factor < 1.5 + 1e-4).all())


def test_diffaugment_translation_shifts_by_whole_pixels_up_to_an_eighth():
    x = torch.zeros(200, 1, 16, 16)
    x[:, 0, 8, 8] = 1.0
    y = random_translation(x, _draws())
    assert torch.equal(y.flatten(1).sum(1), torch.ones(200))  # one pixel moved, nothing blended
    where = y.flatten(1).argmax(1)
    rows, cols = where // 16, where % 16
    assert int((rows - 8).abs().max()) == 2 and int((cols - 8).abs().max()) == 2  # round(16 / 8)


def test_diffaugment_cutout_blanks_half_the_size():
    x = torch.ones(200, 1, 16, 16)
    y = random_cutout(x, _draws())
    zeros = (y == 0).flatten(1).sum(1)
    assert int(zeros.max()) == 64 and int(zeros.min()) >= 16  # an 8x8 square, clipped at the borders


def test_diffaugment_skips_saturation_on_one_channel():
    x = _images(channels=1)
    assert torch.equal(diffaugment(x, ("color",), _draws(2)),
                       random_contrast(random_brightness(x, _draws(2)), _draws_after_two(2)))


def _draws_after_two(seed):
    """The draws left after brightness and (skipped) saturation: only brightness consumed one."""
    draws = _draws(seed)
    draws.uniform(4, 1, 1, 1)
    return draws


def test_unknown_ops_and_shapes_are_errors():
    with pytest.raises(ValueError, match="unknown ADA ops \\['blur'\\]"):
        ada_augment(_images(), 1.0, ("blur",), _draws())
    with pytest.raises(ValueError, match="ADA augments images \\[N, 1 or 3, H, W\\], got \\[4, 2\\]"):
        ada_augment(torch.zeros(4, 2), 1.0, ("xflip",), _draws())
    with pytest.raises(ValueError, match="unknown DiffAugment policy \\['blur'\\]"):
        diffaugment(_images(), ("blur",), _draws())
