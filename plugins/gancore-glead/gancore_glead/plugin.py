"""GLeaD: G assigns D a task, reconstructing the input through G's synthesis from D's features."""

import contextlib
from typing import Any, Iterator

import torch.nn.functional as F
from torch import Tensor, nn

from gancore import LossTerm, hookimpl
from gancore.config import ConfigError

from gancore_glead.config import GLeaDConfig
from gancore_glead.decoder import StateDecoder
from gancore_glead.distance import Distance, make_distance

__all__ = ["GLeaD", "ATTACHMENT"]

#: The name under which the decoder and its heads hang on D (``D.attachments.glead``).
ATTACHMENT = "glead"


@contextlib.contextmanager
def _buffers_kept(module: nn.Module) -> Iterator[None]:
    """Run ``module`` (in its current mode) on copies of its buffers, so BatchNorm statistics stay put.

    The copies are swapped in and the originals put back afterwards (no in-place restore, which
    would invalidate tensors autograd saved for the backward pass).
    """
    originals = []
    for owner in module.modules():
        for name, buffer in list(owner.named_buffers(recurse=False)):
            originals.append((owner, name, buffer))
            setattr(owner, name, buffer.clone())
    try:
        yield
    finally:
        for owner, name, buffer in originals:
            setattr(owner, name, buffer)


