"""Files written whole or not at all: a temporary file beside the target, synced, then renamed over it."""

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Mapping

__all__ = ["portable_path", "write_atomically", "write_folder_atomically", "write_json_atomically", "write_text_atomically"]


def write_atomically(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary name beside ``path``, sync it and rename it to ``path``.

    A failure leaves ``path`` as it was and no temporary file; an OSError names ``path`` (not the
    temporary name), whatever raised it.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        exc.filename = str(path)
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text_atomically(path: Path, text: str) -> Path:
    """Replace ``path`` with ``text`` (UTF-8) atomically."""
    return write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json_atomically(path: Path, payload: Mapping[str, Any] | list[Any]) -> Path:
    """Replace ``path`` with ``payload`` as indented JSON atomically."""
    return write_text_atomically(path, json.dumps(payload, indent=2) + "\n")


def write_folder_atomically(path: Path, fill: Callable[[Path], None]) -> Path:
    """Make the folder ``path`` (absent or empty) by ``fill(tmp)`` on a temporary folder beside it,
    renamed into place when complete: a failure leaves ``path`` as it was and no temporary folder."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        fill(tmp)
        if path.exists():
            path.rmdir()
        tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def portable_path(path: str | Path) -> str:
    """``path`` relative to the working directory where it lies below it, else as it is: for paths
    written into files that are committed or shared (a run file must not name one machine's folders)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
