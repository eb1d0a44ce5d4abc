"""Plugin manager: entry-point discovery, instantiation with config, ordering, checks, listing."""

import difflib
import importlib.metadata as metadata
import inspect
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

import attrs
import pluggy

from gancore import hookspecs
from gancore.backbone import CAPABILITIES, BackboneSpec
from gancore.metrics.extractors import FeatureExtractor, builtin_extractors
from gancore.plugin_errors import HookError, PluginError, PluginKindError, UnknownPluginError

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "ENTRY_POINT_GROUP",
    "HookError",
    "PluginError",
    "PluginInfo",
    "PluginManager",
    "UnknownPluginError",
    "hook_problems",
    "register_local_plugin",
    "unregister_local_plugin",
]

#: The entry-point group every gancore plugin distribution declares.
ENTRY_POINT_GROUP = "gancore"

#: The distributions that provide gancore's bundled backbones, for install hints.
BUNDLED_BACKBONES = {"mlp": "gancore-dcgan", "dcgan": "gancore-dcgan", "stylegan2": "gancore-stylegan2"}

#: Plugin kinds loaded whether or not a run lists them (they only add choices).
INFRASTRUCTURE_KINDS = ("backbone", "ops", "metrics")


@attrs.frozen(kw_only=True)
class PluginInfo:
    """What ``gancore plugins`` reports about one installed plugin."""

    name: str
    kind: str
    distribution: str | None
    version: str | None
    description: str
    hooks: tuple[str, ...]
    source: str  # "entry point" or "local"
    #: What :func:`hook_problems` finds (empty: nothing).
    problems: tuple[str, ...] = ()


# Plugins registered in-process (tests, notebooks): name -> class or instance.
_local_plugins: dict[str, Any] = {}


def register_local_plugin(plugin: Any, name: str | None = None) -> str:
    """Make a plugin class (or instance) available by name without installing a distribution.

    A class is instantiated per run with its config section like an installed plugin; an
    instance is used as it is (and takes no settings). Returns the name it was registered under.
    """
    name = name or getattr(plugin, "name", None)
    if not isinstance(name, str) or not name:
        raise PluginError(f"plugin {plugin!r} has no name; set a `name` attribute or pass name=")
    _local_plugins[name] = plugin
    return name


def unregister_local_plugin(name: str) -> None:
    """Remove a plugin registered with :func:`register_local_plugin` (no error if absent)."""
    _local_plugins.pop(name, None)


def _entry_points() -> dict[str, metadata.EntryPoint]:
    found: dict[str, metadata.EntryPoint] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep)
    return found


def _hook_names(obj: Any) -> tuple[str, ...]:
    names = []
    for attr_name in dir(obj):
        if attr_name.startswith("gancore_"):
            member = getattr(obj, attr_name, None)
            if callable(member) and hasattr(member, "gancore_impl"):
                names.append(attr_name)
    return tuple(sorted(names))


def _registration_problems(plugin: Any) -> list[str]:
    """Hook implementations that cannot be registered: wrappers, and arguments their spec lacks."""
    problems = []
    for hook in _hook_names(plugin):
        member = getattr(plugin, hook)
        options = getattr(member, "gancore_impl", {})
        if options.get("wrapper") or options.get("hookwrapper"):
            problems.append(
                f"hook {hook} is declared as a wrapper; gancore calls every implementation itself to "
                "apply the combine rules, so wrappers are not supported"
            )
        spec = getattr(hookspecs, hook, None)
        if spec is None:
            continue
        allowed = list(inspect.signature(spec).parameters)
        asked = list(inspect.signature(member).parameters)
        if inspect.isclass(plugin):  # a class's functions take self first
            asked = asked[1:]
        extra = [arg for arg in asked if arg not in allowed]
        if extra:
            problems.append(f"hook {hook} takes arguments ({', '.join(allowed)}), but the implementation "
                            f"asks for {', '.join(extra)}")
    return problems


