"""LPIPS from a local safetensors file: its distance, strict loading, the converter, a run that uses it."""

import pytest
import torch
from safetensors.torch import save_file

from gancore.checkpoint import CheckpointError
from gancore.testing import make_tiny_config
from gancore.run import Run
from gancore_glead.lpips import LPIPS, convert, load_lpips, main


@pytest.fixture
def weights(tmp_path):
    torch.manual_seed(0)
    net = LPIPS()
    with torch.no_grad():
        for lin in net.lins:  # LPIPS's linear heads are non-negative
            lin.weight.abs_()
    path = tmp_path / "lpips_alex.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path


def test_distance_properties(weights):
    net = load_lpips(weights)
    a, b = torch.rand(3, 3, 32, 32) * 2 - 1, torch.rand(3, 3, 32, 32) * 2 - 1
    d = net(a, b)
    assert d.shape == (3,) and (d > 0).all()
    assert torch.allclose(net(a, a), torch.zeros(3), atol=1e-6)
    assert torch.allclose(d, net(b, a))
    # Grayscale images are compared as RGB; the network is frozen but passes gradients to its inputs.
    gray = torch.rand(2, 1, 16, 16, requires_grad=True)
    net(gray, torch.zeros(2, 1, 16, 16)).sum().backward()
    assert gray.grad.abs().sum() > 0 and all(p.grad is None and not p.requires_grad for p in net.parameters())


def test_taps_follow_alexnet(weights):
    net = load_lpips(weights)
    x = net._prepare(torch.zeros(1, 3, 64, 64))
    assert [t.shape[1] for t in net._taps(x)] == [64, 192, 384, 256, 256]


def test_strict_loading_names_the_file(tmp_path, weights):
    tensors = load_lpips(weights).state_dict()
    del tensors["lins.0.weight"]
    bad = tmp_path / "bad.safetensors"
    save_file(dict(tensors), str(bad))
    with pytest.raises(CheckpointError, match=r"bad.safetensors: not an LPIPS AlexNet file \(missing \['lins.0.weight'\]"):
        load_lpips(bad)
    with pytest.raises(CheckpointError, match="nowhere.safetensors: file not found"):
        load_lpips(tmp_path / "nowhere.safetensors")


def test_converter_maps_the_reference_files(tmp_path):
    reference = LPIPS()
    alexnet = {f"features.{i}.{kind}": getattr(reference.features[i], kind).detach().clone()
               for i in (0, 3, 6, 8, 10) for kind in ("weight", "bias")}
    alexnet["classifier.1.weight"] = torch.zeros(2, 2)  # the classifier is ignored
    lin = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate((64, 192, 384, 256, 256))}
    torch.save(alexnet, tmp_path / "alexnet.pth")
    torch.save(lin, tmp_path / "alex.pth")
    out = tmp_path / "out" / "lpips.safetensors"
    assert main(["--alexnet", str(tmp_path / "alexnet.pth"), "--lin", str(tmp_path / "alex.pth"), "--out", str(out)]) == 0
    net = load_lpips(out)
    assert torch.equal(net.features[3].weight, alexnet["features.3.weight"])
    assert torch.equal(net.lins[4].weight, lin["lin4.model.1.weight"])


def test_converter_refuses_other_files(tmp_path, capsys):
    torch.save({"x": torch.zeros(1)}, tmp_path / "other.pth")
    assert main(["--alexnet", str(tmp_path / "other.pth"), "--lin", str(tmp_path / "other.pth"),
                 "--out", str(tmp_path / "o.safetensors")]) == 2
    assert "no tensor 'features.0.weight'" in capsys.readouterr().err
    assert not (tmp_path / "o.safetensors").exists()
    with pytest.raises(KeyError):
        convert(tmp_path / "other.pth", tmp_path / "other.pth", tmp_path / "o.safetensors")


def test_a_run_with_lpips(weights):
    run = Run.build(make_tiny_config("dcgan", [{"name": "glead", "distance": "lpips", "lpips_weights": str(weights)}],
                                     steps=1)).train()
    assert run.last_stats["Loss/D/glead_real"] > 0
    assert all(not k.startswith("attachments.glead.lpips") for k in run.D.state_dict())


