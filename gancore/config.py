"""Run configuration: frozen attrs classes, one cattrs converter, TOML run files and --set overrides."""

import copy
import difflib
import json
import math
import sys
import types
import typing
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "BackboneEntry",
    "ConfigError",
    "canonical_dataset",
    "canonical_name",
    "DATASET_NAMES",
    "DataConfig",
    "PluginEntry",
    "RunConfig",
    "TrainConfig",
    "apply_overrides",
    "converter",
    "ge",
    "gt",
    "le",
    "load_raw_config",
    "lt",
    "one_of",
    "parse_run_config",
    "set_value",
]


class ConfigError(ValueError):
    """A run configuration with one or more problems, each a dotted path and a reason."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = list(problems)
        super().__init__(self.render())

    def render(self) -> str:
        """The report printed by the CLI: a header line and one indented line per problem."""
        return "\n".join([f"config error in {self.source}"] + [f"  {p}" for p in self.problems])


# -- validators with messages that read well after a dotted path -----------------------------


def _comparison(symbol: str, bound: float, ok: Callable[[Any, float], bool]) -> Callable:
    def validate(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if isinstance(value, float) and not math.isfinite(value):  # inf passes a comparison, then diverges
            raise ValueError(f"must be a finite number {symbol} {bound}, got {value!r}")
        if value is not None and not ok(value, bound):
            raise ValueError(f"must be {symbol} {bound}, got {value!r}")

    validate.__doc__ = f"Check that a value is {symbol} {bound} (None passes)."
    return validate


def gt(bound: float) -> Callable:
    """Validator: value > bound."""
    return _comparison(">", bound, lambda v, b: v > b)


def ge(bound: float) -> Callable:
    """Validator: value >= bound."""
    return _comparison(">=", bound, lambda v, b: v >= b)


def lt(bound: float) -> Callable:
    """Validator: value < bound."""
    return _comparison("<", bound, lambda v, b: v < b)


def le(bound: float) -> Callable:
    """Validator: value <= bound."""
    return _comparison("<=", bound, lambda v, b: v <= b)


def one_of(*choices: Any) -> Callable:
    """Validator: value is one of ``choices`` (None passes only if listed)."""

    def validate(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
        if value not in choices:
            listed = ", ".join(repr(c) for c in choices)
            raise ValueError(f"must be one of {listed}, got {value!r}")

    return validate


# -- the converter ------------------------------------------------------------------------------


def _strict_int(value: Any, _: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def _strict_float(value: Any, _: type) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


def _strict_bool(value: Any, _: type) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {value!r}")
    return value


def _strict_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _optional_number_type(kind: Any) -> type | None:
    """``int`` or ``float`` when ``kind`` is ``int | None`` or ``float | None``, else None."""
    args = typing.get_args(kind)
    if len(args) == 2 and type(None) in args:
        inner = next(a for a in args if a is not type(None))
        if inner in (int, float):
            return inner
    return None


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    conv.register_structure_hook(int, _strict_int)
    conv.register_structure_hook(float, _strict_float)
    conv.register_structure_hook(bool, _strict_bool)
    conv.register_structure_hook(str, _strict_str)

    # TOML has no null: an optional number takes the string "none" for None.
    def optional_number(value: Any, kind: Any) -> int | float | None:
        if value is None or value == "none":
            return None
        if isinstance(value, str):
            raise TypeError(f'expected a number or "none", got {value!r}')
        return conv.structure(value, _optional_number_type(kind))

    conv.register_structure_hook_func(lambda kind: _optional_number_type(kind) is not None, optional_number)
    return conv


#: The one converter of gancore: strict types, unknown keys are errors.
converter: cattrs.Converter = _make_converter()


# -- the core's config sections -----------------------------------------------------------------


#: Names accepted by ``[data] name``; ``gancore.data`` builds one data set for each.
DATASET_NAMES: tuple[str, ...] = ("mog25", "ring8", "synthetic-images", "folder", "fmnist", "huggingface")
#: Other spellings of data set names ("-" and "_" are alike, case does not matter).
DATASET_ALIASES = {"fashion-mnist": "fmnist", "fashionmnist": "fmnist", "hf": "huggingface"}


def canonical_name(name: str) -> str:
    """A name with "_" as "-" and in lower case: plugin and data set names compare like pip's."""
    return name.strip().lower().replace("_", "-")


