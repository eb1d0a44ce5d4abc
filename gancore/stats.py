"""Training statistics: averaging over a logging interval, appending to stats.jsonl and TensorBoard (when installed)."""

import json
import os
import sys
from pathlib import Path
from typing import Any, Mapping

from gancore.files import write_text_atomically

__all__ = ["StatsLog", "append_line", "keep_stats_up_to", "read_stats"]


class StatsLog:
    """Accumulates per-step values and writes their means once per logging interval.

    Each line of ``stats.jsonl`` holds ``step`` (steps completed), ``kimg`` (thousands of real
    images shown), ``sec_per_step`` and the mean of every value reported since the last line.
    """

    def __init__(self, path: Path | None, tensorboard_dir: Path | None = None):
        self.path = path
        self.history: list[dict[str, Any]] = []
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        #: Where TensorBoard events go (the writer is made at the first flush: nothing is written
        #: before training logs something).
        self.tensorboard_dir = tensorboard_dir
        #: The TensorBoard writer, once made (None when TensorBoard is not installed).
        self.tensorboard: Any = None

    def add(self, values: Mapping[str, float]) -> None:
        """Add one step's values to the running means."""
        for key, value in values.items():
            value = float(value)
            self._sums[key] = self._sums.get(key, 0.0) + value
            self._counts[key] = self._counts.get(key, 0) + 1

    def flush(self, step: int, kimg: float, sec_per_step: float) -> dict[str, Any]:
        """Write the means since the last flush as one line and return it."""
        line: dict[str, Any] = {"step": step, "kimg": round(kimg, 6), "sec_per_step": sec_per_step}
        for key in sorted(self._sums):
            line[key] = self._sums[key] / self._counts[key]
        self._sums.clear()
        self._counts.clear()
        self._append(line)
        if self.tensorboard is None and self.tensorboard_dir is not None:
            self.tensorboard = _tensorboard_writer(self.tensorboard_dir)
            self.tensorboard_dir = None  # made once (or found missing once)
        if self.tensorboard is not None:
            for key, value in line.items():
                if key != "step":
                    self.tensorboard.add_scalar(key, value, global_step=step)
            self.tensorboard.flush()
        return line

    def event(self, step: int, kimg: float, name: str, details: Mapping[str, Any]) -> dict[str, Any]:
        """Write one line that records an event rather than means (``{"step", "kimg", "event": name,
        ...details}``; e.g. the settings a resume changed) and return it."""
        line: dict[str, Any] = {"step": step, "kimg": round(kimg, 6), "event": name, **details}
        self._append(line)
        return line

    def _append(self, line: dict[str, Any]) -> None:
        self.history.append(line)
        if self.path is not None:
            append_line(self.path, json.dumps(line, allow_nan=True) + "\n")

    def close(self) -> None:
        """Close the TensorBoard writer, if any."""
        if self.tensorboard is not None:
            self.tensorboard.close()
            self.tensorboard = None


    def truncate_after(self, step: int) -> None:
        """Drop the lines of stats.jsonl logged after ``step`` (used when resuming there)."""
        if self.path is not None and self.path.is_file():
            keep_stats_up_to(self.path, step)


def _tensorboard_writer(folder: Path) -> Any:
    """A ``SummaryWriter`` on ``folder``, or None when TensorBoard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(folder))


def append_line(path: Path, text: str) -> None:
    """Append ``text`` (one line) whole or not at all: written, flushed and synced; when the disk
    fills half-way, the file is cut back to where it was and the OSError raised."""
    data = text.encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        start = os.fstat(fd).st_size
        try:
            done = 0
            while done < len(data):
                done += os.write(fd, data[done:])
            os.fsync(fd)
        except OSError as exc:
            os.ftruncate(fd, start)  # no torn line for the next reader
            exc.filename = exc.filename or str(path)
            raise
    finally:
        os.close(fd)


def keep_stats_up_to(source: Path, step: int, dest: Path | None = None) -> None:
    """Write the lines of stats file ``source`` logged at ``step`` or before to ``dest`` (default:
    ``source`` itself, replaced atomically)."""
    kept = [line for line in read_stats(source) if line["step"] <= step]
    write_text_atomically(dest or source, "".join(json.dumps(line, allow_nan=True) + "\n" for line in kept))


def read_stats(path: Path) -> list[dict[str, Any]]:
    """Read every line of a stats.jsonl file.

    A torn last line (a process killed, or a disk filled, while writing it) is dropped with a
    warning naming the file; a damaged line before it is a CheckpointError naming the file and line.
    """
    from gancore.checkpoint import CheckpointError

    path = Path(path)
    lines = [(number, text) for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if text.strip()]
    records = []
    for position, (number, text) in enumerate(lines):
        try:
            records.append(json.loads(text))
        except json.JSONDecodeError as exc:
            if position == len(lines) - 1:
                print(f"gancore: warning: {path}: dropped a torn last line (line {number}, {len(text)} characters)",
                      file=sys.stderr)
                break
            raise CheckpointError(f"{path}: line {number} is not JSON ({exc.msg}); the file is damaged") from None
    return records
