"""`gancore import`: a published checkpoint (an NVIDIA-format pickle) into an ordinary gancore model folder.

The core reads the file safely (:mod:`gancore.pickle_reader`) and asks the installed plugins,
through ``gancore_import_networks``, which backbone the networks are and what their tensors are
called in gancore; it names no model itself. Every tensor of the file must be claimed: one that
no installed plugin maps is an error naming it, never silently dropped.
"""

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import attrs
import torch

from gancore.checkpoint import save_module, state_mismatch
from gancore.config import META_KEY
from gancore.download import sha256_of
from gancore.files import write_folder_atomically
from gancore.import_types import CheckpointImportError, ImportedModel, ImportedModules, PublishedCheckpoint
from gancore.model_folder import COMPONENTS, FORMAT_VERSION, INDEX_FILE
from gancore.pickle_reader import PickledModule, PickledTFNetwork, read_network_pickle

if TYPE_CHECKING:  # pragma: no cover
    from gancore.plugins import PluginManager
    from gancore.run import Run

__all__ = [
    "CheckpointImportError",
    "ImportedModel",
    "ImportedModules",
    "PublishedCheckpoint",
    "build_run",
    "import_checkpoint",
    "read_checkpoint",
]

#: The networks of NVIDIA's PyTorch snapshots (their other entries are training state); a model
#: folder holds the same three (:data:`~gancore.model_folder.COMPONENTS`).
NVIDIA_NETWORKS: tuple[str, ...] = ("G", "D", "G_ema")


def read_checkpoint(path: str | Path) -> PublishedCheckpoint:
    """Read a published checkpoint file safely into a :class:`PublishedCheckpoint`."""
    path = Path(path)
    value = read_network_pickle(path)
    if isinstance(value, tuple) and len(value) == 3 and all(isinstance(v, PickledTFNetwork) for v in value):
        networks: dict[str, Any] = dict(zip(("G", "D", "Gs"), value))
        extras: dict[str, Any] = {}
    elif isinstance(value, dict):
        # A training snapshot's networks; the rest (NVIDIA's augment_pipe, training_set_kwargs, ...)
        # is training state that a model folder does not hold.
        networks = {k: v for k, v in value.items() if k in NVIDIA_NETWORKS and isinstance(v, (PickledModule, PickledTFNetwork))}
        extras = {k: v for k, v in value.items() if k not in networks}
    else:
        raise CheckpointImportError(
            f"{path}: holds a {type(value).__name__}, not a network pickle (a dict of networks, or a TF-era (G, D, Gs) tuple)"
        )
    if not networks:
        raise CheckpointImportError(f"{path}: holds no networks (keys: {sorted(value) if isinstance(value, dict) else '-'})")
    return PublishedCheckpoint(source=str(path), sha256=sha256_of(path), networks=networks, extras=extras)


def _map(checkpoint: PublishedCheckpoint, manager: "PluginManager") -> ImportedModel:
    """Ask the plugins for a mapping and check that it claims every tensor."""
    found = manager.hooks.import_networks(checkpoint)
    if found is None:
        kinds = ", ".join(
            f"{name}: {net.class_name if isinstance(net, PickledModule) else 'TF ' + net.name}"
            for name, net in checkpoint.networks.items()
        )
        importers = ", ".join(manager.hooks.plugins_implementing("gancore_import_networks")) or "none"
        raise CheckpointImportError(
            f"{checkpoint.source}: no installed plugin imports these networks ({kinds}); plugins that import: "
            f"{importers}. Install the plugin of the backbone these networks belong to"
        )
    plugin, model = found
    missing = [name for name in COMPONENTS if name not in model.tensors]
    if missing:
        raise CheckpointImportError(f"{checkpoint.source}: plugin {plugin!r} mapped no {', '.join(missing)}")
    for plugin, modules in manager.hooks.import_modules(checkpoint, model):
        overlap = sorted(model.claimed & modules.claimed)
        if overlap:
            raise CheckpointImportError(f"{checkpoint.source}: plugin {plugin!r} claims tensors already mapped: {overlap[:6]}")
        tensors = {net: {**model.tensors[net], **modules.tensors.get(net, {})} for net in model.tensors}
        model = attrs.evolve(
            model, tensors=tensors, claimed=model.claimed | modules.claimed, notes=(*model.notes, *modules.notes),
            plugins=(*model.plugins, dict(modules.entry)),
        )
    unclaimed = sorted(checkpoint.tensor_names() - model.claimed)
    if unclaimed:
        owners = _owners(checkpoint, unclaimed)
        raise CheckpointImportError(
            f"{checkpoint.source}: {len(unclaimed)} tensors are mapped by no installed plugin "
            f"({', '.join(unclaimed[:8])}{', ...' if len(unclaimed) > 8 else ''}; in modules {owners}). "
            "The checkpoint may come from a method's fork whose plugin adds these modules (installed plugins "
            f"that import modules: {', '.join(manager.hooks.plugins_importing_modules()) or 'none'}); nothing was written"
        )
    skipped = [f"{k} ({v.class_name})" for k, v in checkpoint.extras.items() if isinstance(v, PickledModule)]
    if skipped:
        note = f"not imported: the file's training state {', '.join(skipped)}"
        model = attrs.evolve(model, notes=(*model.notes, note))
    return model


