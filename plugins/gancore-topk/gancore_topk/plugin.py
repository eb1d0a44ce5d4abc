"""Top-k training: G learns only from the fakes D finds most realistic."""

from typing import Any

import attrs
from torch import Tensor

from gancore import hookimpl
from gancore.config import gt, le, one_of
from gancore_topk.schedule import k_fraction_by_progress, kept_count
from gancore_topk.selection import global_topk_mask, topk_mask

__all__ = ["TopK", "TopKConfig"]


@attrs.frozen(kw_only=True)
class TopKConfig:
    """Settings of the ``topk`` plugin (defaults from Sinha et al. 2020)."""

    #: Decay of k: once per epoch k <- max(gamma * k, nu * B) (schedule "epoch"), or
    #: k = max(gamma ** fraction_done, nu) * B (schedule "progress").
    gamma: float = attrs.field(default=0.99, validator=[gt(0.0), le(1.0)])
    #: The floor of k as a fraction of the batch.
    nu: float = attrs.field(default=0.5, validator=[gt(0.0), le(1.0)])
    #: "epoch" (the paper's) or "progress" (by the fraction of train.steps done).
    schedule: str = attrs.field(default="epoch", validator=one_of("epoch", "progress"))
    #: "global": the top k of all ranks' fakes (all-gather of scores); "per_rank": of each rank's.
    selection: str = attrs.field(default="global", validator=one_of("global", "per_rank"))


class TopK:
    """Top-k training: G's adversarial loss uses only the k fakes D scores most realistic."""

    name = "topk"
    config_class = TopKConfig

    def __init__(self, config: TopKConfig):
        self.config = config
        #: k / B for the current step.
        self.k_fraction = 1.0
        #: The epoch whose decay has been applied last (schedule "epoch").
        self.epoch = 0
        #: The mask of the last G step (1 = kept), for inspection.
        self.last_mask: Tensor | None = None

    @hookimpl
    def gancore_setup(self, run: Any) -> None:
        """Check that the run's loss scores real images high (true for every built-in loss)."""
        if run.config.train.loss not in ("nonsaturating", "hinge", "wasserstein"):
            raise ValueError(f"topk does not know which fakes are best under loss {run.config.train.loss!r}")

    @hookimpl
    def gancore_step_start(self, run: Any) -> None:
        """Advance the schedule of k to the current step."""
        config = self.config
        if config.schedule == "epoch":
            while self.epoch < run.epoch:
                self.epoch += 1
                self.k_fraction = max(config.gamma * self.k_fraction, config.nu)
        else:
            done = min(run.step / run.config.train.steps, 1.0)
            self.k_fraction = k_fraction_by_progress(done, config.gamma, config.nu)

    @hookimpl
    def gancore_sample_weights(self, d_fake: Tensor) -> Tensor:
        """A 0/1 mask keeping the k fakes with the highest D logits."""
        if self.config.selection == "global":
            mask = global_topk_mask(d_fake, self.k_fraction)
        else:
            mask = topk_mask(d_fake, kept_count(self.k_fraction, d_fake.numel()))
        self.last_mask = mask
        return mask.to(d_fake.dtype)

    @hookimpl
    def gancore_step_end(self, stats: dict[str, float]) -> None:
        """Report k as a fraction of the batch."""
        stats["topk/k_fraction"] = self.k_fraction
        if self.last_mask is not None:
            stats["topk/kept"] = float(self.last_mask.sum())

    @hookimpl
    def gancore_state_dict(self) -> dict[str, Any]:
        """k and the epoch of its last decay."""
        return {"k_fraction": self.k_fraction, "epoch": self.epoch}

    @hookimpl
    def gancore_load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore k and the epoch of its last decay."""
        self.k_fraction = float(state["k_fraction"])
        self.epoch = int(state["epoch"])

    @hookimpl
    def gancore_model_card(self, run: Any) -> str:
        """What top-k did in this run."""
        c = self.config
        if c.schedule == "epoch":
            rule = f"once per epoch k ← max({c.gamma}·k, {c.nu}·B)"
        else:
            rule = f"k = max({c.gamma}^(fraction of training done), {c.nu})·B"
        return (
            "Top-k training (Sinha et al., NeurIPS 2020): G's adversarial loss averaged over the k of "
            f"B fakes that D scored most realistic; k started at B and decayed as {rule} "
            f"({c.selection.replace('_', '-')} selection). k at the last step: {self.k_fraction:.3f}·B."
        )

