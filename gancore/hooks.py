"""The facade through which the core calls hooks: one method per hook, applying its combine rule."""

import json
from typing import TYPE_CHECKING, Any, Callable, Iterator

import torch
from torch import Tensor

from gancore.config import ConfigError
from gancore.losses import LossTerm
from gancore.plugin_errors import HookError

if TYPE_CHECKING:  # pragma: no cover
    from gancore.plugins import PluginManager

__all__ = ["Hooks", "NamedTerm"]

#: A loss term together with the plugin that returned it; ``key`` is ``<plugin>_<term>``.
NamedTerm = tuple[str, LossTerm]


def _bad_result(plugin: str, hook: str, message: str) -> None:
    """Raise a HookError for an implementation that broke its hook's contract."""
    raise HookError(plugin, hook, ValueError(message))


def _shape(tensor: Any) -> str:
    return str(list(tensor.shape)) if isinstance(tensor, Tensor) else type(tensor).__name__


class Hooks:
    """Calls every implementation of a hook, in plugin list order, and combines the results.

    An exception inside an implementation is re-raised as :class:`~gancore.plugins.HookError`
    naming the plugin and the hook.
    """

    def __init__(self, manager: "PluginManager"):
        self._manager = manager

    def wants(self, hook: str, argument: str) -> bool:
        """Whether any implementation of ``hook`` takes ``argument`` (optional, costly inputs)."""
        return any(argument in impl.argnames for _, impl in self._manager.iter_impls(hook))

    def implemented(self, hook: str) -> bool:
        """Whether any plugin implements ``hook``."""
        return any(True for _ in self._manager.iter_impls(hook))

    def _invoke(self, plugin: str, impl: Any, hook: str, arguments: dict[str, Any]) -> Any:
        """Call one implementation with the arguments it names.

        The one place where a failing implementation becomes a HookError naming plugin and hook.
        """
        try:
            return impl.function(*[arguments[name] for name in impl.argnames])
        except (HookError, ConfigError):
            raise
        except Exception as exc:
            raise HookError(plugin, hook, exc) from exc

    def _each(self, hook: str, **kwargs: Any) -> Iterator[tuple[str, Any]]:
        """Call every implementation in list order, yielding ``(plugin, result)``.

        A :class:`_PerPlugin` argument is resolved for each implementation's plugin.
        """
        for plugin, impl in self._manager.iter_impls(hook):
            arguments = {
                name: value(plugin) if isinstance(value, _PerPlugin) else value for name, value in kwargs.items()
            }
            yield plugin, self._invoke(plugin, impl, hook, arguments)

    def _call(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        return list(self._each(hook, **kwargs))

    # -- start-up ---------------------------------------------------------------------------------

    def register_backbones(self, add: Callable[..., None]) -> None:
        """``gancore_register_backbones``: collect every backbone, recording its plugin."""
        self._call(
            "gancore_register_backbones",
            register=_PerPlugin(lambda plugin: lambda spec: add(spec, _owner=plugin)),
        )

    def register_ops(self, add: Callable[..., None]) -> None:
        """``gancore_register_ops``: collect every op implementation, recording its plugin."""
        self._call(
            "gancore_register_ops",
            register=_PerPlugin(lambda plugin: lambda *args, **kw: add(*args, owner=plugin, **kw)),
        )

    def register_feature_extractors(self, add: Callable[..., None]) -> None:
        """``gancore_register_feature_extractors``: collect every extractor, recording its plugin."""
        self._call(
            "gancore_register_feature_extractors",
            register=_PerPlugin(lambda plugin: lambda extractor: add(extractor, owner=plugin)),
        )

    def import_networks(self, checkpoint: Any) -> "tuple[str, Any] | None":
        """``gancore_import_networks``: the first ``(plugin, ImportedModel)`` returned, or None."""
        from gancore.import_types import CheckpointImportError, ImportedModel

        for plugin, impl in self._manager.iter_impls("gancore_import_networks"):
            try:
                result = self._invoke(plugin, impl, "gancore_import_networks", {"checkpoint": checkpoint})
            except Exception as exc:  # the plugin's own, named refusal passes as it is
                if isinstance(exc.__cause__, CheckpointImportError):
                    raise exc.__cause__ from None
                raise
            if result is None:
                continue
            if not isinstance(result, ImportedModel):
                _bad_result(plugin, "gancore_import_networks", f"expected an ImportedModel, got {type(result).__name__}")
            return plugin, result
        return None

    def import_modules(self, checkpoint: Any, model: Any) -> "list[tuple[str, Any]]":
        """``gancore_import_modules`` of every installed method plugin that has it: ``(plugin, ImportedModules)``."""
        from gancore.import_types import CheckpointImportError, ImportedModules

        found = []
        for plugin, function in self._manager.module_importers():
            try:
                result = function(checkpoint=checkpoint, model=model)
            except CheckpointImportError:
                raise
            except Exception as exc:
                        raise HookError(plugin, "gancore_import_modules", exc) from exc
            if result is None:
                continue
            if not isinstance(result, ImportedModules):
                _bad_result(plugin, "gancore_import_modules", f"expected ImportedModules, got {type(result).__name__}")
            found.append((plugin, result))
        return found

    def plugins_importing_modules(self) -> list[str]:
        """The installed method plugins that implement ``gancore_import_modules``."""
        return [plugin for plugin, _ in self._manager.module_importers()]

    def plugins_implementing(self, hook: str) -> list[str]:
        """The plugins that implement ``hook``, in call order."""
        return [plugin for plugin, _ in self._manager.iter_impls(hook)]

    # -- the run ----------------------------------------------------------------------------------

    def setup(self, run: Any) -> None:
        """``gancore_setup``: all called."""
        self._call("gancore_setup", run=run)

    def step_start(self, run: Any) -> None:
        """``gancore_step_start``: all called."""
        self._call("gancore_step_start", run=run)

    def step_end(self, run: Any, stats: dict[str, float]) -> None:
        """``gancore_step_end``: all called with the same (mutable) stats dict."""
        self._call("gancore_step_end", run=run, stats=stats)

    def generator_inputs(self, run: Any, batch_size: int, rng: torch.Generator) -> dict[str, Tensor]:
        """``gancore_generator_inputs``: dicts merged; a key given by two plugins is an error."""
        merged: dict[str, Tensor] = {}
        owner: dict[str, str] = {}
        for plugin, result in self._each("gancore_generator_inputs", run=run, batch_size=batch_size, rng=rng):
            if result is None:
                continue
            if not isinstance(result, dict):
                _bad_result(plugin, "gancore_generator_inputs", f"returned {type(result).__name__}, not a dict")
            for key, value in result.items():
                if key in merged:
                    _bad_result(plugin, "gancore_generator_inputs", f"key {key!r} is also provided by plugin {owner[key]!r}")
                merged[key] = value
                owner[key] = plugin
        return merged

    def before_d_step(self, run: Any, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
        """``gancore_before_d_step``: chained in list order; each may replace ``(real, fake)``."""
        hook = "gancore_before_d_step"
        for plugin, impl in self._manager.iter_impls(hook):
            result = self._invoke(plugin, impl, hook, {"run": run, "real": real, "fake": fake})
            if result is None:
                continue
            if not (isinstance(result, tuple) and len(result) == 2):
                _bad_result(plugin, hook, "must return None or a pair (real, fake)")
            new_real, new_fake = result
            _check_same_shape(plugin, hook, "real", real, new_real)
            _check_same_shape(plugin, hook, "fake", fake, new_fake)
            real, fake = new_real, new_fake
        return real, fake

    def augment(self, run: Any, images: Tensor, c: Tensor | None, phase: str, source: str) -> Tensor:
        """``gancore_augment``: chained in list order; each receives the images the one before returned."""
        hook = "gancore_augment"
        for plugin, impl in self._manager.iter_impls(hook):
            arguments = {"run": run, "images": images, "c": c, "phase": phase, "source": source}
            result = self._invoke(plugin, impl, hook, arguments)
            if result is None:
                continue
            _check_same_shape(plugin, hook, f"{source} images ({phase})", images, result)
            if images.requires_grad and not result.requires_grad:
                why = ("R1 is taken through the transform" if phase == "Dreg" else
                       f"the {phase} phase's gradient flows back through D's score of them")
                _bad_result(plugin, hook, f"returned {source} images cut off from the graph in the {phase} "
                                          f"phase; {why}, so the transform must be differentiable")
            images = result
        return images

    def _terms(self, hook: str, **kwargs: Any) -> list[NamedTerm]:
        terms: list[NamedTerm] = []
        for plugin, result in self._each(hook, **kwargs):
            if result is None:
                continue
            items = result if isinstance(result, (list, tuple)) else [result]
            for term in items:
                if not isinstance(term, LossTerm):
                    _bad_result(plugin, hook, f"returned {type(term).__name__}, expected LossTerm")
                terms.append((f"{plugin}_{term.name}", term))
        return terms

    def d_loss(self, run: Any, **arguments: Any) -> list[NamedTerm]:
        """``gancore_d_loss``: every plugin's LossTerms, named ``<plugin>_<term>``.

        ``arguments`` are the hook's arguments by name (see the spec).
        """
        return self._terms("gancore_d_loss", run=run, **arguments)

    def d_reg_loss(self, run: Any, **arguments: Any) -> list[NamedTerm]:
        """``gancore_d_reg_loss``: every plugin's LossTerms, named ``<plugin>_<term>``."""
        return self._terms("gancore_d_reg_loss", run=run, **arguments)

    def g_loss(self, run: Any, **arguments: Any) -> list[NamedTerm]:
        """``gancore_g_loss``: every plugin's LossTerms, named ``<plugin>_<term>``."""
        return self._terms("gancore_g_loss", run=run, **arguments)

    def teacher_loss(self, run: Any, **arguments: Any) -> list[NamedTerm]:
        """``gancore_teacher_loss``: every plugin's LossTerms, named ``<plugin>_<term>``."""
        return self._terms("gancore_teacher_loss", run=run, **arguments)

    def sample_weights(self, run: Any, fake: Tensor, d_fake: Tensor, **arguments: Any) -> Tensor | None:
        """``gancore_sample_weights``: the product of all plugins' weights (None if all abstain)."""
        hook = "gancore_sample_weights"
        product = None
        for plugin, weights in self._each(hook, run=run, fake=fake, d_fake=d_fake, **arguments):
            if weights is None:
                continue
            if not isinstance(weights, Tensor) or weights.shape != d_fake.shape:
                _bad_result(plugin, hook, f"returned {_shape(weights)}; expected a tensor of shape {list(d_fake.shape)}")
            if bool((weights < 0).any()):
                _bad_result(plugin, hook, "returned negative weights")
            weights = weights.detach().to(d_fake.dtype)
            product = weights if product is None else product * weights
        return product

    # -- checkpoints and publishing ---------------------------------------------------------------

    def state_dict(self, run: Any) -> dict[str, Any]:
        """``gancore_state_dict``: ``{plugin: state}`` for plugins that returned one.

        Each state must survive a JSON round trip unchanged (it is given back exactly on resume).
        """
        states = {}
        for plugin, state in self._each("gancore_state_dict", run=run):
            if state is None:
                continue
            try:
                same = json.loads(json.dumps(state)) == state
            except (TypeError, ValueError) as exc:
                _bad_result(plugin, "gancore_state_dict", f"returned a state that is not JSON: {exc}")
            if not same:
                _bad_result(
                    plugin, "gancore_state_dict",
                    "returned a state that JSON does not give back unchanged (use str keys, lists, no tuples)",
                )
            states[plugin] = state
        return states

    def check_state_round_trip(self, run: Any) -> None:
        """Save every plugin's state, give it back through JSON and save it again: a state that is
        not JSON, or that ``gancore_load_state_dict`` does not restore, is a HookError naming the
        plugin now (at set-up) instead of at the first checkpoint or, silently, on resume."""
        saved = json.loads(json.dumps(self.state_dict(run)))
        self.load_state_dict(run, saved)
        again = json.loads(json.dumps(self.state_dict(run)))
        for plugin in sorted(set(saved) | set(again)):
            if saved.get(plugin) != again.get(plugin):
                _bad_result(plugin, "gancore_load_state_dict",
                            f"does not restore what gancore_state_dict saved: {saved.get(plugin)!r} came back "
                            f"as {again.get(plugin)!r}")

    def load_state_dict(self, run: Any, states: dict[str, Any]) -> None:
        """``gancore_load_state_dict``: each plugin gets its own namespace, if it saved one."""
        hook = "gancore_load_state_dict"
        for plugin, impl in self._manager.iter_impls(hook):
            if plugin in states:
                self._invoke(plugin, impl, hook, {"run": run, "state": states[plugin]})

    def parameter_counts(self, run: Any) -> dict[str, int]:
        """``gancore_parameter_counts``: every plugin's counts, keyed ``<plugin>.<name>``."""
        counts: dict[str, int] = {}
        for plugin, result in self._each("gancore_parameter_counts", run=run):
            if result is None:
                continue
            if not isinstance(result, dict) or not all(isinstance(v, int) for v in result.values()):
                _bad_result(plugin, "gancore_parameter_counts", "expected a dict of {name: int}")
            counts.update({f"{plugin}.{name}": value for name, value in result.items()})
        return counts

    def model_card(self, run: Any) -> str:
        """``gancore_model_card``: fragments joined in list order, each under its plugin's name."""
        parts = []
        for plugin, fragment in self._each("gancore_model_card", run=run):
            if fragment:
                parts.append(f"### {plugin}\n\n{fragment.strip()}\n")
        return "\n".join(parts)


class _PerPlugin:
    """A hook argument that differs per implementation: ``make(plugin_name) -> value``."""

    def __init__(self, make: Callable[[str], Any]):
        self._make = make

    def __call__(self, plugin: str) -> Any:
        return self._make(plugin)


def _check_same_shape(plugin: str, hook: str, what: str, before: Tensor, after: Any) -> None:
    if not isinstance(after, Tensor) or after.shape != before.shape:
        _bad_result(
            plugin, hook,
            f"changed the shapes of the batch: {what} was {list(before.shape)}, the plugin returned {_shape(after)}",
        )
