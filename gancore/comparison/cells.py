"""The cells of a comparison: one ordinary run folder per (variant, seed), trained, resumed or left alone."""

import json
import math
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

import attrs

from gancore.checkpoint import latest_checkpoint, read_state
from gancore.config import apply_overrides, load_raw_config

__all__ = ["Cell", "Variant", "cell_status", "eval_every_steps", "parse_vary", "resolved_raw", "run_cell",
           "train_command", "variants_from"]


@attrs.frozen
class Variant:
    """One arm of a comparison: a name, its run file and the ``--set`` changes on top of it."""

    name: str
    config: Path
    overrides: tuple[str, ...] = ()


@attrs.frozen
class Cell:
    """One run of a comparison: ``variant`` trained with ``seed`` into ``folder``."""

    variant: Variant
    seed: int
    folder: Path
    #: The ``--set`` changes the comparison adds to every cell (seed, evaluations).
    extra: tuple[str, ...] = ()

    @property
    def overrides(self) -> tuple[str, ...]:
        """Every ``--set`` of this cell, the variant's first."""
        return (*self.variant.overrides, *self.extra, f"train.seed={self.seed}")


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _check_name(name: str, where: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"{where}: variant name {name!r} must be letters, digits, '.', '_' or '-' (it names a folder)")
    return name


def parse_vary(text: str) -> tuple[str, tuple[str, ...]]:
    """``NAME='--set a=1 --set b=2'`` as ``(NAME, ("a=1", "b=2"))``.

    The text is split at each ``--set``, not by shell rules, so that a TOML value keeps its
    quotes (``--set plugins=[{name="augment"}]``); a change wrapped whole in quotes loses them.
    """
    name, sep, rest = text.partition("=")
    if not sep:
        raise ValueError(f"--vary {text!r}: expected NAME='--set key=value ...'")
    first, *pieces = re.split(r"(?:^|\s+)--set(?:=|\s+)", rest.strip())
    if first.strip():
        raise ValueError(f"--vary {text!r}: expected --set key=value, got {first.split()[0]!r}")
    overrides = []
    for piece in pieces:
        piece = piece.strip()
        if len(piece) >= 2 and piece[0] == piece[-1] and piece[0] in "'\"":
            piece = piece[1:-1]
        if "=" not in piece:
            raise ValueError(f"--vary {text!r}: expected --set key=value, got {piece!r}")
        overrides.append(piece)
    return _check_name(name.strip(), "--vary"), tuple(overrides)


def variants_from(configs: Sequence[str | Path], vary: Sequence[str] = (), common: Sequence[str] = ()) -> list[Variant]:
    """The variants of ``gancore compare``: each run file (named by its stem), or one run file
    (itself a variant, named by its stem) and a variant of it per ``--vary``. Names must differ.
    ``common``: ``--set`` changes for every variant, applied before each variant's own."""
    configs = [Path(c) for c in configs]
    if not configs:
        raise ValueError("give at least one run file")
    if vary:
        if len(configs) != 1:
            raise ValueError("--vary takes one base run file")
        base = Variant(_check_name(configs[0].stem, str(configs[0])), configs[0], tuple(common))
        variants = [base, *(Variant(name, configs[0], (*common, *overrides)) for name, overrides in map(parse_vary, vary))]
    else:
        variants = [Variant(_check_name(path.stem, str(path)), path, tuple(common)) for path in configs]
    if len(variants) < 2:
        raise ValueError("a comparison needs two variants or more (two run files, or one and a --vary)")
    names = [v.name for v in variants]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"variant names must differ; given twice: {', '.join(twice)}")
    return variants


def resolved_raw(cell: Cell) -> dict[str, Any]:
    """The cell's run file with its ``--set`` changes applied (what its run trains)."""
    return apply_overrides(load_raw_config(cell.variant.config), cell.overrides, source=f"{cell.variant.config} (--set)")


def cell_status(cell: Cell, steps: int) -> str:
    """``done`` (trained to ``steps``, summary written), ``resume`` (a checkpoint short of it) or
    ``train`` (nothing usable yet: a fresh or restartable folder)."""
    latest = latest_checkpoint(cell.folder)
    if latest is None:
        return "train"
    summary = cell.folder / "summary.json"
    step = read_state(latest)["step"]
    if step >= steps and summary.is_file() and json.loads(summary.read_text()).get("step", -1) >= steps:
        return "done"
    return "resume"


def train_command(cell: Cell, status: str, steps: int) -> list[str]:
    """The plain ``gancore`` command that trains the cell to ``steps`` (or goes on with it: to
    ``steps``, which may be longer than the cell was first started for)."""
    gancore = [sys.executable, "-m", "gancore"]
    if status == "resume":
        return [*gancore, "resume", str(cell.folder), "--steps", str(steps)]
    command = [*gancore, "train", str(cell.variant.config), "--out", str(cell.folder)]
    for override in cell.overrides:
        command += ["--set", override]
    return command


def run_cell(cell: Cell, steps: int, log: Path) -> subprocess.Popen | None:
    """Start the cell's command with its output in ``log`` (None when the cell is done)."""
    status = cell_status(cell, steps)
    if status == "done":
        return None
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", encoding="utf-8") as f:
        command = train_command(cell, status, steps)
        f.write(f"$ {shlex.join(command)}\n")
        f.flush()
        # A session of its own: a terminal's Ctrl-C (or a signal to the whole group) reaches the
        # comparison alone, which tells each cell once to checkpoint and stop (a second signal aborts).
        return subprocess.Popen(command, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)


def eval_every_steps(curve_every_kimg: float | None, batch: int) -> int:
    """``train.eval_every`` in steps for a curve point every ``curve_every_kimg`` thousand images."""
    if not curve_every_kimg:
        return 0
    return max(1, math.ceil(curve_every_kimg * 1000 / batch))
