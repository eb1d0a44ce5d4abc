"""The biggan backbone: the reference's parameter counts, forward parity with BigGAN-PyTorch, shapes and plugin protocol."""

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from gancore.backbone import DataInfo
from gancore_biggan import BigGANConfig, BigGANDiscriminator, BigGANGenerator
from gancore_biggan.convert import ReferenceFormatError, config_from_reference, convert_d, convert_g

FIXTURES = Path(__file__).parent / "fixtures"


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _build(info: DataInfo, **settings) -> tuple[BigGANGenerator, BigGANDiscriminator]:
    config = BigGANConfig(**settings).with_data(info)
    return BigGANGenerator(config), BigGANDiscriminator(config)


@pytest.mark.parametrize("preset, resolution, classes, counts", [
    ("cifar10", 32, 10, (4_304_387, 4_207_361)),        # BigGAN-PyTorch's launch_cifar_ema.sh
    ("imagenet128", 128, 1000, (70_433_988, 87_982_370)),  # launch_BigGAN_bs256x8.sh (ch 96)
])
def test_presets_have_the_reference_parameter_counts(preset, resolution, classes, counts):
    # init N02: the count does not depend on it, and orthogonal init of 158M weights takes half a minute.
    G, D = _build(DataInfo(name="x", shape=(3, resolution, resolution), c_dim=classes), preset=preset, init="N02")
    assert (_count(G), _count(D)) == counts


def _fixture(name: str):
    tensors = load_file(str(FIXTURES / f"{name}.safetensors"))
    case = json.loads((FIXTURES / f"{name}.json").read_text())
    part = {net: {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith(f"{net}.")} for net in ("G", "D")}
    return tensors, case, part


@pytest.mark.parametrize("name", ["cifar32", "imagenet64"])
def test_forward_matches_biggan_pytorch(name):
    """Fixtures made by tools/make_parity_fixtures.py from BigGAN-PyTorch's own code."""
    tensors, case, reference = _fixture(name)
    settings = config_from_reference(reference["G"], reference["D"])
    assert settings["resolution"] == case["G"]["resolution"] and settings["c_dim"] == case["G"]["n_classes"]
    assert settings["hier"] == case["G"]["hier"] and settings["shared_dim"] == case["G"].get("shared_dim", 0)
    info = DataInfo(name="x", shape=(settings.pop("channels"), settings["resolution"], settings["resolution"]),
                    c_dim=settings["c_dim"])
    config = BigGANConfig(**settings, sn_eps=case["G"]["SN_eps"]).with_data(info)
    G, D = BigGANGenerator(config), BigGANDiscriminator(config)
    G.load_state_dict(convert_g(reference["G"], config.resolution), strict=True)
    D.load_state_dict(convert_d(reference["D"]), strict=True)
    z, x = tensors["in.z"], tensors["in.x"]
    c = F.one_hot(tensors["in.y"], config.c_dim).float()
    with torch.no_grad():
        G.eval(), D.eval()
        torch.testing.assert_close(G(z, c), tensors["out.G_eval"], atol=1e-5, rtol=0)
        torch.testing.assert_close(D(x, c), tensors["out.D_eval"].squeeze(1), atol=1e-5, rtol=0)
        G.train(), D.train()
        torch.testing.assert_close(G(z, c), tensors["out.G_train"], atol=1e-5, rtol=0)
        torch.testing.assert_close(D(x, c), tensors["out.D_train"].squeeze(1), atol=1e-5, rtol=0)
    # Training mode moved the power iteration's vectors and the batch statistics as the reference did.
    after = {k.removeprefix("after.G."): v for k, v in tensors.items() if k.startswith("after.G.")}
    ours = G.state_dict()
    for key, value in convert_g(after, config.resolution).items():
        torch.testing.assert_close(ours[key], value, atol=1e-5, rtol=0, msg=lambda m, k=key: f"{k}: {m}")


def test_convert_names_what_it_cannot_map():
    _, _, reference = _fixture("cifar32")
    with pytest.raises(ReferenceFormatError, match="'extra.weight'"):
        convert_g({**reference["G"], "extra.weight": torch.zeros(1)}, 32)
    with pytest.raises(ReferenceFormatError, match="several singular values"):
        convert_d({**reference["D"], "linear.u1": torch.zeros(1, 1)})
    with pytest.raises(ReferenceFormatError, match="not BigGAN-PyTorch's"):
        config_from_reference({"linear.weight": torch.zeros(4, 4)}, {})


@pytest.mark.parametrize("resolution", [32, 64, 128, 256])
def test_any_resolution_and_class_count_and_unconditional(resolution):
    torch.manual_seed(0)
    for classes, shared_dim, hier in ((7, 16, True), (3, 0, False), (0, 0, False), (0, 0, True)):
        G, D = _build(DataInfo(name="x", shape=(1, resolution, resolution), c_dim=classes), g_ch=2, d_ch=2,
                      shared_dim=shared_dim, hier=hier, z_dim=24, init="N02")
        c = F.one_hot(torch.arange(2) % classes, classes).float() if classes else None
        img = G(torch.randn(2, G.z_dim), c)
        assert img.shape == (2, 1, resolution, resolution) and img.abs().max() <= 1
        assert D(img, c).shape == (2,)


