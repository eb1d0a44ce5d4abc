"""Metrics against a held-out split (``train.metrics_split``) and D's memorisation of its training images."""

import json

import pytest
import torch
from torch import nn

from gancore.api import load_config
from gancore.cli import main
from gancore.config import ConfigError, DataConfig
from gancore.data import build_dataset
from gancore.metrics.memorisation import memorisation
from gancore.run import Run
from gancore.testing import make_tiny_config, write_fake_fmnist


class LookupD(nn.Module):
    """Scores 5 for an image it has stored, -1 for any other (a D that learnt its training set by heart)."""

    def __init__(self, known: torch.Tensor):
        super().__init__()
        self.register_buffer("known", known.flatten(1))

    def forward(self, x: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        seen = torch.cdist(x.flatten(1), self.known).min(dim=1).values < 1e-6
        return torch.where(seen, 5.0, -1.0)


@pytest.fixture
def fmnist(tmp_path):
    return write_fake_fmnist(tmp_path / "fmnist", train=48, test=20)


def _raw(fmnist, **train):
    raw = make_tiny_config("dcgan", **train)
    raw["data"] = {"name": "fmnist", "path": str(fmnist), "resolution": 32, "max_items": 12}
    return raw


def test_memorisation_is_the_score_gap_in_eval_mode(fmnist):
    trained_on = build_dataset(load_config(_raw(fmnist)).data)
    held_out = build_dataset(DataConfig(name="fmnist", path=str(fmnist), split="test", resolution=32))
    D = LookupD(trained_on.get(torch.arange(12))[0]).train()
    assert memorisation(D, trained_on, held_out, 100, torch.device("cpu"), batch=5) == {"Metrics/memorisation": 6.0}
    assert D.training  # its mode is given back
    # Half of what it is asked to score it saw: the gap halves.
    half = LookupD(trained_on.get(torch.arange(6))[0])
    assert memorisation(half, trained_on, held_out, 12, torch.device("cpu")) == {"Metrics/memorisation": 3.0}
    with pytest.raises(ValueError, match="at least one"):
        memorisation(D, trained_on, held_out, 0, torch.device("cpu"))


def test_memorisation_needs_a_held_out_split(fmnist):
    with pytest.raises(ConfigError, match="train.metrics_split"):
        load_config(_raw(fmnist, metrics=["memorisation"]))
    with pytest.raises(ConfigError, match="other than data.split 'train'"):
        load_config(_raw(fmnist, metrics=["memorisation"], metrics_split="train"))
    assert load_config(_raw(fmnist, metrics=["memorisation"], metrics_split="test")).train.metrics_split == "test"


def test_a_missing_split_stops_the_run_before_it_starts(fmnist, tmp_path):
    (fmnist / "t10k-images-idx3-ubyte").unlink()
    raw = _raw(fmnist, metrics=["fid"], metrics_split="test", eval_every=2)
    with pytest.raises(ConfigError, match="train.metrics_split: .*test"):
        Run.build(raw, out_dir=tmp_path / "run")
    assert not (tmp_path / "run" / "stats.jsonl").exists()


def test_training_measures_against_the_whole_test_split(fmnist, tmp_path):
    raw = _raw(fmnist, steps=4, eval_every=2, eval_samples=16, metrics=["fid", "memorisation"], metrics_split="test")
    run = Run.build(raw, out_dir=tmp_path / "run").train()
    assert len(run.dataset) == 12 and run.reference is not None and len(run.reference[1]) == 20  # max_items not applied
    assert run.reference[0].split == "test" and run.reference[0].max_items is None
    lines = [json.loads(line) for line in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    measured = [line for line in lines if "Metrics/memorisation" in line]
    assert [line["step"] for line in measured] == [2, 4] and all("Metrics/fid" in line for line in measured)
    assert run.metrics_protocol["reference"].startswith("fmnist test split, first 16 items")
    assert "test split" in run.metrics_protocol["memorisation"]
    # The gap is D's own: recomputed from the trained D, it is the logged value.
    expected = memorisation(run.D, run.dataset, run.reference[1], 16, run.device)
    assert run.metrics["Metrics/memorisation"] == pytest.approx(expected["Metrics/memorisation"], abs=1e-5)


def test_eval_cli_measures_against_a_split(fmnist, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GANCORE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    Run.build(_raw(fmnist, steps=2, checkpoint_every=2), out_dir=out).train()
    assert main(["eval", str(out), "--metrics", "memorisation", "--n", "12"]) == 2
    assert "--split" in capsys.readouterr().err
    assert main(["eval", str(out), "--metrics", "fid,memorisation", "--n", "12", "--split", "test",
                 "--json", str(tmp_path / "e.json")]) == 0
    result = json.loads((tmp_path / "e.json").read_text())
    assert set(result["metrics"]) == {"Metrics/fid", "Metrics/memorisation"}
    assert result["protocol"]["reference"].startswith("fmnist test split")
    assert "| memorisation |" in capsys.readouterr().out
