"""ADA's adaptive p: the overfitting heuristic r_t = E[sign(D(real))] steers the augmentation probability."""

from typing import Any

import torch
from torch import Tensor

from gancore.distributed import is_distributed

__all__ = ["AdaptiveP"]


class AdaptiveP:
    """Every ``interval`` steps, ``p += sign(r_t - target) * batch * interval / (ada_kimg * 1000)``,
    clamped to [0, 1]; r_t is the mean sign of D's real logits since the last adjustment.

    NVIDIA's loop clamps only at 0 (p may exceed 1, where the pipeline acts as at 1, and then takes
    longer to come back down); the upper clamp keeps p a probability.
    """

    def __init__(self, p: float, target: float, interval: int, ada_kimg: float):
        self.p = float(p)
        self.target = target
        self.interval = interval
        self.ada_kimg = ada_kimg
        #: Sum of sign(D(real)) and count of real logits since the last adjustment, on D's device
        #: (read back only when p is adjusted).
        self.sign_sum: Tensor | None = None
        self.count = 0
        #: r_t of the newest adjustment (None before the first).
        self.rt: float | None = None

    def observe(self, d_real: Tensor) -> None:
        """Accumulate the signs of D's logits on (augmented) reals."""
        signs = torch.sign(d_real.detach().float()).sum()
        self.sign_sum = signs if self.sign_sum is None else self.sign_sum + signs
        self.count += d_real.numel()

    def step(self, step: int, global_batch: int) -> bool:
        """After training step ``step`` (0-based): adjust p if an interval is complete; True if it did."""
        if (step + 1) % self.interval != 0:
            return False
        if self.sign_sum is None:
            self.sign_sum = torch.zeros(())
        totals = torch.stack([self.sign_sum.double(), torch.tensor(float(self.count), dtype=torch.float64,
                                                                    device=self.sign_sum.device)])
        if is_distributed():
            import torch.distributed as dist

            dist.all_reduce(totals)  # on D's device, so NCCL can reduce it
        total, count = (float(v) for v in totals.cpu())
        self.sign_sum, self.count = None, 0
        if count == 0:
            return False
        self.rt = total / count
        adjust = (1.0 if self.rt > self.target else -1.0 if self.rt < self.target else 0.0)
        adjust *= global_batch * self.interval / (self.ada_kimg * 1000)
        self.p = min(max(self.p + adjust, 0.0), 1.0)
        return True

    def state_dict(self) -> dict[str, Any]:
        """p and the running statistic (this process's part of it), for a checkpoint."""
        sign_sum = 0.0 if self.sign_sum is None else float(self.sign_sum)
        return {"p": self.p, "sign_sum": sign_sum, "count": self.count, "rt": self.rt}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned.

        The running statistic in a checkpoint is rank 0's part; under data parallelism only rank
        0 takes it back (the others start the interval at zero), so it is not counted twice.
        """
        from gancore.distributed import rank

        self.p = float(state["p"])
        own = rank() == 0
        self.sign_sum = torch.tensor(float(state["sign_sum"])) if own else None
        self.count = int(state["count"]) if own else 0
        self.rt = None if state.get("rt") is None else float(state["rt"])
