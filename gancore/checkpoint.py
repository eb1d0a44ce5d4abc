"""Training checkpoints: safetensors per network, optimizer state, state.json; atomic writes."""

import errno
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Callable

import attrs
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from gancore.config import ge
from gancore.messages import warn

__all__ = [
    "CHECKPOINT_FILES",
    "CheckpointError",
    "CheckpointWriteError",
    "TimelineError",
    "check_safetensors",
    "newest_intact_checkpoint",
    "verify_checkpoint",
    "find_checkpoint",
    "later_checkpoints",
    "latest_checkpoint",
    "list_checkpoints",
    "load_module",
    "load_optimizer",
    "optimizer_tensors",
    "read_state",
    "read_tensors",
    "remove_checkpoint",
    "save_module",
    "step_folders",
    "write_checkpoint",
]

_STEP_DIR = re.compile(r"^step-(\d+)$")
#: The errors of a full disk and of a full quota.
_NO_SPACE = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


class CheckpointError(ValueError):
    """A missing, incomplete or mismatching checkpoint; the message names the file."""


class TimelineError(CheckpointError):
    """Resuming from a checkpoint would write a second timeline into a run folder that has later
    checkpoints; the message says how to fork the run or discard the later checkpoints."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (a full disk, a quota, permissions); nothing half-written
    is left, and the message names the file, the space needed and the newest complete checkpoint."""


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _tensors_for_saving(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses shared storage; checkpoints hold plain copies.
    return {name: t.detach().to("cpu").contiguous().clone() for name, t in tensors.items()}


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """``safetensors.save_file``, its write failures (reported as SafetensorError) raised as OSError naming the file."""
    try:
        save_file(_tensors_for_saving(tensors), str(path))
        os.chmod(path, 0o666 & ~_umask())  # safetensors creates 0600: the user's umask decides, as for other files
    except OSError as exc:
        exc.filename = exc.filename or str(path)
        raise
    except Exception as exc:
        code = re.search(r"os error (\d+)", str(exc))
        number = int(code.group(1)) if code else errno.EIO
        raise OSError(number, os.strerror(number) if code else str(exc), str(path)) from exc


def _umask() -> int:
    """The process's file-creation mask (read by setting it and putting it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_module(module: nn.Module, path: Path) -> None:
    """Write a module's state dict (parameters and buffers) as one safetensors file."""
    _save_tensors(module.state_dict(), path)


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file; a missing or unreadable file is a CheckpointError naming it."""
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None


def state_mismatch(
    module: nn.Module, tensors: dict[str, torch.Tensor], may_lack: Callable[[str], bool] = lambda key: False
) -> str | None:
    """Why ``tensors`` do not fit ``module``'s state dict (None when they do): the module's tensors
    they lack (except those ``may_lack`` allows), the ones it has no place for, and shape mismatches."""
    expected = module.state_dict()
    missing = sorted(k for k in set(expected) - set(tensors) if not may_lack(k))
    unexpected = sorted(set(tensors) - set(expected))
    mismatched = sorted(
        f"{name} {list(tensors[name].shape)} vs {list(expected[name].shape)}"
        for name in set(tensors) & set(expected)
        if tensors[name].shape != expected[name].shape
    )
    if not (missing or unexpected or mismatched):
        return None
    return f"missing: {missing[:6]}, unexpected: {unexpected[:6]}, shape mismatch (given vs network): {mismatched[:6]}"


def load_module(module: nn.Module, path: Path) -> None:
    """Load a safetensors file into ``module`` strictly: missing or extra tensors are errors."""
    tensors = read_tensors(path)
    problem = state_mismatch(module, tensors)
    if problem:
        raise CheckpointError(
            f"{path}: does not match the network ({problem}); "
            "was it written by a run with other plugins or backbone settings?"
        )
    module.load_state_dict(tensors, strict=True)


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer's state dict into tensors (for safetensors) and JSON-able rest."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, param_state in state["state"].items():
        for key, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def optimizer_meta_problem(optimizer: torch.optim.Optimizer, meta: Any) -> str | None:
    """Why ``meta`` (an optimizer's entry in state.json) cannot be this optimizer's, or None."""
    if not isinstance(meta, dict):
        return f"expected a table, got {type(meta).__name__}"
    groups = meta.get("param_groups")
    if not isinstance(groups, list) or not all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups):
        return "param_groups: expected a list of tables, each with its params"
    if len(groups) != len(optimizer.param_groups):
        return f"param_groups: {len(groups)} group(s), the optimizer has {len(optimizer.param_groups)}"
    for index, (saved, live) in enumerate(zip(groups, optimizer.param_groups)):
        if len(saved["params"]) != len(live["params"]):
            return f"param_groups[{index}]: {len(saved['params'])} parameters, the network has {len(live['params'])}"
        wrong = sorted(k for k, v in saved.items() if k in live and k != "params" and not _same_kind(v, live[k]))
        if wrong:
            return f"param_groups[{index}]: {', '.join(wrong)} of the wrong type"
    scalars = meta.get("scalars", {})
    if not isinstance(scalars, dict) or not all(
        str(k).isdigit() and isinstance(v, dict) and all(isinstance(x, (int, float)) for x in v.values())
        for k, v in scalars.items()
    ):
        return "scalars: expected a table of {parameter index: {name: number}}"
    return None


def _same_kind(saved: Any, live: Any) -> bool:
    """Whether a saved optimizer setting can stand for a live one (JSON keeps tuples as lists)."""
    kinds = ((bool,), (int, float), (list, tuple), (str,), (type(None),))
    kind = next((k for k in kinds if isinstance(live, k)), None)
    if kind is None:
        return True
    return isinstance(saved, kind) and (kind != (int, float) or not isinstance(saved, bool))


def load_optimizer(optimizer: torch.optim.Optimizer, path: Path, meta: dict[str, Any]) -> None:
    """Restore an optimizer from its safetensors file and the JSON part saved beside it (check the
    latter with :func:`optimizer_meta_problem` first: its faults are state.json's)."""
    tensors = read_tensors(path)
    state: dict[int, dict[str, Any]] = {}
    try:
        for name, value in tensors.items():
            index, key = name.split(".", 1)
            state.setdefault(int(index), {})[key] = value
        for index, values in meta.get("scalars", {}).items():
            state.setdefault(int(index), {}).update(values)
        optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: optimizer state does not match the networks: {exc}") from exc


def _write_files(
    tmp: Path,
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    extra_tensors: dict[str, torch.Tensor],
    state: dict[str, Any],
) -> None:
    state = dict(state)
    state["optimizers"] = {}
    for name, module in modules.items():
        save_module(module, tmp / f"{name}.safetensors")
    for name, optimizer in optimizers.items():
        tensors, meta = optimizer_tensors(optimizer)
        _save_tensors(tensors, tmp / f"optim-{name}.safetensors")
        state["optimizers"][name] = meta
    _save_tensors(extra_tensors, tmp / "run.safetensors")
    try:
        with (tmp / "state.json").open("w", encoding="utf-8") as f:
            json.dump(state, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        exc.filename = exc.filename or str(tmp / "state.json")
        raise
    for file in tmp.iterdir():
        with file.open("rb") as f:
            os.fsync(f.fileno())


def write_checkpoint(
    root: Path,
    step: int,
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    extra_tensors: dict[str, torch.Tensor],
    state: dict[str, Any],
    keep: int | None = None,
    name: str | None = None,
) -> Path:
    """Write ``root/step-NNNNNN/`` (or ``root/<name>/``) atomically and return its path.

    Files: ``<name>.safetensors`` per module, ``optim-<name>.safetensors`` per optimizer,
    ``run.safetensors`` (RNG states and other run tensors) and ``state.json``. Everything is
    written into a hidden temporary folder that is renamed into place only when complete, so a
    crash never leaves a half-written checkpoint under a step name. With ``keep``, only the
    newest ``keep`` checkpoints are kept.
    """
    root.mkdir(parents=True, exist_ok=True)
    folder = name or f"step-{step:06d}"
    final = root / folder
    existing = list_checkpoints(root)
    if keep is not None and name is None:
        # Make room first, so that a quota holding exactly `keep` checkpoints can rotate; the newest
        # complete checkpoint always stays until the new one is in place.
        for stale in existing[: max(0, len(existing) - max(keep - 1, 1))]:
            remove_checkpoint(stale)
    tmp = root / f".tmp-{folder}-{os.getpid()}"

    def write() -> None:
        try:
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir()
            _write_files(tmp, modules, optimizers, extra_tensors, state)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    try:
        write()
    except OSError as exc:
        older = [c for c in list_checkpoints(root) if c != final]
        freed = sum(f.stat().st_size for c in older for f in c.iterdir() if f.is_file())
        fits = _checkpoint_bytes(modules, optimizers) <= shutil.disk_usage(root).free + freed
        if not (keep == 1 and name is None and exc.errno in _NO_SPACE and older and fits):
            raise CheckpointWriteError(_write_failure(root, folder, exc, modules, optimizers)) from exc
        # keep_checkpoints = 1 in a quota that holds one checkpoint: the old one has to go first.
        warn(f"no room for {folder} beside {older[-1].name} (train.keep_checkpoints = 1): removing "
             f"{older[-1].name} first; the run has no complete checkpoint until {folder} is written")
        for stale in older:
            remove_checkpoint(stale)
        try:
            write()
        except OSError as again:
            raise CheckpointWriteError(_write_failure(root, folder, again, modules, optimizers)) from again
    if final.exists():
        old = root / f".old-{folder}-{os.getpid()}"
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old)
    else:
        tmp.rename(final)
    _fsync_dir(root)
    if keep is not None:
        for stale in list_checkpoints(root)[:-keep]:
            remove_checkpoint(stale)
    return final


def remove_checkpoint(folder: Path) -> None:
    """Delete a checkpoint crash-safely: renamed out of the step names first (``.old-<name>-<pid>``),
    so a kill mid-delete leaves no half checkpoint under a step name, only a folder the next
    ``train`` or ``resume`` removes."""
    old = folder.with_name(f".old-{folder.name}-{os.getpid()}")
    try:
        folder.rename(old)
    except OSError:
        return
    shutil.rmtree(old, ignore_errors=True)


def _write_failure(
    root: Path, folder: str, exc: OSError, modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer]
) -> str:
    """One line: which checkpoint and file failed and why, the space it needs, what is intact."""
    where = f" ({Path(exc.filename).name})" if getattr(exc, "filename", None) else ""
    newest = list_checkpoints(root)
    needed = _checkpoint_bytes(modules, optimizers)
    free = shutil.disk_usage(root).free
    space = f"; it needs about {needed / 2**20:.1f} MiB, {free / 2**20:.1f} MiB are free"
    intact = f"the newest complete checkpoint is {newest[-1]}" if newest else "no complete checkpoint exists yet"
    return f"could not write checkpoint {root / folder}: {exc.strerror or exc}{where}{space}; {intact}"


def _checkpoint_bytes(modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer]) -> int:
    """The size of a checkpoint's tensors: the networks' state and the optimizers' moments."""
    tensors = [t for m in modules.values() for t in m.state_dict().values()]
    tensors += [v for o in optimizers.values() for s in o.state.values() for v in s.values() if isinstance(v, torch.Tensor)]
    return sum(t.numel() * t.element_size() for t in tensors)


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints under ``root`` (step folders with a state.json), oldest first."""
    return [folder for folder in step_folders(root) if (folder / "state.json").is_file()]


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run folder, or None."""
    checkpoints = list_checkpoints(Path(run_dir) / "checkpoints")
    return checkpoints[-1] if checkpoints else None


def find_checkpoint(path: str | Path) -> Path:
    """Resolve a run folder (its newest checkpoint) or a checkpoint folder."""
    path = Path(path)
    if (path / "state.json").is_file():
        return path
    if path.is_dir() and (_STEP_DIR.match(path.name) or path.name == "best") and path.parent.name == "checkpoints":
        return path  # a checkpoint folder without its state.json: reading it says so
    if not path.exists():
        raise CheckpointError(f"{path}: no such run or checkpoint folder")
    folders = step_folders(path / "checkpoints")
    if not folders:
        raise CheckpointError(f"{path}: no checkpoint found (expected {path / 'checkpoints' / 'step-NNNNNN'})")
    # The newest step folder even without its state.json (a checkpoint damaged by hand or by a
    # tool): reading it then fails naming the file, instead of silently going a step back.
    return folders[-1]


def step_folders(root: Path) -> list[Path]:
    """Every ``step-NNNNNN`` folder under ``root``, complete or damaged, oldest first."""
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), child) for child in root.iterdir() if (m := _STEP_DIR.match(child.name)) and child.is_dir()]
    return [path for _, path in sorted(found)]


