"""EqGAN-SA heatmaps: the drawn parameters and values match the specification; the CLI writes them."""

import math

import pytest
import torch
from safetensors.torch import load_file

from gancore_eqgan_sa.config import EqGANSAConfig
from gancore_eqgan_sa.heatmaps import gaussian_maps, level, main, sample_heatmaps

N, R = 4000, 16


@pytest.fixture(scope="module")
def sample():
    return sample_heatmaps(N, R, EqGANSAConfig(), torch.Generator().manual_seed(0))


def test_shapes_and_levels(sample):
    assert sample.heatmap.shape == (N, 7, R, R)
    assert [level(sample.heatmap, i).shape[1] for i in (1, 2, 3)] == [1, 2, 4]


def test_level1_centres_and_sigma(sample):
    center = sample.centers[0]
    assert center.abs().max() <= 0.75
    # N(0, 0.33²) clamped at ±0.75 (2.3 std): the std barely shrinks.
    assert center.mean().abs() < 0.02 and 0.31 < center.std() < 0.335
    assert (center.abs() == 0.75).float().mean() < 0.04
    sigma = sample.sigmas[0]
    assert torch.all(sigma == sigma[0]) and 0.5 <= float(sigma[0]) < 1.0  # one σ per batch
    sigmas = [float(sample_heatmaps(2, R, generator=torch.Generator().manual_seed(s)).sigmas[0][0]) for s in range(200)]
    assert 0.5 <= min(sigmas) < 0.52 and 0.98 < max(sigmas) < 1.0


@pytest.mark.parametrize("index, offset, shift, div, count", [(1, 0.4, 0.1, 1.4, 2), (2, 0.8, 0.1, 2.0, 4)])
def test_level2_and_level3_centres_and_sigmas(sample, index, offset, shift, div, count):
    centers, sigmas = sample.centers[index], sample.sigmas[index]
    assert centers.shape == (N, count, 2) and sigmas.shape == (N, count)
    offsets = centers - sample.centers[0][:, None]
    assert offsets.abs().max() <= offset and offsets.abs().max() > 0.98 * offset
    assert abs(float(offsets.mean())) < 0.02 and abs(float(offsets.std()) - offset / math.sqrt(3)) < 0.01  # uniform
    assert shift / div <= sigmas.min() and sigmas.max() < (1 + shift) / div
    assert abs(float(sigmas.mean()) - (0.5 + shift) / div) < 0.01
    assert sigmas[:, 0].std() > 0.1 / div  # drawn per sample


def test_values_follow_the_formula(sample):
    h = sample.heatmap
    assert h.min() >= 0.01 and h.max() <= 1.01 + 1e-6
    coords = torch.linspace(-1, 1, R)
    i, j = 3, 11
    c, s = sample.centers[2][5, 1], sample.sigmas[2][5, 1]
    expected = math.exp(-((coords[i] - c[0]) ** 2 + (coords[j] - c[1]) ** 2) / s) + 0.01  # (y, x)
    assert math.isclose(float(level(h, 3)[5, 1, i, j]), float(expected), rel_tol=1e-5)
    # A centre on a grid point gives 1 + eps there.
    one = gaussian_maps(torch.tensor([[[coords[2], coords[7]]]]), torch.tensor([[0.7]]), R, 0.01)
    assert math.isclose(float(one[0, 0, 2, 7]), 1.01, rel_tol=1e-6) and one[0, 0].argmax() == 2 * R + 7


def test_same_generator_same_heatmaps():
    a = sample_heatmaps(3, 8, generator=torch.Generator().manual_seed(5)).heatmap
    b = sample_heatmaps(3, 8, generator=torch.Generator().manual_seed(5)).heatmap
    assert torch.equal(a, b)


def test_cli_writes_heatmaps_with_a_chosen_centre(tmp_path):
    out = tmp_path / "hm.safetensors"
    assert main(["--n", "3", "--resolution", "16", "--center=-0.5,0.5", "--out", str(out)]) == 0
    heatmap = load_file(str(out))["heatmap"]
    assert heatmap.shape == (3, 7, 16, 16)
    peak = level(heatmap, 1)[:, 0].flatten(1).argmax(1)
    coords = torch.linspace(-1, 1, 16)
    assert torch.all((coords[peak // 16] - (-0.5)).abs() <= 1 / 15) and torch.all((coords[peak % 16] - 0.5).abs() <= 1 / 15)