def _owners(checkpoint: PublishedCheckpoint, names: list[str]) -> str:
    """The class names of the pickled modules holding ``names`` (for the error message)."""
    classes: set[str] = set()
    for full in names:
        net_name, _, key = full.partition(".")
        net = checkpoint.networks.get(net_name)
        if not isinstance(net, PickledModule):
            continue
        path = key.rpartition(".")[0]
        for prefix, module in net.modules():
            if path == prefix:
                classes.add(module.class_name)
    return ", ".join(sorted(classes)) or "unknown"


def _snapshot_nimg(path: Path) -> int:
    """The images seen, from NVIDIA's snapshot name ``network-snapshot-<kimg>.pkl`` (else 0)."""
    match = re.search(r"network-snapshot-(\d+)", path.name)
    return int(match.group(1)) * 1000 if match else 0


def build_run(
    model: ImportedModel,
    manager: "PluginManager | None" = None,
    device: str = "cpu",
    *,
    train: Mapping[str, Any] | None = None,
    backbone: Mapping[str, Any] | None = None,
) -> "Run":
    """A :class:`~gancore.run.Run` (without a data set) holding ``model``'s networks, loaded strictly.

    ``train`` and ``backbone`` add settings to the run's ``[train]`` and ``[backbone]`` tables
    (e.g. the regularisation of a fine-tuning run, or ``style_mixing``).
    """
    from gancore.plugins import PluginManager
    from gancore.run import Run

    info = model.data_info
    config = {
        "plugins": [dict(entry) for entry in model.plugins],
        "backbone": {**model.backbone, **(backbone or {})},
        "data": {"name": "folder", "resolution": info.resolution, "channels": info.channels, "labels": info.c_dim > 0},
        "train": {"device": device, **(train or {})},
    }
    run = Run.build(
        config, manager=manager or PluginManager(), data_info=info, for_training=False, source="<imported config>"
    )
    for name in COMPONENTS:
        network = getattr(run, name)
        problem = state_mismatch(network, model.tensors[name])
        if problem:
            raise CheckpointImportError(f"imported {name} does not fit the {model.backbone['name']} network ({problem})")
        network.load_state_dict({k: v.to(torch.float32) for k, v in model.tensors[name].items()}, strict=True)
    return run


def import_checkpoint(
    source: str | Path,
    out_dir: str | Path,
    *,
    manager: "PluginManager | None" = None,
    url: str | None = None,
) -> Path:
    """Import a published checkpoint into the model folder ``out_dir``.

    ``source`` is a local file or a URL (downloaded once into the gancore cache). The folder is
    what ``gancore export`` writes (``config.json``, ``gan_index.json``, ``G``/``D``/``G_ema``
    safetensors, ``samples.png``, ``README.md``), so ``from_pretrained``, ``gancore sample``,
    ``gancore eval`` and ``gancore push`` take it as it is. G_ema's noise mode is ``const``, as in
    NVIDIA's generate scripts. The file's code is never run. The folder is written next to
    ``out_dir`` and renamed into place: a failure leaves nothing behind.
    """
    from gancore.plugins import PluginManager

    text = str(source)
    if text.startswith(("http://", "https://")):
        from gancore.download import download

        url, source = text, download(text)
    path = Path(source)
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise CheckpointImportError(f"{out_dir}: exists and is not an empty folder; choose another output folder")
    manager = manager or PluginManager()
    checkpoint = read_checkpoint(path)
    model = _map(checkpoint, manager)
    run = build_run(model, manager)
    return write_folder_atomically(
        out_dir, lambda tmp: _write_folder(tmp, run, model, checkpoint, url, _snapshot_nimg(path))
    )


def _write_folder(
    folder: Path, run: "Run", model: ImportedModel, checkpoint: PublishedCheckpoint, url: str | None, nimg: int
) -> None:
    from gancore.modelcard import render_import_card

    provenance = {"file": Path(checkpoint.source).name, "sha256": checkpoint.sha256, "url": url}
    config = run.resolved_config()
    config[META_KEY]["imported_from"] = provenance
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    index = {
        "library": "gancore",
        "format_version": FORMAT_VERSION,
        "step": 0,
        "nimg": nimg,
        "components": {name: f"{name}.safetensors" for name in COMPONENTS},
        "imported_from": provenance,
    }
    (folder / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    for name in COMPONENTS:
        save_module(getattr(run, name), folder / f"{name}.safetensors")
    run.save_sample_grid(folder / "samples.png", n=16)
    (folder / "README.md").write_text(render_import_card(run, provenance, model.notes), encoding="utf-8")