def canonical_dataset(name: Any) -> Any:
    """The data set name ``name`` stands for (``fashion_mnist`` -> ``fmnist``); unknown names unchanged."""
    if not isinstance(name, str):
        return name
    key = canonical_name(name)
    key = DATASET_ALIASES.get(key, key)
    return key if key in DATASET_NAMES else name


def _known_dataset(instance: Any, attribute: attrs.Attribute, value: str) -> None:
    if canonical_dataset(value) not in DATASET_NAMES:
        raise ValueError(f"unknown data set {value!r}; known: {', '.join(DATASET_NAMES)}")


@attrs.frozen(kw_only=True)
class DataConfig:
    """The ``[data]`` table: which data set, where it lives and how it is shaped."""

    name: str = attrs.field(default="mog25", converter=canonical_dataset, validator=_known_dataset)
    path: str | None = None
    resolution: int | None = attrs.field(default=None, validator=gt(0))
    channels: int | None = attrs.field(default=None, validator=one_of(None, 1, 3))
    num_samples: int | None = attrs.field(default=None, validator=gt(0))
    max_items: int | None = attrs.field(default=None, validator=gt(0))
    xflip: bool = False
    std: float | None = attrs.field(default=None, validator=gt(0.0))
    labels: bool = False
    #: With ``labels``: how many classes the data set has (None: read from it). Declaring it lets a
    #: run be described without its data (``gancore info``); a data set with another count is refused.
    num_classes: int | None = attrs.field(default=None, validator=gt(0))
    split: str = "train"
    #: ``huggingface``: the column of images (None: the first Image column) ...
    image_column: str | None = None
    #: ... and of class labels (None: the first ClassLabel column).
    label_column: str | None = None
    fit: str = attrs.field(default="resize", validator=one_of("resize", "pad"))
    seed: int = 0


