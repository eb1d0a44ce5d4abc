"""2-D mixture metrics: modes covered, high-quality share, KL from uniform; and their reporting."""

import json
import math

import pytest
import torch

from gancore.data.mixtures import grid_centers
from gancore.metrics import mixture_metrics
from gancore.testing import make_tiny_config
from gancore.run import Run

CENTERS = grid_centers(5, 2.0)
STD = 0.05


def test_samples_on_every_mode():
    samples = CENTERS.repeat(4, 1) + 0.01
    m = mixture_metrics(samples, CENTERS, STD)
    assert (m.modes_covered, m.modes_hit, m.modes_total, m.high_quality, m.samples) == (25, 25, 25, 1.0, 100)
    assert m.kl_uniform == pytest.approx(0.0, abs=1e-12)


def test_a_stray_sample_hits_a_mode_but_does_not_cover_it():
    # 24 modes with 100 samples each, the last with one: an even split would give each 96.04.
    samples = torch.cat([CENTERS[:24].repeat(100, 1), CENTERS[24:]]) + 0.01
    m = mixture_metrics(samples, CENTERS, STD)
    assert (m.modes_hit, m.modes_covered) == (25, 24)
    # The threshold is 0.2 of the even split: 19.36 samples with 20 on the last mode, 19.352 with 19.
    at = torch.cat([CENTERS[:24].repeat(100, 1), CENTERS[24:].repeat(20, 1)])
    below = torch.cat([CENTERS[:24].repeat(100, 1), CENTERS[24:].repeat(19, 1)])
    assert mixture_metrics(at, CENTERS, STD).modes_covered == 25
    assert mixture_metrics(below, CENTERS, STD).modes_covered == 24


def test_one_mode_and_far_away_samples():
    samples = torch.cat([CENTERS[:1].repeat(10, 1), torch.full((10, 2), 1.0)])  # (1, 1) is between modes
    m = mixture_metrics(samples, CENTERS, STD)
    assert (m.modes_covered, m.high_quality) == (1, 0.5)
    assert m.kl_uniform == pytest.approx(math.log(25))


def test_two_modes_unevenly():
    samples = torch.cat([CENTERS[0:1].repeat(3, 1), CENTERS[7:8].repeat(1, 1)])
    m = mixture_metrics(samples, CENTERS, STD)
    p = torch.tensor([0.75, 0.25], dtype=torch.float64)
    assert m.modes_covered == 2
    assert m.kl_uniform == pytest.approx(float((p * torch.log(p * 25)).sum()))


def test_four_std_threshold_and_non_finite_samples():
    inside = CENTERS[3] + torch.tensor([4 * STD * 0.99, 0.0])
    outside = CENTERS[3] + torch.tensor([4 * STD * 1.01, 0.0])
    nan = torch.tensor([float("nan"), 0.0])
    m = mixture_metrics(torch.stack([inside, outside, nan, nan]), CENTERS, STD)
    assert (m.modes_covered, m.high_quality) == (1, 0.25)
    none = mixture_metrics(torch.full((5, 2), 1.0), CENTERS, STD)
    assert none.modes_covered == 0 and none.high_quality == 0.0 and math.isnan(none.kl_uniform)


def test_metrics_reach_stats_and_the_summary(tmp_path):
    out = tmp_path / "run"
    run = Run.build(make_tiny_config("mlp", steps=4, log_every=2, eval_every=2, eval_samples=500), out_dir=out)
    run.train()
    lines = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    assert all("Metrics/modes_covered" in line for line in lines)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["step"] == 4 and summary["metrics"] == run.metrics
    assert set(run.metrics) == {"Metrics/modes_covered", "Metrics/modes_hit", "Metrics/high_quality", "Metrics/kl_uniform"}
    # The same G_ema samples measured directly give the same numbers.
    samples = run.sample(500, seed=run.config.train.seed + 0xE7A1)
    direct = mixture_metrics(samples, run.dataset.centers, run.dataset.std)
    assert run.metrics["Metrics/high_quality"] == direct.high_quality


def test_image_data_sets_have_no_mixture_metrics():
    run = Run.build(make_tiny_config("dcgan", steps=1)).train()
    assert run.metrics == {}


def test_evaluation_draws_no_samples_without_metrics(monkeypatch):
    run = Run.build(make_tiny_config("dcgan", steps=1))

    def refuse(*args, **kwargs):
        raise AssertionError("sampled G_ema for a data set that measures nothing")

    monkeypatch.setattr(run, "sample", refuse)
    assert run.evaluate() == {}
