"""LPIPS (Zhang et al. 2018, AlexNet variant, v0.1) from a local safetensors file, and its converter.

The weights come from a file the user names, or from the default place
(:func:`default_weights_path`), which :func:`fetch_default_weights` fills on first use: it
downloads the two files the reference implementation uses (torchvision's ImageNet AlexNet and the
``lpips`` package's ``weights/v0.1/alex.pth``, each checked) and converts them. The converter,
also the command ``gancore-glead-convert-lpips``, reads them with ``torch.load(weights_only=True)``.
"""

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor, nn

from gancore.checkpoint import CheckpointError, read_tensors

__all__ = ["LPIPS", "convert", "default_weights_path", "fetch_default_weights", "load_lpips", "main"]

#: The torchvision AlexNet file LPIPS v0.1 was trained on top of (ImageNet weights); its name
#: carries the prefix of its sha256, which the download checks, as torch.hub does.
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
ALEXNET_URL = f"https://download.pytorch.org/models/{ALEXNET_FILE}"
#: LPIPS v0.1's linear heads for AlexNet, from the reference implementation, and their sha256
#: (the same bytes as the ``lpips`` wheel's ``lpips/weights/v0.1/alex.pth``).
LIN_URL = "https://raw.githubusercontent.com/richzhang/PerceptualSimilarity/master/lpips/weights/v0.1/alex.pth"
LIN_SHA256 = "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0"

#: AlexNet's conv layers as in torchvision's ``alexnet().features``: index, out, kernel, stride, padding.
_CONVS = ((0, 64, 11, 4, 2), (3, 192, 5, 1, 2), (6, 384, 3, 1, 1), (8, 256, 3, 1, 1), (10, 256, 3, 1, 1))
#: Indices of the ReLUs whose outputs LPIPS compares.
_TAPS = (1, 4, 7, 9, 11)
#: The input normalisation of LPIPS's ScalingLayer (images in [-1, 1]).
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


class LPIPS(nn.Module):
    """The LPIPS distance of two image batches in [-1, 1]: ``[N]``, 0 for identical images.

    Grayscale images are repeated to RGB; images smaller than ``min_size`` are upsampled
    bilinearly to it. The network is frozen (no gradients to its weights) but passes gradients
    to its inputs.
    """

    def __init__(self, min_size: int = 64):
        super().__init__()
        self.min_size = min_size
        layers: list[nn.Module] = []
        in_channels = 3
        for index, out_channels, kernel, stride, padding in _CONVS:
            while len(layers) < index:  # the max-pools between conv groups
                layers.append(nn.MaxPool2d(kernel_size=3, stride=2))
            layers += [nn.Conv2d(in_channels, out_channels, kernel, stride, padding), nn.ReLU()]
            in_channels = out_channels
        self.features = nn.Sequential(*layers)
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for _, c, _, _, _ in _CONVS)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False).eval()

    def _prepare(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"LPIPS expects images [N, 1 or 3, H, W], got {list(x.shape)}")
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        if min(x.shape[2:]) < self.min_size:
            scale = self.min_size / min(x.shape[2:])
            size = [round(s * scale) for s in x.shape[2:]]
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        return (x.float() - self.shift) / self.scale

    def _taps(self, x: Tensor) -> list[Tensor]:
        taps = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in _TAPS:
                taps.append(x / (x.square().sum(dim=1, keepdim=True).sqrt() + 1e-10))
        return taps

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        """Per-sample distances ``[N]`` between ``a`` and ``b``."""
        if a.shape != b.shape:
            raise ValueError(f"LPIPS compares equal shapes, got {list(a.shape)} and {list(b.shape)}")
        taps_a, taps_b = self._taps(self._prepare(a)), self._taps(self._prepare(b))
        total = a.new_zeros(a.shape[0], dtype=torch.float32)
        for lin, fa, fb in zip(self.lins, taps_a, taps_b):
            total = total + lin((fa - fb).square()).mean(dim=(1, 2, 3))
        return total


def load_lpips(path: str | Path, min_size: int = 64) -> LPIPS:
    """An :class:`LPIPS` with the weights of the safetensors file at ``path`` (strict)."""
    path = Path(path)
    tensors = read_tensors(path)
    net = LPIPS(min_size=min_size)
    expected = net.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{path}: not an LPIPS AlexNet file (missing {missing}, unexpected {unexpected})")
    for key, value in tensors.items():
        if value.shape != expected[key].shape:
            raise CheckpointError(f"{path}: {key} has shape {list(value.shape)}, expected {list(expected[key].shape)}")
    net.load_state_dict(tensors)
    return net.requires_grad_(False).eval()


def default_weights_path() -> Path:
    """Where the converter writes and GLeaD looks when ``lpips_weights`` is not set:
    ``$GANCORE_CACHE/lpips/alex-v0.1.safetensors`` (``~/.cache/gancore/...`` without the variable)."""
    from gancore.metrics.evaluate import cache_root

    return cache_root() / "lpips" / "alex-v0.1.safetensors"


def fetch_default_weights() -> Path:
    """:func:`default_weights_path`, made on first use: AlexNet and the v0.1 heads downloaded into
    the gancore cache (each checked) and converted. Offline, a :class:`~gancore.download.DownloadError`
    names each file, its URL and where to put it."""
    from gancore.download import download

    path = default_weights_path()
    if path.is_file():
        return path
    alexnet = download(ALEXNET_URL)
    lin = download(LIN_URL, sha256=LIN_SHA256, filename="lpips-v0.1-alex.pth")
    return convert(alexnet, lin, path)


def convert(alexnet: str | Path, lin: str | Path, out: str | Path) -> Path:
    """Write the LPIPS safetensors file from torchvision's AlexNet and lpips' ``alex.pth`` files."""
    backbone = torch.load(alexnet, map_location="cpu", weights_only=True)
    heads = torch.load(lin, map_location="cpu", weights_only=True)
    tensors = {}
    for index, *_ in _CONVS:
        for kind in ("weight", "bias"):
            key = f"features.{index}.{kind}"
            if key not in backbone:
                raise KeyError(f"{alexnet}: no tensor {key!r}; expected torchvision's alexnet state dict")
            tensors[key] = backbone[key].float().contiguous()
    for i in range(len(_CONVS)):
        key = f"lin{i}.model.1.weight"
        if key not in heads:
            raise KeyError(f"{lin}: no tensor {key!r}; expected the lpips package's weights/v0.1/alex.pth")
        tensors[f"lins.{i}.weight"] = heads[key].float().contiguous()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")  # processes converting at once each write their own
    save_file(tensors, str(tmp), metadata={"format": "pt", "model": "lpips-alex-v0.1"})
    tmp.replace(out)
    load_lpips(out)  # refuse to leave a file that does not load
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``gancore-glead-convert-lpips --alexnet alexnet-owt-7be5be79.pth --lin alex.pth [--out FILE]``."""
    parser = argparse.ArgumentParser(prog="gancore-glead-convert-lpips", description=__doc__.splitlines()[0])
    parser.add_argument("--alexnet", required=True, help="torchvision's alexnet-owt-*.pth")
    parser.add_argument("--lin", required=True, help="the lpips package's weights/v0.1/alex.pth")
    parser.add_argument("--out", default=None,
                        help="the safetensors file to write (default: where GLeaD looks without lpips_weights, "
                             f"{default_weights_path()})")
    args = parser.parse_args(argv)
    try:
        path = convert(args.alexnet, args.lin, args.out or default_weights_path())
    except (OSError, KeyError, RuntimeError, CheckpointError) as exc:
        print(f"gancore-glead-convert-lpips: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
