"""Consistency: D should score an image and its mirror image alike (balanced consistency regularisation, a second D pass)."""

import attrs
from gancore import LossTerm, hookimpl
from gancore.config import ge


@attrs.frozen(kw_only=True)
class ConsistencyConfig:
    """Settings of [[plugins]] name = "consistency"."""

    real_weight: float = attrs.field(default=10.0, validator=ge(0.0))
    fake_weight: float = attrs.field(default=10.0, validator=ge(0.0))


class Consistency:
    """Adds ``weight * mean((D(x) - D(mirror(x)))²)`` for the real and the fake batch to D's loss
    (Zhao et al. 2020, with a left-right mirror as the transform)."""

    name = "consistency"
    config_class = ConsistencyConfig

    def __init__(self, config: ConsistencyConfig):
        self.config = config

    @hookimpl
    def gancore_d_loss(self, run, real, fake, d_real, d_fake, c_real, c_fake):
        if real.ndim != 4:  # 2-D points have no mirror image
            return None
        # A second D pass, run exactly as the core runs D (compiled, autocast) through run.discriminate.
        d_real_mirror = run.discriminate(real.flip(3), c_real)
        d_fake_mirror = run.discriminate(fake.flip(3), c_fake)
        return [
            # Each value is one number (a 0-d tensor); the stats show it unweighted.
            LossTerm("real", (d_real - d_real_mirror).square().mean(), weight=self.config.real_weight),
            LossTerm("fake", (d_fake - d_fake_mirror).square().mean(), weight=self.config.fake_weight),
        ]