class GLeaD:
    """GLeaD (Bai et al., CVPR 2023): D must predict G's state at r well enough for G to rebuild the image."""

    name = "glead"
    config_class = GLeaDConfig

    def __init__(self, config: GLeaDConfig):
        self.config = config
        self.requires = ("backbone.d_features", "backbone.resume_state") + (
            ("backbone.g_features",) if config.fake_target == "feature" else ()
        )
        self.r: int | None = None
        self.decoder_resolution: int | None = None
        self.distance: Distance | None = None

    # -- set-up -------------------------------------------------------------------------------

    def resolve(self, run: Any) -> tuple[int, int]:
        """``(r, decoder_resolution)`` for this run, checked against G's blocks."""
        if len(run.G.img_shape) != 3:
            raise ConfigError(
                "the run config",
                [f"plugins: glead reconstructs images, but backbone {run.config.backbone.name!r} generates "
                 f"samples of shape {tuple(run.G.img_shape)}; use an image backbone (dcgan, stylegan2)"],
            )
        blocks = run.G.block_resolutions()
        resolution = run.G.img_shape[-1]
        r = self.config.r if self.config.r is not None else max(resolution // 4, blocks[0])
        decoder_resolution = self.config.decoder_resolution or min(64, resolution)
        problems = []
        if r not in blocks[:-1]:
            problems.append(
                f"plugins.glead.r: G has no block at {r} with layers after it; choose one of {blocks[:-1]}"
            )
        if decoder_resolution <= min(run.D.feature_channels()):
            problems.append(
                f"plugins.glead.decoder_resolution: must exceed D's smallest feature map "
                f"({min(run.D.feature_channels())}), got {decoder_resolution}"
            )
        if problems:
            raise ConfigError("the run config", problems)
        return r, decoder_resolution

    @hookimpl
    def gancore_setup(self, run: Any) -> None:
        """Attach the decoder and its heads to D; load the distance (for training only: a run rebuilt
        to sample or describe it needs no LPIPS file)."""
        self.r, self.decoder_resolution = self.resolve(run)
        decoder = StateDecoder(run.D.feature_channels(), run.G.resume_state(self.r), self.decoder_resolution)
        run.D.attach(ATTACHMENT, decoder.to(run.device))
        if run.for_training:
            self.distance = make_distance(self.config, run.device)

    @hookimpl
    def gancore_import_modules(self, checkpoint: Any, model: Any) -> Any:
        """GLeaD's decoder and heads in an official GLeaD checkpoint's D (``gancore import``)."""
        from gancore_glead.nvidia_import import import_glead_modules  # it names ATTACHMENT, defined here

        return import_glead_modules(checkpoint, model)

    def decoder(self, run: Any) -> StateDecoder:
        """The decoder attached to ``run.D``."""
        return run.D.attachments[ATTACHMENT]

    # -- the task -----------------------------------------------------------------------------

    def predict_state(self, run: Any, d_features: dict[int, Tensor]) -> dict[str, Tensor]:
        """D's prediction of G's state at r."""
        return self.decoder(run)(d_features)

    def reconstruct(self, run: Any, state: dict[str, Tensor]) -> Tensor:
        """G's synthesis from ``state`` at r: random noise, no style mixing, G's buffers untouched.

        G's other inputs (``cond``, such as EqGAN-SA's heatmaps) are drawn afresh from the plugins
        that provide them, as for any generated batch: D predicts only the state. Not wrapped in
        no_grad: D's heads learn through G (frozen by the trainer in D's phases).
        """
        assert self.r is not None, "gancore_setup has not run"
        n = next(iter(state.values())).shape[0]
        cond = run.generator_inputs(n)["cond"] or None
        with _buffers_kept(run.G):
            return run.G.synthesize_from(self.r, state, cond).float()

    def _image_term(self, run: Any, name: str, d_features: dict[int, Tensor], target: Tensor, weight: float) -> LossTerm:
        assert self.distance is not None
        reconstruction = self.reconstruct(run, self.predict_state(run, d_features))
        return LossTerm(name, self.distance(reconstruction, target.detach().float()).mean(), weight=weight)

    @hookimpl
    def gancore_d_loss(
        self,
        run: Any,
        real_unaugmented: Tensor,
        fake_unaugmented: Tensor,
        d_real_features: dict[int, Tensor],
        d_fake_features: dict[int, Tensor],
        g_features: dict[int, Tensor],
    ) -> list[LossTerm]:
        """The real reconstruction term, and the fake one (image or G-feature target).

        D's features come from the images as D saw them (augmented, with an augmentation plugin);
        the targets are the images before augmentation, as in the official code.
        """
        c = self.config
        terms = [self._image_term(run, "real", d_real_features, real_unaugmented, c.lambda_real)]
        if c.fake_target == "image":
            terms.append(self._image_term(run, "fake", d_fake_features, fake_unaugmented, c.lambda_fake))
        else:
            predicted = self.predict_state(run, d_fake_features)["x"]
            target = g_features[self.r].detach().float()
            cosine = F.cosine_similarity(predicted, target, dim=1).mean()
            terms.append(LossTerm("fake_feature", 1.0 - cosine, weight=c.lambda_feature))
        return terms

    @hookimpl
    def gancore_d_reg_loss(
        self, run: Any, real_unaugmented: Tensor, d_real_features: dict[int, Tensor]
    ) -> LossTerm | None:
        """With ``real_in_dreg``: the real term again, times the lazy interval."""
        if not self.config.real_in_dreg:
            return None
        weight = self.config.lambda_real * run.config.train.d_reg_interval
        return self._image_term(run, "real", d_real_features, real_unaugmented, weight)

    @hookimpl
    def gancore_model_card(self, run: Any) -> str:
        """What GLeaD did in this run."""
        c = self.config
        fake = (
            f"fakes reconstructed the same way (weight {c.lambda_fake})"
            if c.fake_target == "image"
            else f"G's block output at {self.r} predicted for fakes by cosine distance (weight {c.lambda_feature}; GLeaD + GGDR)"
        )
        return (
            "GLeaD (Bai et al., CVPR 2023): D carries a decoder whose heads predict G's synthesis state at "
            f"{self.r}x{self.r} (decoder up to {self.decoder_resolution}x{self.decoder_resolution}); G's later "
            f"layers rebuild the image from it. Real images reconstructed with distance {c.distance} "
            f"(weight {c.lambda_real}{', also in the lazy R1 phase' if c.real_in_dreg else ''}); {fake}."
        )

