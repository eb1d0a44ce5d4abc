"""LeCam: keeps D's logits near running averages of the other side's (Tseng et al. 2021), a regulariser whose state lives in checkpoints."""

import attrs
import torch
import torch.nn.functional as F
from gancore import LossTerm, hookimpl
from gancore.config import ge, lt
from gancore.distributed import all_reduce_mean


@attrs.frozen(kw_only=True)
class LeCamConfig:
    """Settings of [[plugins]] name = "lecam"."""

    weight: float = attrs.field(default=0.3, validator=ge(0.0))
    decay: float = attrs.field(default=0.99, validator=[ge(0.0), lt(1.0)])


class LeCam:
    """Adds ``weight * (mean(relu(D(x) - ema_fake)²) + mean(relu(ema_real - D(G(z)))²))`` to D's loss.

    ``ema_real`` and ``ema_fake`` are running means of D's logits. They are training state: saved
    in every checkpoint and restored on resume, updated once a step over the whole batch (every
    micro-batch under accumulation, every rank under data parallelism), so every rank holds the
    same values and a resume goes on exactly.
    """

    name = "lecam"
    config_class = LeCamConfig

    def __init__(self, config: LeCamConfig):
        self.config = config
        self.ema_real = 0.0
        self.ema_fake = 0.0
        self._sums: torch.Tensor | None = None  # this step's sums of real and fake logits, and their count

    @hookimpl
    def gancore_d_loss(self, d_real, d_fake):
        # Called once per micro-batch: collect the step's logits, use the averages of steps before.
        # The sums stay on D's device: NCCL reduces only GPU tensors.
        count = torch.tensor(float(len(d_real)), device=d_real.device)
        step = torch.stack([d_real.detach().sum(), d_fake.detach().sum(), count])
        self._sums = step if self._sums is None else self._sums + step
        penalty = F.relu(d_real - self.ema_fake).square().mean() + F.relu(self.ema_real - d_fake).square().mean()
        return LossTerm("reg", penalty, weight=self.config.weight)

    @hookimpl
    def gancore_step_end(self, stats):
        if self._sums is None:  # no D step ran (not expected, but harmless)
            return
        total = all_reduce_mean(self._sums)  # the same on every rank: the means over the global batch
        real, fake = (total[:2] / total[2]).tolist()
        self.ema_real = self.config.decay * self.ema_real + (1 - self.config.decay) * real
        self.ema_fake = self.config.decay * self.ema_fake + (1 - self.config.decay) * fake
        self._sums = None
        stats["lecam/ema_real"], stats["lecam/ema_fake"] = self.ema_real, self.ema_fake

    @hookimpl
    def gancore_state_dict(self):
        return {"ema_real": self.ema_real, "ema_fake": self.ema_fake}

    @hookimpl
    def gancore_load_state_dict(self, state):
        self.ema_real, self.ema_fake = float(state["ema_real"]), float(state["ema_fake"])
