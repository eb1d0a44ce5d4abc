"""A small Fashion-MNIST classifier whose penultimate features are the domain extractor for FID, KID and PR."""

import datetime
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from gancore.checkpoint import load_module
from gancore.data.base import batch_indices
from gancore.data.fmnist import NATIVE_SIZE, FashionMNIST

__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_EPOCHS",
    "FORMAT",
    "RESOLUTION",
    "WEIGHTS_PATH",
    "FashionCNN",
    "evaluate_accuracy",
    "load_fmnist_cnn",
    "train_fmnist_cnn",
]

#: Side of the images the network sees; any other size is bilinearly resized to it.
RESOLUTION = 32
#: The weights shipped with gancore (and their JSON sidecar ``fmnist_cnn.json`` beside them).
WEIGHTS_PATH = Path(__file__).parent / "weights" / "fmnist_cnn.safetensors"
#: The ``format`` entry of the weights' metadata and of the JSON sidecar.
FORMAT = "gancore-fmnist-cnn"
#: Epochs and batch size of the recipe that made the shipped weights.
DEFAULT_EPOCHS = 6
DEFAULT_BATCH = 128
DEFAULT_CHANNELS = (16, 32, 64)
DEFAULT_NUM_FEATURES = 128
#: Learning rate, weight decay and warm-up share (of all steps) of AdamW in the recipe.
_LR = 3e-3
_WEIGHT_DECAY = 5e-4
_WARMUP = 0.05
#: Largest random shift (pixels, each axis) of the training augmentation.
_MAX_SHIFT = 2
#: Share of training images resized 28 -> 32 instead of padded.
_RESIZE_SHARE = 0.5
#: Offset of the augmentation generator's seed from the recipe's seed.
_AUGMENT_SEED_OFFSET = 1
_MAKE_IT = "make it with `gancore train-extractor fmnist` (gancore.metrics.fmnist_cnn.train_fmnist_cnn)"


