"""How fast the data pipeline delivers real images, against a GPU's appetite.

    python benchmarks/data_speed.py [--images 10000] [--batches 40] [--root DIR] [--json FILE]

Writes ``--images`` PNGs of smooth random content at 256 px into ``--root`` (once: kept and reused),
then times, for each case, how many images per second reach the training process:

- ``gancore, in process``: ``train.data_workers = 0`` (the decoding in the training process);
- ``gancore, workers``: the automatic ``train.data_workers`` (a :class:`BatchStream`);
- ``NVIDIA-style loader``: our own equivalent of StyleGAN2-ADA's setup, a ``DataLoader`` over
  single images with 3 workers, pinned memory on CUDA and a prefetch of 2 batches.

Cases: the 256 px images at 256 px (batch 32) and resized to 64 px (batch 64). Each case reads
``--batches`` consecutive batches of the first epoch (no image twice, so no cache helps) after one
warm-up batch. The GPU's appetite: NVIDIA's StyleGAN2 on an H100 trains about 87 images/s at 256 px
and 300 images/s at 64 px.
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gancore.config import DataConfig
from gancore.data import batch_indices, build_dataset
from gancore.data.folder import load_square_image
from gancore.data.loader import BatchStream, default_workers

#: Images per second NVIDIA's StyleGAN2 consumes on an H100 (the GPU side of the comparison).
GPU_APPETITE = {256: 87.0, 64: 300.0}
CASES = ((256, 32), (64, 64))  # (resolution read at, batch)


def write_images(root: Path, count: int, size: int = 256) -> Path:
    """``count`` PNGs of smooth random colour fields (photograph-like to compress), made once."""
    folder = root / f"png-{size}"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        path = folder / f"{i:06d}.png"
        coarse = rng.random((3, 8, 8), dtype=np.float32)
        noise = torch.from_numpy(rng.normal(0, 0.03, (3, size, size)).astype(np.float32))  # drawn either way: resumable
        if path.exists():
            continue
        field = torch.nn.functional.interpolate(torch.from_numpy(coarse)[None], size=(size, size), mode="bicubic",
                                                align_corners=False)[0]
        pixels = ((field + noise).clamp(0, 1) * 255).to(torch.uint8).permute(1, 2, 0).numpy()
        Image.fromarray(pixels).save(path)
    return folder


class _Images(torch.utils.data.Dataset):
    """One decoded image per item, as NVIDIA's ImageFolderDataset hands them out (uint8 CHW)."""

    def __init__(self, files: list[Path], resolution: int):
        self.files, self.resolution = files, resolution

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor:
        with Image.open(self.files[index]) as image:
            return torch.from_numpy(load_square_image(image, self.resolution, 3))


def _rate(batches, count: int, batch: int) -> float:
    iterator = iter(batches)
    next(iterator)  # warm-up: workers start, first batch decoded
    start = time.perf_counter()
    for _ in range(count):
        next(iterator)
    return count * batch / (time.perf_counter() - start)


def measure(folder: Path, resolution: int, batch: int, count: int) -> dict[str, float]:
    """Images per second of each loader for one case."""
    def fresh():  # each loader its own data set: no decoded image cached by an earlier case (workers fork)
        return build_dataset(DataConfig(name="folder", path=str(folder), resolution=resolution))

    data = fresh()
    needed = (count + 1) * batch
    if needed > len(data):
        raise SystemExit(f"{needed} images needed for {count + 1} batches of {batch}; write more with --images")
    rates = {}
    rates["gancore, in process"] = _rate(
        (data.get(batch_indices(len(data), batch, step, 0)) for step in range(count + 1)), count, batch)
    data = fresh()
    workers = default_workers(data)
    stream = BatchStream(data, batch, 0, slice(None), workers, pin_memory=torch.cuda.is_available())
    rates[f"gancore, {workers} workers"] = _rate((stream.get(step) for step in range(count + 1)), count, batch)
    stream.close()
    if workers != 3:  # the same worker count as NVIDIA's, for the like-for-like comparison
        stream = BatchStream(fresh(), batch, 0, slice(None), 3, pin_memory=torch.cuda.is_available())
        rates["gancore, 3 workers"] = _rate((stream.get(step) for step in range(count + 1)), count, batch)
        stream.close()
    files = [folder / name for name in sorted(os.listdir(folder))]
    order = torch.cat([batch_indices(len(files), batch, step, 0) for step in range(count + 1)]).tolist()
    loader = torch.utils.data.DataLoader(_Images(files, resolution), batch_size=batch, sampler=order, num_workers=3,
                                         pin_memory=torch.cuda.is_available(), prefetch_factor=2)
    rates["NVIDIA-style loader (3 workers)"] = _rate(loader, count, batch)
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=10000, help="PNGs at 256 px to write and read (default 10000)")
    parser.add_argument("--batches", type=int, default=40, help="timed batches per case (default 40)")
    parser.add_argument("--root", default=str(Path.home() / ".cache" / "gancore" / "bench-data"),
                        help="where the PNGs are kept between runs")
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args()
    start = time.perf_counter()
    folder = write_images(Path(args.root), args.images)
    print(f"{args.images} PNGs at 256 px in {folder} ({time.perf_counter() - start:.0f} s to write or find); "
          f"{os.cpu_count()} cores, torch {torch.__version__}, {platform.machine()}")
    results = []
    for resolution, batch in CASES:
        for loader, rate in measure(folder, resolution, batch, args.batches).items():
            appetite = GPU_APPETITE[resolution]
            results.append({"resolution": resolution, "batch": batch, "loader": loader, "images_per_s": round(rate, 1),
                            "gpu_images_per_s": appetite, "share_of_gpu_appetite": round(rate / appetite, 2)})
            print(f"{resolution:>3} px, batch {batch:>2} | {loader:<32} | {rate:7.1f} images/s | "
                  f"{rate / appetite:5.2f}x an H100's {appetite:.0f}/s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