def later_checkpoints(checkpoint: Path, step: int) -> list[Path]:
    """The step folders of ``checkpoint``'s run newer than ``step`` (the checkpoint's own step, so
    that ``best`` is judged by the step it holds), complete or damaged."""
    checkpoint = Path(checkpoint)
    return [f for f in step_folders(checkpoint.parent) if f != checkpoint and int(f.name.split("-", 1)[1]) > step]


#: Keys every state.json holds.
STATE_KEYS = ("step", "nimg", "config", "data_info", "plugins", "optimizers")
#: The safetensors files of a training checkpoint (without the suffix).
CHECKPOINT_FILES = ("G", "G_ema", "D", "optim-G", "optim-D", "run")


@attrs.frozen(kw_only=True)
class _DataInfoState:
    name: str
    shape: list[int]
    c_dim: int = attrs.field(validator=ge(0))


@attrs.frozen(kw_only=True)
class _State:
    """The fields of state.json and their types, checked like a run config's."""

    step: int = attrs.field(validator=ge(0))
    nimg: int = attrs.field(validator=ge(0))
    config: dict[str, Any]
    data_info: _DataInfoState
    plugins: dict[str, Any]
    optimizers: dict[str, Any]
    metrics: dict[str, float] = attrs.field(factory=dict)
    metrics_protocol: dict[str, Any] = attrs.field(factory=dict)
    best_fid: float | None = None