def hook_problems(plugin: Any) -> list[str]:
    """Every mistake in a plugin's hook implementations that can be seen without running them, one
    line each (empty: none): unknown hook names (with the closest known one), wrappers, arguments
    the spec lacks, and a state saved but not loaded (or loaded but never saved). ``plugin`` is a
    plugin class or instance."""
    names = _hook_names(plugin)
    problems = _registration_problems(plugin)
    known = [n for n in dir(hookspecs) if n.startswith("gancore_")]
    for hook in names:
        if hook not in known:
            close = difflib.get_close_matches(hook, known, n=1)
            problems.append(f"implements unknown hook {hook}" + (f" (did you mean {close[0]}?)" if close else ""))
    saves, loads = "gancore_state_dict" in names, "gancore_load_state_dict" in names
    if saves and not loads:
        problems.append("implements gancore_state_dict but not gancore_load_state_dict: its state would be "
                        "saved in every checkpoint and lost on resume")
    if loads and not saves:
        problems.append("implements gancore_load_state_dict but not gancore_state_dict: it would never be "
                        "given a state to load")
    return problems


class PluginManager:
    """Finds installed plugins, builds the ones a run names, and calls their hooks.

    Backbone and ops providers (``kind = "backbone" | "ops"``) are registered on creation; method
    plugins only when :meth:`load_run_plugins` is given their names. Call hooks through
    :attr:`hooks` (a :class:`~gancore.hooks.Hooks` facade that applies every combine rule).
    """

    def __init__(self) -> None:
        from gancore.hooks import Hooks
        from gancore.ops import REGISTRY

        self.pm = pluggy.PluginManager("gancore")
        self.pm.add_hookspecs(hookspecs)
        self._entry_points = _entry_points()
        self._classes: dict[str, Any] = {}
        self.run_plugins: dict[str, Any] = {}
        self.backbones: dict[str, BackboneSpec] = {}
        self._backbone_owner: dict[str, str] = {}
        #: The process-wide op registry (kernels of installed ops plugins are added to it).
        self.ops = REGISTRY
        self.hooks = Hooks(self)
        for name in self.available_names():
            plugin = self.plugin_class(name)
            if getattr(plugin, "kind", "method") in INFRASTRUCTURE_KINDS:
                self._register(name, self._instantiate(name, plugin, None))
        self.hooks.register_backbones(self._add_backbone)
        self.hooks.register_ops(self.ops.register)
        #: Feature extractors for FID, KID and precision/recall, by name.
        self.feature_extractors: dict[str, "FeatureExtractor"] = {}
        self._extractor_owner: dict[str, str] = {}
        for extractor in builtin_extractors():
            self._add_extractor(extractor, owner="gancore")
        self.hooks.register_feature_extractors(self._add_extractor)

    # -- discovery ----------------------------------------------------------------------------

    def available_names(self) -> list[str]:
        """Names of all plugins that can be loaded: installed entry points and local ones."""
        return sorted(set(self._entry_points) | set(_local_plugins))

    def canonical_name(self, name: str) -> str:
        """The installed plugin that ``name`` spells ("-" and "_" alike, any case), or ``name`` itself."""
        if name in _local_plugins or name in self._entry_points:
            return name
        from gancore.config import canonical_name

        matches = [n for n in self.available_names() if canonical_name(n) == canonical_name(name)]
        return matches[0] if len(matches) == 1 else name

    def plugin_class(self, name: str) -> Any:
        """The class (or instance, for local registrations) behind plugin ``name``."""
        name = self.canonical_name(name)
        if name in _local_plugins:
            return _local_plugins[name]
        if name in self._classes:
            return self._classes[name]
        ep = self._entry_points.get(name)
        if ep is None:
            installed = ", ".join(self.available_names()) or "none"
            raise UnknownPluginError(
                f"plugin {name!r} is not installed; installed: {installed}. "
                f"Try: pip install gancore-{name}"
            )
        try:
            loaded = ep.load()
        except Exception as exc:
            raise PluginError(
                f"plugin {name!r} (entry point {ep.value!r}) failed to import: {type(exc).__name__}: {exc}"
            ) from exc
        self._classes[name] = loaded
        return loaded

    def config_class(self, name: str) -> type | None:
        """The config class of method plugin ``name`` (LookupError naming the problem)."""
        plugin = self.plugin_class(name)
        kind = getattr(plugin, "kind", "method")
        if kind in INFRASTRUCTURE_KINDS:
            raise PluginKindError(
                f"plugin {name!r} provides {kind}s and is always loaded; "
                "remove it from the plugins list (choose a backbone with [backbone] name = ...)"
            )
        if not inspect.isclass(plugin):
            return None
        return getattr(plugin, "config_class", None)

    def backbone_config_class(self, name: str) -> type:
        """The config class of registered backbone ``name`` (LookupError listing the known ones)."""
        return self.backbone(name).config_class

    def backbone(self, name: str) -> BackboneSpec:
        """The registered backbone ``name``."""
        try:
            return self.backbones[name]
        except KeyError:
            known = ", ".join(sorted(self.backbones)) or "none"
            dist = BUNDLED_BACKBONES.get(name, f"gancore-{name}")
            raise UnknownPluginError(
                f"backbone {name!r} is not registered; registered: {known}. Try: pip install {dist}"
            ) from None

    def backbone_owner(self, name: str) -> str | None:
        """The plugin that registered backbone ``name`` (None if none did)."""
        return self._backbone_owner.get(name)

    def info(self) -> list[PluginInfo]:
        """Describe every available plugin: kind, distribution, version, hooks."""
        infos = []
        for name in self.available_names():
            plugin = self.plugin_class(name)
            ep = self._entry_points.get(name) if name not in _local_plugins else None
            dist = ep.dist if ep is not None else None
            doc = inspect.getdoc(plugin) or ""
            infos.append(
                PluginInfo(
                    name=name,
                    kind=getattr(plugin, "kind", "method"),
                    distribution=dist.metadata["Name"] if dist is not None else None,
                    version=dist.version if dist is not None else getattr(plugin, "version", None),
                    description=doc.splitlines()[0] if doc else "",
                    hooks=_hook_names(plugin),
                    source="local" if ep is None else "entry point",
                    problems=tuple(hook_problems(plugin)),
                )
            )
        return infos

    def versions(self, names: Iterable[str]) -> dict[str, dict[str, str | None]]:
        """``{plugin: {"distribution": ..., "version": ...}}`` for the given plugin names."""
        by_name = {info.name: info for info in self.info()}
        return {
            name: {"distribution": by_name[name].distribution, "version": by_name[name].version}
            for name in names
            if name in by_name
        }

    def module_importers(self) -> list[tuple[str, Any]]:
        """``(plugin, gancore_import_modules)`` of every installed method plugin implementing it,
        each built with its default settings (for ``gancore import``; the run lists none of them)."""
        found = []
        for name in self.available_names():
            plugin = self.plugin_class(name)
            if getattr(plugin, "kind", "method") in INFRASTRUCTURE_KINDS or "gancore_import_modules" not in _hook_names(plugin):
                continue
            config_class = getattr(plugin, "config_class", None) if inspect.isclass(plugin) else None
            try:
                config = config_class() if config_class is not None else None
            except Exception as exc:
                raise PluginError(
                    f"plugin {name!r} implements gancore_import_modules, but its settings have no defaults to "
                    f"build it with ({type(exc).__name__}: {exc})"
                ) from exc
            found.append((name, self._instantiate(name, plugin, config).gancore_import_modules))
        return found

    # -- registration -------------------------------------------------------------------------

    def _instantiate(self, name: str, plugin: Any, config: Any) -> Any:
        if not inspect.isclass(plugin):
            if config is not None:
                raise PluginError(f"plugin {name!r} was registered as an instance and takes no settings")
            return plugin
        try:
            return plugin(config) if getattr(plugin, "config_class", None) is not None else plugin()
        except Exception as exc:
            raise PluginError(f"plugin {name!r} failed to initialise: {type(exc).__name__}: {exc}") from exc

    def _register(self, name: str, instance: Any) -> None:
        problems = _registration_problems(instance)  # the rest (unknown hooks, ...): check_pending()
        if problems:
            raise PluginError(f"plugin {name!r}: {problems[0]}")
        try:
            self.pm.register(instance, name=name)
        except pluggy.PluginValidationError as exc:
            raise PluginError(f"plugin {name!r} is invalid: {exc}") from exc
        except ValueError as exc:
            raise PluginError(f"plugin {name!r} cannot be registered: {exc}") from exc

    def load_run_plugins(self, entries: Sequence[Any]) -> list[Any]:
        """Instantiate the run's plugins with their configs and register them.

        ``entries`` are :class:`~gancore.config.PluginEntry` objects (``name``, ``config``) in
        list order. They are registered in reverse order, so hooks call the first listed first.
        Returns the instances in list order.
        """
        instances = []
        for entry in entries:
            if entry.name in self.run_plugins:
                raise PluginError(f"plugin {entry.name!r} is listed twice")
            plugin = self.plugin_class(entry.name)
            if getattr(plugin, "kind", "method") in INFRASTRUCTURE_KINDS:
                self.config_class(entry.name)  # raises the explanatory error
            instances.append((entry.name, self._instantiate(entry.name, plugin, entry.config)))
        for name, instance in reversed(instances):
            self._register(name, instance)
        self.run_plugins = {name: instance for name, instance in instances}
        return [instance for _, instance in instances]

    def check_pending(self) -> None:
        """Raise a PluginError for the first of :func:`hook_problems` of any registered plugin
        (a misspelt hook, a state saved but not loaded, ...)."""
        for name, plugin in self.pm.list_name_plugin():
            problems = hook_problems(plugin)
            if problems:
                raise PluginError(f"plugin {name!r}: {problems[0]}")
        self.pm.check_pending()

    def check_requirements(self, backbone: BackboneSpec) -> None:
        """Check every run plugin's ``requires`` and ``conflicts`` against the run.

        ``requires`` holds plugin names and backbone capabilities spelled
        ``"backbone.<capability>"``; ``conflicts`` holds plugin names. One error names both sides.
        """
        problems = []
        names = list(self.run_plugins)
        for name, plugin in self.run_plugins.items():
            for need in getattr(plugin, "requires", ()):
                if need.startswith("backbone."):
                    capability = need.removeprefix("backbone.")
                    if capability not in CAPABILITIES:
                        problems.append(f"plugin {name!r} requires unknown capability {capability!r}")
                    elif capability not in backbone.capabilities:
                        problems.append(
                            f"plugin {name!r} requires backbone capability {capability!r} "
                            f"({CAPABILITIES[capability]}), which backbone {backbone.name!r} lacks"
                        )
                elif need not in names:
                    problems.append(f"plugin {name!r} requires plugin {need!r}; add it to the plugins list")
            for other in getattr(plugin, "conflicts", ()):
                if other in names:
                    problems.append(f"plugin {name!r} conflicts with plugin {other!r}; use one of them")
        if problems:
            raise PluginError("; ".join(problems))

    def _add_extractor(self, extractor: "FeatureExtractor", owner: str = "?") -> None:
        if not isinstance(extractor, FeatureExtractor):
            raise TypeError(f"register() expects a FeatureExtractor, got {type(extractor).__name__}")
        if extractor.name in self.feature_extractors:
            raise PluginError(
                f"feature extractor {extractor.name!r} is registered twice: by {self._extractor_owner[extractor.name]!r} "
                f"and by plugin {owner!r}"
            )
        self.feature_extractors[extractor.name] = extractor
        self._extractor_owner[extractor.name] = owner

    def feature_extractor(self, name: str, device: "torch.device | str" = "cpu") -> "torch.nn.Module":
        """The loaded extractor ``name`` on ``device`` (LookupError listing the registered ones)."""
        import torch

        if name not in self.feature_extractors:
            known = ", ".join(sorted(self.feature_extractors))
            raise UnknownPluginError(f"feature extractor {name!r} is not registered; registered: {known}")
        return self.feature_extractors[name].load(torch.device(device))

    def _add_backbone(self, spec: BackboneSpec, *, _owner: str = "?") -> None:
        if not isinstance(spec, BackboneSpec):
            raise TypeError(f"register() expects a BackboneSpec, got {type(spec).__name__}")
        if spec.name in self.backbones:
            raise PluginError(
                f"backbone {spec.name!r} is registered twice: by plugin {self._backbone_owner[spec.name]!r} "
                f"and by plugin {_owner!r}; uninstall one of them"
            )
        self.backbones[spec.name] = spec
        self._backbone_owner[spec.name] = _owner

    def iter_impls(self, hook_name: str) -> Iterator[tuple[str, Any]]:
        """``(plugin_name, hookimpl)`` pairs of a hook, in call order (first listed first)."""
        caller = getattr(self.pm.hook, hook_name)
        for impl in reversed(caller.get_hookimpls()):
            yield impl.plugin_name, impl
