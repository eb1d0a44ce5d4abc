"""The model folder format (``gan_index.json``, ``config.json``, one safetensors file per network), and
starting a run from a model folder's weights."""

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gancore import checkpoint as ckpt
from gancore.checkpoint import CheckpointError

if TYPE_CHECKING:  # pragma: no cover
    from gancore.run import Run

__all__ = [
    "ALLOWED_SUFFIXES",
    "COMPONENTS",
    "FORMAT_VERSION",
    "INDEX_FILE",
    "UnsafeFilesError",
    "check_files",
    "component_paths",
    "download_repo",
    "initialise_from",
    "is_exported",
    "looks_like_repo_id",
    "read_json",
]

#: The networks a run holds, by the names of their files.
COMPONENTS: tuple[str, ...] = ("G", "D", "G_ema")
#: The file naming an exported folder's networks.
INDEX_FILE = "gan_index.json"
FORMAT_VERSION = 1
#: What an exported folder or Hub repo may hold (anything else is refused, nothing else is read).
ALLOWED_SUFFIXES: tuple[str, ...] = (".json", ".safetensors", ".md", ".png", ".gitattributes")


class UnsafeFilesError(CheckpointError):
    """A folder or repo holds files gancore never reads (pickles, code, ...); it is refused."""


def is_exported(path: Path) -> bool:
    """Whether ``path`` is an exported folder (it holds ``gan_index.json``)."""
    return (path / INDEX_FILE).is_file()


def check_files(names: "list[str]", where: str) -> None:
    """Refuse a folder or repo holding any file gancore does not read (by name)."""
    unsafe = sorted(n for n in names if not n.endswith(ALLOWED_SUFFIXES))
    if unsafe:
        raise UnsafeFilesError(
            f"{where} holds files gancore never loads ({', '.join(unsafe)}); refusing it: a gancore model is "
            "JSON and safetensors only (plus README.md and PNG images)"
        )


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; a missing, invalid or non-object file is a CheckpointError naming it."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return value


def component_paths(folder: Path, files: Any) -> dict[str, Path]:
    """Every network file ``gan_index.json`` lists, checked before any is loaded: inside the folder
    (no absolute path, no ``..``, no link out of it; in the Hub's cache, out of the repo's cache
    folder), present, and a readable safetensors file."""
    from safetensors import safe_open

    if not isinstance(files, dict):
        raise CheckpointError(f"{folder / INDEX_FILE}: 'components' is not a table of network files")
    root = folder.resolve()
    if root.parent.name == "snapshots":  # a Hub cache: snapshot files link to the repo's blobs/
        root = root.parents[1]
    paths = {}
    for name, file in files.items():
        path = (folder / str(file)).resolve()
        if Path(str(file)).is_absolute() or ".." in Path(str(file)).parts or root not in path.parents:
            raise CheckpointError(f"{folder / INDEX_FILE}: component {name!r} points outside the folder ({file}); refused")
        if not path.is_file():
            raise CheckpointError(f"{folder / INDEX_FILE}: component {name!r}: {file} is missing")
        try:
            with safe_open(str(path), "pt") as f:
                f.keys()
        except Exception as exc:
            raise CheckpointError(f"{path}: component {name!r} is not a readable safetensors file ({exc})") from None
        paths[name] = path
    return paths


def looks_like_repo_id(source: str | Path) -> bool:
    """Whether ``source`` reads as a Hub repo id ``user/name`` (not a path)."""
    text = str(source)
    return not isinstance(source, Path) and not text.startswith((".", "/", "~")) and text.count("/") == 1


def download_repo(repo_id: str, revision: str | None, subfolder: str | None = None) -> Path:
    """Fetch the JSON and safetensors files of a Hub model repo (or take them from the cache
    when offline), after checking that the repo holds nothing gancore would refuse."""
    from huggingface_hub import HfApi, constants, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    prefix = f"{subfolder.strip('/')}/" if subfolder else ""
    try:
        if not constants.HF_HUB_OFFLINE:
            check_files(HfApi().list_repo_files(repo_id, revision=revision), f"Hub repo {repo_id}")
        folder = Path(snapshot_download(
            repo_id, revision=revision, allow_patterns=[f"{prefix}*.json", f"{prefix}*.safetensors"]
        ))
    except UnsafeFilesError:
        raise
    except (RepositoryNotFoundError, LocalEntryNotFoundError, HfHubHTTPError, ValueError, OSError) as exc:
        raise CheckpointError(f"{repo_id}: neither a local folder nor a reachable Hub repo ({exc})") from None
    return folder / prefix if prefix else folder


def initialise_from(run: "Run", source: str | Path, revision: str | None = None) -> Path:
    """Load G, D and G_ema of a model folder or Hub repo into a freshly built ``run`` (fine-tuning).

    Every tensor of the folder must exist in the run's networks with its shape; the run's own
    tensors the folder lacks are allowed only in modules plugins attach (adapters, cond encoders,
    attachments), which keep their fresh initialisation. Returns the folder read.
    """
    from gancore.backbone import PLUGIN_MODULE_GROUPS

    path = Path(source)
    if path.exists():
        folder = path
    elif looks_like_repo_id(source):
        folder = download_repo(str(source), revision)
    else:
        raise CheckpointError(f"train.init: {source}: no such model folder, nor a Hub repo id 'user/name'")
    if not is_exported(folder):
        raise CheckpointError(f"train.init: {folder}: not a model folder (no {INDEX_FILE}); make one with "
                              "`gancore export` or `gancore import`")
    check_files([p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()], str(folder))
    files = read_json(folder / INDEX_FILE).get("components", {})
    paths = component_paths(folder, files)
    for name in COMPONENTS:
        if name not in paths:
            raise CheckpointError(f"{folder / INDEX_FILE}: names no component {name!r}")
        tensors = ckpt.read_tensors(paths[name])
        network = getattr(run, name)
        problem = ckpt.state_mismatch(network, tensors, may_lack=lambda key: key.split(".")[0] in PLUGIN_MODULE_GROUPS)
        if problem:
            raise CheckpointError(
                f"train.init: {paths[name]} does not fit this run's {name} ({problem}); take the [backbone] table "
                f"from {folder / 'config.json'}"
            )
        expected = network.state_dict()
        network.load_state_dict({k: v.to(expected[k].dtype) for k, v in tensors.items()}, strict=False)
    return folder
