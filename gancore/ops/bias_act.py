"""Bias + activation + gain + clamp: the reference implementation and the activation table."""

import math
from typing import Callable

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ACTIVATIONS", "Activation", "bias_act_ref"]


@attrs.frozen
class Activation:
    """An activation with its default slope (``alpha``) and default output gain."""

    function: Callable[[Tensor, float], Tensor]
    default_alpha: float = 0.0
    default_gain: float = 1.0


#: Activations by name; the gains keep the output variance near the input's (StyleGAN's choice).
ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation(lambda x, _: x),
    "relu": Activation(lambda x, _: F.relu(x), default_gain=math.sqrt(2)),
    "lrelu": Activation(lambda x, alpha: F.leaky_relu(x, alpha), default_alpha=0.2, default_gain=math.sqrt(2)),
    "tanh": Activation(lambda x, _: torch.tanh(x)),
    "sigmoid": Activation(lambda x, _: torch.sigmoid(x)),
}


def resolve_activation(act: str, alpha: float | None, gain: float | None) -> tuple[Activation, float, float]:
    """Look up ``act`` and fill ``alpha`` and ``gain`` with its defaults."""
    try:
        spec = ACTIVATIONS[act]
    except KeyError:
        raise ValueError(f"unknown activation {act!r}; known: {', '.join(ACTIVATIONS)}") from None
    return spec, spec.default_alpha if alpha is None else float(alpha), spec.default_gain if gain is None else float(gain)


def bias_act_ref(
    x: Tensor,
    b: Tensor | None = None,
    dim: int = 1,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
) -> Tensor:
    """``clamp(act(x + b) * gain)`` with ``b`` broadcast along axis ``dim``; plain PyTorch ops.

    First and second derivatives come from autograd.
    """
    spec, alpha, gain = resolve_activation(act, alpha, gain)
    if b is not None:
        if b.ndim != 1 or b.shape[0] != x.shape[dim]:
            raise ValueError(f"bias must be [{x.shape[dim]}] for axis {dim} of {list(x.shape)}, got {list(b.shape)}")
        x = x + b.reshape([-1 if i == dim % x.ndim else 1 for i in range(x.ndim)])
    x = spec.function(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x
