"""gancore_augment: what D scores in every phase, R1 before the transform, gradients through it, run.discriminate."""

import re
from pathlib import Path

import pytest
import torch

from gancore import LossTerm, hookimpl
from gancore.plugins import HookError
from gancore.run import Run
from gancore.testing import capture_first_gradients, make_tiny_config

DOCS = Path(__file__).resolve().parents[1] / "docs" / "writing-plugins.md"


@pytest.fixture(scope="module")
def shiftcut():
    """The augmentation plugin of docs/writing-plugins.md (translation + cutout), as documented."""
    block = next(b for b in re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.S) if "class ShiftCut" in b)
    namespace: dict = {}
    exec(compile(block, str(DOCS), "exec"), namespace)
    return namespace["ShiftCut"]


class Watcher:
    """Listed after an augmentation: records what each phase's augmentation chain produced."""

    name = "watcher"

    def __init__(self):
        self.augmented: list[tuple[str, str, torch.Tensor, bool]] = []
        self.d_loss: dict = {}
        self.weights: dict = {}

    @hookimpl
    def gancore_augment(self, images, phase, source):
        self.augmented.append((phase, source, images.detach().clone(), images.requires_grad))

    @hookimpl
    def gancore_d_loss(self, real, fake, real_unaugmented, fake_unaugmented, c_real, c_fake):
        self.d_loss = {"real": real, "fake": fake, "real_unaugmented": real_unaugmented,
                       "fake_unaugmented": fake_unaugmented, "c_real": c_real, "c_fake": c_fake}

    @hookimpl
    def gancore_sample_weights(self, run, fake, d_fake, fake_unaugmented):
        self.weights = {"fake": fake.detach(), "d_fake": d_fake, "fake_unaugmented": fake_unaugmented.detach(),
                        "scores_now": run.D(fake.detach()).float().detach()}


def _with(register_plugin, *plugins):
    names = []
    for plugin in plugins:
        names.append(register_plugin(plugin))
    return names


def test_the_documented_plugin_augments_every_batch_d_scores(register_plugin, shiftcut):
    watcher = Watcher()
    register_plugin(shiftcut)
    register_plugin(watcher)
    raw = make_tiny_config("dcgan", [{"name": "shiftcut", "cutout": 0.5}, "watcher"], steps=1, d_reg_interval=1)
    run = Run.build(raw).train()
    seen = [(phase, source, grad) for phase, source, _, grad in watcher.augmented]
    assert seen == [("Gmain", "fake", True), ("Dmain", "real", False), ("Dmain", "fake", False), ("Dreg", "real", True)]
    for phase, source, images, _ in watcher.augmented:
        # The cutout of side 4 on 8 px images: a 2x2 to 4x4 square of exact zeros in every image.
        zeros = (images == 0).all(dim=1).flatten(1).sum(1)
        assert bool((zeros >= 4).all()), (phase, source)
    d_loss = watcher.d_loss
    assert not torch.equal(d_loss["real"], d_loss["real_unaugmented"])
    assert int((d_loss["real_unaugmented"] == 0).all(dim=1).flatten(1).sum()) == 0  # the data has no holes
    assert d_loss["fake"].shape == d_loss["fake_unaugmented"].shape == (8, 3, 8, 8)
    assert run.step == 1


def test_augmentation_plugins_compose_in_list_order(register_plugin):
    def make(name, transform):
        class P:
            @hookimpl
            def gancore_augment(self, images):
                return transform(images)

        P.name = name
        return P

    watcher = Watcher()
    _with(register_plugin, make("plus", lambda x: x + 1), make("twice", lambda x: x * 2), watcher)
    run = Run.build(make_tiny_config("mlp", ["plus", "twice", "watcher"], steps=1, r1_gamma=0.0))
    real, _ = run.trainer.real_batch()
    run.trainer.d_main(real)
    assert torch.allclose(watcher.d_loss["real"], (real + 1) * 2)
    run = Run.build(make_tiny_config("mlp", ["twice", "plus", "watcher"], steps=1, r1_gamma=0.0))
    run.trainer.d_main(real)
    assert torch.allclose(watcher.d_loss["real"], real * 2 + 1)


class Identity:
    """An augmentation that changes nothing, computed like a real one."""

    name = "identity"

    @hookimpl
    def gancore_augment(self, images):
        return images * 1.0


def _trained(plugins, register_plugin, **settings):
    register_plugin(Identity)
    run = Run.build(make_tiny_config("dcgan", plugins, steps=2, d_reg_interval=1, **settings))
    grads = capture_first_gradients(run)
    run.train()
    return run, grads


