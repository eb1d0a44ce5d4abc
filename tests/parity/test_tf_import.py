"""TF-era StyleGAN2 pickles (config-f, StyleGAN2-ADA TF): imported through legacy.py's transforms.

The pickles are written here from the official PyTorch fixtures' weights put through the
inverse of legacy.py's transforms, so an import that applies them right renders the official
outputs again.
"""

import numpy as np
import pytest
import torch
from nvidia_format import load_fixture, write_tf_pickle

import gancore
from gancore.cli import main
from gancore.importing import CheckpointImportError, import_checkpoint
from gancore.pickle_reader import PickledTFNetwork, read_network_pickle

ATOL = 1e-5
# The static kwargs a TF-era training run would have stored for the fixtures' networks.
KWARGS = {
    "configf-tiny": (
        {"latent_size": 32, "dlatent_size": 32, "resolution": 32, "num_channels": 3, "label_size": 0,
         "fmap_base": 256, "fmap_max": 32, "mapping_layers": 8, "conv_clamp": 256, "truncation_psi": 0.5},
        {"resolution": 32, "num_channels": 3, "label_size": 0, "fmap_base": 256, "fmap_max": 32,
         "mbstd_group_size": 4, "conv_clamp": 256},
    ),
    "cifar-cond-tiny": (
        {"latent_size": 32, "dlatent_size": 32, "resolution": 32, "num_channels": 3, "label_size": 10,
         "fmap_base": 256, "fmap_max": 32, "mapping_layers": 2, "conv_clamp": 256},
        {"resolution": 32, "num_channels": 3, "label_size": 10, "fmap_base": 256, "fmap_max": 32,
         "architecture": "orig", "mbstd_group_size": 32, "mapping_layers": 8, "mapping_lrmul": 0.01, "conv_clamp": 256},
    ),
}


def _c(fx):
    return fx["in.c"] if fx["in.c"].shape[1] else None


@pytest.mark.parametrize("name", sorted(KWARGS))
def test_tf_pickle_imports_to_the_official_networks(tmp_path, name):
    flag = tmp_path / "build_module_src-ran"
    g_kwargs, d_kwargs = KWARGS[name]
    pkl = write_tf_pickle(tmp_path / "stylegan2-tiny-config-f.pkl", name, flag, g_kwargs, d_kwargs,
                          extra_variables={"lod": np.zeros((), np.float32)})
    nets = read_network_pickle(pkl)
    assert isinstance(nets, tuple) and all(isinstance(n, PickledTFNetwork) for n in nets)
    assert "synthesis/4x4/Conv/weight" in nets[2].all_variables()
    out = tmp_path / "model"
    assert main(["import", str(pkl), str(out)]) == 0
    assert not flag.exists()
    fx, _ = load_fixture(name)
    G = gancore.from_pretrained(out)
    D = gancore.from_pretrained(out, component="D")
    G_train = gancore.from_pretrained(out, component="G")
    with torch.no_grad():
        torch.testing.assert_close(G(fx["in.z"], _c(fx)), fx["out.images"], atol=ATOL, rtol=0)
        torch.testing.assert_close(G_train(fx["in.z"], _c(fx)), fx["out.images_G"], atol=ATOL, rtol=0)
        torch.testing.assert_close(D(fx["in.reals"], _c(fx)), fx["out.logits_real"], atol=ATOL, rtol=0)
    assert "legacy.py" in (out / "README.md").read_text()


def test_tf_settings_gancore_cannot_build_are_refused(tmp_path):
    g_kwargs, d_kwargs = KWARGS["configf-tiny"]
    pkl = write_tf_pickle(tmp_path / "a.pkl", "configf-tiny", tmp_path / "ran", {**g_kwargs, "architecture": "resnet"}, d_kwargs)
    with pytest.raises(CheckpointImportError, match="G architecture 'resnet'"):
        import_checkpoint(pkl, tmp_path / "out")
    pkl = write_tf_pickle(tmp_path / "b.pkl", "configf-tiny", tmp_path / "ran", {**g_kwargs, "mystery": 1}, d_kwargs)
    with pytest.raises(CheckpointImportError, match="mystery"):
        import_checkpoint(pkl, tmp_path / "out")
    pkl = write_tf_pickle(tmp_path / "c.pkl", "configf-tiny", tmp_path / "ran", g_kwargs, d_kwargs,
                          extra_variables={"lod": np.ones((), np.float32)})
    with pytest.raises(CheckpointImportError, match="progressive-growing"):
        import_checkpoint(pkl, tmp_path / "out")
    assert not (tmp_path / "out").exists()