def test_attention_and_hier_settings_are_checked():
    info = DataInfo(name="x", shape=(3, 32, 32), c_dim=10)
    with pytest.raises(ValueError, match="g_attn \\[64\\]"):
        _build(info, g_ch=2, d_ch=2, g_attn=[64])
    with pytest.raises(ValueError, match="hier needs a shared class embedding"):
        _build(info, g_ch=2, d_ch=2, hier=True, shared_dim=0)
    with pytest.raises(ValueError, match="takes 32, 64, 128, 256"):
        BigGANConfig().with_data(DataInfo(name="x", shape=(3, 16, 16), c_dim=0))
    G, _ = _build(info, g_ch=2, d_ch=2, z_dim=128, hier=True, shared_dim=8)
    assert G.z_dim == 128 // 4 * 4  # whole chunks only, one per block and one for the input layer


def test_resume_state_and_features_round_trip():
    torch.manual_seed(0)
    G, D = _build(DataInfo(name="x", shape=(3, 64, 64), c_dim=4), g_ch=2, d_ch=2, shared_dim=8, hier=True,
                  g_attn=[32], z_dim=20)
    G.eval()
    z, c = torch.randn(3, G.z_dim), F.one_hot(torch.tensor([0, 1, 3]), 4).float()
    full, feats = G(z, c, features=True)
    assert sorted(feats) == [4, 8, 16, 32, 64]
    for r in (8, 32):
        state = G.state_at(r, z, c)
        assert {k: tuple(v.shape[1:]) for k, v in state.items()} == G.resume_state(r)
        torch.testing.assert_close(G.synthesize_from(r, state), full)
    logits, d_feats = D(full, c, features=True)
    assert {r: f.shape[1] for r, f in d_feats.items()} == D.feature_channels()


def test_trains_through_gancore_unconditional_and_conditional(tmp_path):
    from gancore.run import Run
    from gancore.testing import make_tiny_config

    for labels in (False, True):
        raw = make_tiny_config("biggan", steps=2, r1_gamma=0.0)
        raw["data"]["labels"] = labels
        run = Run.build(raw, out_dir=tmp_path / f"run-{labels}")
        before = [p.detach().clone() for p in run.G.parameters()]
        run.train()
        assert run.G.c_dim == (10 if labels else 0) and run.step == 2
        assert any(not torch.equal(a, b) for a, b in zip(before, run.G.parameters()))  # G learnt
        assert (tmp_path / f"run-{labels}" / "checkpoints").is_dir()
        resumed = Run.resume(tmp_path / f"run-{labels}", steps=3).train()
        assert resumed.step == 3


def _reference_folder(tmp_path, name="imagenet64", with_ema=True):
    tensors, case, reference = _fixture(name)
    folder = tmp_path / "weights"
    folder.mkdir()
    torch.save(reference["G"], folder / "G.pth")
    torch.save(reference["D"], folder / "D.pth")
    if with_ema:
        torch.save(reference["G"], folder / "G_ema.pth")
    torch.save({"itr": 138000}, folder / "state_dict.pth")  # training state: listed, not imported
    return folder, tensors, case


@pytest.mark.parametrize("packed", ["folder", "zip"])
def test_import_biggan_pytorch_weights_into_a_model_folder(tmp_path, packed):
    import zipfile

    from gancore.importing import import_checkpoint
    from gancore.pretrained import from_pretrained

    folder, tensors, case = _reference_folder(tmp_path)
    source = folder
    if packed == "zip":  # the released weights come as a zip of the weights folder
        source = tmp_path / "138k.zip"
        with zipfile.ZipFile(source, "w") as archive:
            for file in folder.iterdir():
                archive.write(file, f"138k/{file.name}")
    out = import_checkpoint(source, tmp_path / "model")
    config = json.loads((out / "config.json").read_text())
    assert config["backbone"]["name"] == "biggan" and config["backbone"]["hier"] is True
    assert config["backbone"]["g_attn"] == [32] and config["backbone"]["d_attn"] == [8]
    card = (out / "README.md").read_text()
    assert "state_dict.pth" in card and "epsilon" in card
    G = from_pretrained(out)
    c = F.one_hot(tensors["in.y"], case["G"]["n_classes"]).float()
    with torch.no_grad():
        torch.testing.assert_close(G(tensors["in.z"], c), tensors["out.G_eval"], atol=1e-5, rtol=0)


def test_import_refuses_what_it_cannot_read(tmp_path):
    from gancore.import_types import CheckpointImportError
    from gancore.importing import import_checkpoint

    folder, _, _ = _reference_folder(tmp_path)
    (folder / "D.pth").unlink()
    with pytest.raises(CheckpointImportError, match="without its D.pth"):
        import_checkpoint(folder, tmp_path / "model")
    assert not (tmp_path / "model").exists()

    import datetime

    torch.save({"linear.weight": datetime.date(2019, 2, 1)}, folder / "D.pth")  # unpickling it would build an object
    with pytest.raises(CheckpointImportError, match="D.pth: not a state dict that loads without running code"):
        import_checkpoint(folder, tmp_path / "model")


