"""The ``augment`` plugin: ADA or DiffAugment on every batch D scores, with ADA's adaptive p."""

from typing import Any

from torch import Tensor

from gancore import hookimpl
from gancore.config import ConfigError

from gancore_augment.ada import GRAYSCALE_SKIPPED, PRESETS, ada_augment
from gancore_augment.adaptive import AdaptiveP
from gancore_augment.config import AugmentConfig
from gancore_augment.diffaugment import diffaugment
from gancore_augment.draws import RunDraws

__all__ = ["Augment"]


class Augment:
    """Differentiable augmentation of everything D scores: ADA (adaptive p) or DiffAugment."""

    name = "augment"
    config_class = AugmentConfig

    def __init__(self, config: AugmentConfig):
        self.config = config
        self.adaptive: AdaptiveP | None = None
        #: ADA's p when it is fixed (the adaptive one lives in :attr:`adaptive`).
        self.fixed_p = config.p
        #: Ops of the preset or policy that have no effect on this run's data (grayscale).
        self.skipped: tuple[str, ...] = ()

    @property
    def p(self) -> float:
        """ADA's current augmentation probability (1 for DiffAugment, which augments every image)."""
        if self.config.mode == "diffaugment":
            return 1.0
        return self.adaptive.p if self.adaptive is not None else self.fixed_p

    @hookimpl
    def gancore_setup(self, run: Any) -> None:
        """Check the data are images of 1 or 3 channels; start p."""
        info = run.data_info
        if not info.is_image or info.channels not in (1, 3):
            raise ConfigError("the run config", [
                f"plugins.augment: augments images of 1 or 3 channels, but the data are of shape {list(info.shape)}"
            ])
        c = self.config
        if c.mode == "ada":
            if c.adaptive:
                self.adaptive = AdaptiveP(c.p, c.target, c.interval, c.ada_kimg)
            if info.channels == 1:
                self.skipped = tuple(op for op in PRESETS[c.preset] if op in GRAYSCALE_SKIPPED)
        elif info.channels == 1 and "color" in c.policy_ops:
            self.skipped = ("saturation",)

    @hookimpl
    def gancore_augment(self, run: Any, images: Tensor) -> Tensor | None:
        """The images D scores, augmented (None when ADA's p is 0)."""
        draws = RunDraws(run)
        if self.config.mode == "diffaugment":
            return diffaugment(images, self.config.policy_ops, draws)
        if self.p <= 0:
            return None
        return ada_augment(images, self.p, PRESETS[self.config.preset], draws)

    @hookimpl
    def gancore_d_loss(self, d_real: Tensor) -> None:
        """Collect the signs of D's real logits for r_t (adaptive ADA)."""
        if self.adaptive is not None:
            self.adaptive.observe(d_real)

    @hookimpl
    def gancore_d_reg_loss(self, d_real: Tensor) -> None:
        """The R1 phase's real logits count too, as in NVIDIA's loss."""
        if self.adaptive is not None:
            self.adaptive.observe(d_real)

    @hookimpl
    def gancore_step_end(self, run: Any, stats: dict[str, float]) -> None:
        """Adjust p every ``interval`` steps; report ``ADA/p`` and ``ADA/rt``."""
        if self.config.mode != "ada":
            return
        if self.adaptive is not None:
            self.adaptive.step(run.step, run.config.train.batch)
            if self.adaptive.rt is not None:
                stats["ADA/rt"] = self.adaptive.rt
        stats["ADA/p"] = self.p

    @hookimpl
    def gancore_state_dict(self) -> dict[str, Any] | None:
        """Adaptive p and its running statistic."""
        return None if self.adaptive is None else self.adaptive.state_dict()

    @hookimpl
    def gancore_load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore adaptive p exactly."""
        if self.adaptive is not None:
            self.adaptive.load_state_dict(state)

    @hookimpl
    def gancore_model_card(self, run: Any) -> str:
        """What was applied, and the final p."""
        c = self.config
        skipped = f" ({', '.join(self.skipped)} skipped: no effect on one-channel images)" if self.skipped else ""
        if c.mode == "diffaugment":
            return (f"DiffAugment (Zhao et al. 2020), policy `{c.policy}`{skipped}: every image D scored, real and "
                    "fake, in D's and G's steps, was augmented differentiably.")
        how = (f"adaptive towards r_t = {c.target} (adjusted every {c.interval} steps, {c.ada_kimg:g} kimg per unit, "
               f"starting at {c.p})" if c.adaptive else "fixed")
        return (f"ADA (Karras et al. 2020), NVIDIA's `{c.preset}` pipeline ({', '.join(PRESETS[c.preset])}){skipped}; "
                f"p {how}; p at the last step: {self.p:.4f}.")
