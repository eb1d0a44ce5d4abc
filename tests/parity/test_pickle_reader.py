"""The safe reader of NVIDIA-format pickles: records instead of code, refusals by name."""

import pickle

import numpy as np
import pytest
import torch
from nvidia_format import checkpoint, write_nvidia_pickle

from gancore.cli import main
from gancore.importing import CheckpointImportError, _map, import_checkpoint
from gancore.pickle_reader import (
    PickledModule,
    PickleReadError,
    UnsafePickleError,
    allowed_globals,
    read_network_pickle,
)
from gancore.plugins import PluginManager


def test_persistent_networks_become_records_and_their_source_never_runs(tmp_path):
    flag = tmp_path / "ran"
    pkl = write_nvidia_pickle(tmp_path / "snapshot.pkl", "cifar-cond-tiny", flag)
    data = read_network_pickle(pkl)
    assert not flag.exists()
    assert sorted(data) == ["D", "G", "G_ema"]
    G = data["G_ema"]
    assert isinstance(G, PickledModule) and G.class_name == "Generator"
    assert G.source_classes == ("Generator",) and len(G.source_sha256) == 64
    assert G.init_kwargs["c_dim"] == 10 and type(G.init_kwargs["mapping_kwargs"]) is dict  # EasyDict -> dict
    layer = G.child("synthesis.b32.conv1")
    assert layer.attribute("conv_clamp") == 256 and isinstance(layer.child("affine").attribute("weight_gain"), float)
    tensors = G.tensors()
    assert tensors["synthesis.b4.const"].shape == (32, 4, 4)
    assert isinstance(tensors["mapping.fc0.weight"], torch.nn.Parameter)
    with pytest.raises(KeyError, match="b64"):
        G.child("synthesis.b64")


def test_a_global_outside_the_allow_list_is_refused_by_name_and_not_called(tmp_path):
    flag = tmp_path / "ran"
    payload = b"cos\nsystem\n(S'touch " + str(flag).encode() + b"'\ntR."
    with pytest.raises(UnsafePickleError, match=r"os\.system"):
        read_network_pickle(payload)
    assert not flag.exists()
    with pytest.raises(UnsafePickleError, match=r"torch\.nn\.modules\.linear\.Linear"):
        read_network_pickle(pickle.dumps({"G": torch.nn.Linear(2, 2)}))
    with pytest.raises(UnsafePickleError, match=r"builtins\.eval"):
        read_network_pickle(b"cbuiltins\neval\n(S'1+1'\ntR.")
    assert "torch_utils.persistence._reconstruct_persistent_obj" in allowed_globals()
    assert not any(name.startswith(("os.", "posix.", "subprocess.")) for name in allowed_globals())


def test_numpy_scalars_are_read_for_numeric_dtypes_only():
    assert read_network_pickle(pickle.dumps(np.float32(2.5))) == 2.5  # NVIDIA's weight gains are numpy floats
    with pytest.raises(UnsafePickleError, match="dtype"):
        read_network_pickle(pickle.dumps(np.datetime64("2021-01-01")))


def test_truncated_and_foreign_files_are_named(tmp_path):
    pkl = write_nvidia_pickle(tmp_path / "full.pkl", "skip-d-tiny", tmp_path / "ran")
    cut = tmp_path / "cut.pkl"
    cut.write_bytes(pkl.read_bytes()[: pkl.stat().st_size // 2])
    with pytest.raises(PickleReadError, match=r"cut\.pkl.*truncated"):
        read_network_pickle(cut)
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n not a pickle")
    with pytest.raises(PickleReadError, match="junk.pkl"):
        read_network_pickle(junk)
    with pytest.raises(PickleReadError, match="not found"):
        read_network_pickle(tmp_path / "missing.pkl")
    listed = tmp_path / "list.pkl"
    listed.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(CheckpointImportError, match="holds a list"):
        import_checkpoint(listed, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert main(["import", str(cut), str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists() and not (tmp_path / ".out.tmp").exists()


def test_tensors_no_plugin_maps_are_an_error_naming_them():
    ckpt = checkpoint("configf-tiny")
    decoder = PickledModule(class_name="Decoder", state={"_parameters": {"weight": torch.zeros(3)}, "_modules": {}})
    ckpt.networks["D"].state["_modules"]["decoder"] = decoder
    with pytest.raises(CheckpointImportError, match=r"D\.decoder\.weight.*Decoder"):
        _map(ckpt, PluginManager())


def test_settings_the_backbone_cannot_build_are_refused_by_name():
    ckpt = checkpoint("configf-tiny")
    ckpt.networks["G_ema"].child("synthesis.b16").state["architecture"] = "resnet"
    with pytest.raises(CheckpointImportError, match="b16.*'resnet'"):
        _map(ckpt, PluginManager())
    ckpt = checkpoint("configf-tiny")
    ckpt.networks["D"].child("b16.conv0").state["conv_clamp"] = 128
    with pytest.raises(CheckpointImportError, match="conv_clamp"):
        _map(ckpt, PluginManager())


def test_a_file_without_a_discriminator_is_refused(tmp_path):
    pkl = write_nvidia_pickle(tmp_path / "g-only.pkl", "configf-tiny", tmp_path / "ran", networks=("G", "G_ema"))
    with pytest.raises(CheckpointImportError, match="no StyleGAN2 Discriminator"):
        import_checkpoint(pkl, tmp_path / "out")