def test_identity_transform_leaves_every_gradient_as_it_was(register_plugin):
    plain, plain_grads = _trained([], register_plugin)
    augmented, augmented_grads = _trained(["identity"], register_plugin)
    for net in ("G", "D"):
        for a, b in zip(plain_grads[net], augmented_grads[net]):
            assert torch.equal(a, b), net
    # Two full steps (Dmain, Dreg with R1, Gmain, EMA) end in the same weights.
    for net in ("G", "D", "G_ema"):
        for a, b in zip(getattr(plain, net).parameters(), getattr(augmented, net).parameters()):
            assert torch.equal(a, b), net


class DetachInGmain:
    """An augmentation that cuts G's fakes off the graph in G's step."""

    name = "detach"

    @hookimpl
    def gancore_augment(self, images, phase):
        return images.detach() if phase == "Gmain" else None


def test_a_differentiable_transform_lets_ds_score_reach_g(register_plugin):
    class Probe:
        """Measures what reaches G's output from D's score, and keeps G in the graph by a term of its own."""

        name = "probe"

        def __init__(self):
            self.through_d = []

        @hookimpl
        def gancore_g_loss(self, d_fake, fake_unaugmented):
            if not d_fake.requires_grad:  # D's score has no graph at all: nothing reaches G through it
                self.through_d.append(None)
            else:
                (grad,) = torch.autograd.grad(d_fake.sum(), fake_unaugmented, retain_graph=True)
                self.through_d.append(float(grad.abs().sum()))
            return LossTerm("pull", fake_unaugmented.square().mean(), weight=0.1)

    probe = Probe()
    _with(register_plugin, DetachInGmain, probe, Identity)
    Run.build(make_tiny_config("dcgan", ["identity", "probe"], steps=1)).train()
    assert probe.through_d[-1] > 0  # a differentiable transform: D's score reaches G


def test_a_detaching_transform_in_gmain_is_refused_naming_the_plugin(register_plugin):
    """Without D's score, G would learn from nothing (or only from other terms): refused at once."""
    register_plugin(DetachInGmain)
    run = Run.build(make_tiny_config("dcgan", ["detach"], steps=1))
    with pytest.raises(HookError, match="hook gancore_augment of plugin 'detach' failed: ValueError: returned fake "
                                        "images cut off from the graph in the Gmain phase; the Gmain phase's gradient"):
        run.train()


def test_a_detaching_transform_in_dreg_names_the_plugin(register_plugin):
    class Rounder:
        name = "rounder"

        @hookimpl
        def gancore_augment(self, images, phase):
            return images.detach().round() if phase == "Dreg" else None

    register_plugin(Rounder)
    run = Run.build(make_tiny_config("mlp", ["rounder"], d_reg_interval=1))
    with pytest.raises(HookError, match="hook gancore_augment of plugin 'rounder' failed: ValueError: returned "
                                        "real images cut off from the graph in the Dreg phase"):
        run.train()


def test_accumulated_top_k_trains_on_the_fakes_it_scored(register_plugin):
    """The scoring pass and the training pass of each micro-batch see the same augmented fakes,
    whichever stream the augmentation draws from; later draws continue the streams."""

    class Jitter:
        name = "jitter"

        def __init__(self):
            self.draws = []

        @hookimpl
        def gancore_augment(self, run, images, phase):
            if phase != "Gmain":
                return None
            a, b = torch.randn(images.shape), run.randn(images.shape[0], *images.shape[1:])
            c = torch.randn(images.shape, generator=run.rng)
            self.draws.append(a)
            return images + 0.1 * (a + b + c)

    class Spy:
        name = "spy"

        def __init__(self):
            self.scored, self.trained, self.later = None, [], []

        @hookimpl
        def gancore_sample_weights(self, fake):
            self.scored = fake.detach().clone()

        @hookimpl
        def gancore_g_loss(self, fake):
            self.trained.append(fake.detach().clone())
            self.later.append(torch.randn(fake.shape))

    jitter, spy = Jitter(), Spy()
    _with(register_plugin, jitter, spy)
    raw = make_tiny_config("mlp", ["jitter", {"name": "topk", "gamma": 0.5, "nu": 0.5, "schedule": "progress"}, "spy"],
                           steps=1, batch=16, batch_per_gpu=4)
    Run.build(raw).train()
    assert len(spy.trained) == 4 and torch.equal(torch.cat(spy.trained), spy.scored)
    assert not any(torch.equal(later, draw) for later in spy.later for draw in jitter.draws)


