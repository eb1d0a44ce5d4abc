"""Going on from a checkpoint: which settings a resume may change, one timeline per run folder (fork or discard), the config history."""

import json
import re
import shutil
import time
from pathlib import Path
from typing import Any, Mapping

from gancore import checkpoint as ckpt
from gancore.config import META_KEY, canonical_name
from gancore.files import write_folder_atomically, write_text_atomically
from gancore.stats import append_line, keep_stats_up_to

__all__ = [
    "HISTORY_FILE",
    "changed_settings",
    "check_fork_target",
    "discard_later",
    "fixed_on_resume",
    "fork_run",
    "record_history",
    "timeline_problem",
]

#: The run folder's record of what resumes changed, forks and discarded timelines (JSON lines).
HISTORY_FILE = "config-history.jsonl"
_STEP_FILE = re.compile(r"^(?:step|eval-step)-(\d+)\.\w+$")


def _flatten(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A raw run config as ``{"train.g_lr": 0.002, "plugins.glead.weight": 1.0, "plugins": [...]}``."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping) and value:
            for key, item in value.items():
                walk(f"{prefix}.{key}", item)
        else:
            flat[prefix] = value

    for section, value in raw.items():
        if section == META_KEY:
            continue
        if section == "plugins" and isinstance(value, list):
            names = []
            for entry in value:
                entry = {"name": entry} if isinstance(entry, str) else dict(entry)
                name = canonical_name(str(entry.pop("name", "")))
                names.append(name)
                walk(f"plugins.{name}", entry)
            flat["plugins"] = names
        else:
            walk(section, value)
    return flat


def changed_settings(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The dotted keys whose values differ between two raw run configs, as ``{key: (old, new)}``
    (a key only one of them has is paired with None)."""
    old, new = _flatten(before), _flatten(after)
    return {key: (old.get(key), new.get(key)) for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)}


def _why_fixed(key: str) -> str | None:
    """Why ``key`` cannot change when a run resumes (None: it can, and takes effect)."""
    if key.startswith("backbone."):
        return "the checkpoint's networks were built with it"
    if key.startswith("data.") and key != "data.path":
        return "the data set is part of the run (data.path alone may change, for data that moved)"
    if key == "plugins":
        return "the plugins are part of the run: their networks and state are in the checkpoint"
    if key == "train.seed":
        return "the random streams go on from the checkpoint's state"
    if key == "train.init":
        return "the weights come from the checkpoint"
    return None


def fixed_on_resume(changes: Mapping[str, tuple[Any, Any]]) -> list[str]:
    """One problem per changed key that cannot take effect on resume (empty: all of them can)."""
    problems = []
    for key, (old, new) in changes.items():
        why = _why_fixed(key)
        if why is not None:
            problems.append(
                f"{key}: cannot change on resume ({old!r} -> {new!r}): {why}; start a new run with "
                "`gancore train` for that"
            )
    return problems


def timeline_problem(run_dir: Path, checkpoint: Path, step: int, later: list[Path]) -> str:
    """The refusal to resume from ``checkpoint`` while ``later`` checkpoints exist, with the two ways on."""
    names = ", ".join(folder.name for folder in later)
    return (
        f"{run_dir} has checkpoints after {checkpoint.name} ({names}); going on from {checkpoint.name} "
        f"would write a second timeline into the same folder and stats.jsonl. Give --fork NEW_DIR to "
        f"go on from it in a new run folder, or --discard-later to delete the later checkpoints and "
        f"the stats, samples and evaluations after step {step}"
    )


def record_history(run_dir: Path, step: int, event: str, details: Mapping[str, Any]) -> None:
    """Append one entry to the run folder's config history (:data:`HISTORY_FILE`)."""
    from gancore.runfolder import command_line

    entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "step": step, "event": event,
             "command": command_line(), **details}
    append_line(Path(run_dir) / HISTORY_FILE, json.dumps(entry) + "\n")


def check_fork_target(new_dir: Path, source: Path) -> None:
    """Refuse a ``--fork`` folder that exists and is not empty, or is the run folder itself."""
    if new_dir.exists() and (not new_dir.is_dir() or any(new_dir.iterdir())):
        raise ckpt.TimelineError(f"--fork {new_dir}: the folder exists and is not empty; give a new one")
    if new_dir.resolve() == Path(source).resolve():
        raise ckpt.TimelineError(f"--fork {new_dir}: that is the run folder itself; give a new one")


def fork_run(checkpoint: Path, new_dir: Path, step: int) -> Path:
    """Start run folder ``new_dir`` from ``checkpoint``: the checkpoint, config.json, the stats
    lines, sample grids and config history up to ``step``; returns the checkpoint's copy.

    ``new_dir`` must not exist or be empty. The fork is put together beside it and renamed into
    place, so a failure leaves nothing; the source run is only read.
    """
    new_dir = Path(new_dir)
    source = checkpoint.parent.parent
    check_fork_target(new_dir, source)
    name = f"step-{step:06d}"  # a fork from `best` starts with a step checkpoint too

    def fill(tmp: Path) -> None:
        shutil.copytree(checkpoint, tmp / "checkpoints" / name)
        if (source / "config.json").is_file():
            shutil.copy2(source / "config.json", tmp / "config.json")
        if (source / "stats.jsonl").is_file():
            keep_stats_up_to(source / "stats.jsonl", step, tmp / "stats.jsonl")
        for picture in _step_files(source / "samples", up_to=step):
            (tmp / "samples").mkdir(exist_ok=True)
            shutil.copy2(picture, tmp / "samples" / picture.name)
        if (source / HISTORY_FILE).is_file():
            # The entries the checkpoint descends from: what later resumes changed is not part of it.
            ancestry = [line for line in (source / HISTORY_FILE).read_text(encoding="utf-8").splitlines()
                        if _is_ancestor(line, step)]
            write_text_atomically(tmp / HISTORY_FILE, "".join(f"{line}\n" for line in ancestry))
        record_history(tmp, step, "fork", {"forked_from": str(checkpoint)})

    write_folder_atomically(new_dir, fill)
    return new_dir / "checkpoints" / name


def _is_ancestor(line: str, step: int) -> bool:
    """Whether a config-history entry happened before the checkpoint of ``step`` was written."""
    try:
        entry = json.loads(line)
    except json.JSONDecodeError:
        return False  # a torn last line
    return entry.get("step", 0) < step or (entry.get("event") == "fork" and entry.get("step") == step)


def _step_files(folder: Path, up_to: int | None = None, after: int | None = None) -> list[Path]:
    """``step-N.*`` / ``eval-step-N.*`` files of ``folder`` with N at most ``up_to`` or above ``after``."""
    if not folder.is_dir():
        return []
    found = []
    for child in folder.iterdir():
        match = _STEP_FILE.match(child.name)
        if match and child.is_file():
            number = int(match.group(1))
            if (up_to is not None and number <= up_to) or (after is not None and number > after):
                found.append(child)
    return sorted(found)


def discard_later(checkpoint: Path, step: int) -> list[str]:
    """Delete what ``checkpoint``'s run wrote after ``step``: later checkpoints (crash-safely), a
    ``best`` checkpoint from after it, later sample grids and evaluations, and summary.json; the
    stats lines after it go when the checkpoint is loaded. Returns what was deleted, by name."""
    run_dir = checkpoint.parent.parent
    removed = []
    for folder in ckpt.later_checkpoints(checkpoint, step):
        ckpt.remove_checkpoint(folder)
        removed.append(f"checkpoints/{folder.name}")
    best = run_dir / "checkpoints" / "best"
    try:
        if best.is_dir() and ckpt.read_state(best)["step"] > step:
            ckpt.remove_checkpoint(best)
            removed.append("checkpoints/best")
    except ckpt.CheckpointError:
        pass  # a damaged best checkpoint is left for the user to look at
    for file in [*_step_files(run_dir / "samples", after=step), *_step_files(run_dir, after=step)]:
        file.unlink()
        removed.append(str(file.relative_to(run_dir)))
    if (run_dir / "summary.json").is_file():
        (run_dir / "summary.json").unlink()
        removed.append("summary.json")
    return removed