def read_state(checkpoint: Path) -> dict[str, Any]:
    """Read a checkpoint's state.json, every field checked; a missing, invalid or incomplete file is
    a CheckpointError listing every problem (``state.json: step: expected an integer, got 'x'``)."""
    from gancore.config import structure_section

    path = Path(checkpoint) / "state.json"
    try:
        with path.open(encoding="utf-8") as f:
            state = json.load(f)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON: {exc}") from None
    missing = [key for key in STATE_KEYS if not isinstance(state, dict) or key not in state]
    if missing:
        raise CheckpointError(f"{path}: incomplete, missing {', '.join(missing)}")
    problems: list[str] = []
    structure_section(state, _State, "state.json", problems)
    if problems:
        raise CheckpointError(f"{path}: " + "; ".join(p.removeprefix("state.json.") for p in problems))
    return state


def check_safetensors(path: Path) -> None:
    """Raise a CheckpointError if ``path`` is missing, or shorter or longer than its header says
    (a write cut off by a kill or a full disk), without reading the tensors."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            header_length = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(header_length)) if 0 < header_length <= size - 8 else None
    except FileNotFoundError:
        raise CheckpointError(f"{path}: file not found") from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: not a safetensors file (its header is damaged)")
    end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + header_length + end != size:
        raise CheckpointError(f"{path}: damaged or truncated ({size} bytes, its header describes {8 + header_length + end})")


def verify_checkpoint(checkpoint: Path) -> None:
    """Check a checkpoint without loading it: state.json field by field, and every safetensors
    file's length against its header. Raises a CheckpointError naming the first bad file."""
    read_state(checkpoint)
    for name in CHECKPOINT_FILES:
        check_safetensors(Path(checkpoint) / f"{name}.safetensors")


def newest_intact_checkpoint(run_dir: Path, before: Path | None = None) -> Path | None:
    """The newest checkpoint of ``run_dir`` that :func:`verify_checkpoint` accepts (older than
    ``before`` if given), or None."""
    for checkpoint in reversed(list_checkpoints(Path(run_dir) / "checkpoints")):
        if before is not None and checkpoint.name >= before.name:
            continue
        try:
            verify_checkpoint(checkpoint)
        except CheckpointError:
            continue
        return checkpoint
    return None
