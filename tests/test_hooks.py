"""Every hook is called at its point, with its arguments, and its combine rule holds."""

import attrs
import pytest
import torch

import gancore
import gancore.checkpoint
from gancore import LossTerm, hookimpl
from gancore.backbone import BackboneSpec
from gancore.hookdocs import hook_names
from gancore.plugins import HookError, PluginManager
from gancore.run import Run


class Recorder:
    """Implements every hook and records (hook, step, phase facts) for each call."""

    name = "recorder"

    def __init__(self):
        self.calls: list[tuple[str, int | None]] = []
        self.seen: dict[str, dict] = {}
        self.loaded_state = None

    def _log(self, hook, run=None, **facts):
        self.calls.append((hook, None if run is None else run.step))
        self.seen.setdefault(hook, facts)

    @hookimpl
    def gancore_register_backbones(self, register):
        self._log("gancore_register_backbones")

    @hookimpl
    def gancore_register_ops(self, register):
        self._log("gancore_register_ops")

    @hookimpl
    def gancore_register_feature_extractors(self, register):
        self._log("gancore_register_feature_extractors")

    @hookimpl
    def gancore_import_networks(self, checkpoint):
        self._log("gancore_import_networks")  # only `gancore import` calls it, never a run

    @hookimpl
    def gancore_import_modules(self, checkpoint, model):
        self._log("gancore_import_modules")  # only `gancore import` calls it, never a run

    @hookimpl
    def gancore_setup(self, run):
        self._log("gancore_setup", run, has_g_ema=hasattr(run, "G_ema"), has_opt=run.opt_G is not None)

    @hookimpl
    def gancore_step_start(self, run):
        self._log("gancore_step_start", run)

    @hookimpl
    def gancore_generator_inputs(self, run, batch_size, rng):
        self._log("gancore_generator_inputs", run, batch_size=batch_size, rng=isinstance(rng, torch.Generator))
        return {"tag": torch.full((batch_size,), float(run.step))}

    @hookimpl
    def gancore_before_d_step(self, run, real, fake):
        self._log("gancore_before_d_step", run, real=real.shape, fake=fake.shape, fake_grad=fake.requires_grad)

    @hookimpl
    def gancore_augment(self, run, images, c, phase, source):
        self.calls.append(("gancore_augment", run.step))
        self.seen.setdefault("gancore_augment", []).append((phase, source, images.requires_grad))

    @hookimpl
    def gancore_d_loss(self, run, real, fake, d_real, d_fake, c_real, c_fake, real_unaugmented, fake_unaugmented):
        self._log("gancore_d_loss", run, d_real=d_real.shape, d_real_grad=d_real.requires_grad,
                  g_frozen=not any(p.requires_grad for p in run.G.parameters()), labels=(c_real, c_fake),
                  unaugmented=(real_unaugmented.shape, fake_unaugmented.shape))
        return LossTerm("dterm", d_real.mean() * 0)

    @hookimpl
    def gancore_d_reg_loss(self, run, real, d_real, c_real, real_unaugmented):
        self._log("gancore_d_reg_loss", run, real_grad=real.requires_grad, leaf=real_unaugmented.is_leaf)

    @hookimpl
    def gancore_sample_weights(self, run, fake, d_fake):
        self._log("gancore_sample_weights", run, fake_grad=fake.requires_grad, d_fake_grad=d_fake.requires_grad)

    @hookimpl
    def gancore_g_loss(self, run, fake, d_fake, inputs):
        self._log("gancore_g_loss", run, keys=sorted(inputs), cond_keys=sorted(inputs["cond"]),
                  d_frozen=not any(p.requires_grad for p in run.D.parameters()))
        return [LossTerm("gterm", fake.mean() * 0, weight=2.0)]

    @hookimpl
    def gancore_teacher_loss(self, run, fake, inputs, weights):
        self._log("gancore_teacher_loss", run, weights=weights)

    @hookimpl
    def gancore_step_end(self, run, stats):
        self._log("gancore_step_end", run, keys=sorted(stats))
        stats["recorder/extra"] = 1.0

    @hookimpl
    def gancore_state_dict(self, run):
        self._log("gancore_state_dict", run)
        return {"calls": len([hook for hook, _ in self.calls if "state_dict" not in hook])}

    @hookimpl
    def gancore_load_state_dict(self, run, state):
        self._log("gancore_load_state_dict", run)
        self.loaded_state = state

    @hookimpl
    def gancore_model_card(self, run):
        self._log("gancore_model_card", run)
        return "Recorded every hook."

    @hookimpl
    def gancore_parameter_counts(self, run):
        self._log("gancore_parameter_counts", run)
        return {"side_network": 7}


def test_recorder_implements_every_hook():
    implemented = {name for name in dir(Recorder) if name.startswith("gancore_")}
    assert implemented == set(hook_names())


