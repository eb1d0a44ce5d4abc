"""The mapping network: z (and an embedded label) through an MLP to w, with the tracked w_avg."""

import torch
from torch import Tensor, nn

from gancore.backbone import assert_shape

from gancore.layers import FullyConnectedLayer, normalize_2nd_moment

__all__ = ["MappingNetwork"]


class MappingNetwork(nn.Module):
    """``w = fc_{L-1}(... fc_0([norm(z), norm(embed(c))]))`` with leaky ReLU layers.

    As in the official code: z and the label embedding are each normalized to unit second moment
    and concatenated; every layer has ``lr_multiplier`` (0.01 in G). With ``num_ws`` the output is
    broadcast to ``[N, num_ws, w_dim]`` and the average ``w_avg`` is tracked in training (decay
    ``w_avg_beta``) for truncation. ``z_dim = 0`` maps labels only (D's projection labels).
    """

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        num_ws: int | None,
        num_layers: int = 8,
        lr_multiplier: float = 0.01,
        w_avg_beta: float | None = 0.995,
    ):
        super().__init__()
        if z_dim == 0 and c_dim == 0:
            raise ValueError("a mapping network needs latents (z_dim > 0) or labels (c_dim > 0)")
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta
        embed_features = w_dim if c_dim > 0 else 0
        features = [z_dim + embed_features] + [w_dim] * num_layers
        self.embed = FullyConnectedLayer(c_dim, embed_features) if c_dim > 0 else None
        self.layers = nn.ModuleList(
            FullyConnectedLayer(features[i], features[i + 1], activation="lrelu", lr_multiplier=lr_multiplier)
            for i in range(num_layers)
        )
        if w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(
        self,
        z: Tensor | None,
        c: Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_w_avg: bool = True,
    ) -> Tensor:
        """``[N, num_ws, w_dim]`` (or ``[N, w_dim]`` without ``num_ws``).

        In training mode (and ``update_w_avg``) ``w_avg`` moves towards the batch mean of w.
        ``truncation_psi != 1`` pulls the first ``truncation_cutoff`` ws (all when None) towards
        ``w_avg``: ``w_avg + psi * (w - w_avg)``.
        """
        parts = []
        if self.z_dim > 0:
            assert z is not None, "this mapping network needs latents z"
            assert_shape(z, [None, self.z_dim], "mapping network latents z")
            parts.append(normalize_2nd_moment(z.to(torch.float32)))
        if self.embed is not None:
            assert c is not None, "this mapping network needs labels c"
            assert_shape(c, [None, self.c_dim], "mapping network labels c")
            parts.append(normalize_2nd_moment(self.embed(c.to(torch.float32))))
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        for layer in self.layers:
            x = layer(x)

        if self.w_avg_beta is not None and self.training and update_w_avg:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().float().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])

        if truncation_psi != 1:
            if self.w_avg_beta is None:
                raise ValueError("truncation needs a mapping network that tracks w_avg")
            w_avg = self.w_avg.to(x.dtype)
            if self.num_ws is None or truncation_cutoff is None:
                x = w_avg.lerp(x, truncation_psi)
            else:
                head = w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
                x = torch.cat([head, x[:, truncation_cutoff:]], dim=1)
        return x
