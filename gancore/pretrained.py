"""Exported model folders (config.json, gan_index.json, one safetensors file per network) and loading
a run's networks from a run folder, a checkpoint folder, an exported folder or a Hub repo.

Only JSON and safetensors files are ever read.
"""

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gancore import checkpoint as ckpt
from gancore.backbone import DataInfo
from gancore.checkpoint import CheckpointError
from gancore.config import META_KEY
from gancore.files import write_folder_atomically
from gancore.model_folder import (  # noqa: F401  (the folder format, re-exported here)
    ALLOWED_SUFFIXES,
    COMPONENTS,
    FORMAT_VERSION,
    INDEX_FILE,
    UnsafeFilesError,
    check_files,
    component_paths,
    download_repo,
    initialise_from,
    is_exported,
)
from gancore.model_folder import looks_like_repo_id as _looks_like_repo_id
from gancore.model_folder import read_json as _read_json

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from gancore.plugins import PluginManager
    from gancore.run import Run

__all__ = [
    "ALLOWED_SUFFIXES",
    "COMPONENTS",
    "INDEX_FILE",
    "MissingPluginError",
    "UnsafeFilesError",
    "export",
    "from_pretrained",
    "initialise_from",
    "is_exported",
    "load_run",
    "push_to_hub",
]

class MissingPluginError(CheckpointError):
    """A model needs a plugin (or backbone) that is not installed."""


def export(source: str | Path, out_dir: str | Path, repo_id: str | None = None) -> Path:
    """Write a run's newest checkpoint (or a given checkpoint folder) as an exported folder.

    The folder holds ``config.json`` (the resolved config, with versions and data info under
    ``gancore``), ``gan_index.json`` (format, step, the component files),
    ``G.safetensors``, ``D.safetensors``, ``G_ema.safetensors``, ``samples.png`` (G_ema's grid)
    and ``README.md`` (the model card; ``repo_id`` names the model in it). It is written next to
    ``out_dir`` and renamed into place, so a failure leaves no half folder.
    """
    checkpoint = ckpt.find_checkpoint(source)
    state = ckpt.read_state(checkpoint)
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise CheckpointError(f"{out_dir}: folder exists and is not empty")
    return write_folder_atomically(out_dir, lambda tmp: _write_model_folder(tmp, checkpoint, state, repo_id))


