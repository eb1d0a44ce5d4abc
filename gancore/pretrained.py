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

if TYPE_CHECKING:  # pragma: no cover
    from gancore.plugins import PluginManager
    from gancore.trainer import Run

__all__ = ["COMPONENTS", "INDEX_FILE", "export", "is_exported", "load_run"]

#: The networks a run holds, by the names of their files.
COMPONENTS: tuple[str, ...] = ("G", "D", "G_ema")
#: The file naming an exported folder's networks.
INDEX_FILE = "gan_index.json"
FORMAT_VERSION = 1


def is_exported(path: Path) -> bool:
    """Whether ``path`` is an exported folder (it holds ``gan_index.json``)."""
    return (path / INDEX_FILE).is_file()


def export(source: str | Path, out_dir: str | Path) -> Path:
    """Write a run's newest checkpoint (or a given checkpoint folder) as an exported folder.

    The folder holds ``config.json`` (the resolved config, with versions and data info under
    ``gancore``), ``gan_index.json`` (format, step, the component files) and
    ``G.safetensors``, ``D.safetensors``, ``G_ema.safetensors``. It is written next to
    ``out_dir`` and renamed into place, so a failure leaves no half folder.
    """
    checkpoint = ckpt.find_checkpoint(source)
    state = ckpt.read_state(checkpoint)
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise CheckpointError(f"{out_dir}: folder exists and is not empty")
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    config = dict(state["config"])
    config[META_KEY] = {**config.get(META_KEY, {}), "data_info": state["data_info"]}
    (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    index = {
        "library": "gancore",
        "format_version": FORMAT_VERSION,
        "step": state["step"],
        "nimg": state["nimg"],
        "components": {name: f"{name}.safetensors" for name in COMPONENTS},
    }
    (tmp / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    for name in COMPONENTS:
        shutil.copyfile(checkpoint / f"{name}.safetensors", tmp / f"{name}.safetensors")
    if out_dir.exists():
        out_dir.rmdir()
    tmp.replace(out_dir)
    return out_dir


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return value


def _load_exported(folder: Path, components: tuple[str, ...], manager: "PluginManager | None") -> "Run":
    from gancore.trainer import Run

    index = _read_json(folder / INDEX_FILE)
    if index.get("library") != "gancore" or index.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{folder / INDEX_FILE}: not a gancore folder of format version {FORMAT_VERSION}")
    config = _read_json(folder / "config.json")
    meta = config.get(META_KEY, {})
    if "data_info" not in meta:
        raise CheckpointError(f"{folder / 'config.json'}: lacks {META_KEY}.data_info")
    info = DataInfo(**{k: tuple(v) if k == "shape" else v for k, v in meta["data_info"].items()})
    run = Run.build(config, manager=manager, data_info=info, for_training=False)
    files = index.get("components", {})
    for name in components:
        if name not in files:
            raise CheckpointError(f"{folder / INDEX_FILE}: names no component {name!r} (has {sorted(files)})")
        ckpt.load_module(getattr(run, name), folder / files[name])
    run.step, run.nimg = int(index.get("step", 0)), int(index.get("nimg", 0))
    return run


def _download(repo_id: str, revision: str | None) -> Path:
    """Fetch the JSON and safetensors files of a Hub model repo (or take them from the cache)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=["*.json", "*.safetensors"]))
    except (RepositoryNotFoundError, LocalEntryNotFoundError, HfHubHTTPError, ValueError) as exc:
        raise CheckpointError(f"{repo_id}: neither a local folder nor a reachable Hub repo ({exc})") from None


def load_run(
    source: str | Path,
    components: tuple[str, ...] = ("G_ema",),
    revision: str | None = None,
    manager: "PluginManager | None" = None,
) -> "Run":
    """A run's networks, with ``components`` loaded strictly, from a run folder, a checkpoint
    folder, an exported folder or a Hub repo id (``revision``: branch, tag or commit)."""
    from gancore.trainer import Run

    path = Path(source)
    if path.exists():
        if is_exported(path):
            return _load_exported(path, components, manager)
        return Run.from_checkpoint(path, components, manager=manager)
    if isinstance(source, Path) or str(source).startswith((".", "/")) or str(source).count("/") != 1:
        raise CheckpointError(f"{source}: no such run, checkpoint or exported folder (nor a Hub repo id 'user/name')")
    return _load_exported(_download(str(source), revision), components, manager)
