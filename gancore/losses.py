"""Adversarial losses, R1, path length and the weighted mean, as free functions."""

import math
from typing import Callable

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "LOSSES",
    "LossTerm",
    "d_adversarial_loss",
    "g_adversarial_loss",
    "path_length_penalty",
    "r1_penalty",
    "weighted_mean",
]

#: Adversarial loss conventions; for every one a higher logit means "more realistic".
LOSSES = ("nonsaturating", "hinge", "wasserstein")


@attrs.frozen
class LossTerm:
    """A named loss term a plugin adds to D's or G's loss.

    ``value`` is one number, a 0-d tensor (reduce a per-sample loss yourself: ``.mean()``, or a
    weighted mean); it enters the loss as ``weight * value``. The stats report ``value`` itself,
    unweighted, under the term's name prefixed with the plugin's (``Loss/D/glead_real``).
    """

    name: str
    value: Tensor
    weight: float = 1.0

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.value, Tensor):
            raise TypeError(f"LossTerm {self.name!r}: value must be a tensor, got {type(self.value).__name__}")
        if not self.name or "/" in self.name:
            raise ValueError(f"LossTerm name must be non-empty and contain no '/', got {self.name!r}")
        if self.value.ndim != 0:
            raise ValueError(
                f"LossTerm {self.name!r}: value must be one number (a 0-d tensor), got shape "
                f"{list(self.value.shape)}; reduce it yourself (.mean(), or a weighted mean)"
            )

    @property
    def scalar(self) -> Tensor:
        """The term's value (a 0-d tensor)."""
        return self.value

    @property
    def weighted(self) -> Tensor:
        """``weight * scalar``: what is added to the loss."""
        return self.scalar * self.weight


def _check_loss(kind: str) -> None:
    if kind not in LOSSES:
        raise ValueError(f"unknown adversarial loss {kind!r}; choose one of {', '.join(LOSSES)}")


def g_adversarial_loss(d_fake: Tensor, kind: str = "nonsaturating") -> Tensor:
    """Per-sample G loss ``[N]`` for D's logits on fakes.

    nonsaturating: ``softplus(-D(G(z)))``; hinge and wasserstein: ``-D(G(z))``.
    """
    _check_loss(kind)
    return F.softplus(-d_fake) if kind == "nonsaturating" else -d_fake


def d_adversarial_loss(d_real: Tensor, d_fake: Tensor, kind: str = "nonsaturating") -> tuple[Tensor, Tensor]:
    """Per-sample D losses ``([N], [N])`` for real and fake logits.

    nonsaturating: ``softplus(-D(x))`` and ``softplus(D(G(z)))``; hinge: ``relu(1 - D(x))`` and
    ``relu(1 + D(G(z)))``; wasserstein: ``-D(x)`` and ``D(G(z))`` (pair it with R1 or another
    constraint on D).
    """
    _check_loss(kind)
    if kind == "nonsaturating":
        return F.softplus(-d_real), F.softplus(d_fake)
    if kind == "hinge":
        return F.relu(1.0 - d_real), F.relu(1.0 + d_fake)
    return -d_real, d_fake


def weighted_mean(values: Tensor, weights: Tensor | None) -> Tensor:
    """``sum(w * v) / sum(w)`` over a batch (plain mean when ``weights`` is None).

    When every weight is zero the result is zero (and so are its gradients).
    """
    if weights is None:
        return values.mean()
    if weights.shape != values.shape:
        raise ValueError(f"sample weights have shape {list(weights.shape)}, losses {list(values.shape)}")
    weights = weights.to(values.dtype)
    return (weights * values).sum() / weights.sum().clamp_min(torch.finfo(values.dtype).tiny)


def r1_penalty(d_real: Tensor, real: Tensor) -> Tensor:
    """Per-sample squared gradient norm of D at the reals, ``[N]`` (``real`` must require grad)."""
    (grad,) = torch.autograd.grad(d_real.sum(), real, create_graph=True)
    return grad.square().flatten(1).sum(1)


def path_length_penalty(
    images: Tensor,
    w: Tensor,
    pl_mean: Tensor,
    decay: float,
    reduce: Callable[[Tensor], Tensor] | None = None,
    noise: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """StyleGAN2's path length regulariser, as NVIDIA's loss computes it.

    Returns the per-sample penalty ``(|J^T y| - a)^2``, the per-sample lengths, and the updated
    running mean ``a`` (detached, to store); ``y`` is Gaussian noise scaled by the image size.
    The penalty is taken against ``a = lerp(pl_mean, mean length, decay)`` *with* its gradient
    through this batch's mean length, as in NVIDIA's code. ``w`` is ``[N, w_dim]``, or
    ``[N, layers, w_dim]`` for per-layer latents, whose squared lengths are averaged over the
    layers. ``reduce`` averages the batch's mean length over processes, differentiably (so every
    rank keeps the same running mean and N processes give the gradients of one). ``noise`` is the
    unscaled normal noise ``y`` (default: drawn here with ``torch.randn_like``).
    """
    pixels = math.prod(images.shape[2:]) if images.ndim > 2 else 1
    noise = torch.randn_like(images) if noise is None else noise
    (grad,) = torch.autograd.grad((images * noise / math.sqrt(pixels)).sum(), w, create_graph=True)
    squared = grad.square().sum(-1)
    lengths = (squared.mean(1) if squared.ndim == 2 else squared).sqrt()
    batch_mean = lengths.mean()
    new_mean = pl_mean.lerp(reduce(batch_mean) if reduce is not None else batch_mean, decay)
    return (lengths - new_mean).square(), lengths, new_mean.detach()
