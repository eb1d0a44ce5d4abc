"""One writer per run folder: a lock file held while a process trains, and the clean-up of what killed writers left."""

import json
import os
import re
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any

from gancore.messages import warn

__all__ = [
    "LOCK_FILE",
    "RUN_ENTRIES",
    "RunFolderBusyError",
    "RunLock",
    "clear_run_files",
    "command_line",
    "is_restartable",
    "remove_orphaned_temporaries",
]

#: The lock file in a run folder.
LOCK_FILE = ".lock"
#: What training writes into a run folder (besides evaluations, which need a checkpoint).
RUN_ENTRIES = (LOCK_FILE, "config.json", "stats.jsonl", "summary.json", "config-history.jsonl", "samples",
               "tensorboard", "checkpoints")
#: Temporary folders of checkpoint writers: ``.tmp-<name>-<pid>`` and ``.old-<name>-<pid>``.
_TEMPORARY = re.compile(r"^\.(tmp|old)-.+-(\d+)$")


class RunFolderBusyError(RuntimeError):
    """Another process is writing to the run folder."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """An exclusive, advisory lock on a run folder (``fcntl.flock`` on ``<folder>/.lock``).

    The lock file records the holder's pid, host, start time and command. The operating system
    drops the lock when its process ends, however it ends (a ``kill -9`` included), so a lock left
    by a dead process never blocks: the next process takes it over, with a warning naming the
    process that left it. Platforms without ``fcntl`` run without the lock.
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self._file: Any = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._file is not None

    def acquire(self) -> "RunLock":
        """Take the lock, or raise :class:`RunFolderBusyError` naming the process holding it."""
        if self.held:
            return self
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder(handle)
            handle.close()
            raise RunFolderBusyError(
                f"{self.folder} is in use by {_describe(holder)}; wait for it to finish or stop it "
                "(one process writes to a run folder at a time)"
            ) from None
        previous = self._holder(handle)
        if previous.get("pid") and previous.get("pid") != os.getpid():
            warn(f"{self.folder}: taking over the lock left by {_describe(previous)}, which is no longer running")
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({
            "pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": command_line(),
        }) + "\n")
        handle.flush()
        self._file = handle
        return self

    def release(self) -> None:
        """Give the lock up (the file stays, empty: a later process finds no holder in it)."""
        if self._file is None:
            return
        try:
            self._file.seek(0)
            self._file.truncate()
            self._file.flush()
        except OSError:  # a full disk must not stop the release itself
            pass
        self._file.close()  # closing the descriptor drops the flock
        self._file = None

    @staticmethod
    def _holder(handle: Any) -> dict[str, Any]:
        handle.seek(0)
        try:
            value = json.loads(handle.read() or "{}")
        except json.JSONDecodeError:
            return {}
        return value if isinstance(value, dict) else {}


def command_line() -> str:
    """This process's command line, short: ``gancore train ...`` for the CLI, else the script and arguments."""
    if not sys.argv:
        return ""
    program = Path(sys.argv[0]).name
    if program in ("gancore", "__main__.py"):  # the console script, or python -m gancore
        program = "gancore"
    return " ".join([program, *sys.argv[1:]])


def _describe(holder: dict[str, Any]) -> str:
    if not holder:
        return "another process"
    command = f", `{holder['command']}`" if holder.get("command") else ""
    return f"process {holder.get('pid')} on {holder.get('host')} (since {holder.get('since')}{command})"


def remove_orphaned_temporaries(checkpoints: Path) -> list[Path]:
    """Remove the temporary folders that checkpoint writers killed mid-write left in ``checkpoints``
    (any but this process's, whose writer is no longer running); returns what was removed.

    Call it holding the run folder's lock: then no other process is writing there.
    """
    removed = []
    if not Path(checkpoints).is_dir():
        return removed
    for child in Path(checkpoints).iterdir():
        match = _TEMPORARY.match(child.name)
        if not match or not child.is_dir():
            continue
        pid = int(match.group(2))
        if pid == os.getpid() or _alive(pid):
            continue
        shutil.rmtree(child, ignore_errors=True)
        removed.append(child)
    return removed


def is_restartable(folder: Path) -> bool:
    """Whether ``folder`` holds only what a gancore run that failed before its first checkpoint
    left (it diverged, ran out of memory or met a damaged image): a config.json that gancore
    wrote, and nothing but stats, sample grids, TensorBoard events, the lock and temporary
    checkpoint folders; no summary (a finished run), no checkpoint, nothing else. ``gancore train``
    may start such a run again in the same folder."""
    from gancore.checkpoint import step_folders

    folder = Path(folder)
    if not (folder / "config.json").is_file() or (folder / "summary.json").exists():
        return False
    try:
        written_by_gancore = "version" in json.loads((folder / "config.json").read_text()).get("gancore", {})
    except (OSError, ValueError, AttributeError):
        return False
    checkpoints = folder / "checkpoints"
    samples = folder / "samples"
    return (
        written_by_gancore
        and all(child.name in RUN_ENTRIES for child in folder.iterdir())
        and not step_folders(checkpoints)
        and all(_TEMPORARY.match(child.name) for child in (checkpoints.iterdir() if checkpoints.is_dir() else ()))
        and all(re.match(r"^step-\d+\.\w+$", child.name) for child in (samples.iterdir() if samples.is_dir() else ()))
    )


def clear_run_files(folder: Path, keep_lock: bool = True) -> None:
    """Delete what training wrote into ``folder`` (:data:`RUN_ENTRIES`; the lock file too unless ``keep_lock``)."""
    folder = Path(folder)
    for name in RUN_ENTRIES:
        path = folder / name
        if name == LOCK_FILE and keep_lock:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