def test_orthogonal_regularisation_gives_biggan_pytorch_gradient():
    """The term's gradient is what BigGAN-PyTorch's utils.ortho adds: 2 beta (W W^T * (1 - I)) W, shared embedding left out."""
    from gancore_biggan.networks import ortho_penalty

    torch.manual_seed(0)
    G, _ = _build(DataInfo(name="x", shape=(3, 32, 32), c_dim=5), g_ch=2, d_ch=2, shared_dim=8, hier=True,
                  z_dim=20, ortho_reg=1e-4)
    (term,) = G.loss_terms()
    assert term.name == "ortho" and term.weight == 1e-4
    term.weighted.backward()
    for name, p in G.named_parameters():
        if name.startswith("shared.") or p.ndim < 2:
            assert p.grad is None or torch.count_nonzero(p.grad) == 0, name
            continue
        w = p.detach().view(p.shape[0], -1)
        expected = 2 * 1e-4 * ((w @ w.t()) * (1 - torch.eye(w.shape[0]))) @ w
        torch.testing.assert_close(p.grad.view(p.shape[0], -1), expected, msg=name)
    assert _build(DataInfo(name="x", shape=(3, 32, 32), c_dim=0), g_ch=2, d_ch=2)[0].loss_terms() == []
    assert float(ortho_penalty(G).detach()) > 0


def test_orthogonal_regularisation_reaches_g_loss_in_training():
    from gancore.run import Run
    from gancore.testing import make_tiny_config

    raw = make_tiny_config("biggan", r1_gamma=0.0)
    raw["backbone"]["ortho_reg"] = 1e-4
    stats = Run.build(raw).trainer.step()
    assert stats["Loss/G/backbone_ortho"] > 0
    assert stats["Loss/G/total"] == pytest.approx(stats["Loss/G/adversarial"] + 1e-4 * stats["Loss/G/backbone_ortho"],
                                                  rel=1e-5)


GLEAD = {"name": "glead", "distance": "mse", "r": 8, "decoder_resolution": 16}


@pytest.mark.parametrize("plugins", [
    ["topk"], [{"name": "augment", "mode": "ada", "p": 0.5}], [{"name": "augment", "mode": "diffaugment"}],
    [GLEAD], ["eqgan_sa"], [GLEAD, "eqgan_sa", "topk"],
], ids=["topk", "ada", "diffaugment", "glead", "eqgan_sa", "three"])
def test_every_method_plugin_trains_on_biggan(plugins):
    from gancore.run import Run
    from gancore.testing import make_tiny_config

    raw = make_tiny_config("biggan", plugins, steps=1, r1_gamma=0.0)
    raw["data"]["labels"] = True
    stats = Run.build(raw).trainer.step()
    assert torch.isfinite(torch.tensor(stats["Loss/G/total"]))


def test_dgl_half_width_biggan_student_with_a_biggan_teacher(tmp_path):
    from gancore.run import Run
    from gancore.testing import make_tiny_config

    teacher = make_tiny_config("biggan", steps=1, checkpoint_every=1, r1_gamma=0.0)
    teacher["backbone"].update({"g_ch": 4, "d_ch": 4})
    teacher["data"]["labels"] = True
    Run.build(teacher, out_dir=tmp_path / "teacher").train()
    dgl = {"name": "dgl", "teacher": str(tmp_path / "teacher"), "teacher_train_mode": True}
    student = make_tiny_config("biggan", [dgl], steps=1, r1_gamma=0.0)  # ch 2: half the teacher's width
    student["data"]["labels"] = True
    run = Run.build(student)
    stats = run.trainer.step()
    assert stats["Loss/G/dgl_teacher"] != 0 and stats["dgl/stage"] == 2


def test_import_names_a_missing_source_and_an_ambiguous_zip(tmp_path):
    import zipfile

    from gancore.import_types import CheckpointImportError
    from gancore.importing import import_checkpoint

    with pytest.raises(CheckpointImportError, match="G.pth: no such file or folder"):
        import_checkpoint(tmp_path / "G.pth", tmp_path / "model")
    folder, _, _ = _reference_folder(tmp_path)
    with zipfile.ZipFile(tmp_path / "two.zip", "w") as archive:
        for run in ("a", "b"):
            archive.write(folder / "G.pth", f"{run}/G.pth")
    with pytest.raises(CheckpointImportError, match="holds G.pth more than once"):
        import_checkpoint(tmp_path / "two.zip", tmp_path / "model")


def test_d_attention_follows_every_block_at_its_resolution():
    _, D = _build(DataInfo(name="x", shape=(3, 128, 128), c_dim=0), g_ch=1, d_ch=1, d_attn=[4], init="N02")
    assert sorted(D.attention) == ["4", "5"]  # both 4x4 blocks, as BigGAN-PyTorch's D_arch
