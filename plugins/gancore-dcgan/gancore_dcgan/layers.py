"""Layers both backbones share: label embedding (G), projection output (D), optional spectral norm."""

import torch
from torch import Tensor, nn

from gancore.backbone import assert_shape, one_hot_check

__all__ = ["LREL_SLOPE", "LabelEmbedding", "ProjectionOutput", "maybe_spectral_norm"]

#: Negative slope of every leaky ReLU in these backbones.
LREL_SLOPE = 0.2


def maybe_spectral_norm(module: nn.Module, enabled: bool) -> nn.Module:
    """Wrap ``module``'s weight in a spectral norm parametrization when ``enabled``."""
    if not enabled:
        return module
    return nn.utils.parametrizations.spectral_norm(module)


class LabelEmbedding(nn.Module):
    """The mapping of backbones without a mapping network: ``w = z`` or ``w = [z, embed(c)]``.

    The embedding is a learned linear map of the one-hot label to ``z_dim`` values, initialised
    like ``z`` (standard normal), so ``w_dim = 2 * z_dim`` when conditional.
    """

    def __init__(self, z_dim: int, c_dim: int, owner: str):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.owner = owner
        self.w_dim = z_dim * 2 if c_dim > 0 else z_dim
        self.embed = nn.Linear(c_dim, z_dim, bias=False) if c_dim > 0 else None
        if self.embed is not None:
            nn.init.normal_(self.embed.weight)

    def forward(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        """Return ``w`` ``[N, w_dim]`` for latents ``z`` ``[N, z_dim]`` and labels ``c``."""
        assert_shape(z, [None, self.z_dim], f"{self.owner} latents z")
        one_hot_check(c, z.shape[0], self.c_dim, self.owner)
        if self.embed is None:
            return z
        return torch.cat([z, self.embed(c.to(z.dtype))], dim=1)


class ProjectionOutput(nn.Module):
    """D's output layer: ``logit = linear(h) + <embed(c), h>`` (projection discriminator)."""

    def __init__(self, in_features: int, c_dim: int, spectral_norm: bool, owner: str):
        super().__init__()
        self.in_features = in_features
        self.c_dim = c_dim
        self.owner = owner
        self.fc = maybe_spectral_norm(nn.Linear(in_features, 1), spectral_norm)
        self.embed = (
            maybe_spectral_norm(nn.Linear(c_dim, in_features, bias=False), spectral_norm)
            if c_dim > 0
            else None
        )

    def forward(self, h: Tensor, c: Tensor | None = None) -> Tensor:
        """Return logits ``[N]`` for features ``h`` ``[N, in_features]`` and labels ``c``."""
        assert_shape(h, [None, self.in_features], f"{self.owner} output features")
        one_hot_check(c, h.shape[0], self.c_dim, self.owner)
        logits = self.fc(h).squeeze(1)
        if self.embed is not None:
            logits = logits + (self.embed(c.to(h.dtype)) * h).sum(dim=1)
        return logits
