"""BigGAN's layers: spectrally normalised conv/linear/embedding, class-conditional and plain batch norm."""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ClassBatchNorm", "GainBatchNorm", "SNConv2d", "SNEmbedding", "SNLinear", "SpectralNorm", "init_weights"]


class SpectralNorm:
    """Mixin: divide ``self.weight`` by its largest singular value, estimated by one power iteration
    from the buffer ``u`` (``[1, out]``), as BigGAN does.

    In training mode the iteration's ``u`` and the estimate ``sv`` are stored; in eval mode the
    same iteration runs from the stored ``u`` and nothing is stored. ``eps`` guards the
    normalisations.
    """

    weight: Tensor
    u: Tensor
    sv: Tensor
    training: bool

    def _init_sn(self, outputs: int, eps: float) -> None:
        self.sn_eps = eps
        self.register_buffer("u", torch.randn(1, outputs))  # type: ignore[attr-defined]
        self.register_buffer("sv", torch.ones(1))  # type: ignore[attr-defined]

    def normalised_weight(self) -> Tensor:
        """``weight / sigma``, sigma the power iteration's estimate of the largest singular value."""
        matrix = self.weight.view(self.weight.shape[0], -1)
        with torch.no_grad():
            v = F.normalize(self.u @ matrix, eps=self.sn_eps)
            u = F.normalize(v @ matrix.t(), eps=self.sn_eps)
            if self.training:
                self.u.copy_(u)
        sigma = (v @ matrix.t() @ u.t()).squeeze()
        if self.training:
            with torch.no_grad():
                self.sv.copy_(sigma.detach().reshape(1))
        return self.weight / sigma


class SNConv2d(nn.Conv2d, SpectralNorm):
    """A conv whose weight is spectrally normalised (3x3 with padding 1 unless given)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, padding: int = 1,
                 bias: bool = True, eps: float = 1e-8):
        super().__init__(in_channels, out_channels, kernel_size, padding=padding, bias=bias)
        self._init_sn(out_channels, eps)

    def forward(self, x: Tensor) -> Tensor:
        """Convolve ``x`` with the normalised weight."""
        return F.conv2d(x, self.normalised_weight(), self.bias, padding=self.padding)


class SNLinear(nn.Linear, SpectralNorm):
    """A linear layer whose weight is spectrally normalised."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, eps: float = 1e-8):
        super().__init__(in_features, out_features, bias=bias)
        self._init_sn(out_features, eps)

    def forward(self, x: Tensor) -> Tensor:
        """``x @ W_sn.T + b``."""
        return F.linear(x, self.normalised_weight(), self.bias)


class SNEmbedding(nn.Module, SpectralNorm):
    """A class embedding ``[classes, dim]`` with spectral norm, read with one-hot (or soft) labels."""

    def __init__(self, classes: int, dim: int, eps: float = 1e-8):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(classes, dim))
        self._init_sn(classes, eps)

    def forward(self, c: Tensor) -> Tensor:
        """``c @ W_sn``: the rows of the labels' classes ``[N, dim]``."""
        return c @ self.normalised_weight()


class Embedding(nn.Module):
    """A class embedding ``[classes, dim]`` read with one-hot (or soft) labels (``nn.Embedding``'s weight)."""

    def __init__(self, classes: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(classes, dim))

    def forward(self, c: Tensor) -> Tensor:
        """``c @ W``: the rows of the labels' classes ``[N, dim]``."""
        return c @ self.weight


class ClassBatchNorm(nn.Module):
    """Class-conditional batch norm: ``bn(x) * (1 + gain(y)) + bias(y)``, without affine parameters of its own.

    ``y`` is the shared embedding with its latent chunk (``gain``/``bias`` are bias-free
    spectrally normalised linears of it), or the one-hot label (``gain``/``bias`` are class
    embeddings, BigGAN's CIFAR setting). Running statistics are kept as buffers.
    """

    def __init__(self, channels: int, y_dim: int, per_class: bool, eps: float = 1e-5, sn_eps: float = 1e-8):
        super().__init__()
        self.channels, self.eps = channels, eps
        if per_class:
            self.gain: nn.Module = Embedding(y_dim, channels)
            self.bias: nn.Module = Embedding(y_dim, channels)
        else:
            self.gain = SNLinear(y_dim, channels, bias=False, eps=sn_eps)
            self.bias = SNLinear(y_dim, channels, bias=False, eps=sn_eps)
        self.momentum = 0.1
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """Normalise ``x`` ``[N, C, H, W]`` and scale and shift it per sample by ``y``."""
        gain = (1 + self.gain(y)).view(y.shape[0], -1, 1, 1)
        bias = self.bias(y).view(y.shape[0], -1, 1, 1)
        out = F.batch_norm(x, self.running_mean, self.running_var, None, None, self.training, self.momentum, self.eps)
        return out * gain + bias


class GainBatchNorm(nn.Module):
    """Batch norm with a learned per-channel gain and bias (G's output layer; blocks when unconditional)."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.channels, self.eps = channels, eps
        self.gain = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.momentum = 0.1
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Normalise ``x`` ``[N, C, H, W]`` (``y`` is ignored: the signature of :class:`ClassBatchNorm`)."""
        return F.batch_norm(x, self.running_mean, self.running_var, self.gain, self.bias, self.training, self.momentum,
                            self.eps)


def init_weights(module: nn.Module, style: str) -> None:
    """Initialise the weight of every conv, linear and embedding in ``module`` as BigGAN does:
    ``ortho`` (orthogonal), ``N02`` (normal, std 0.02) or ``xavier`` (Glorot uniform). Biases stay as built."""
    for child in module.modules():
        if isinstance(child, (nn.Conv2d, nn.Linear, SNEmbedding, Embedding)):
            if style == "ortho":
                nn.init.orthogonal_(child.weight)
            elif style == "N02":
                nn.init.normal_(child.weight, 0.0, 0.02)
            elif style == "xavier":
                nn.init.xavier_uniform_(child.weight)
            else:
                raise ValueError(f"init: unknown style {style!r}; choose ortho, N02 or xavier")