def _write_model_folder(folder: Path, checkpoint: Path, state: dict[str, Any], repo_id: str | None) -> None:
    """The files of a model folder exported from ``checkpoint``."""
    config = dict(state["config"])
    config[META_KEY] = {**config.get(META_KEY, {}), "data_info": state["data_info"]}
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    index = {
        "library": "gancore",
        "format_version": FORMAT_VERSION,
        "step": state["step"],
        "nimg": state["nimg"],
        "components": {name: f"{name}.safetensors" for name in COMPONENTS},
    }
    (folder / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    for name in COMPONENTS:
        shutil.copyfile(checkpoint / f"{name}.safetensors", folder / f"{name}.safetensors")
    _write_card_and_grid(checkpoint, folder, repo_id)


def _write_card_and_grid(checkpoint: Path, folder: Path, repo_id: str | None) -> None:
    from gancore.modelcard import render_model_card
    from gancore.run import Run

    run = Run.from_checkpoint(checkpoint, ("G_ema",))
    run_dir = checkpoint.parent.parent
    state = ckpt.read_state(checkpoint)
    # The metrics of this step: a `gancore eval` of it, else the training run's own evaluation.
    metrics, protocol = dict(state.get("metrics") or {}), dict(state.get("metrics_protocol") or {})
    evaluation = run_dir / f"eval-step-{run.step:06d}.json"
    if evaluation.is_file():
        found = _read_json(evaluation)
        metrics, protocol = {**metrics, **found.get("metrics", {})}, found.get("protocol", {})
    counts = {}
    if (run_dir / "summary.json").is_file():
        counts = dict(_read_json(run_dir / "summary.json").get("params") or {})
    run.save_sample_grid(folder / "samples.png", n=16 if run.data_info.is_image else None)
    card = render_model_card(run, repo_id, metrics, counts, protocol)
    (folder / "README.md").write_text(card, encoding="utf-8")


def _check_plugins(config: dict[str, Any], manager: "PluginManager", where: str) -> None:
    from gancore.plugins import UnknownPluginError

    backbone = config.get("backbone", {}).get("name")
    if backbone and backbone not in manager.backbones:
        owner = config.get(META_KEY, {}).get("backbone_plugin") or backbone
        dist = f"gancore-{owner.replace('_', '-')}"
        registered = ", ".join(sorted(manager.backbones)) or "none"
        if manager.canonical_name(owner) in manager.available_names():
            raise MissingPluginError(
                f"{where}: this model needs backbone {backbone!r}, which the installed {dist} does not provide "
                f"(registered backbones: {registered}); it may need another version of {dist}"
            )
        raise MissingPluginError(
            f"{where}: this model needs backbone {backbone!r} from {dist} (registered backbones: {registered}); "
            f"pip install {dist}"
        )
    for entry in config.get("plugins", []):
        name = entry if isinstance(entry, str) else entry.get("name")
        try:
            manager.plugin_class(name)
        except UnknownPluginError:
            dist = f"gancore-{str(name).replace('_', '-')}"
            raise MissingPluginError(f"{where}: this model needs {dist}; pip install {dist}") from None


def _load_exported(
    folder: Path, components: tuple[str, ...], manager: "PluginManager | None", device: str | None = None
) -> "Run":
    from gancore.run import Run

    check_files([p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()], str(folder))
    index = _read_json(folder / INDEX_FILE)
    if index.get("library") != "gancore" or index.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{folder / INDEX_FILE}: not a gancore folder of format version {FORMAT_VERSION}")
    config = _read_json(folder / "config.json")
    if manager is None:
        from gancore.plugins import PluginManager

        manager = PluginManager()
    _check_plugins(config, manager, str(folder))
    meta = config.get(META_KEY, {})
    if "data_info" not in meta:
        raise CheckpointError(f"{folder / 'config.json'}: lacks {META_KEY}.data_info")
    info = DataInfo(**{k: tuple(v) if k == "shape" else v for k, v in meta["data_info"].items()})
    if device is not None:
        config = {**config, "train": {**config.get("train", {}), "device": device}}
    run = Run.build(config, manager=manager, data_info=info, for_training=False, source=str(folder / "config.json"))
    files = index.get("components", {})
    paths = component_paths(folder, files)
    for name in components:
        if name not in files:
            raise CheckpointError(f"{folder / INDEX_FILE}: names no component {name!r} (has {sorted(files)})")
        ckpt.load_module(getattr(run, name), paths[name])
    run.step, run.nimg = int(index.get("step", 0)), int(index.get("nimg", 0))
    return run


def load_run(
    source: str | Path,
    components: tuple[str, ...] = ("G_ema",),
    revision: str | None = None,
    manager: "PluginManager | None" = None,
) -> "Run":
    """A run's networks, with ``components`` loaded strictly, from a run folder, a checkpoint
    folder, an exported folder or a Hub repo id (``revision``: branch, tag or commit)."""
    from gancore.run import Run

    path = Path(source)
    if path.exists():
        if is_exported(path):
            return _load_exported(path, components, manager)
        return Run.from_checkpoint(path, components, manager=manager)
    if not _looks_like_repo_id(source):
        raise CheckpointError(f"{source}: no such run, checkpoint or exported folder (nor a Hub repo id 'user/name')")
    return _load_exported(download_repo(str(source), revision), components, manager)


def from_pretrained(
    repo_id_or_path: str | Path,
    revision: str | None = None,
    subfolder: str | None = None,
    device: "str | torch.device | None" = None,
    dtype: "torch.dtype | None" = None,
    component: str = "G_ema",
) -> "torch.nn.Module":
    """A ready network from an exported folder or a Hub repo: G_ema by default (``component``:
    ``"G"``, ``"D"`` or ``"G_ema"``), in eval mode, on ``device`` (default CPU) and in ``dtype``.

    It is built through the entry point of the backbone named in ``config.json``, with every
    adapter, cond encoder and attachment its plugins add, and loaded strictly (a missing or
    unexpected tensor is an error). A generator's ``.sample(n, seed=..., **cond)`` draws the
    plugins' inputs (e.g. EqGAN-SA heatmaps) as the training run did. Only JSON and safetensors
    files are read; a folder or repo holding anything else is refused.
    """
    import torch

    if component not in COMPONENTS:
        raise ValueError(f"component must be one of {list(COMPONENTS)}, got {component!r}")
    path = Path(repo_id_or_path)
    if path.exists():
        folder = path / subfolder if subfolder else path
        if not is_exported(folder):
            raise CheckpointError(f"{folder}: not an exported gancore folder (no {INDEX_FILE}); see `gancore export`")
    elif _looks_like_repo_id(repo_id_or_path):
        folder = download_repo(str(repo_id_or_path), revision, subfolder)
    else:
        raise CheckpointError(f"{repo_id_or_path}: no such folder, nor a Hub repo id 'user/name'")
    run = _load_exported(folder, (component,), None, device=str(torch.device(device or "cpu")))
    network = getattr(run, component)
    if dtype is not None:
        network.to(dtype=dtype)
    network.eval()
    if component != "D":
        network.cond_source = lambda size, rng: run.hooks.generator_inputs(run, size, rng)
        network.sample_bn = run.config.train.sample_bn
        network.standing_passes = run.config.train.standing_passes
    return network


def push_to_hub(
    source: "str | Path | Run",
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Export a run's newest checkpoint (or a checkpoint folder) and upload it to the Hub repo
    ``repo_id`` (created if needed; ``revision``: a branch, created from main if needed); an
    exported folder (``gancore export``, ``gancore import``) is uploaded as it is.
    Returns the commit's URL.

    ``source`` may be a :class:`~gancore.run.Run` object being trained: a checkpoint of its
    current step is saved first, unless its newest checkpoint is of that step.
    """
    import tempfile

    if not hasattr(source, "save_checkpoint") and is_exported(Path(source)):
        return _upload(Path(source), repo_id, private, revision, commit_message)
    checkpoint = _checkpoint_of_current_step(source) if hasattr(source, "save_checkpoint") else ckpt.find_checkpoint(source)
    with tempfile.TemporaryDirectory() as tmp:
        folder = export(checkpoint, Path(tmp) / "export", repo_id=repo_id)
        return _upload(folder, repo_id, private, revision, commit_message, checkpoint.name)


def _upload(
    folder: Path, repo_id: str, private: bool, revision: str | None, message: str | None, name: str | None = None
) -> str:
    """Upload an exported folder (as it is: nothing gancore would refuse to load) to ``repo_id``."""
    from huggingface_hub import HfApi

    check_files([p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()], str(folder))
    index = _read_json(folder / INDEX_FILE)
    api = HfApi()
    api.create_repo(repo_id, private=private, exist_ok=True)
    if revision and revision != "main":
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    imported = index.get("imported_from", {}).get("file")
    default = f"gancore: {name or folder.name} (step {index['step']})" if not imported else f"gancore: imported {imported}"
    info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, revision=revision, commit_message=message or default)
    return str(getattr(info, "commit_url", info))


def _checkpoint_of_current_step(run: "Run") -> Path:
    """The checkpoint of ``run``'s current step, written now unless the newest one is of it."""
    if run.out_dir is None:
        raise ValueError("this run has no run folder; build it with out_dir=... to publish it")
    latest = ckpt.latest_checkpoint(run.out_dir)
    if latest is None or ckpt.read_state(latest)["step"] != run.step:
        latest = run.save_checkpoint()
    return latest
