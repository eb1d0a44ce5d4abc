"""Settings of the ``dgl`` plugin, with the paper's defaults."""

import attrs

from gancore.config import ge, one_of

__all__ = ["DGLConfig"]


def _not_empty(instance, attribute, value):
    if not value:
        raise ValueError("must name a run folder, a checkpoint folder, an exported folder or a Hub repo id")


@attrs.frozen(kw_only=True)
class DGLConfig:
    """Settings of the ``dgl`` plugin (defaults from Tian et al. 2021)."""

    #: Where the teacher discriminator comes from: a gancore run folder, one of its checkpoint
    #: folders, an exported folder, or a Hub repo id.
    teacher: str = attrs.field(validator=_not_empty)
    #: The Hub revision (branch, tag or commit) when ``teacher`` is a repo id.
    teacher_revision: str | None = None
    #: λ: weight of the teacher's adversarial term in G's loss.
    weight: float = attrs.field(default=0.1, validator=ge(0.0))
    #: Stage 2 (the teacher term on) starts at this step; before it the student trains alone.
    teacher_from_step: int = attrs.field(default=0, validator=ge(0))
    #: Optimizer state reset at the switch to stage 2: "none", "G" or "both" (G and D).
    reset_optimizers: str = attrs.field(default="none", validator=one_of("none", "G", "both"))
    #: Multiply the teacher term per sample by the sample weights (e.g. top-k's mask); off, the
    #: teacher sees every fake, as the stacking rules of the methods specify.
    use_sample_weights: bool = False
    #: The teacher's term per fake: "adversarial" (G's loss under the teacher, the paper's form and
    #: the official BigGAN code's) or "pathreg_ens" (the official StyleGAN2 launcher's
    #: ``G_pathreg_ens``: stopgrad(-D_T) * softplus(-D_T), only where D_T < 0; use weight 0.5, its alpha).
    teacher_loss: str = attrs.field(default="adversarial", validator=one_of("adversarial", "pathreg_ens"))
    #: Run the teacher in train mode, as the official BigGAN code does (its spectral-norm power
    #: iteration keeps running); its weights stay frozen either way.
    teacher_train_mode: bool = False