def _known_metrics(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    from gancore.metrics.names import CONDITIONAL_METRICS
    from gancore.metrics.generative import METRICS
    from gancore.metrics.memorisation import D_METRICS

    known = METRICS + CONDITIONAL_METRICS + D_METRICS
    unknown = [m for m in value if m not in known]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; known: {', '.join(known)}")


@attrs.frozen(kw_only=True)
class TrainConfig:
    """The ``[train]`` table: length, optimisation, regularisation, logging."""

    steps: int = attrs.field(default=1000, validator=gt(0))
    batch: int = attrs.field(default=64, validator=gt(0))
    batch_per_gpu: int | None = attrs.field(default=None, validator=gt(0))
    seed: int = 0
    loss: str = attrs.field(default="nonsaturating", validator=one_of("nonsaturating", "hinge", "wasserstein"))
    g_lr: float = attrs.field(default=0.002, validator=gt(0.0))
    d_lr: float = attrs.field(default=0.002, validator=gt(0.0))
    betas: tuple[float, float] = attrs.field(default=(0.0, 0.99))
    r1_gamma: float = attrs.field(default=1.0, validator=ge(0.0))
    d_reg_interval: int = attrs.field(default=16, validator=ge(1))
    pl_weight: float = attrs.field(default=0.0, validator=ge(0.0))
    pl_decay: float = attrs.field(default=0.01, validator=[gt(0.0), le(1.0)])
    pl_batch_shrink: int = attrs.field(default=2, validator=ge(1))
    g_reg_interval: int = attrs.field(default=4, validator=ge(1))
    ema_kimg: float = attrs.field(default=10.0, validator=ge(0.0))
    ema_rampup: float | None = attrs.field(default=0.05, validator=gt(0.0))
    #: G_ema's decay per step (BigGAN's 0.9999); None: NVIDIA's half-life of ``ema_kimg`` thousand images.
    ema_decay: float | None = attrs.field(default=None, validator=attrs.validators.optional([ge(0.0), lt(1.0)]))
    #: G_ema copies G until this G step, counted from 1 (BigGAN's ``ema_start``).
    ema_start: int = attrs.field(default=0, validator=ge(0))
    #: G_ema's buffers (batch-norm statistics, spectral-norm vectors): ``copy`` G's (NVIDIA) or
    #: ``average`` them like the weights (BigGAN).
    ema_buffers: str = attrs.field(default="copy", validator=one_of("copy", "average"))
    #: D steps per G step, each on a real batch of its own (BigGAN's ``num_D_steps``).
    d_steps: int = attrs.field(default=1, validator=ge(1))
    #: Adam's epsilon.
    adam_eps: float = attrs.field(default=1e-8, validator=gt(0.0))
    #: Lazy regularisation's scaling of lr and betas: ``always`` (NVIDIA's loop: by the interval,
    #: whether or not the regulariser runs) or ``active`` (only for a network whose lazy regulariser
    #: is on: R1 for D, path length for G; plain Adam otherwise, as BigGAN).
    lazy_scaling: str = attrs.field(default="always", validator=one_of("always", "active"))
    #: How G_ema's batch norms normalise when it samples (grids, metrics, ``from_pretrained``):
    #: ``running`` statistics, each ``batch``'s own (BigGAN's CIFAR numbers), or ``standing``
    #: statistics re-estimated over ``standing_passes`` fresh batches first.
    sample_bn: str = attrs.field(default="running", validator=one_of("running", "batch", "standing"))
    standing_passes: int = attrs.field(default=16, validator=ge(1))
    #: The labels of the fakes in a conditional run: ``real`` (those of the step's real batch) or
    #: ``uniform`` (drawn uniformly, independently of it, as BigGAN does).
    fake_labels: str = attrs.field(default="real", validator=one_of("real", "uniform"))
    precision: str = attrs.field(default="fp32", validator=one_of("fp32", "bf16"))
    compile: bool = False
    compile_backend: str = "inductor"
    device: str = attrs.field(default="auto")
    log_every: int = attrs.field(default=100, validator=ge(1))
    sample_every: int = attrs.field(default=0, validator=ge(0))
    checkpoint_every: int = attrs.field(default=0, validator=ge(0))
    keep_checkpoints: int = attrs.field(default=3, validator=ge(1))
    eval_every: int = attrs.field(default=0, validator=ge(0))
    eval_samples: int = attrs.field(default=10000, validator=gt(0))
    metrics: tuple[str, ...] = attrs.field(default=(), converter=tuple, validator=_known_metrics)
    metrics_extractor: str | None = None
    #: The split of the data set that the metrics compare against, whole (``data.max_items`` not
    #: applied): ``"test"`` measures against images the run never trained on, as limited-data
    #: papers report FID. None: the training data as configured.
    metrics_split: str | None = None
    tensorboard: bool = True
    grid: int = attrs.field(default=64, validator=gt(0))
    progress: bool = True
    divergence: str = attrs.field(default="stop", validator=one_of("stop", "warn", "off"))
    divergence_limit: float = attrs.field(default=1e4, validator=gt(0.0))
    divergence_steps: int = attrs.field(default=20, validator=ge(1))
    #: Warn when D has given every image the same score for this many steps in a row (a dead D: G
    #: learns nothing from it); 0: never.
    dead_d_steps: int = attrs.field(default=50, validator=ge(0))
    #: Processes that read and decode the real batches ahead of training (None: automatic, up to 3
    #: for data sets that read files, none for in-memory data; 0: in the training process).
    data_workers: int | None = attrs.field(default=None, validator=ge(0))
    #: A model folder or Hub repo (``gancore export`` / ``gancore import``) whose G, D and G_ema
    #: start a new run (fine-tuning); None: random initialisation.
    init: str | None = None

    @betas.validator
    def _check_betas(self, attribute: attrs.Attribute, value: tuple[float, float]) -> None:
        if not all(0.0 <= b < 1.0 for b in value):
            raise ValueError(f"each beta must be in [0, 1), got {list(value)}")

    @device.validator
    def _check_device(self, attribute: attrs.Attribute, value: str) -> None:
        if value not in ("auto", "cpu", "cuda") and not value.startswith("cuda:"):
            raise ValueError(f"must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {value!r}")


@attrs.frozen(kw_only=True)
class BackboneEntry:
    """The ``[backbone]`` table: a registered backbone's name and its own config."""

    name: str
    config: Any


@attrs.frozen(kw_only=True)
class PluginEntry:
    """One entry of the ``plugins`` list: a plugin's name and its config (None if it has none)."""

    name: str
    config: Any = None


@attrs.frozen(kw_only=True)
class RunConfig:
    """A whole run: backbone, data, training, and the ordered plugin stack."""

    backbone: BackboneEntry
    data: DataConfig = attrs.field(factory=DataConfig)
    train: TrainConfig = attrs.field(factory=TrainConfig)
    plugins: tuple[PluginEntry, ...] = ()

    @property
    def plugin_names(self) -> list[str]:
        """Names of the run's plugins, in list order."""
        return [entry.name for entry in self.plugins]

    def plugin_config(self, name: str) -> Any:
        """The config of plugin ``name`` (KeyError if the run does not use it)."""
        for entry in self.plugins:
            if entry.name == name:
                return entry.config
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """The config in run-file shape (what TOML and config.json hold)."""
        return {
            "plugins": [
                {"name": e.name, **(converter.unstructure(e.config) if e.config is not None else {})}
                for e in self.plugins
            ],
            "backbone": {"name": self.backbone.name, **converter.unstructure(self.backbone.config)},
            "data": converter.unstructure(self.data),
            "train": converter.unstructure(self.train),
        }

    def evolve(self, **sections: Any) -> "RunConfig":
        """A copy with whole sections replaced, e.g. ``evolve(train=attrs.evolve(cfg.train, steps=5))``."""
        return attrs.evolve(self, **sections)


# -- reading files and overrides ----------------------------------------------------------------

#: Top-level key that config.json carries for information (versions); ignored when parsing.
META_KEY = "gancore"


def load_raw_config(path: str | Path) -> dict[str, Any]:
    """Read a TOML run file (or a run's config.json) into a plain dict."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), ["file not found"]) from None
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read the file: {exc.strerror}"]) from None
    try:
        if path.suffix == ".json":
            raw = json.loads(text)
        else:
            raw = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(str(path), [f"not valid {path.suffix.lstrip('.').upper() or 'TOML'}: {exc}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError(str(path), ["the file must hold a table of settings"])
    raw.pop(META_KEY, None)
    return raw


def parse_value(text: str) -> Any:
    """A --set value: a TOML literal (number, bool, string, array, inline table) or a bare string.

    A value that starts like an array or inline table but is not valid TOML raises a ValueError
    with the TOML parser's message (``[0.5,`` is a typo, not the string "[0.5,").
    """
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError as exc:
        if text.startswith(("[", "{", '"', "'")):
            raise ValueError(f"{text!r} is not a TOML value ({str(exc).split(' (at')[0]})") from None
        return text


def apply_overrides(raw: Mapping[str, Any], overrides: Iterable[str], source: str = "--set") -> dict[str, Any]:
    """Apply ``dotted.key=value`` overrides (values are TOML literals) and return the new dict.

    ``plugins.<name>.<field>`` addresses the plugin named ``<name>`` in the ``plugins`` list.
    """
    out = copy.deepcopy(dict(raw))
    problems = []
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            problems.append(f"{item!r}: expected dotted.key=value")
            continue
        try:
            value = parse_value(text.strip())
        except ValueError as exc:
            problems.append(f"{key.strip()}: {exc}")
            continue
        problem = set_value(out, key.strip(), value)
        if problem:
            problems.append(problem)
    if problems:
        raise ConfigError(source, problems)
    return out


def set_value(raw: dict[str, Any], key: str, value: Any) -> str | None:
    """Set ``dotted.key`` in a raw config dict in place; returns a problem message or None."""
    parts = key.split(".")
    if any(not part for part in parts):
        return f"{key}: empty part in the dotted key"
    if parts[0] == "plugins" and len(parts) >= 2:
        problem = _set_plugin_field(raw, parts[1], parts[2:], value)
        return f"{key}: {problem}" if problem else None
    node = raw
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            return f"{'.'.join(parts[: i + 1])}: is not a table"
        node = child
    node[parts[-1]] = value
    return None


def _set_plugin_field(raw: dict[str, Any], name: str, rest: list[str], value: Any) -> str | None:
    entries = raw.get("plugins", [])
    if not isinstance(entries, list):
        return "the plugins key must be a list"
    for i, entry in enumerate(entries):
        entry_name = entry if isinstance(entry, str) else entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(entry_name, str) or canonical_name(entry_name) != canonical_name(name):
            continue
        if not rest:
            return "give a field, e.g. plugins.<name>.<field>=value"
        table = {"name": name} if isinstance(entry, str) else entry
        entries[i] = table
        for part in rest[:-1]:
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                return f"{part} is not a table"
        table[rest[-1]] = value
        return None
    listed = ", ".join(_entry_names(entries)) or "none"
    return f"plugin {name!r} is not in the run's plugins list (listed: {listed})"


def _entry_names(entries: list[Any]) -> list[str]:
    return [e if isinstance(e, str) else str(e.get("name")) for e in entries if isinstance(e, (str, dict))]


# -- structuring with every problem reported at once -------------------------------------------


def parse_run_config(
    raw: Mapping[str, Any],
    backbone_config_class: Callable[[str], type],
    plugin_config_class: Callable[[str], type | None],
    source: str = "<config>",
    plugin_name: Callable[[str], str] | None = None,
) -> RunConfig:
    """Structure a raw config dict into a :class:`RunConfig`, reporting all problems at once.

    ``backbone_config_class(name)`` and ``plugin_config_class(name)`` look up the config classes
    of registered backbones and installed plugins; they raise ``LookupError`` with a helpful
    message for unknown names. ``plugin_name(name)`` turns another spelling of an installed
    plugin's name (``eqgan-sa``) into its own (``eqgan_sa``).
    """
    problems: list[str] = []
    raw = {key: value for key, value in raw.items() if key != META_KEY}
    known = {"plugins", "backbone", "data", "train"}
    for key in raw:
        if key not in known:
            problems.append(_unknown_key(key, key, known))

    backbone = None
    backbone_raw = raw.get("backbone")
    if backbone_raw is None:
        problems.append("backbone: required table missing (e.g. [backbone] name = \"mlp\")")
    elif not isinstance(backbone_raw, dict):
        problems.append(f"backbone: expected a table, got {backbone_raw!r}")
    else:
        fields = dict(backbone_raw)
        name = fields.pop("name", None)
        if not isinstance(name, str):
            problems.append("backbone.name: required string missing")
        else:
            try:
                cls = backbone_config_class(name)
            except LookupError as exc:
                problems.append(f"backbone.name: {exc.args[0]}")
            else:
                config = structure_section(fields, cls, "backbone", problems)
                if config is not None:
                    backbone = BackboneEntry(name=name, config=config)

    data = structure_section(raw.get("data", {}), DataConfig, "data", problems)
    train = structure_section(raw.get("train", {}), TrainConfig, "train", problems)

    plugins: list[PluginEntry] = []
    entries = raw.get("plugins", [])
    if not isinstance(entries, list):
        problems.append(
            "plugins: expected a list of plugin names or tables "
            '(plugins = ["topk"], or [[plugins]] tables with name = "topk")'
        )
        entries = []
    seen: set[str] = set()
    for position, entry in enumerate(entries):
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            problems.append(f"plugins[{position}]: expected a plugin name or a table with a name")
            continue
        fields = dict(entry)
        name = fields.pop("name")
        name = plugin_name(name) if plugin_name is not None else name
        path = f"plugins.{name}"
        if name in seen:
            problems.append(f"{path}: listed twice")
            continue
        seen.add(name)
        try:
            cls = plugin_config_class(name)
        except LookupError as exc:
            problems.append(f"{path}: {exc.args[0]}")
            continue
        if cls is None:
            if fields:
                problems.append(f"{path}: plugin {name!r} takes no settings, got {sorted(fields)}")
                continue
            plugins.append(PluginEntry(name=name, config=None))
            continue
        config = structure_section(fields, cls, path, problems)
        if config is not None:
            plugins.append(PluginEntry(name=name, config=config))

    if data is not None and train is not None:
        problems += _metrics_problems(data, train)
    if problems:
        raise ConfigError(source, problems)
    assert backbone is not None and data is not None and train is not None
    return RunConfig(backbone=backbone, data=data, train=train, plugins=tuple(plugins))


def _metrics_problems(data: DataConfig, train: TrainConfig) -> list[str]:
    """What is wrong between ``train.metrics`` and the data they are measured on."""
    from gancore.metrics.names import CLASSIFIERS, CONDITIONAL_METRICS
    from gancore.metrics.memorisation import MEMORISATION

    problems = []
    if MEMORISATION in train.metrics and train.metrics_split in (None, data.split):
        problems.append(f"train.metrics: {MEMORISATION!r} compares D on its training images with images it never "
                        f"saw; set train.metrics_split to a split other than data.split {data.split!r} (for example "
                        f"\"test\")")
    conditional = [m for m in train.metrics if m in CONDITIONAL_METRICS]
    if conditional and not data.labels:
        problems.append(f"train.metrics: {', '.join(map(repr, conditional))} measure a class-conditional G; "
                        "set data.labels = true")
    if "class_accuracy" in train.metrics and data.name not in CLASSIFIERS:
        problems.append(f"train.metrics: 'class_accuracy' needs a classifier of the data set; none ships for "
                        f"{data.name!r} (only for {', '.join(CLASSIFIERS)})")
    return problems


def structure_section(data: Any, cls: type, path: str, problems: list[str]) -> Any:
    """Structure one table into attrs class ``cls``; append problems instead of raising.

    Each field is converted and validated on its own, so every problem of the table is found.
    """
    if not isinstance(data, Mapping):
        problems.append(f"{path}: expected a table, got {data!r}")
        return None
    before = len(problems)
    try:
        attrs.resolve_types(cls)
    except Exception:  # unresolvable string annotations: cattrs reports them per field below
        pass
    fields = {field.alias: field for field in attrs.fields(cls) if field.init}
    for key in data:
        if key not in fields:
            problems.append(_unknown_key(f"{path}.{key}", key, fields))
    values = {}
    deferred = []
    for name, field in fields.items():
        where = f"{path}.{name}"
        if name not in data:
            if field.default is attrs.NOTHING:
                problems.append(f"{where}: required key missing")
            continue
        if attrs.has(field.type) and isinstance(data[name], Mapping):
            value = structure_section(data[name], field.type, where, problems)
            if value is not None:
                values[name] = value
            continue
        try:
            value = converter.structure(data[name], field.type)
        except Exception as exc:
            problems.extend(_describe(exc, where))
            continue
        if field.validator is not None:
            try:
                field.validator(None, field, value)
            except (ValueError, TypeError) as exc:
                problems.append(f"{where}: {exc}")
                continue
            except AttributeError:
                deferred.append((where, field, value))  # it reads other fields: checked below
        values[name] = value
    if deferred and len(problems) == before:
        others = {f.alias: _default_of(f) for f in fields.values()} | values
        instance = types.SimpleNamespace(**{fields[alias].name: value for alias, value in others.items()})
        for where, field, value in deferred:
            try:
                field.validator(instance, field, value)
            except (ValueError, TypeError) as exc:
                problems.append(f"{where}: {exc}")
    if len(problems) != before:
        return None
    try:
        return cls(**values)
    except (ValueError, TypeError) as exc:
        problems.append(f"{path}: {exc}")
        return None


def _default_of(field: attrs.Attribute) -> Any:
    """A field's default value (None when it has none)."""
    if isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
        return field.default.factory()
    return None if field.default is attrs.NOTHING else field.default


def _unknown_key(path: str, key: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{path}: unknown key{hint}"


def _describe(exc: BaseException, path: str) -> list[str]:
    """Flatten a cattrs validation error into ``dotted.path: reason`` lines."""
    lines = []
    if isinstance(exc, ClassValidationError):
        with_notes, without = exc.group_exceptions()
        for inner, note in with_notes:
            name = getattr(note, "name", None)
            where = f"{path}.{name}" if name is not None else path
            lines.extend(_describe(inner, where))
        for inner in without:
            lines.extend(_describe(inner, path))
    elif isinstance(exc, IterableValidationError):
        with_notes, without = exc.group_exceptions()
        for inner, note in with_notes:
            lines.extend(_describe(inner, f"{path}[{getattr(note, 'index', '?')}]"))
        for inner in without:
            lines.extend(_describe(inner, path))
    elif isinstance(exc, ForbiddenExtraKeysError):
        lines.extend(f"{path}.{k}: unknown key" for k in sorted(exc.extra_fields))
    elif isinstance(exc, KeyError):
        lines.append(f"{path}: required key missing")
    elif isinstance(getattr(exc, "exceptions", None), (list, tuple)):  # an exception group
        for inner in exc.exceptions:
            lines.extend(_describe(inner, path))
    else:
        lines.append(f"{path}: {exc}")
    return lines