def test_every_hook_is_called_at_its_point(register_plugin, tiny_config, tmp_path):
    recorder = Recorder()
    register_plugin(recorder)
    # Local instances are not backbone providers, so the start-up hooks are checked separately.
    run = Run.build(tiny_config("mlp", ["recorder"], steps=2, d_reg_interval=2), out_dir=tmp_path / "run")
    # The plugins' state goes once through JSON and back at set-up (a mistake shows now, not at a checkpoint).
    assert recorder.calls == [("gancore_setup", 0), ("gancore_state_dict", 0), ("gancore_load_state_dict", 0),
                              ("gancore_state_dict", 0)]
    assert recorder.seen["gancore_setup"] == {"has_g_ema": False, "has_opt": False}
    run.train()
    hooks_of_step = [hook for hook, step in recorder.calls if step == 0]
    assert hooks_of_step == [
        "gancore_setup",
        "gancore_state_dict",  # the round trip at set-up
        "gancore_load_state_dict",
        "gancore_state_dict",
        "gancore_step_start",
        "gancore_generator_inputs",  # Gmain fakes (G's phases come first, as in NVIDIA's loop)
        "gancore_augment",  # Gmain fakes
        "gancore_sample_weights",
        "gancore_g_loss",
        "gancore_teacher_loss",
        "gancore_generator_inputs",  # Dmain fakes
        "gancore_before_d_step",
        "gancore_augment",  # Dmain reals
        "gancore_augment",  # Dmain fakes
        "gancore_d_loss",
        "gancore_augment",  # Dreg reals
        "gancore_d_reg_loss",  # step 0 is a lazy R1 step (interval 2)
        "gancore_step_end",
    ]
    step1 = [hook for hook, step in recorder.calls if step == 1]
    assert "gancore_d_reg_loss" not in step1  # no R1 on odd steps
    # The end of training writes a sample grid and a checkpoint (state dict) at step 2.
    assert ("gancore_state_dict", 2) in recorder.calls
    seen = recorder.seen
    assert seen["gancore_generator_inputs"] == {"batch_size": 8, "rng": True}
    assert seen["gancore_before_d_step"]["fake_grad"] is False
    assert seen["gancore_d_loss"] == {
        "d_real": torch.Size([8]), "d_real_grad": True, "g_frozen": True, "labels": (None, None),
        "unaugmented": (torch.Size([8, 2]), torch.Size([8, 2])),
    }
    assert seen["gancore_d_reg_loss"] == {"real_grad": True, "leaf": True}
    # (phase, source, whether the images carry a graph): the Dmain fakes are detached from G,
    # the Dreg reals require grad for R1, the Gmain fakes are attached to G.
    assert seen["gancore_augment"][:4] == [
        ("Gmain", "fake", True), ("Dmain", "real", False), ("Dmain", "fake", False), ("Dreg", "real", True)]
    assert seen["gancore_sample_weights"] == {"fake_grad": True, "d_fake_grad": False}
    assert seen["gancore_g_loss"] == {"keys": ["c", "cond", "z"], "cond_keys": ["tag"], "d_frozen": True}
    assert seen["gancore_teacher_loss"] == {"weights": None}
    assert "Loss/D/recorder_dterm" in seen["gancore_step_end"]["keys"]
    assert "Loss/G/recorder_gterm" in seen["gancore_step_end"]["keys"]
    assert run.log.history[-1]["recorder/extra"] == 1.0

    recorder.calls.clear()
    resumed = Run.resume(tmp_path / "run", steps=3)
    assert [h for h, _ in recorder.calls] == ["gancore_setup", "gancore_state_dict", "gancore_load_state_dict",
                                              "gancore_state_dict", "gancore_load_state_dict"]
    saved = gancore.checkpoint.read_state(tmp_path / "run" / "checkpoints" / "step-000002")
    assert recorder.loaded_state == saved["plugins"]["recorder"]
    assert recorder.loaded_state["calls"] > 20
    assert resumed.step == 2
    assert "Recorded every hook." in resumed.hooks.model_card(resumed)
    assert resumed.parameter_counts()["recorder.side_network"] == 7


def test_startup_hooks_reach_installed_providers(register_plugin):
    class Provider:
        name = "provider"
        kind = "backbone"

        @hookimpl
        def gancore_register_backbones(self, register):
            existing = PluginManager.__new__(PluginManager)  # noqa: F841 - only the call matters
            from gancore_dcgan.mlp import MLPConfig, MLPDiscriminator, MLPGenerator

            register(BackboneSpec(name="toy2", config_class=MLPConfig, generator_class=MLPGenerator,
                                  discriminator_class=MLPDiscriminator))

        @hookimpl
        def gancore_register_ops(self, register):
            register("double", "fast", lambda x: 2 * x, priority=5)

    register_plugin(Provider)
    manager = PluginManager()
    assert "toy2" in manager.backbones and manager.backbone_owner("toy2") == "provider"
    impl = manager.ops.get("double")
    assert impl.name == "fast" and impl.owner == "provider" and impl.function(3) == 6


