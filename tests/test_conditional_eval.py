"""Class-conditional evaluation: one grid row per class, sampling chosen classes, classifier accuracy and intra-FID."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from gancore.api import load_config
from gancore.cli import main
from gancore.config import ConfigError
from gancore.metrics.conditional import class_accuracy, class_labels, intra_fid
from gancore.run import Run
from gancore.samples import image_grid
from gancore.testing import make_tiny_config, write_fake_fmnist


def test_class_labels_go_class_by_class():
    labels = class_labels(4, 2, [3, 1])
    assert labels.argmax(1).tolist() == [3, 3, 1, 1] and labels.shape == (4, 4)
    assert class_labels(3, 2).argmax(1).tolist() == [0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match=r"classes \[5\] out of range: the model has 4 classes"):
        class_labels(4, 1, [5])


class BrightnessClassifier(torch.nn.Module):
    """Calls an image class k when its mean brightness is nearest k / 10 (images in [-1, 1] map to [0, 1])."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.arange(10.0) / 10, requires_grad=False)

    def forward(self, x):
        level = (x.mean(dim=(1, 2, 3)) + 1) / 2
        return -(level[:, None] - self.anchor[None]).abs()


def _images_of(classes: torch.Tensor, size: int = 8) -> torch.Tensor:
    return (classes.float() / 10 * 2 - 1).view(-1, 1, 1, 1).expand(-1, 1, size, size).clone()


def test_class_accuracy_per_class():
    classifier = BrightnessClassifier()
    faithful = lambda labels, seed: _images_of(labels.argmax(1))  # noqa: E731
    assert class_accuracy(faithful, classifier, 10, 3) == (1.0, [1.0] * 10)
    always_zero = lambda labels, seed: _images_of(torch.zeros(len(labels), dtype=torch.long))  # noqa: E731
    mean, each = class_accuracy(always_zero, classifier, 10, 3)
    assert each == [1.0] + [0.0] * 9 and mean == pytest.approx(0.1)


class Reference:
    """A labelled data set: ``per_class`` noisy images of each of ``c_dim`` classes, interleaved."""

    def __init__(self, c_dim=3, per_class=40):
        g = torch.Generator().manual_seed(0)
        self.classes = torch.arange(c_dim).repeat(per_class)
        self.images = _images_of(self.classes) + 0.1 * torch.randn(len(self.classes), 1, 8, 8, generator=g)
        self.c_dim = c_dim

    def __len__(self):
        return len(self.classes)

    def get(self, indices):
        return self.images[indices], F.one_hot(self.classes[indices], self.c_dim).float()


def test_intra_fid_is_fid_within_each_class():
    reference = Reference()
    extractor = torch.nn.Flatten()  # the pixels are the features
    # A generator that returns the reference's own images of each class has an intra-FID of 0.
    by_class = {k: reference.images[reference.classes == k] for k in range(3)}
    exact = lambda labels, seed: torch.cat([by_class[k][: (labels.argmax(1) == k).sum()] for k in range(3)])  # noqa: E731
    mean, each = intra_fid(exact, extractor, reference, 3, 40)
    assert mean == pytest.approx(0.0, abs=1e-6) and len(each) == 3
    # Swapping two classes' images leaves the overall FID alone but not the intra-class one.
    swapped = lambda labels, seed: torch.cat([by_class[[1, 0, 2][k]][:40] for k in range(3)])  # noqa: E731
    mean, each = intra_fid(swapped, extractor, reference, 3, 40)
    assert each[0] > 1 and each[1] > 1 and each[2] == pytest.approx(0.0, abs=1e-6)


@pytest.fixture
def conditional_run(tmp_path):
    data = write_fake_fmnist(tmp_path / "fmnist", train=60, test=30)
    raw = make_tiny_config("dcgan", steps=2, checkpoint_every=2, grid=20, eval_samples=40,
                           metrics=["class_accuracy", "intra_fid"], metrics_split="test")
    raw["data"] = {"name": "fmnist", "path": str(data), "resolution": 32, "labels": True}
    return Run.build(raw, out_dir=tmp_path / "run").train(), tmp_path / "run"


def test_training_measures_per_class_and_draws_a_row_per_class(conditional_run):
    run, out = conditional_run
    lines = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    last = [line for line in lines if "Metrics/intra_fid" in line][-1]
    assert 0 <= last["Metrics/class_accuracy"] <= 1 and last["Metrics/intra_fid"] > 0
    protocol = run.metrics_protocol
    assert len(protocol["class_accuracy"]["per_class"]) == 10 and protocol["intra_fid"]["samples_per_class"] == 4
    assert last["Metrics/class_accuracy"] == pytest.approx(np.mean(protocol["class_accuracy"]["per_class"]), abs=1e-6)
    grid = Image.open(sorted((out / "samples").glob("*.png"))[-1])
    assert grid.size == (2 * 32, 10 * 32)  # 20 samples: two of each class, one row per class