def test_lpips_is_the_default_and_offline_its_absence_names_the_file_the_urls_and_the_command(tmp_path, monkeypatch):
    from gancore.config import ConfigError
    from gancore_glead.config import GLeaDConfig
    from gancore_glead.lpips import default_weights_path

    monkeypatch.setenv("GANCORE_CACHE", str(tmp_path / "cache"))
    assert GLeaDConfig().distance == "lpips" and GLeaDConfig().real_in_dreg
    expected = tmp_path / "cache" / "lpips" / "alex-v0.1.safetensors"
    assert default_weights_path() == expected
    with pytest.raises(ConfigError) as caught:
        Run.build(make_tiny_config("dcgan", ["glead"]))
    message = str(caught.value)  # offline (the suite's default): one message, with URLs and the command
    assert str(expected) in message and "gancore-glead-convert-lpips --alexnet alexnet-owt-7be5be79.pth" in message
    assert "lpips/weights/v0.1/alex.pth" in message and "distance = 'mse'" in message
    assert "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth" in message and "downloads are off" in message
    # Rebuilt only to sample or describe, the run needs no LPIPS file.
    assert Run.build(make_tiny_config("dcgan", ["glead"]), for_training=False, data_info=None) is not None


def test_the_converter_writes_where_the_default_looks(tmp_path, monkeypatch, weights):
    monkeypatch.setenv("GANCORE_CACHE", str(tmp_path / "cache"))
    net = load_lpips(weights)
    alexnet = {f"features.{i}.{kind}": getattr(net.features[i], kind).detach().clone()
               for i in (0, 3, 6, 8, 10) for kind in ("weight", "bias")}
    lin = {f"lin{i}.model.1.weight": net.lins[i].weight.detach().clone() for i in range(5)}
    torch.save(alexnet, tmp_path / "alexnet.pth")
    torch.save(lin, tmp_path / "alex.pth")
    assert main(["--alexnet", str(tmp_path / "alexnet.pth"), "--lin", str(tmp_path / "alex.pth")]) == 0
    run = Run.build(make_tiny_config("dcgan", ["glead"], steps=1, d_reg_interval=1))
    a, b = torch.rand(2, 1, 8, 8) * 2 - 1, torch.rand(2, 1, 8, 8) * 2 - 1
    assert torch.allclose(run.plugins["glead"].distance(a, b), net(a, b))
    run.train()
    assert run.last_stats["Loss/Dreg/glead_real"] > 0  # the official real term in the lazy R1 phase, by default


def _served_lpips(http_files, monkeypatch):
    """Stand-in AlexNet and v0.1 head files in the reference formats, served with their checksums."""
    import hashlib

    from gancore_glead import lpips as lpips_module

    torch.manual_seed(1)
    net = LPIPS()
    with torch.no_grad():
        for lin in net.lins:  # LPIPS's linear heads are non-negative
            lin.weight.abs_()
    alexnet = {k: v for k, v in net.state_dict().items() if k.startswith("features.")}
    heads = {f"lin{i}.model.1.weight": lin.weight.clone() for i, lin in enumerate(net.lins)}
    torch.save(alexnet, http_files.folder / "alexnet.tmp")
    digest = hashlib.sha256((http_files.folder / "alexnet.tmp").read_bytes()).hexdigest()
    alexnet_name = f"alexnet-owt-{digest[:8]}.pth"  # the name carries its hash prefix, as torchvision's does
    (http_files.folder / "alexnet.tmp").rename(http_files.folder / alexnet_name)
    torch.save(heads, http_files.folder / "alex.pth")
    monkeypatch.setattr(lpips_module, "ALEXNET_URL", http_files.url(alexnet_name))
    monkeypatch.setattr(lpips_module, "LIN_URL", http_files.url("alex.pth"))
    monkeypatch.setattr(lpips_module, "LIN_SHA256", hashlib.sha256((http_files.folder / "alex.pth").read_bytes()).hexdigest())
    return net


def test_glead_at_its_defaults_fetches_and_converts_lpips_on_first_use(http_files, monkeypatch):
    from gancore_glead.lpips import default_weights_path

    reference = _served_lpips(http_files, monkeypatch)
    run = Run.build(make_tiny_config("dcgan", ["glead"], steps=1))  # distance = "lpips", no lpips_weights
    run.train()
    assert default_weights_path().is_file() and len(http_files.requests) == 2
    fetched = load_lpips(default_weights_path())
    a, b = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(fetched(a, b), reference(a, b))
    Run.build(make_tiny_config("dcgan", ["glead"], steps=1))
    assert len(http_files.requests) == 2  # the converted file is there: nothing fetched again


def test_a_tampered_lpips_download_is_refused(http_files, monkeypatch):
    from gancore.config import ConfigError
    from gancore_glead import lpips as lpips_module

    _served_lpips(http_files, monkeypatch)
    monkeypatch.setattr(lpips_module, "LIN_SHA256", "0" * 64)
    with pytest.raises(ConfigError, match=r"alex\.pth: sha256 .* does not match"):
        Run.build(make_tiny_config("dcgan", ["glead"]))
    assert not lpips_module.default_weights_path().exists()