class LossPlugin:
    """Adds configurable D and G terms and per-sample weights."""

    @attrs.frozen(kw_only=True)
    class Config:
        d_weight: float = 0.0
        g_weight: float = 0.0
        drop_first: int = 0

    config_class = Config

    def __init__(self, config):
        self.config = config
        self.weights = None

    @hookimpl
    def gancore_d_loss(self, d_real):
        return LossTerm("push", d_real.mean(), weight=self.config.d_weight)

    @hookimpl
    def gancore_g_loss(self, fake):
        return LossTerm("pull", fake.square().mean(), weight=self.config.g_weight)

    @hookimpl
    def gancore_sample_weights(self, d_fake):
        weights = torch.ones_like(d_fake)
        weights[: self.config.drop_first] = 0
        self.weights = weights
        return weights


def _named(name):
    return type(name, (LossPlugin,), {"name": name})


def _gradients_after_one_step(settings, plugins=("alpha",)):
    from gancore.testing import capture_first_gradients, make_tiny_config

    run = Run.build(make_tiny_config("mlp", list(plugins), steps=1, r1_gamma=0.0, **settings))
    grads = capture_first_gradients(run)
    run.train()
    return grads, run


def test_plugin_loss_terms_change_the_gradients(register_plugin):
    register_plugin(_named("alpha"))
    plain, _ = _gradients_after_one_step({})
    with_d, run = _gradients_after_one_step({"plugins.alpha.d_weight": 3.0})
    assert "Loss/D/alpha_push" in run.last_stats
    assert not all(torch.equal(a, b) for a, b in zip(plain["D"], with_d["D"]))
    with_g, _ = _gradients_after_one_step({"plugins.alpha.g_weight": 3.0})
    assert not all(torch.equal(a, b) for a, b in zip(plain["G"], with_g["G"]))
    # G's phases run first, so D's term cannot reach G's first update.
    assert all(torch.equal(a, b) for a, b in zip(plain["G"], with_d["G"]))


def test_zero_weight_removes_a_samples_gradient(register_plugin, tiny_config):
    register_plugin(_named("alpha"))
    run = Run.build(tiny_config("mlp", [{"name": "alpha", "drop_first": 3}], steps=1))
    inputs = run.generator_inputs(8)
    fake = run.G(inputs["z"]).detach().requires_grad_(True)
    d_fake = run.D(fake)
    weights = run.hooks.sample_weights(run, fake, d_fake.detach())
    loss = gancore.losses.weighted_mean(gancore.losses.g_adversarial_loss(d_fake), weights)
    (grad,) = torch.autograd.grad(loss, fake)
    per_sample = grad.norm(dim=1)
    assert torch.all(per_sample[:3] == 0)
    assert torch.all(per_sample[3:] > 0)
    # The loss is the mean over the kept samples.
    expected = gancore.losses.g_adversarial_loss(d_fake)[3:].mean()
    assert torch.allclose(loss, expected)


def test_two_plugins_weights_multiply_and_losses_add(register_plugin, tiny_config):
    register_plugin(_named("alpha"))
    register_plugin(_named("beta"))
    run = Run.build(tiny_config("mlp", [
        {"name": "alpha", "drop_first": 2, "g_weight": 1.0},
        {"name": "beta", "drop_first": 5, "g_weight": 0.5},
    ], steps=1))
    fake = torch.randn(8, 2)
    d_fake = torch.randn(8)
    weights = run.hooks.sample_weights(run, fake, d_fake)
    assert torch.equal(weights, run.plugins["alpha"].weights * run.plugins["beta"].weights)
    assert weights.tolist() == [0, 0, 0, 0, 0, 1, 1, 1]
    terms = run.hooks.g_loss(run, fake=fake, d_fake=d_fake, inputs={})
    assert [key for key, _ in terms] == ["alpha_pull", "beta_pull"]
    total = sum(term.weighted for _, term in terms)
    assert torch.allclose(total, 1.5 * fake.square().mean())


def test_order_follows_the_plugins_list(register_plugin, tiny_config):
    order = []

    def make(name):
        class P:
            @hookimpl
            def gancore_step_start(self, run):
                order.append(name)

        P.name = name
        return P

    for name in ("first", "second", "third"):
        register_plugin(make(name))
    Run.build(tiny_config("mlp", ["third", "first", "second"], steps=1)).train()
    assert order == ["third", "first", "second"]
    order.clear()
    Run.build(tiny_config("mlp", ["second", "third", "first"], steps=1)).train()
    assert order == ["second", "third", "first"]


