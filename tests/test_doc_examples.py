"""The example plugins of docs/examples/ (an augmentation, a second-D-pass regulariser, a stateful regulariser) do what docs/writing-plugins.md says."""

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest
import torch

from gancore.run import Run
from gancore.testing import capture_first_gradients, make_tiny_config

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"


def _example(name: str) -> ModuleType:
    """Import ``docs/examples/<name>.py`` as a module (the examples are files to copy, not a package)."""
    spec = importlib.util.spec_from_file_location(f"gancore_doc_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _weights(run: Run) -> dict[str, torch.Tensor]:
    return {f"{net}.{k}": v.clone() for net in ("G", "D", "G_ema") for k, v in getattr(run, net).state_dict().items()}


# -- shift: an augmentation -------------------------------------------------------------------


def test_shift_moves_pixels_fills_zeros_and_passes_gradients():
    shift_images = _example("shift").shift_images
    images = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4).requires_grad_()
    moved = shift_images(images, torch.tensor([1, 0]), torch.tensor([0, -1]), limit=1)
    assert torch.equal(moved[0, 0, 1:], images[0, 0, :3].detach()) and torch.equal(moved[0, 0, 0], torch.zeros(4))
    assert torch.equal(moved[1, 0, :, :3], images[1, 0, :, 1:].detach()) and torch.equal(moved[1, 0, :, 3], torch.zeros(4))
    moved.sum().backward()
    assert images.grad[0, 0, 3].eq(0).all() and images.grad[0, 0, :3].eq(1).all()  # the row pushed out gets none


def test_shift_trains_g_through_ds_score_and_draws_from_the_run(register_plugin):
    register_plugin(_example("shift").Shift)
    raw = make_tiny_config("dcgan", [{"name": "shift", "fraction": 0.25}], steps=1)
    run = Run.build(raw)
    grads = capture_first_gradients(run)
    run.train()
    assert any(g.abs().sum() > 0 for g in grads["G"])  # the transform is differentiable
    again = Run.build(raw).train()
    assert all(torch.equal(a, b) for a, b in zip(_weights(run).values(), _weights(again).values()))  # seeded
    plain = Run.build(make_tiny_config("dcgan", steps=1)).train()
    assert not all(torch.equal(a, b) for a, b in zip(_weights(run).values(), _weights(plain).values()))


# -- consistency: a second D pass -------------------------------------------------------------


def test_consistency_is_zero_for_mirror_symmetric_images_and_trains_d(register_plugin):
    consistency = _example("consistency").Consistency
    register_plugin(consistency)
    run = Run.build(make_tiny_config("dcgan", ["consistency"], steps=1))
    symmetric = torch.rand(8, 3, 8, 4)
    symmetric = torch.cat([symmetric, symmetric.flip(3)], dim=3)
    terms = run.plugins["consistency"].gancore_d_loss(
        run, symmetric, symmetric, run.discriminate(symmetric), run.discriminate(symmetric), None, None)
    assert [t.name for t in terms] == ["real", "fake"] and all(float(t.value.detach()) < 1e-10 for t in terms)
    grads = capture_first_gradients(run)
    run.train()
    assert run.last_stats["Loss/D/consistency_real"] > 0 and run.last_stats["Loss/D/consistency_fake"] > 0
    without = Run.build(make_tiny_config("dcgan", [{"name": "consistency", "real_weight": 0.0, "fake_weight": 0.0}],
                                         steps=1))
    grads_without = capture_first_gradients(without)
    without.train()
    assert any(not torch.allclose(a, b) for a, b in zip(grads["D"], grads_without["D"]))  # D feels the term
    assert all(torch.equal(a, b) for a, b in zip(grads["G"], grads_without["G"]))  # G's first step does not


# -- lecam: state in checkpoints --------------------------------------------------------------


def test_lecam_keeps_its_averages_in_checkpoints_and_resumes_exactly(register_plugin, tmp_path):
    register_plugin(_example("lecam").LeCam)
    raw = make_tiny_config("mlp", ["lecam"], steps=4, checkpoint_every=2)
    straight = Run.build(raw, out_dir=tmp_path / "straight").train()
    assert straight.plugins["lecam"].ema_real != 0.0 and "Loss/D/lecam_reg" in straight.last_stats
    state = json.loads((tmp_path / "straight" / "checkpoints" / "step-000004" / "state.json").read_text())
    assert state["plugins"]["lecam"] == {"ema_real": straight.plugins["lecam"].ema_real,
                                         "ema_fake": straight.plugins["lecam"].ema_fake}
    Run.build({**raw, "train": {**raw["train"], "steps": 2}}, out_dir=tmp_path / "resumed").train()
    resumed = Run.resume(tmp_path / "resumed", steps=4).train()
    assert resumed.plugins["lecam"].ema_real == straight.plugins["lecam"].ema_real
    assert all(torch.equal(a, b) for a, b in zip(_weights(straight).values(), _weights(resumed).values()))


def test_lecam_updates_once_a_step_whatever_the_accumulation(register_plugin):
    register_plugin(_example("lecam").LeCam)
    whole = Run.build(make_tiny_config("mlp", ["lecam"], steps=3, batch=16)).train()
    pieces = Run.build(make_tiny_config("mlp", ["lecam"], steps=3, batch=16, batch_per_gpu=4)).train()
    assert pieces.plugins["lecam"].ema_real == pytest.approx(whole.plugins["lecam"].ema_real, rel=1e-4)
    assert pieces.plugins["lecam"].ema_fake == pytest.approx(whole.plugins["lecam"].ema_fake, rel=1e-4)


def _code_block(markdown: Path, containing: str) -> str:
    """The ```python block of ``markdown`` that contains ``containing``."""
    blocks = markdown.read_text().split("```python\n")[1:]
    return next(block.split("```")[0] for block in blocks if containing in block)


@pytest.mark.parametrize("plugin", ["Center", "ShiftCut"])
def test_the_plugins_in_writing_plugins_md_train(register_plugin, plugin):
    namespace: dict = {}
    exec(compile(_code_block(EXAMPLES.parent / "writing-plugins.md", f"class {plugin}:"), "writing-plugins.md", "exec"),
         namespace)
    name = register_plugin(namespace[plugin])
    run = Run.build(make_tiny_config("dcgan", [name], steps=2))
    grads = capture_first_gradients(run)
    run.train()
    assert run.step == 2 and any(g.abs().sum() > 0 for g in grads["G"])
