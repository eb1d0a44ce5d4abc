"""Settings of the ``glead`` plugin, with the paper's defaults."""

import attrs

from gancore.config import ge, gt, one_of

__all__ = ["GLeaDConfig"]


def _power_of_two(minimum: int):
    """An attrs validator: None, or a power of two >= ``minimum``."""

    def check(instance, attribute, value):
        if value is not None and (value < minimum or value & (value - 1)):
            raise ValueError(f"must be a power of two >= {minimum}, got {value}")

    return check


@attrs.frozen(kw_only=True)
class GLeaDConfig:
    """Settings of the ``glead`` plugin (defaults from Bai et al. 2023 and its official code)."""

    #: G's resolution r whose state D predicts; G's later blocks reconstruct the image from it.
    #: None: a quarter of the image resolution (the paper's FFHQ-256 setting, r = 64).
    r: int | None = attrs.field(default=None, validator=_power_of_two(4))
    #: Output size of the decoder over D's features before the heads (the paper: 64); the predicted
    #: maps are resized bilinearly to r. None: min(64, image resolution).
    decoder_resolution: int | None = attrs.field(default=None, validator=_power_of_two(8))
    #: Weight of the real reconstruction term.
    lambda_real: float = attrs.field(default=10.0, validator=ge(0.0))
    #: Weight of the fake reconstruction term (fake_target = "image").
    lambda_fake: float = attrs.field(default=3.0, validator=ge(0.0))
    #: "image": reconstruct fakes like reals (pure GLeaD); "feature": predict G's own block output
    #: at r, by cosine distance (the GLeaD + GGDR variant of the official scripts).
    fake_target: str = attrs.field(default="image", validator=one_of("image", "feature"))
    #: Weight of the cosine feature term (fake_target = "feature").
    lambda_feature: float = attrs.field(default=10.0, validator=ge(0.0))
    #: Reconstruction distance: "lpips" (the paper's and the official code's; needs the LPIPS file),
    #: "mse" or "l1".
    distance: str = attrs.field(default="lpips", validator=one_of("mse", "l1", "lpips"))
    #: A local safetensors file with the LPIPS (AlexNet) weights; None: the file
    #: gancore-glead-convert-lpips writes by default (``~/.cache/gancore/lpips/alex-v0.1.safetensors``).
    lpips_weights: str | None = None
    #: Also add the real term in the lazy R1 phase, times d_reg_interval (as the official code does).
    real_in_dreg: bool = True
    #: LPIPS upsamples smaller images to this size first (AlexNet's stride-4 stem needs room).
    lpips_min_size: int = attrs.field(default=64, validator=gt(0))
