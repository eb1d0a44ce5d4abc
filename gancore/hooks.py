"""The facade through which the core calls hooks: one method per hook, applying its combine rule."""

import json
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import Tensor

from gancore.config import ConfigError
from gancore.losses import LossTerm

if TYPE_CHECKING:  # pragma: no cover
    from gancore.plugins import PluginManager

__all__ = ["Hooks", "NamedTerm"]

#: A loss term together with the plugin that returned it; ``key`` is ``<plugin>_<term>``.
NamedTerm = tuple[str, LossTerm]


def _bad_result(plugin: str, hook: str, message: str) -> None:
    """Raise a HookError for an implementation that broke its hook's contract."""
    from gancore.plugins import HookError

    raise HookError(plugin, hook, ValueError(message))


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

    def _call(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        from gancore.plugins import HookError

        results = []
        for plugin, impl in self._manager.iter_impls(hook):
            try:
                result = impl.function(*[kwargs[name] for name in impl.argnames])
            except (HookError, ConfigError):
                raise
            except Exception as exc:
                raise HookError(plugin, hook, exc) from exc
            results.append((plugin, result))
        return results

    def _call_each(self, hook: str, make_kwargs: Callable[[str], dict[str, Any]]) -> None:
        from gancore.plugins import HookError

        for plugin, impl in self._manager.iter_impls(hook):
            kwargs = make_kwargs(plugin)
            try:
                impl.function(*[kwargs[name] for name in impl.argnames])
            except (HookError, ConfigError):
                raise
            except Exception as exc:
                raise HookError(plugin, hook, exc) from exc

    # -- start-up ---------------------------------------------------------------------------------

    def register_backbones(self, add: Callable[..., None]) -> None:
        """``gancore_register_backbones``: collect every backbone, recording its plugin."""
        self._call_each(
            "gancore_register_backbones",
            lambda plugin: {"register": lambda spec: add(spec, _owner=plugin)},
        )

    def register_ops(self, add: Callable[..., None]) -> None:
        """``gancore_register_ops``: collect every op implementation, recording its plugin."""
        self._call_each(
            "gancore_register_ops",
            lambda plugin: {"register": lambda *args, **kw: add(*args, owner=plugin, **kw)},
        )

    def register_feature_extractors(self, add: Callable[..., None]) -> None:
        """``gancore_register_feature_extractors``: collect every extractor, recording its plugin."""
        self._call_each(
            "gancore_register_feature_extractors",
            lambda plugin: {"register": lambda extractor: add(extractor, owner=plugin)},
        )

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
        for plugin, result in self._call("gancore_generator_inputs", run=run, batch_size=batch_size, rng=rng):
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
        from gancore.plugins import HookError

        for plugin, impl in self._manager.iter_impls("gancore_before_d_step"):
            kwargs = {"run": run, "real": real, "fake": fake}
            try:
                result = impl.function(*[kwargs[name] for name in impl.argnames])
            except Exception as exc:
                raise HookError(plugin, "gancore_before_d_step", exc) from exc
            if result is None:
                continue
            if not (isinstance(result, tuple) and len(result) == 2):
                _bad_result(plugin, "gancore_before_d_step", "must return None or a pair (real, fake)")
            new_real, new_fake = result
            if new_real.shape != real.shape or new_fake.shape != fake.shape:
                _bad_result(plugin, "gancore_before_d_step", "changed the shapes of the batch")
            real, fake = new_real, new_fake
        return real, fake

    def _terms(self, hook: str, **kwargs: Any) -> list[NamedTerm]:
        terms: list[NamedTerm] = []
        for plugin, result in self._call(hook, **kwargs):
            if result is None:
                continue
            items = result if isinstance(result, (list, tuple)) else [result]
            for term in items:
                if not isinstance(term, LossTerm):
                    _bad_result(plugin, hook, f"returned {type(term).__name__}, expected LossTerm")
                terms.append((f"{plugin}_{term.name}", term))
        return terms

    def d_loss(
        self,
        run: Any,
        real: Tensor,
        fake: Tensor,
        d_real: Tensor,
        d_fake: Tensor,
        d_real_features: dict[int, Tensor] | None = None,
        d_fake_features: dict[int, Tensor] | None = None,
        g_features: dict[int, Tensor] | None = None,
    ) -> list[NamedTerm]:
        """``gancore_d_loss``: every plugin's LossTerms, named ``<plugin>_<term>``."""
        return self._terms(
            "gancore_d_loss", run=run, real=real, fake=fake, d_real=d_real, d_fake=d_fake,
            d_real_features=d_real_features, d_fake_features=d_fake_features, g_features=g_features,
        )

    def d_reg_loss(
        self, run: Any, real: Tensor, d_real: Tensor, d_real_features: dict[int, Tensor] | None = None
    ) -> list[NamedTerm]:
        """``gancore_d_reg_loss``: every plugin's LossTerms, named ``<plugin>_<term>``."""
        return self._terms("gancore_d_reg_loss", run=run, real=real, d_real=d_real, d_real_features=d_real_features)

    def g_loss(
        self,
        run: Any,
        fake: Tensor,
        d_fake: Tensor,
        inputs: dict[str, Any],
        d_fake_features: dict[int, Tensor] | None = None,
    ) -> list[NamedTerm]:
        """``gancore_g_loss``: every plugin's LossTerms, named ``<plugin>_<term>``."""
        return self._terms(
            "gancore_g_loss", run=run, fake=fake, d_fake=d_fake, inputs=inputs, d_fake_features=d_fake_features
        )

    def teacher_loss(
        self, run: Any, fake: Tensor, inputs: dict[str, Any], weights: Tensor | None
    ) -> list[NamedTerm]:
        """``gancore_teacher_loss``: every plugin's LossTerms, named ``<plugin>_<term>``."""
        return self._terms("gancore_teacher_loss", run=run, fake=fake, inputs=inputs, weights=weights)

    def sample_weights(self, run: Any, fake: Tensor, d_fake: Tensor) -> Tensor | None:
        """``gancore_sample_weights``: the product of all plugins' weights (None if all abstain)."""
        product = None
        for plugin, weights in self._call("gancore_sample_weights", run=run, fake=fake, d_fake=d_fake):
            if weights is None:
                continue
            if not isinstance(weights, Tensor) or weights.shape != d_fake.shape:
                shape = list(weights.shape) if isinstance(weights, Tensor) else type(weights).__name__
                _bad_result(
                    plugin, "gancore_sample_weights", f"returned {shape}; expected a tensor of shape {list(d_fake.shape)}"
                )
            if bool((weights < 0).any()):
                _bad_result(plugin, "gancore_sample_weights", "returned negative weights")
            weights = weights.detach().to(d_fake.dtype)
            product = weights if product is None else product * weights
        return product

    # -- checkpoints and publishing ---------------------------------------------------------------

    def state_dict(self, run: Any) -> dict[str, Any]:
        """``gancore_state_dict``: ``{plugin: state}`` for plugins that returned one.

        Each state must survive a JSON round trip unchanged (it is given back exactly on resume).
        """
        states = {}
        for plugin, state in self._call("gancore_state_dict", run=run):
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

    def load_state_dict(self, run: Any, states: dict[str, Any]) -> None:
        """``gancore_load_state_dict``: each plugin gets its own namespace, if it saved one."""
        from gancore.plugins import HookError

        for plugin, impl in self._manager.iter_impls("gancore_load_state_dict"):
            if plugin not in states:
                continue
            kwargs = {"run": run, "state": states[plugin]}
            try:
                impl.function(*[kwargs[name] for name in impl.argnames])
            except Exception as exc:
                raise HookError(plugin, "gancore_load_state_dict", exc) from exc

    def parameter_counts(self, run: Any) -> dict[str, int]:
        """``gancore_parameter_counts``: every plugin's counts, keyed ``<plugin>.<name>``."""
        counts: dict[str, int] = {}
        for plugin, result in self._call("gancore_parameter_counts", run=run):
            if result is None:
                continue
            if not isinstance(result, dict) or not all(isinstance(v, int) for v in result.values()):
                _bad_result(plugin, "gancore_parameter_counts", "expected a dict of {name: int}")
            counts.update({f"{plugin}.{name}": value for name, value in result.items()})
        return counts

    def model_card(self, run: Any) -> str:
        """``gancore_model_card``: fragments joined in list order, each under its plugin's name."""
        parts = []
        for plugin, fragment in self._call("gancore_model_card", run=run):
            if fragment:
                parts.append(f"### {plugin}\n\n{fragment.strip()}\n")
        return "\n".join(parts)