def test_r1_is_taken_before_the_transform(register_plugin):
    class Double:
        name = "double"

        @hookimpl
        def gancore_augment(self, images, phase):
            return images * 2 if phase == "Dreg" else None

    register_plugin(Double)
    run = Run.build(make_tiny_config("mlp", ["double"], r1_gamma=1.0))
    real, _ = run.trainer.real_batch()
    seen = (real * 2).requires_grad_(True)
    (grad_seen,) = torch.autograd.grad(run.D(seen).sum(), seen)
    expected = (2 * grad_seen).square().sum(1).mean()  # d D(2x) / dx = 2 D'(2x)
    stats = run.trainer.d_reg(real)
    assert stats["Loss/Dreg/r1"] == pytest.approx(float(expected), rel=1e-5)


def test_topk_ranks_the_scores_of_what_d_scored(register_plugin):
    class Mirror:
        name = "mirror"

        @hookimpl
        def gancore_augment(self, images):
            return -images

    watcher = Watcher()
    _with(register_plugin, Mirror, watcher)
    run = Run.build(make_tiny_config("mlp", ["mirror", {"name": "topk", "gamma": 0.5, "nu": 0.5,
                                                         "schedule": "progress"}, "watcher"], steps=2))
    run.train()
    seen = watcher.weights
    assert torch.equal(seen["fake"], -seen["fake_unaugmented"])
    assert torch.allclose(seen["d_fake"], seen["scores_now"], atol=1e-6)  # D's scores of the mirrored fakes
    mask = run.plugins["topk"].last_mask
    kept = seen["d_fake"][mask.bool()]
    dropped = seen["d_fake"][~mask.bool()]
    assert kept.min() >= dropped.max()  # the kept fakes are those D scored highest after the mirror


def test_labels_reach_the_loss_hooks(register_plugin):
    watcher = Watcher()
    register_plugin(watcher)
    run = Run.build(make_tiny_config("dcgan", ["watcher"], **{"data.labels": True}))
    real, c_real = run.trainer.real_batch()
    run.trainer.d_main(real, c_real)
    assert torch.equal(watcher.d_loss["c_real"], c_real)
    c_fake = watcher.d_loss["c_fake"]
    assert c_fake.shape == c_real.shape and torch.equal(c_fake.sum(1), torch.ones(8))  # one-hot labels of the fakes


def test_a_shape_change_names_plugin_tensor_and_shapes(register_plugin):
    class Crop:
        name = "crop"

        @hookimpl
        def gancore_augment(self, images, phase):
            return images[:, :, :4, :4] if phase == "Gmain" else None

    class Halve:
        name = "halve"

        @hookimpl
        def gancore_before_d_step(self, real, fake):
            return real, fake[:4]

    _with(register_plugin, Crop, Halve)
    run = Run.build(make_tiny_config("dcgan", ["crop"], steps=1))
    message = ("hook gancore_augment of plugin 'crop' failed: ValueError: changed the shapes of the batch: "
               "fake images (Gmain) was [8, 3, 8, 8], the plugin returned [8, 3, 4, 4]")
    with pytest.raises(HookError, match=re.escape(message)):
        run.train()
    run = Run.build(make_tiny_config("dcgan", ["halve"], steps=1))
    message = ("hook gancore_before_d_step of plugin 'halve' failed: ValueError: changed the shapes of the batch: "
               "fake was [8, 3, 8, 8], the plugin returned [4, 3, 8, 8]")
    with pytest.raises(HookError, match=re.escape(message)):
        run.train()


def test_discriminate_runs_d_as_the_core_does():
    run = Run.build(make_tiny_config("dcgan", precision="bf16"))
    dtypes = []
    run.D.register_forward_hook(
        lambda module, args, output: dtypes.append((output[0] if isinstance(output, tuple) else output).dtype))
    x = torch.randn(8, 3, 8, 8)
    logits = run.discriminate(x)
    assert logits.dtype == torch.float32 and logits.shape == (8,)
    logits, features = run.discriminate(x, features=True)
    assert set(features) == set(run.D.feature_channels())
    run.discriminate(x, double_backward=True)
    assert dtypes == [torch.bfloat16, torch.bfloat16, torch.float32]  # autocast, except for R1-style passes
    assert logits.dtype == torch.float32


def test_discriminate_uses_the_compiled_d():
    run = Run.build(make_tiny_config("mlp", compile=True, compile_backend="aot_eager"))
    calls = []
    compiled = run.D_main
    run.D_main = lambda *args, **kwargs: calls.append(1) or compiled(*args, **kwargs)
    x = torch.randn(8, 2)
    assert torch.allclose(run.discriminate(x), run.D(x), atol=1e-6)
    assert calls == [1]