def _block(c_in: int, c_out: int) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for c in (c_in, c_out):
        layers += [nn.Conv2d(c, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    return layers + [nn.MaxPool2d(2)]


class FashionCNN(nn.Module):
    """Three conv blocks (conv-BN-ReLU x2, max-pool) 32 -> 4 px, a ReLU layer of ``num_features``, 10 logits.

    Takes images ``[N, 1, H, W]`` (or ``[N, 3, H, W]``, averaged to gray) in [-1, 1] of any size;
    they are bilinearly resized to 32x32 (antialiased when shrinking), the size of the training
    images: the 28x28 originals padded to 32x32 (or, for half of them, resized).
    """

    def __init__(self, channels: tuple[int, int, int] = DEFAULT_CHANNELS, num_features: int = DEFAULT_NUM_FEATURES):
        super().__init__()
        if len(channels) != 3:
            raise ValueError(f"channels: need three (one per block), got {channels}")
        self.channels = tuple(int(c) for c in channels)
        #: Width of :meth:`features`.
        self.num_features = int(num_features)
        c1, c2, c3 = self.channels
        self.body = nn.Sequential(*_block(1, c1), *_block(c1, c2), *_block(c2, c3))
        side = RESOLUTION // 8
        self.fc = nn.Linear(c3 * side * side, self.num_features)
        self.head = nn.Linear(self.num_features, 10)

    @staticmethod
    def prepare(x: Tensor) -> Tensor:
        """Images ``[N, 1|3, H, W]`` in [-1, 1] as gray ``[N, 1, 32, 32]`` float32."""
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"FashionCNN: expected images [N, 1 or 3, H, W], got shape {list(x.shape)}")
        x = x.float()
        if x.shape[1] == 3:
            x = x.mean(dim=1, keepdim=True)
        h, w = x.shape[-2:]
        if (h, w) != (RESOLUTION, RESOLUTION):
            shrink = h > RESOLUTION or w > RESOLUTION
            x = F.interpolate(x, size=(RESOLUTION, RESOLUTION), mode="bilinear", align_corners=False, antialias=shrink)
        return x

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features ``[N, num_features]`` (after the ReLU) of images ``[N, 1|3, H, W]``."""
        h = self.body(self.prepare(x))
        return F.relu(self.fc(h.flatten(1)))

    def forward(self, x: Tensor) -> Tensor:
        """Class logits ``[N, 10]`` of images ``[N, 1|3, H, W]``."""
        return self.head(self.features(x))


def _test_data(split: str, num_samples: int | None, data_path: str | Path | None, fit: str) -> FashionMNIST:
    return FashionMNIST(data_path, split=split, resolution=RESOLUTION, num_samples=num_samples, fit=fit)


@torch.no_grad()
def _accuracy(model: nn.Module, data: FashionMNIST, batch: int) -> float:
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct = 0
    try:
        for start in range(0, len(data), batch):
            idx = torch.arange(start, min(start + batch, len(data)))
            x, _ = data.get(idx)
            pred = model(x.to(device)).argmax(dim=1).cpu()
            correct += int((pred == data.classes[idx]).sum())
    finally:
        model.train(was_training)
    return correct / len(data)


def evaluate_accuracy(
    model: nn.Module,
    split: str = "test",
    num_samples: int | None = None,
    data_path: str | Path | None = None,
    fit: str = "pad",
    batch: int = 1000,
) -> float:
    """Share of correctly classified images of a Fashion-MNIST split (the first ``num_samples``, or all).

    Images are read at 32x32 with ``fit`` ("pad" or "resize"); the model runs in eval mode
    (its mode is restored afterwards).
    """
    return _accuracy(model, _test_data(split, num_samples, data_path, fit), batch)


def _augment(x: Tensor, rng: torch.Generator) -> Tensor:
    """28x28 images in [-1, 1] -> 32x32: each padded or resized at random, then shifted by up to 2 px."""
    n = x.shape[0]
    pad = (RESOLUTION - NATIVE_SIZE) // 2
    padded = F.pad(x, [pad, pad, pad, pad], value=-1.0)
    resized = F.interpolate(x, size=(RESOLUTION, RESOLUTION), mode="bilinear", align_corners=False, antialias=True)
    resize = torch.rand(n, generator=rng) < _RESIZE_SHARE
    x = torch.where(resize.view(n, 1, 1, 1), resized.clamp(-1.0, 1.0), padded)
    # Shift each image by (dy, dx) in [-2, 2]^2, filling with background.
    s = _MAX_SHIFT
    big = F.pad(x, [s, s, s, s], value=-1.0)
    dy, dx = torch.randint(-s, s + 1, (2, n), generator=rng)
    span = torch.arange(RESOLUTION)
    rows = (span + s - dy[:, None])[:, :, None]
    cols = (span + s - dx[:, None])[:, None, :]
    return big[torch.arange(n)[:, None, None], 0, rows, cols].unsqueeze(1)


def _lr_factor(step: int, total: int) -> float:
    warmup = max(1, round(_WARMUP * total))
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o644)
    os.replace(tmp, path)


def train_fmnist_cnn(
    out_path: str | Path = WEIGHTS_PATH,
    data_path: str | Path | None = None,
    epochs: int = DEFAULT_EPOCHS,
    batch: int = DEFAULT_BATCH,
    seed: int = 0,
    progress: bool = True,
    num_samples: int | None = None,
    eval_samples: int | None = None,
) -> dict[str, Any]:
    """Train a :class:`FashionCNN` on the Fashion-MNIST train split and write its weights and JSON sidecar.

    The recipe: fixed ``seed`` for the initialization, the data order (gancore's stateless batch
    sampler, each image once per epoch) and the augmentation (each 28x28 image padded or, with
    probability 1/2, resized to 32x32, then shifted by up to 2 px); cross-entropy, AdamW
    (lr 3e-3, weight decay 5e-4), linear warm-up over 5% of the steps then cosine decay to 0.
    ``num_samples`` trains on the first N images only, ``eval_samples`` evaluates on the first N
    test images only (both for quick checks). Then measures the test accuracy (images padded and
    resized) and writes ``out_path`` (safetensors, with metadata) and ``out_path`` with suffix
    ``.json``, each atomically. Returns the dict written to the JSON file.
    """
    if epochs < 1 or batch < 1:
        raise ValueError(f"epochs and batch must be >= 1, got epochs={epochs}, batch={batch}")
    out_path = Path(out_path)
    data = FashionMNIST(
        data_path,
        split="train",
        resolution=NATIVE_SIZE,
        num_samples=num_samples,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = FashionCNN()
    rng = torch.Generator().manual_seed(seed + _AUGMENT_SEED_OFFSET)
    optimizer = torch.optim.AdamW(model.parameters(), lr=_LR, weight_decay=_WEIGHT_DECAY)
    steps_per_epoch = math.ceil(len(data) / batch)
    total = epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _lr_factor(step, total))
    model.train()
    start = time.perf_counter()
    loss_sum, correct, seen = 0.0, 0, 0
    for step in range(total):
        idx = batch_indices(len(data), batch, step, seed)
        x, _ = data.get(idx)
        y = data.classes[idx]
        logits = model(_augment(x, rng))
        loss = F.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        loss_sum += loss.item() * len(y)
        correct += int((logits.detach().argmax(dim=1) == y).sum())
        seen += len(y)
        if progress and (step + 1) % steps_per_epoch == 0:
            print(
                f"epoch {(step + 1) // steps_per_epoch}/{epochs}: loss {loss_sum / seen:.4f}, "
                f"train accuracy {correct / seen:.4f} ({time.perf_counter() - start:.0f} s)",
                file=sys.stderr,
            )
            loss_sum, correct, seen = 0.0, 0, 0
    train_seconds = time.perf_counter() - start
    model.eval()
    test_data = _test_data("test", eval_samples, data_path, "pad")
    accuracy = _accuracy(model, test_data, 1000)
    accuracy_resize = evaluate_accuracy(model, "test", eval_samples, data_path, fit="resize")
    if progress:
        print(f"test accuracy {accuracy:.4f} (padded), {accuracy_resize:.4f} (resized)", file=sys.stderr)

    from gancore.version import __version__

    info: dict[str, Any] = {
        "format": FORMAT,
        "version": 1,
        "architecture": {
            "channels": list(model.channels),
            "num_features": model.num_features,
            "resolution": RESOLUTION,
            "parameters": sum(p.numel() for p in model.parameters()),
        },
        "test_accuracy": accuracy,
        "test_accuracy_resize": accuracy_resize,
        "test_samples": len(test_data),
        "recipe": {
            "epochs": epochs,
            "batch": batch,
            "seed": seed,
            "train_samples": len(data),
            "optimizer": f"AdamW(lr={_LR}, weight_decay={_WEIGHT_DECAY})",
            "schedule": f"linear warm-up over {_WARMUP:.0%} of {total} steps, then cosine to 0",
            "augmentation": (
                f"28x28 padded to 32x32, or resized (p={_RESIZE_SHARE}); random shift up to {_MAX_SHIFT} px"
            ),
        },
        "train_seconds": round(train_seconds, 1),
        "torch_version": torch.__version__,
        "gancore_version": __version__,
        "date": datetime.date.today().isoformat(),
    }
    metadata = {
        "format": FORMAT,
        "channels": ",".join(str(c) for c in model.channels),
        "num_features": str(model.num_features),
        "resolution": str(RESOLUTION),
        "test_accuracy": f"{accuracy:.4f}",
        "epochs": str(epochs),
        "seed": str(seed),
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().cpu().contiguous().clone() for name, t in model.state_dict().items()}
    tmp = out_path.with_name(out_path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    tmp.chmod(0o644)  # safetensors creates the file readable by its owner only
    info["sha256"] = hashlib.sha256(tmp.read_bytes()).hexdigest()
    os.replace(tmp, out_path)
    _atomic_write_bytes(out_path.with_suffix(".json"), (json.dumps(info, indent=2) + "\n").encode())
    return info


def load_fmnist_cnn(path: str | Path | None = None, device: str | torch.device = "cpu") -> FashionCNN:
    """The trained :class:`FashionCNN` (the shipped weights unless ``path``), in eval mode, without gradients.

    Raises FileNotFoundError naming the file (and how to make it) when it is missing, and
    gancore.checkpoint.CheckpointError when it does not match the network exactly.
    """
    path = Path(path) if path is not None else WEIGHTS_PATH
    if not path.is_file():
        raise FileNotFoundError(f"{path}: Fashion-MNIST feature extractor weights not found; {_MAKE_IT}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise ValueError(f"{path}: not a readable safetensors file ({exc}); {_MAKE_IT}") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not {FORMAT} weights (metadata format {meta.get('format')!r}); {_MAKE_IT}")
    channels = tuple(int(c) for c in meta["channels"].split(","))
    model = FashionCNN(channels, int(meta["num_features"]))  # type: ignore[arg-type]
    load_module(model, path)
    model.eval().requires_grad_(False)
    return model.to(device)
