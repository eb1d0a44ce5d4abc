"""ADA's adaptive p: the overfitting heuristic r_t = E[sign(D(real))] steers the augmentation probability."""

from typing import Any

import torch
from torch import Tensor

from gancore.distributed import is_distributed

__all__ = ["AdaptiveP"]


class AdaptiveP:
    """Every ``interval`` steps, ``p += sign(r_t - target) * batch * interval / (ada_kimg * 1000)``,
    clamped to [0, 1]; r_t is the mean sign of D's real logits since the last adjustment."""

    def __init__(self, p: float, target: float, interval: int, ada_kimg: float):
        self.p = float(p)
        self.target = target
        self.interval = interval
        self.ada_kimg = ada_kimg
        #: Sum of sign(D(real)) and count of real logits since the last adjustment.
        self.sign_sum = 0.0
        self.count = 0
        #: r_t of the newest adjustment (None before the first).
        self.rt: float | None = None

    def observe(self, d_real: Tensor) -> None:
        """Accumulate the signs of D's logits on (augmented) reals."""
        signs = torch.sign(d_real.detach().float())
        self.sign_sum += float(signs.sum())
        self.count += signs.numel()

    def step(self, step: int, global_batch: int) -> bool:
        """After training step ``step`` (0-based): adjust p if an interval is complete; True if it did."""
        if (step + 1) % self.interval != 0:
            return False
        total, count = self.sign_sum, self.count
        if is_distributed():
            import torch.distributed as dist

            reduced = torch.tensor([total, float(count)], dtype=torch.float64)
            dist.all_reduce(reduced)
            total, count = float(reduced[0]), int(reduced[1])
        self.sign_sum, self.count = 0.0, 0
        if count == 0:
            return False
        self.rt = total / count
        adjust = (1.0 if self.rt > self.target else -1.0 if self.rt < self.target else 0.0)
        adjust *= global_batch * self.interval / (self.ada_kimg * 1000)
        self.p = min(max(self.p + adjust, 0.0), 1.0)
        return True

    def state_dict(self) -> dict[str, Any]:
        """p and the running statistic, for a checkpoint."""
        return {"p": self.p, "sign_sum": self.sign_sum, "count": self.count, "rt": self.rt}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.p = float(state["p"])
        self.sign_sum = float(state["sign_sum"])
        self.count = int(state["count"])
        self.rt = None if state.get("rt") is None else float(state["rt"])
