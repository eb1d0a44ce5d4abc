"""Training statistics: averaging over a logging interval, appending to stats.jsonl and TensorBoard (when installed)."""

import json
from pathlib import Path
from typing import Any, Mapping

__all__ = ["StatsLog"]


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
        self.history.append(line)
        if self.path is not None:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(line, allow_nan=True) + "\n")
        if self.tensorboard is None and self.tensorboard_dir is not None:
            self.tensorboard = _tensorboard_writer(self.tensorboard_dir)
            self.tensorboard_dir = None  # made once (or found missing once)
        if self.tensorboard is not None:
            for key, value in line.items():
                if key != "step":
                    self.tensorboard.add_scalar(key, value, global_step=step)
            self.tensorboard.flush()
        return line

    def close(self) -> None:
        """Close the TensorBoard writer, if any."""
        if self.tensorboard is not None:
            self.tensorboard.close()
            self.tensorboard = None


    def truncate_after(self, step: int) -> None:
        """Drop the lines of stats.jsonl logged after ``step`` (used when resuming there)."""
        if self.path is None or not self.path.is_file():
            return
        kept = [line for line in read_stats(self.path) if line["step"] <= step]
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text("".join(json.dumps(line, allow_nan=True) + "\n" for line in kept), encoding="utf-8")
        tmp.replace(self.path)


def _tensorboard_writer(folder: Path) -> Any:
    """A ``SummaryWriter`` on ``folder``, or None when TensorBoard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(folder))


def read_stats(path: Path) -> list[dict[str, Any]]:
    """Read every line of a stats.jsonl file."""
    with Path(path).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