def test_before_d_step_chains_in_list_order(register_plugin, tiny_config):
    seen = []

    class Shift:
        name = "shift"

        @hookimpl
        def gancore_before_d_step(self, real, fake):
            return real + 100.0, fake

    class Look:
        name = "look"

        @hookimpl
        def gancore_d_loss(self, real):
            seen.append(float(real.min()))

    register_plugin(Shift)
    register_plugin(Look)
    Run.build(tiny_config("mlp", ["shift", "look"], steps=1)).train()
    assert seen and seen[0] > 90  # D (and later hooks) saw the replaced batch


def test_generator_inputs_key_clash_names_both(register_plugin, tiny_config):
    def make(name):
        class P:
            @hookimpl
            def gancore_generator_inputs(self, batch_size):
                return {"heatmap": torch.zeros(batch_size)}

        P.name = name
        return P

    register_plugin(make("one"))
    register_plugin(make("two"))
    run = Run.build(tiny_config("mlp", ["one", "two"], steps=1))
    with pytest.raises(HookError, match="hook gancore_generator_inputs of plugin 'two' failed: "
                                        "ValueError: key 'heatmap' is also provided by plugin 'one'"):
        run.train()


def test_exception_in_hook_names_plugin_and_hook(register_plugin, tiny_config):
    class Broken:
        name = "broken"

        @hookimpl
        def gancore_g_loss(self, fake):
            raise RuntimeError("shape mismatch in my head")

    register_plugin(Broken)
    run = Run.build(tiny_config("mlp", ["broken"], steps=1))
    with pytest.raises(HookError) as info:
        run.train()
    assert str(info.value) == "hook gancore_g_loss of plugin 'broken' failed: RuntimeError: shape mismatch in my head"
    assert isinstance(info.value.__cause__, RuntimeError)


def test_bad_sample_weights_are_rejected(register_plugin, tiny_config):
    class Wrong:
        name = "wrong"

        @hookimpl
        def gancore_sample_weights(self, d_fake):
            return torch.ones(3)

    register_plugin(Wrong)
    run = Run.build(tiny_config("mlp", ["wrong"], steps=1))
    with pytest.raises(HookError, match=r"hook gancore_sample_weights of plugin 'wrong' failed: ValueError: returned \[3\]; expected a tensor of shape \[8\]"):
        run.train()


def test_feature_maps_reach_only_the_hooks_that_name_them(register_plugin, tiny_config):
    class Looker:
        name = "looker"

        def __init__(self):
            self.seen = {}

        @hookimpl
        def gancore_d_loss(self, d_real_features, d_fake_features, g_features):
            self.seen["d_loss"] = (d_real_features, d_fake_features, g_features)

        @hookimpl
        def gancore_d_reg_loss(self, d_real_features):
            self.seen["d_reg_loss"] = d_real_features

    looker = Looker()
    register_plugin(looker)
    run = Run.build(tiny_config("dcgan", ["looker"], steps=1, d_reg_interval=1))
    assert run.hooks.wants("gancore_d_loss", "g_features") and not run.hooks.wants("gancore_g_loss", "fake")
    run.train()
    d_real, d_fake, g = looker.seen["d_loss"]
    expected = run.D.feature_channels()
    for feats in (d_real, d_fake, looker.seen["d_reg_loss"]):
        assert {res: f.shape[1:] for res, f in feats.items()} == {res: (c, res, res) for res, c in expected.items()}
    assert d_real[4].requires_grad and d_fake[4].requires_grad
    assert set(g) == set(run.G.block_resolutions()) and not g[4].requires_grad


class _Tagger:
    """Feeds G a per-sample ``tag`` through cond; a cond encoder on G records what it saw."""

    name = "tagger"

    @hookimpl
    def gancore_generator_inputs(self, batch_size):
        return {"tag": torch.zeros(batch_size)}

    @hookimpl
    def gancore_setup(self, run):
        class Record(torch.nn.Module):
            def forward(self, cond):
                self.seen = cond["tag"].clone()
                return cond["tag"]

        run.G.add_cond_encoder("tag_seen", Record())


def test_sample_takes_user_given_cond(register_plugin, tiny_config):
    register_plugin(_Tagger)
    run = Run.build(tiny_config("dcgan", ["tagger"]))
    run.sample(300, seed=1)
    assert not run.G_ema.cond_encoders["tag_seen"].seen.any()
    run.sample(300, seed=1, cond={"tag": torch.arange(300.0)})
    # Sampling goes in chunks of 256; the last chunk saw the user's rows 256..299.
    assert torch.equal(run.G_ema.cond_encoders["tag_seen"].seen, torch.arange(256.0, 300.0))
    with pytest.raises(ValueError, match=r"cond\['tag'\] must be a tensor with 4 rows \(one per sample\), got \[3\]"):
        run.sample(4, cond={"tag": torch.zeros(3)})
