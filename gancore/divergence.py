"""The divergence guard: training that leaves a sane range of losses or outputs stops (or warns) with the step and value."""

import math
from typing import Mapping

__all__ = ["DivergenceError", "DivergenceGuard"]


class DivergenceError(FloatingPointError):
    """Training diverged: a loss or G's output stayed beyond ``train.divergence_limit``."""


class DivergenceGuard:
    """Watches each step's statistics: ``Loss/...`` values and the mean magnitude of G's output
    (``Output/G/mean_abs``). A value beyond ``limit`` for ``patience`` steps in a row is divergence.

    :meth:`check` returns a message when it is; the loop stops or warns with it.
    """

    def __init__(self, limit: float, patience: int):
        self.limit = limit
        self.patience = patience
        self.streak = 0

    def check(self, step: int, stats: Mapping[str, float]) -> str | None:
        """The message of divergence at ``step`` (the step just finished), or None."""
        worst = None
        for key, value in stats.items():
            if not (key.startswith("Loss/") or key.startswith("Output/")):
                continue
            if not math.isfinite(value) or abs(value) > self.limit:
                if worst is None or not math.isfinite(value) or abs(value) > abs(worst[1]):
                    worst = (key, value)
        if worst is None:
            self.streak = 0
            return None
        self.streak += 1
        if self.streak < self.patience:
            return None
        key, value = worst
        return (f"training diverged at step {step}: {key} = {value:.4g}, beyond train.divergence_limit "
                f"({self.limit:g}) for {self.streak} steps in a row")
