"""Sample pictures: image grids and 2-D scatter plots as PNG, with Pillow only."""

import math
from pathlib import Path

import torch
from PIL import Image, ImageDraw
from torch import Tensor

from gancore.files import write_atomically

__all__ = ["image_grid", "save_samples", "scatter_plot"]


def image_grid(images: Tensor, columns: int | None = None) -> Image.Image:
    """Tile ``[N, C, H, W]`` images in [-1, 1] (C = 1 or 3) into one PIL image."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected images [N, 1 or 3, H, W], got {list(images.shape)}")
    n, c, h, w = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    pixels = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    canvas = torch.zeros(c, rows * h, columns * w, dtype=torch.uint8)
    for i in range(n):
        r, col = divmod(i, columns)
        canvas[:, r * h : (r + 1) * h, col * w : (col + 1) * w] = pixels[i]
    array = canvas.permute(1, 2, 0).numpy()
    return Image.fromarray(array[:, :, 0] if c == 1 else array, mode="L" if c == 1 else "RGB")


def scatter_plot(fake: Tensor, real: Tensor | None = None, size: int = 512) -> Image.Image:
    """Plot 2-D points: real ones in grey, generated ones in blue, on a shared square frame."""
    if fake.ndim != 2 or fake.shape[1] != 2:
        raise ValueError(f"expected points [N, 2], got {list(fake.shape)}")
    fake = fake.detach().float().cpu()
    clouds = [fake] if real is None else [real.detach().float().cpu(), fake]
    both = torch.cat(clouds)
    finite = both[torch.isfinite(both).all(1)]
    if len(finite) == 0:
        finite = torch.zeros(1, 2)
    low, high = finite.min(0).values, finite.max(0).values
    centre = (low + high) / 2
    half = float((high - low).max()) / 2 * 1.1 + 1e-6
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    colours = [(180, 180, 180), (31, 119, 180)] if real is not None else [(31, 119, 180)]
    for points, colour in zip(clouds, colours):
        xy = ((points - centre) / half * 0.5 + 0.5) * (size - 1)
        for x, y in xy[torch.isfinite(xy).all(1)].tolist():
            y = size - 1 - y
            draw.ellipse((x - 1.5, y - 1.5, x + 1.5, y + 1.5), fill=colour)
    return image


def save_samples(path: Path, fake: Tensor, real: Tensor | None = None, columns: int | None = None) -> Path:
    """Save images as a grid (``columns`` wide; default: square), or 2-D points as a scatter plot, atomically.

    The format follows the file's extension (``.png``, ``.jpg``, ``.webp``, ...).
    """
    path = Path(path)
    image_format = Image.registered_extensions().get(path.suffix.lower())
    if image_format is None:
        raise ValueError(f"{path}: unknown image extension {path.suffix!r}; use .png or .jpg")
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = scatter_plot(fake, real) if fake.ndim == 2 else image_grid(fake, columns)
    return write_atomically(path, lambda tmp: picture.save(tmp, format=image_format))
