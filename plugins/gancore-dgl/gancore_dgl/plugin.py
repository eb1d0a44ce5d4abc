"""DGL: a frozen teacher discriminator guides the student G through an extra adversarial term."""

from typing import Any

import torch
from torch import Tensor

from gancore import LossTerm, hookimpl
from gancore.losses import g_adversarial_loss

from gancore_dgl.config import DGLConfig
from gancore_dgl.teacher import check_compatible, count, load_teacher

__all__ = ["DGL", "teacher_term"]


def teacher_term(logits: Tensor, kind: str, loss: str = "nonsaturating") -> Tensor:
    """The teacher's term per fake ``[N]`` from its logits.

    ``"adversarial"``: G's adversarial loss under ``loss``. ``"pathreg_ens"``: the official
    StyleGAN2 code's ``G_pathreg_ens`` term, ``stopgrad(-D_T) * softplus(-D_T) * [D_T < 0]``: only
    fakes the teacher finds fake count, weighted by how fake it finds them.
    """
    if kind == "adversarial":
        return g_adversarial_loss(logits, loss)
    if kind == "pathreg_ens":
        confidence = (-logits).detach()
        return confidence * torch.nn.functional.softplus(-logits) * (logits < 0).to(logits.dtype)
    raise ValueError(f"unknown teacher term {kind!r}; expected 'adversarial' or 'pathreg_ens'")


class DGL:
    """DGL (Tian et al. 2021): ``L_G = adv(D_s(G(z))) + λ · adv(D_T(G(z)))`` with a frozen, pretrained D_T."""

    name = "dgl"
    config_class = DGLConfig

    def __init__(self, config: DGLConfig):
        self.config = config
        #: The teacher's run (networks only); its D is frozen and lives outside the student's run.
        self.teacher_run: Any = None
        #: 1 until ``teacher_from_step``, then 2 (the teacher term on).
        self.stage = 1

    @property
    def teacher(self):
        """The frozen teacher discriminator."""
        return self.teacher_run.D

    @hookimpl
    def gancore_setup(self, run: Any) -> None:
        """Load the teacher D (frozen, eval, on the run's device) and check it matches the student's data.

        Not when the run is rebuilt only to load or sample its networks: they hold nothing of the
        teacher, and a published student must load where its teacher is not at hand.
        """
        if not run.for_training:
            return
        teacher = load_teacher(self.config.teacher, self.config.teacher_revision, run.device)
        check_compatible(run, teacher, self.config.teacher)
        teacher.D.train(self.config.teacher_train_mode)
        self.teacher_run = teacher

    @hookimpl
    def gancore_step_start(self, run: Any) -> None:
        """Switch to stage 2 at ``teacher_from_step`` (resetting optimizer state if configured)."""
        if self.stage == 1 and run.step >= self.config.teacher_from_step:
            self.stage = 2
            reset = self.config.reset_optimizers
            if reset in ("G", "both") and run.opt_G is not None:
                run.opt_G.state.clear()
            if reset == "both" and run.opt_D is not None:
                run.opt_D.state.clear()

    @hookimpl
    def gancore_teacher_loss(
        self, run: Any, fake: Tensor, inputs: dict[str, Any], weights: Tensor | None, weight_sum: Tensor | None
    ) -> LossTerm | None:
        """λ times the teacher's adversarial loss on the student's fakes (stage 2 only)."""
        if self.stage < 2:
            return None
        logits = self.teacher(fake, inputs["c"]).float()
        per_sample = teacher_term(logits, self.config.teacher_loss, run.config.train.loss)
        if self.config.use_sample_weights and weights is not None and weight_sum is not None:
            loss = (weights.to(per_sample.dtype) * per_sample).sum() / weight_sum
        else:
            loss = per_sample.mean()
        return LossTerm("teacher", loss, weight=self.config.weight)

    @hookimpl
    def gancore_step_end(self, stats: dict[str, float]) -> None:
        """Report the stage."""
        stats["dgl/stage"] = float(self.stage)

    @hookimpl
    def gancore_state_dict(self) -> dict[str, Any]:
        """The stage (so a resumed run neither repeats nor skips the switch)."""
        return {"stage": self.stage}

    @hookimpl
    def gancore_load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the stage."""
        self.stage = int(state["stage"])

    @hookimpl
    def gancore_parameter_counts(self) -> dict[str, int] | None:
        """The teacher's discriminator and generator (the student's are counted by the core)."""
        if self.teacher_run is None:
            return None
        return {"teacher.D": count(self.teacher_run.D), "teacher.G": count(self.teacher_run.G)}

    @hookimpl
    def gancore_model_card(self, run: Any) -> str:
        """What DGL did in this run."""
        c = self.config
        counts = run.parameter_counts()
        sizes = (
            f" ({counts['dgl.teacher.D']:,} parameters; its G has {counts['dgl.teacher.G']:,}, this student G "
            f"{counts['G']:,})" if "dgl.teacher.D" in counts else ""
        )
        term = ("its adversarial loss" if c.teacher_loss == "adversarial"
                else "the official StyleGAN2 code's pathreg_ens term (stopgrad(-D_T)·softplus(-D_T) where D_T < 0)")
        return (
            f"DGL (Tian et al. 2021): a frozen teacher discriminator from `{c.teacher}`{sizes} added "
            f"λ = {c.weight} times {term} on the fakes to G's loss from step "
            f"{c.teacher_from_step} on{' (teacher in train mode)' if c.teacher_train_mode else ''}."
        )