def test_conditional_metrics_need_labels_and_a_classifier():
    with pytest.raises(ConfigError, match="set data.labels = true"):
        load_config(make_tiny_config("dcgan", metrics=["intra_fid"]))
    raw = make_tiny_config("dcgan", metrics=["class_accuracy"])
    raw["data"]["labels"] = True
    with pytest.raises(ConfigError, match="none ships for 'synthetic-images'"):
        load_config(raw)


def test_sample_cli_draws_chosen_classes(conditional_run, tmp_path, capsys):
    run, out = conditional_run
    assert main(["sample", str(out), "--class", "3,7", "--n", "4", "--out", str(tmp_path / "g.png")]) == 0
    assert "8 samples of step 2 (2 classes, one per row)" in capsys.readouterr().out
    labels = F.one_hot(torch.tensor([3] * 4 + [7] * 4), 10).float()
    expected = np.asarray(image_grid(run.sample(8, seed=0, c=labels), columns=4))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "g.png")), expected)
    assert main(["sample", str(out), "--class", "10", "--out", str(tmp_path / "x.png")]) == 2
    assert "out of range: the model has 10 classes" in capsys.readouterr().err


def test_sample_cli_refuses_classes_of_an_unconditional_model(tmp_path, capsys):
    Run.build(make_tiny_config("dcgan", steps=1, checkpoint_every=1), out_dir=tmp_path / "run").train()
    assert main(["sample", str(tmp_path / "run"), "--class", "1", "--out", str(tmp_path / "g.png")]) == 2
    assert "is unconditional" in capsys.readouterr().err


def test_eval_cli_conditional_metrics(conditional_run, tmp_path, capsys, monkeypatch):
    _, out = conditional_run
    monkeypatch.setenv("GANCORE_CACHE", str(tmp_path / "cache"))
    assert main(["eval", str(out), "--metrics", "class_accuracy,intra_fid", "--n", "20", "--split", "test",
                 "--json", str(tmp_path / "e.json")]) == 0
    printed = capsys.readouterr().out
    assert "class_accuracy per class (2 samples each): 0:" in printed and "| intra_fid |" in printed
    result = json.loads((tmp_path / "e.json").read_text())
    assert set(result["metrics"]) == {"Metrics/class_accuracy", "Metrics/intra_fid"}
    assert len(result["protocol"]["intra_fid"]["per_class"]) == 10


def test_a_declared_class_count_describes_a_run_without_its_data_and_is_checked(tmp_path, capsys):
    from gancore.data import DataError, build_dataset, declared_info

    raw = {"backbone": {"name": "dcgan"}, "data": {"name": "folder", "path": "nowhere", "resolution": 16,
                                                  "channels": 3, "labels": True, "num_classes": 7}}
    info = declared_info(load_config(raw).data)
    assert info.c_dim == 7 and info.shape == (3, 16, 16)
    (tmp_path / "run.toml").write_text(
        '[backbone]\nname = "dcgan"\n[data]\nname = "folder"\npath = "nowhere"\nresolution = 16\nchannels = 3\n'
        'labels = true\nnum_classes = 7\n')
    assert main(["info", str(tmp_path / "run.toml"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["params"]["G"] > 0
    data = write_fake_fmnist(tmp_path / "fmnist")
    with pytest.raises(DataError, match="data.num_classes: 7 declared, but .* has 10 classes"):
        build_dataset(load_config({"backbone": {"name": "dcgan"}, "data": {
            "name": "fmnist", "path": str(data), "labels": True, "num_classes": 7}}).data)


def test_grids_of_many_classes_show_a_square_of_them():
    from gancore.metrics.conditional import grid_classes

    assert grid_classes(10, 64) == (list(range(10)), 6)
    classes, per_class = grid_classes(1000, 64)
    assert classes == [0, 125, 250, 375, 500, 625, 750, 875] and per_class == 8


def test_sample_cli_names_an_empty_class_list(conditional_run, tmp_path, capsys):
    _, out = conditional_run
    assert main(["sample", str(out), "--class", ",", "--out", str(tmp_path / "g.png")]) == 2
    assert "give one or more class numbers" in capsys.readouterr().err
