"""The dead-D watch: a discriminator that gives every image the same score is reported with the step."""

import math
from typing import Mapping

__all__ = ["DeadDiscriminatorWatch", "SCORE_SPREAD"]

#: The statistic the watch reads: the standard deviation of D's scores over one step's real and fake batch.
SCORE_SPREAD = "Output/D/score_std"

#: A spread this small relative to the scores' size is a constant output (float noise of a bias alone).
_RELATIVE_TOLERANCE = 1e-6


class DeadDiscriminatorWatch:
    """Watches D's score spread at each step. When every unit before D's output is off (all ReLUs
    dead, as a small BigGAN D at a high learning rate can end), D returns its final bias for every
    image: its loss gives G no gradient and the run stops learning while it goes on costing time.

    :meth:`check` returns a message once the spread has been zero for ``patience`` steps in a row.
    """

    def __init__(self, patience: int):
        self.patience = patience
        self.streak = 0

    def check(self, step: int, stats: Mapping[str, float]) -> str | None:
        """The message at ``step`` (the step just finished) when D's scores have been constant for
        ``patience`` steps; None otherwise, and on steps without a D step."""
        spread = stats.get(SCORE_SPREAD)
        if spread is None or not math.isfinite(spread):  # no D step, or a diverging one (the divergence guard's)
            return None
        size = max(1.0, abs(stats.get("Loss/scores/real", 0.0)), abs(stats.get("Loss/scores/fake", 0.0)))
        if spread > _RELATIVE_TOLERANCE * size:
            self.streak = 0
            return None
        self.streak += 1
        if self.streak != self.patience:
            return None
        score = stats.get("Loss/scores/fake", float("nan"))
        return (f"D has given every image the same score ({score:.4g}) for {self.streak} steps in a row "
                f"(to step {step}): its units are dead, so G gets no gradient from it and the run will "
                f"not learn on its own; lower train.d_lr, or go back with other settings to a checkpoint "
                f"from before D died (step {step - self.streak + 1} at the latest; {SCORE_SPREAD} in "
                f"stats.jsonl shows when); train.dead_d_steps = 0 silences this")
