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
from gancore.import_types import CheckpointImportError, ImportedModel, ImportedModules, PublishedCheckpoint, StateDict
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
    "StateDict",
    "build_run",
    "import_checkpoint",
    "read_checkpoint",
]

#: The networks of NVIDIA's PyTorch snapshots (their other entries are training state); a model
#: folder holds the same three (:data:`~gancore.model_folder.COMPONENTS`).
NVIDIA_NETWORKS: tuple[str, ...] = ("G", "D", "G_ema")


#: State-dict files of a network, by network: ``G.pth``, ``D.pth`` and ``G_ema.pth`` (BigGAN-PyTorch's
#: weights folder); the folder's other ``.pth`` files (optimizers, counters) are training state.
STATE_DICT_FILES = {"G": "G.pth", "D": "D.pth", "G_ema": "G_ema.pth"}


def _load_state_dict(data: bytes | Path, name: str) -> StateDict:
    """One ``.pth`` state dict, read with ``torch.load(weights_only=True)``: no code of the file runs."""
    import io

    source = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        state = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, ... for what it refuses
        raise CheckpointImportError(f"{name}: not a state dict that loads without running code ({exc})") from None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointImportError(f"{name}: holds a {type(state).__name__}, not a state dict of tensors")
    return StateDict(dict(state), name)


def _read_state_dicts(path: Path) -> PublishedCheckpoint:
    """A folder or zip file of state-dict files (:data:`STATE_DICT_FILES`), or one ``.pth`` (a G alone)."""
    import zipfile

    networks: dict[str, StateDict] = {}
    if path.is_dir():
        files = {p.name: p for p in sorted(path.glob("*.pth"))}
        contents: dict[str, bytes | Path] = {name: files[name] for name in STATE_DICT_FILES.values() if name in files}
    elif zipfile.is_zipfile(path) and not _is_torch_zip(path):
        with zipfile.ZipFile(path) as archive:
            members = [n for n in archive.namelist() if n.endswith(".pth")]
            files = {Path(n).name: n for n in members}
            twice = sorted({Path(n).name for n in members if [Path(m).name for m in members].count(Path(n).name) > 1})
            if twice:
                raise CheckpointImportError(f"{path}: holds {', '.join(twice)} more than once (several weights "
                                            "folders?); give a zip or folder of one model")
            contents = {name: archive.read(files[name]) for name in STATE_DICT_FILES.values() if name in files}
    else:
        return PublishedCheckpoint(source=str(path), sha256=sha256_of(path),
                                   networks={"G": _load_state_dict(path, path.name)})
    for network, file in STATE_DICT_FILES.items():
        if file in contents:
            networks[network] = _load_state_dict(contents[file], f"{path}/{file}")
    extras = {name: "training state, not imported" for name in files if name not in STATE_DICT_FILES.values()}
    if not networks:
        raise CheckpointImportError(f"{path}: holds none of {', '.join(STATE_DICT_FILES.values())}")
    digest = sha256_of(path) if path.is_file() else _folder_digest(path, [files[f] for f in STATE_DICT_FILES.values()
                                                                          if f in files])
    return PublishedCheckpoint(source=str(path), sha256=digest, networks=networks, extras=extras)


def _is_torch_zip(path: Path) -> bool:
    """Whether a zip file is one ``torch.save`` archive (``<name>/data.pkl`` inside), not a zip of files."""
    import zipfile

    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/data.pkl") for name in archive.namelist())


def _folder_digest(folder: Path, files: list[Path]) -> str:
    """The sha256 of the networks' files of a folder, in name order (the folder's identity)."""
    import hashlib

    digest = hashlib.sha256()
    for file in sorted(files):
        digest.update(file.name.encode() + bytes.fromhex(sha256_of(file)))
    return digest.hexdigest()


def read_checkpoint(path: str | Path) -> PublishedCheckpoint:
    """Read a published checkpoint safely into a :class:`PublishedCheckpoint`: a network pickle
    (NVIDIA's), or state dicts (a ``.pth`` file, or a folder or zip of ``G.pth``, ``D.pth``,
    ``G_ema.pth`` as BigGAN-PyTorch saves them)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointImportError(f"{path}: no such file or folder")
    if path.is_dir() or path.suffix in (".pth", ".pt", ".zip"):
        return _read_state_dicts(path)
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
        kinds = ", ".join(f"{name}: {_kind(net)}" for name, net in checkpoint.networks.items())
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
    skipped = [f"{k} ({v.class_name})" if isinstance(v, PickledModule) else k
               for k, v in checkpoint.extras.items() if isinstance(v, (PickledModule, str))]
    if skipped:
        note = f"not imported: the file's training state {', '.join(skipped)}"
        model = attrs.evolve(model, notes=(*model.notes, note))
    return model


def _kind(net: Any) -> str:
    if isinstance(net, PickledModule):
        return net.class_name
    if isinstance(net, StateDict):
        return f"state dict of {len(net.state)} tensors ({Path(net.file).name})"
    return "TF " + net.name


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
