"""The Fashion-MNIST feature extractor: shapes, the shipped weights, determinism, the training recipe."""

import hashlib
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from gancore.checkpoint import CheckpointError
from gancore.data import fmnist as fmnist_module
from gancore.metrics import fmnist_cnn
from gancore.metrics.fmnist_cnn import FashionCNN, evaluate_accuracy, load_fmnist_cnn, train_fmnist_cnn
from gancore.testing import write_fake_fmnist

needs_fmnist = pytest.mark.skipif(
    not any(
        Path(fmnist_module.DEFAULT_PATH, f"t10k-labels-idx1-ubyte{suffix}").exists() for suffix in ("", ".gz")
    ),
    reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)",
)


@pytest.fixture(scope="module")
def shipped() -> FashionCNN:
    return load_fmnist_cnn()


def _images(n: int, size: int, channels: int = 1, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, channels, size, size, generator=g) * 2 - 1


@pytest.mark.parametrize("size", [28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes(size: int, channels: int):
    torch.manual_seed(0)
    model = FashionCNN().eval()
    x = _images(5, size, channels)
    with torch.no_grad():
        f, logits = model.features(x), model(x)
    assert f.shape == (5, model.num_features) and logits.shape == (5, 10)
    assert float(f.min()) >= 0  # after the ReLU
    if channels == 3:
        with torch.no_grad():
            gray = model.features(x.mean(dim=1, keepdim=True))
        torch.testing.assert_close(f, gray)


def test_bad_input_shape():
    model = FashionCNN()
    for bad in (torch.zeros(2, 2, 32, 32), torch.zeros(2, 32, 32)):
        with pytest.raises(ValueError, match="expected images"):
            model(bad)


def test_shipped_weights_and_sidecar(shipped: FashionCNN):
    path = fmnist_cnn.WEIGHTS_PATH
    assert path.stat().st_size < 2_000_000
    assert not shipped.training
    assert not any(p.requires_grad for p in shipped.parameters())
    info = json.loads(path.with_suffix(".json").read_text())
    assert info["format"] == fmnist_cnn.FORMAT
    assert info["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert info["architecture"]["num_features"] == shipped.num_features
    assert info["architecture"]["parameters"] == sum(p.numel() for p in shipped.parameters())
    assert info["test_accuracy"] >= 0.9 and info["test_samples"] == 10000


@needs_fmnist
def test_shipped_weights_accuracy(shipped: FashionCNN):
    assert evaluate_accuracy(shipped, "test", num_samples=1000) >= 0.9
    assert evaluate_accuracy(shipped, "test", num_samples=1000, fit="resize") >= 0.9


def test_features_deterministic(shipped: FashionCNN):
    x = _images(16, 28, seed=3)
    a, b = shipped.features(x), shipped.features(x.clone())
    assert torch.equal(a, b)
    torch.testing.assert_close(shipped.features(x[:4]), a[:4], atol=1e-5, rtol=1e-5)


@pytest.fixture
def tiny_fmnist(tmp_path: Path) -> Path:
    """A fake Fashion-MNIST: 48 train and 20 test images, brightness by class."""
    return write_fake_fmnist(tmp_path / "fmnist")


def test_tiny_training_run(tiny_fmnist: Path, tmp_path: Path):
    kwargs = dict(data_path=tiny_fmnist, epochs=1, batch=16, num_samples=32, progress=False)
    out = tmp_path / "out" / "cnn.safetensors"
    info = train_fmnist_cnn(out, **kwargs)
    assert json.loads(out.with_suffix(".json").read_text()) == info
    assert info["recipe"]["train_samples"] == 32 and info["test_samples"] == 20  # the whole (tiny) split
    assert 0 <= info["test_accuracy"] <= 1 and 0 <= info["test_accuracy_resize"] <= 1
    assert info["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert sorted(p.name for p in out.parent.iterdir()) == ["cnn.json", "cnn.safetensors"]  # no temp files left
    model = load_fmnist_cnn(out)
    assert model.num_features == info["architecture"]["num_features"]
    assert evaluate_accuracy(model, data_path=tiny_fmnist) == info["test_accuracy"]
    # The recipe is deterministic: the same seed gives the same tensors (the file's bytes may differ,
    # safetensors writes its metadata in no fixed order).
    again = tmp_path / "again.safetensors"
    train_fmnist_cnn(again, **kwargs)
    first, second = load_file(str(out)), load_file(str(again))
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_missing_weights_error(tmp_path: Path):
    missing = tmp_path / "nowhere" / "fmnist_cnn.safetensors"
    with pytest.raises(FileNotFoundError) as info:
        load_fmnist_cnn(missing)
    assert str(missing) in str(info.value) and "gancore train-extractor fmnist" in str(info.value)


def test_foreign_or_mismatching_weights(tmp_path: Path):
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(3)}, str(foreign))
    with pytest.raises(ValueError, match="not gancore-fmnist-cnn weights"):
        load_fmnist_cnn(foreign)
    model = FashionCNN()
    tensors = {k: v.clone() for k, v in model.state_dict().items() if k != "head.bias"}
    meta = {"format": fmnist_cnn.FORMAT, "channels": "16,32,64", "num_features": "128"}
    partial = tmp_path / "partial.safetensors"
    save_file(tensors, str(partial), metadata=meta)
    with pytest.raises(CheckpointError, match="head.bias"):
        load_fmnist_cnn(partial)


def test_cli_train_extractor(tiny_fmnist: Path, tmp_path: Path, capsys):
    from gancore.cli import main

    out = tmp_path / "cli" / "fmnist_cnn.safetensors"
    assert main(["train-extractor", "fmnist", "--out", str(out), "--data-path", str(tiny_fmnist), "--epochs", "1"]) == 0
    assert "test accuracy" in capsys.readouterr().out
    assert load_fmnist_cnn(out).num_features == FashionCNN().num_features
    assert main(["train-extractor", "fmnist", "--out", str(out), "--epochs", "0"]) == 2
