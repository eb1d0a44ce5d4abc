"""Stopping training cleanly: SIGINT, SIGTERM and SIGHUP finish the current step, write a checkpoint and stop; a second one aborts."""

import contextlib
import signal
import sys
import threading
from pathlib import Path
from typing import Iterator

__all__ = ["STOP_SIGNALS", "StopRequest", "TrainingAborted", "TrainingInterrupted", "stop_on_signals"]

#: The signals that stop training cleanly: Ctrl-C, a scheduler's or kill's TERM, and HUP (the
#: terminal closed, an ssh session dropped), where the platform has it.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class TrainingAborted(KeyboardInterrupt):
    """A second stop signal arrived while the first was being honoured: training stops at once."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)

    @property
    def exit_status(self) -> int:
        """128 + the signal number, as for the first signal (130, 143, 129)."""
        return 128 + self.signum


class TrainingInterrupted(Exception):
    """Training stopped on a signal after a completed step; ``checkpoint`` is where it was saved (None without a run folder)."""

    def __init__(self, signum: int, step: int, checkpoint: Path | None):
        self.signum = signum
        self.step = step
        self.checkpoint = checkpoint
        name = signal.Signals(signum).name
        where = f"; checkpoint written: {checkpoint}" if checkpoint is not None else "; the run has no folder, nothing was saved"
        super().__init__(f"{name}: stopped after step {step}{where}")

    @property
    def exit_status(self) -> int:
        """128 + the signal number, as a shell reports a process ended by it (130, 143)."""
        return 128 + self.signum


class StopRequest:
    """The signal received while training (None until one arrives)."""

    def __init__(self) -> None:
        self.signum: int | None = None


@contextlib.contextmanager
def stop_on_signals(announce: bool = True) -> Iterator[StopRequest]:
    """Within the block, the first of :data:`STOP_SIGNALS` only records itself (the loop finishes its
    step, writes a checkpoint and stops); a second one raises :class:`TrainingAborted` (a
    KeyboardInterrupt) at once.

    Only the main thread can take signals; elsewhere the block changes nothing.
    """
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handle(signum: int, frame: object) -> None:
        if request.signum is not None:
            raise TrainingAborted(signum)  # the second signal: abort now (checkpoints are written atomically)
        request.signum = signum
        if announce:
            print(f"\ngancore: {signal.Signals(signum).name} received: finishing this step and writing a "
                  "checkpoint; send it again to abort at once", file=sys.stderr, flush=True)

    previous = {sig: signal.signal(sig, handle) for sig in STOP_SIGNALS}
    try:
        yield request
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
