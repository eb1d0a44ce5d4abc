"""The plugin manager: discovery, instantiation, checks, and errors that name the culprit."""

import json
import textwrap

import attrs
import pytest

from gancore import LossTerm, hookimpl
from gancore.api import load_config
from gancore.backbone import BackboneSpec
from gancore.config import ConfigError
from gancore.plugins import PluginError, PluginManager, UnknownPluginError
from gancore.run import Run


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """A distribution 'gancore-fakeplug' installed as a package plus dist-info on sys.path."""
    package = tmp_path / "gancore_fakeplug"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent('''
        """A method plugin installed from a distribution."""
        import attrs
        from gancore import hookimpl, LossTerm

        @attrs.frozen(kw_only=True)
        class FakeConfig:
            scale: float = 1.0

        class FakePlug:
            """Adds a scaled term to D's loss."""
            name = "fakeplug"
            config_class = FakeConfig

            def __init__(self, config):
                self.config = config
                self.steps = 0

            @hookimpl
            def gancore_step_start(self, run):
                self.steps += 1

            @hookimpl
            def gancore_d_loss(self, d_fake):
                return LossTerm("scaled", d_fake.mean() * 0, weight=self.config.scale)
    '''))
    dist = tmp_path / "gancore_fakeplug-0.3.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: gancore-fakeplug\nVersion: 0.3.0\n")
    (dist / "entry_points.txt").write_text("[gancore]\nfakeplug = gancore_fakeplug:FakePlug\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "fakeplug"


def test_entry_point_discovery_from_an_installed_distribution(installed_plugin, tiny_config):
    manager = PluginManager()
    assert "fakeplug" in manager.available_names()
    info = {i.name: i for i in manager.info()}["fakeplug"]
    assert (info.distribution, info.version, info.kind, info.source) == ("gancore-fakeplug", "0.3.0", "method", "entry point")
    assert info.hooks == ("gancore_d_loss", "gancore_step_start")
    assert info.description == "Adds a scaled term to D's loss."
    # Listed plugins are instantiated with their config section and take part in training.
    run = Run.build(tiny_config("mlp", [{"name": "fakeplug", "scale": 2.0}], steps=3))
    run.train()
    plugin = run.plugins["fakeplug"]
    assert plugin.config.scale == 2.0 and plugin.steps == 3
    assert "Loss/D/fakeplug_scaled" in run.last_stats
    assert run.resolved_config()["gancore"]["plugins"]["fakeplug"] == {
        "distribution": "gancore-fakeplug", "version": "0.3.0"}


def test_unlisted_method_plugins_are_not_loaded(installed_plugin, tiny_config):
    run = Run.build(tiny_config("mlp", [], steps=1))
    assert "fakeplug" not in run.plugins
    assert run.manager.pm.get_plugin("fakeplug") is None


def test_unknown_plugin_lists_installed_ones_and_the_install_command():
    manager = PluginManager()
    with pytest.raises(UnknownPluginError) as info:
        manager.plugin_class("fancy")
    message = str(info.value)
    assert message.startswith("plugin 'fancy' is not installed; installed: ")
    assert "dcgan" in message
    assert message.endswith("Try: pip install gancore-fancy")


def test_duplicate_backbone_names_both_plugins(register_plugin):
    from gancore_dcgan.mlp import MLPConfig, MLPDiscriminator, MLPGenerator

    class Copycat:
        name = "copycat"
        kind = "backbone"

        @hookimpl
        def gancore_register_backbones(self, register):
            register(BackboneSpec(name="mlp", config_class=MLPConfig, generator_class=MLPGenerator,
                                  discriminator_class=MLPDiscriminator))

    register_plugin(Copycat)
    with pytest.raises(PluginError) as info:
        PluginManager()
    message = str(info.value)
    assert "backbone 'mlp' is registered twice" in message
    assert "'dcgan'" in message and "'copycat'" in message


def test_check_pending_catches_hook_typos(register_plugin, tiny_config):
    class Typo:
        name = "typo"

        @hookimpl
        def gancore_d_los(self, run):
            pass

    register_plugin(Typo)
    with pytest.raises(PluginError, match="plugin 'typo': implements unknown hook gancore_d_los "
                                          r"\(did you mean gancore_d_loss\?\)"):
        Run.build(tiny_config("mlp", ["typo"]))


def test_hook_with_unknown_argument_is_rejected(register_plugin, tiny_config):
    class BadArgs:
        name = "badargs"

        @hookimpl
        def gancore_step_start(self, run, fake):
            pass

    register_plugin(BadArgs)
    with pytest.raises(PluginError, match=r"plugin 'badargs': hook gancore_step_start takes arguments \(run\), "
                                          "but the implementation asks for fake"):
        Run.build(tiny_config("mlp", ["badargs"]))


def test_requires_and_conflicts(register_plugin, tiny_config):
    class NeedsCaps:
        name = "needy"
        requires = ("backbone.d_features", "helper")

    class Helper:
        name = "helper"

    class Rival:
        name = "rival"
        conflicts = ("needy",)

    for plugin in (NeedsCaps, Helper, Rival):
        register_plugin(plugin)
    with pytest.raises(PluginError, match="plugin 'needy' requires plugin 'helper'; add it to the plugins list"):
        Run.build(tiny_config("mlp", ["needy"]))
    Run.build(tiny_config("mlp", ["needy", "helper"]))  # satisfied
    with pytest.raises(PluginError, match="plugin 'rival' conflicts with plugin 'needy'"):
        Run.build(tiny_config("mlp", ["helper", "needy", "rival"]))


def test_missing_backbone_capability_names_method_and_capability(register_plugin, tiny_config):
    from gancore_dcgan.mlp import MLPConfig, MLPDiscriminator, MLPGenerator

    class Plain:
        name = "plainbones"
        kind = "backbone"

        @hookimpl
        def gancore_register_backbones(self, register):
            register(BackboneSpec(name="bare-mlp", config_class=MLPConfig, generator_class=MLPGenerator,
                                  discriminator_class=MLPDiscriminator, capabilities={"d_features"}))

    class NeedsResume:
        name = "resumer"
        requires = ("backbone.resume_state",)

    register_plugin(Plain)
    register_plugin(NeedsResume)
    raw = tiny_config("mlp", ["resumer"])
    raw["backbone"]["name"] = "bare-mlp"
    with pytest.raises(PluginError, match="plugin 'resumer' requires backbone capability 'resume_state' .*"
                                          "which backbone 'bare-mlp' lacks"):
        Run.build(raw)


def test_plugin_init_failure_names_the_plugin(register_plugin, tiny_config):
    @attrs.frozen
    class Cfg:
        x: int = 1

    class Fragile:
        name = "fragile"
        config_class = Cfg

        def __init__(self, config):
            raise RuntimeError("no GPU")

    register_plugin(Fragile)
    with pytest.raises(PluginError, match="plugin 'fragile' failed to initialise: RuntimeError: no GPU"):
        Run.build(tiny_config("mlp", ["fragile"]))


def test_unknown_plugin_in_a_run_is_a_config_error():
    with pytest.raises(ConfigError, match="plugins.fancy: plugin 'fancy' is not installed"):
        load_config({"plugins": ["fancy"], "backbone": {"name": "mlp"}})


def test_ops_registry_prefers_available_high_priority():
    from gancore.ops import OpsRegistry

    registry = OpsRegistry()
    registry.register("bias_act", "ref", lambda: "ref")
    registry.register("bias_act", "cuda", lambda: "cuda", priority=10, available=lambda: False)
    registry.register("bias_act", "triton", lambda: "triton", priority=5)
    assert registry.get("bias_act").name == "triton"
    assert registry.get("bias_act", "ref").function() == "ref"
    with pytest.raises(KeyError, match="op 'bias_act' has no implementation 'x'; registered: cuda, ref, triton"):
        registry.get("bias_act", "x")
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("bias_act", "ref", lambda: None, owner="other")


def test_hook_wrappers_are_refused(register_plugin, tiny_config):
    class Wrapper:
        name = "wrapper"

        @hookimpl(wrapper=True)
        def gancore_step_start(self, run):
            yield

    register_plugin(Wrapper)
    with pytest.raises(PluginError, match="plugin 'wrapper': hook gancore_step_start is declared as a wrapper"):
        Run.build(tiny_config("mlp", ["wrapper"]))


def test_state_that_json_cannot_give_back_is_refused(register_plugin, tiny_config, tmp_path):
    import torch

    from gancore.plugins import HookError

    class Tuple:
        name = "tuples"

        @hookimpl
        def gancore_state_dict(self):
            return {"pair": (1, 2)}

        @hookimpl
        def gancore_load_state_dict(self, state):
            pass

    class Tensor(Tuple):
        name = "tensors"

        @hookimpl
        def gancore_state_dict(self):
            return {"k": torch.ones(1)}

    register_plugin(Tuple)
    register_plugin(Tensor)
    # Refused when the run is built (the state round-trips once at set-up), not at the first checkpoint.
    with pytest.raises(HookError, match="plugin 'tuples' failed: ValueError: returned a state that JSON does not"):
        Run.build(tiny_config("mlp", ["tuples"], steps=1), out_dir=tmp_path / "a")
    with pytest.raises(HookError, match="plugin 'tensors' failed: ValueError: returned a state that is not JSON"):
        Run.build(tiny_config("mlp", ["tensors"], steps=1), out_dir=tmp_path / "b")
    assert not (tmp_path / "b").exists()  # nothing is written


def test_backbone_provider_in_the_list_does_not_hide_other_problems():
    with pytest.raises(ConfigError) as info:
        load_config({"plugins": ["dcgan", "zzz"], "backbone": {"name": "mlp"}, "train": {"batch": 0}})
    problems = info.value.problems
    assert any(p.startswith("plugins.dcgan: plugin 'dcgan' provides backbones and is always loaded") for p in problems)
    assert any(p.startswith("plugins.zzz: plugin 'zzz' is not installed") for p in problems)
    assert "train.batch: must be > 0, got 0" in problems


# -- a plugin's mistakes, caught before it trains -----------------------------------------------


class _Misspelt:
    """Implements a hook that does not exist."""

    name = "misspelt"

    @hookimpl
    def gancore_step_strat(self, run):
        pass


class _SavesOnly:
    """Saves a state it cannot load."""

    name = "saves_only"

    @hookimpl
    def gancore_state_dict(self):
        return {"seen": 1}


class _Forgetful:
    """Saves a counter but loads nothing back."""

    name = "forgetful"

    def __init__(self):
        self.count = 3

    @hookimpl
    def gancore_state_dict(self):
        self.count += 1
        return {"count": self.count}

    @hookimpl
    def gancore_load_state_dict(self, state):
        pass


def test_gancore_plugins_lists_a_misspelt_hook_and_check_fails(register_plugin, capsys):
    from gancore.cli import main

    assert main(["plugins", "--check"]) == 0  # the bundled plugins have no mistakes
    register_plugin(_Misspelt)
    register_plugin(_SavesOnly)
    capsys.readouterr()
    assert main(["plugins"]) == 0  # listing is not checking
    out = capsys.readouterr().out
    assert "    problem: implements unknown hook gancore_step_strat (did you mean gancore_step_start?)" in out
    assert main(["plugins", "--check"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert "gancore: plugin 'misspelt': implements unknown hook gancore_step_strat (did you mean gancore_step_start?)" in err
    assert any(line.startswith("gancore: plugin 'saves_only': implements gancore_state_dict but not "
                               "gancore_load_state_dict") for line in err)
    assert main(["plugins", "--json"]) == 0
    listed = {info["name"]: info for info in json.loads(capsys.readouterr().out)}
    assert listed["misspelt"]["problems"] and not listed["topk"]["problems"]


def test_a_state_saved_but_never_loaded_is_refused_before_training(register_plugin, tiny_config, tmp_path):
    register_plugin(_SavesOnly)
    with pytest.raises(PluginError, match="plugin 'saves_only': implements gancore_state_dict but not "
                                          "gancore_load_state_dict: its state would be saved in every checkpoint "
                                          "and lost on resume"):
        Run.build(tiny_config("mlp", ["saves_only"]), out_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_state_that_loading_does_not_restore_is_refused_at_set_up(register_plugin, tiny_config):
    from gancore.plugins import HookError

    register_plugin(_Forgetful)
    with pytest.raises(HookError, match="hook gancore_load_state_dict of plugin 'forgetful' failed: ValueError: "
                                        "does not restore what gancore_state_dict saved: {'count': 4} came back as "
                                        "{'count': 5}"):
        Run.build(tiny_config("mlp", ["forgetful"]))


def test_a_loss_term_must_be_one_number(register_plugin, tiny_config):
    import torch

    from gancore.plugins import HookError

    with pytest.raises(ValueError, match=r"LossTerm 'per_sample': value must be one number \(a 0-d tensor\), "
                                         r"got shape \[8\]; reduce it yourself"):
        LossTerm("per_sample", torch.ones(8))

    class PerSample:
        name = "per_sample"

        @hookimpl
        def gancore_g_loss(self, d_fake):
            return LossTerm("raw", -d_fake)  # forgot the .mean()

    register_plugin(PerSample)
    run = Run.build(tiny_config("mlp", ["per_sample"], steps=1))
    with pytest.raises(HookError, match="hook gancore_g_loss of plugin 'per_sample' failed: ValueError: LossTerm "
                                        "'raw': value must be one number"):
        run.trainer.step()
    assert run.step == 0
