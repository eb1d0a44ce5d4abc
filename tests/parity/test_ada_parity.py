"""gancore-augment's ADA pipeline gives NVIDIA's AugmentPipe outputs, op by op and all at once.

Fixture (tools/parity/make_fixtures.py): NVIDIA's AugmentPipe in its deterministic mode
(``debug_percentile``), which applies every op and replaces each random number by a function of
the percentile: a uniform number by the percentile itself, a normal one by
``erfinv(2 * percentile - 1)``, except the second arbitrary rotation, whose angle it sets to
zero. The same numbers are handed to gancore's pipeline at p = 1.
"""

import json

import pytest
import torch
from nvidia_format import FIXTURES
from safetensors.torch import load_file

import gancore_augment.ada as ada
from gancore_augment.ada import ada_augment

TENSORS = load_file(str(FIXTURES / "ada-augmentpipe.safetensors"))
CASES = json.loads((FIXTURES / "ada-augmentpipe.json").read_text())["cases"]


class PercentileDraws:
    """Every draw at one percentile, as NVIDIA's ``debug_percentile`` sets its random numbers."""

    def __init__(self, percentile: float):
        self.percentile = torch.tensor(percentile)

    def uniform(self, *shape: int) -> torch.Tensor:
        return self.percentile.expand(shape).clone()

    def normal(self, *shape: int) -> torch.Tensor:
        return torch.erfinv(self.percentile * 2 - 1).expand(shape).clone()


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_ada_matches_nvidias_augment_pipe(case, monkeypatch):
    angle, calls = ada._angle, []

    def angle_with_zero_post_rotation(draws, n, fraction):
        calls.append(fraction)
        value = angle(draws, n, fraction)
        post_rotation = "rotate" in case["ops"] and len(calls) == 2  # pre-rotation, post-rotation, hue
        return torch.zeros_like(value) if post_rotation else value

    monkeypatch.setattr(ada, "_angle", angle_with_zero_post_rotation)
    images = TENSORS[f"in.images.{case['channels']}"]
    ours = ada_augment(images, 1.0, tuple(case["ops"]), PercentileDraws(case["percentile"]))
    torch.testing.assert_close(ours, TENSORS[f"out.{case['name']}"], atol=1e-5, rtol=0)  # float rounding (largest: 4.1e-6)
