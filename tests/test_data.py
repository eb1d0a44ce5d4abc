"""Tests of gancore.data: the batch sampler, mixtures, synthetic images, folders and Fashion-MNIST."""

import gzip
import math
import zipfile
from pathlib import Path

import numpy as np
import attrs
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from gancore.config import DataConfig
from gancore.data import DATASET_NAMES, DataError, Dataset, batch_indices, build_dataset, epoch_of
from gancore.data import fmnist as fmnist_module
from gancore.data import synthetic as synthetic_module


def _cfg(**kwargs) -> DataConfig:
    return DataConfig(**kwargs)


# -- batch_indices ------------------------------------------------------------------------------


def _stream(num_items: int, batch: int, steps: int, seed: int) -> torch.Tensor:
    return torch.cat([batch_indices(num_items, batch, s, seed) for s in range(steps)])


def test_batch_indices_covers_each_item_once_per_epoch():
    n, b = 10, 3
    stream = _stream(n, b, 10, seed=5)  # 30 positions = 3 epochs, batches span epoch edges
    assert stream.dtype == torch.long and len(stream) == 30
    epochs = stream.view(3, n)
    for perm in epochs:
        assert sorted(perm.tolist()) == list(range(n))
    assert not torch.equal(epochs[0], epochs[1])  # each epoch reshuffled


def test_batch_indices_independent_of_batch_size():
    # The stream is the same whatever the batch: batch size 7 reads the same positions as batch 1.
    n = 13
    ones = _stream(n, 1, 70, seed=2)
    sevens = _stream(n, 7, 10, seed=2)
    assert torch.equal(ones, sevens)
    # A batch larger than the data set spans several epochs.
    big = batch_indices(4, 10, 1, seed=0)
    assert len(big) == 10
    assert torch.equal(big, _stream(4, 1, 20, seed=0)[10:20])


def test_batch_indices_deterministic_and_seeded():
    a = batch_indices(1000, 64, 37, seed=1)
    assert torch.equal(a, batch_indices(1000, 64, 37, seed=1))
    assert not torch.equal(a, batch_indices(1000, 64, 37, seed=2))
    assert a.shape == (64,) and int(a.min()) >= 0 and int(a.max()) < 1000
    # Returned tensors are not views of a cached permutation: mutating one changes nothing.
    a.zero_()
    assert not torch.equal(batch_indices(1000, 64, 37, seed=1), a)


def test_batch_indices_rejects_bad_arguments():
    with pytest.raises(ValueError):
        batch_indices(0, 4, 0, 0)
    with pytest.raises(ValueError):
        batch_indices(10, 0, 0, 0)
    with pytest.raises(ValueError):
        batch_indices(10, 4, -1, 0)


def test_epoch_of():
    assert epoch_of(10, 3, 0) == 0
    assert epoch_of(10, 3, 3) == 0  # positions 9..11 start in epoch 0
    assert epoch_of(10, 3, 4) == 1
    assert epoch_of(4, 10, 1) == 2


# -- build_dataset ------------------------------------------------------------------------------


def test_dataset_names_and_unknown_name():
    assert DATASET_NAMES == ("mog25", "ring8", "synthetic-images", "folder", "fmnist", "huggingface")
    with pytest.raises(ValueError) as info:
        _cfg(name="cifar")  # the config itself refuses it
    assert str(info.value) == f"unknown data set 'cifar'; known: {', '.join(DATASET_NAMES)}"
    with attrs.validators.disabled():
        unchecked = _cfg(name="cifar")
    with pytest.raises(DataError) as info:
        build_dataset(unchecked)  # the builder refuses it too
    message = str(info.value)
    assert "data.name" in message and "'cifar'" in message
    for name in DATASET_NAMES:
        assert name in message
    assert issubclass(DataError, ValueError)


# -- mixtures -----------------------------------------------------------------------------------


def _nearest(points: torch.Tensor, centers: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    d = torch.cdist(points.double(), centers.double())
    return d.min(dim=1)


def test_mog25_centres_and_statistics():
    ds = build_dataset(_cfg(name="mog25"))
    assert isinstance(ds, Dataset)
    assert ds.info.name == "mog25" and ds.info.shape == (2,) and ds.info.c_dim == 0
    assert len(ds) == 65536
    expected = {(float(x), float(y)) for x in (-4, -2, 0, 2, 4) for y in (-4, -2, 0, 2, 4)}
    assert {tuple(c) for c in ds.centers.tolist()} == expected
    assert ds.std == pytest.approx(0.05)
    x, c = ds.get(torch.arange(len(ds)))
    assert c is None and x.dtype == torch.float32 and x.shape == (65536, 2)
    dist, nearest = _nearest(x, ds.centers)
    # Distance to the own centre of a 2-D isotropic Gaussian is Rayleigh: mean std * sqrt(pi/2).
    assert float(dist.mean()) == pytest.approx(0.05 * math.sqrt(math.pi / 2), rel=0.02)
    assert torch.equal(nearest, ds.modes)  # modes are far apart relative to std
    counts = torch.bincount(nearest, minlength=25).double()
    expected_count = len(ds) / 25
    sigma = math.sqrt(len(ds) * (1 / 25) * (24 / 25))
    assert float((counts - expected_count).abs().max()) < 5 * sigma


def test_ring8_centres_std_override_and_labels():
    ds = build_dataset(_cfg(name="ring8", std=0.1, num_samples=20000, labels=True, seed=3))
    assert len(ds) == 20000 and ds.std == pytest.approx(0.1)
    assert ds.info.c_dim == 8
    radii = ds.centers.norm(dim=1)
    assert torch.allclose(radii, torch.full((8,), 2.0), atol=1e-6)
    angles = torch.atan2(ds.centers[:, 1], ds.centers[:, 0]).sort().values
    assert torch.allclose(angles.diff(), torch.full((7,), math.pi / 4), atol=1e-5)
    x, c = ds.get(torch.arange(len(ds)))
    assert c.shape == (20000, 8) and c.dtype == torch.float32
    assert torch.equal(c.sum(dim=1), torch.ones(20000))
    own = ds.centers[c.argmax(dim=1)]
    dist = (x - own).norm(dim=1)
    assert float(dist.mean()) == pytest.approx(0.1 * math.sqrt(math.pi / 2), rel=0.03)
    counts = c.sum(dim=0)
    assert float(counts.min()) > 20000 / 8 * 0.9 and float(counts.max()) < 20000 / 8 * 1.1
    assert build_dataset(_cfg(name="ring8")).std == pytest.approx(0.02)


def test_mixture_determinism_seeds_and_splits():
    a = build_dataset(_cfg(name="mog25", num_samples=500, seed=7))
    b = build_dataset(_cfg(name="mog25", num_samples=500, seed=7))
    c = build_dataset(_cfg(name="mog25", num_samples=500, seed=8))
    t = build_dataset(_cfg(name="mog25", num_samples=500, seed=7, split="test"))
    idx = torch.tensor([0, 3, 499, 3])
    assert torch.equal(a.get(idx)[0], b.get(idx)[0])
    assert not torch.equal(a.points, c.points)
    assert not torch.equal(a.points, t.points)
    x, _ = a.get(idx)
    assert torch.equal(x[1], x[3])
    with pytest.raises(IndexError):
        a.get(torch.tensor([500]))
    assert "mog25" in a.describe() and "500" in a.describe()


# -- synthetic images ---------------------------------------------------------------------------


def test_synthetic_images_shape_range_and_structure():
    ds = build_dataset(_cfg(name="synthetic-images"))
    assert len(ds) == 1024 and ds.info.shape == (3, 32, 32) and ds.info.c_dim == 0
    x, c = ds.get(torch.arange(64))
    assert c is None and x.dtype == torch.float32 and x.shape == (64, 3, 32, 32)
    assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0
    assert float(x.std()) > 0.1  # not constant
    # Smooth, not noise: neighbouring pixels are strongly correlated.
    left, right = x[..., :-1].flatten(), x[..., 1:].flatten()
    corr = torch.corrcoef(torch.stack([left, right]))[0, 1]
    assert float(corr) > 0.9
    # Images differ from one another.
    assert float((x[0] - x[1]).abs().mean()) > 0.05


def test_synthetic_images_seeded_labels_and_settings(monkeypatch):
    cfg = _cfg(name="synthetic-images", resolution=16, channels=1, num_samples=40, seed=4, labels=True)
    a, b = build_dataset(cfg), build_dataset(cfg)
    other = build_dataset(_cfg(name="synthetic-images", resolution=16, channels=1, num_samples=40, seed=5))
    idx = torch.tensor([5, 0, 39])
    xa, ca = a.get(idx)
    xb, cb = b.get(idx)
    assert xa.shape == (3, 1, 16, 16) and torch.equal(xa, xb) and torch.equal(ca, cb)
    assert not torch.equal(xa, other.get(idx)[0])
    assert a.info.c_dim == 10 and ca.shape == (3, 10)
    assert torch.equal(ca.sum(dim=1), torch.ones(3))
    # Labels do not change the images; uncached rendering gives the same pixels as cached.
    monkeypatch.setattr(synthetic_module, "CACHE_BYTES", 0)
    uncached = build_dataset(_cfg(name="synthetic-images", resolution=16, channels=1, num_samples=40, seed=4))
    assert uncached._cache is None
    xu, cu = uncached.get(idx)
    assert cu is None and torch.equal(xu, xa)


# -- folder -------------------------------------------------------------------------------------

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def _bands(size: tuple[int, int], colors: tuple, horizontal: bool) -> Image.Image:
    """Three equal bands of colour, left to right (horizontal) or top to bottom."""
    w, h = size
    image = Image.new("RGB", size)
    for i, color in enumerate(colors):
        box = (i * w // 3, 0, (i + 1) * w // 3, h) if horizontal else (0, i * h // 3, w, (i + 1) * h // 3)
        image.paste(color, box)
    return image


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    Image.new("RGB", (40, 40), RED).save(root / "a_square.png")
    _bands((90, 30), (BLUE, GREEN, RED), horizontal=True).save(root / "b_wide.png")
    Image.new("L", (32, 32), 200).save(root / "c_gray.png")
    Image.new("RGB", (50, 50), BLUE).save(root / "d_photo.jpg", quality=95)
    _bands((20, 60), (RED, BLUE, GREEN), horizontal=False).save(root / "sub" / "e_tall.PNG")
    (root / "notes.txt").write_text("not an image")
    return root


def _zip_of(directory: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w") as zf:
        for file in sorted(directory.rglob("*")):
            if file.is_file():
                zf.write(file, file.relative_to(directory).as_posix())
    return target


def test_folder_lists_sorted_images_with_defaults(image_dir: Path):
    ds = build_dataset(_cfg(name="folder", path=str(image_dir)))
    assert ds.files == ["a_square.png", "b_wide.png", "c_gray.png", "d_photo.jpg", "sub/e_tall.PNG"]
    assert len(ds) == 5
    # Defaults from the first image: shorter side 40, RGB -> 3 channels.
    assert ds.info.shape == (3, 40, 40) and ds.info.c_dim == 0
    x, c = ds.get(torch.arange(5))
    assert c is None and x.dtype == torch.float32 and x.shape == (5, 3, 40, 40)
    assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0
    red = torch.tensor([1.0, -1.0, -1.0]).view(3, 1, 1)
    assert torch.allclose(x[0], red.expand(3, 40, 40))
    # Grayscale image read as RGB: three equal channels of 200/255.
    assert torch.allclose(x[2], torch.full((3, 40, 40), 200 / 127.5 - 1), atol=1 / 127.5)
    # JPEG: blue within compression error.
    blue = torch.tensor([-1.0, -1.0, 1.0]).view(3, 1, 1)
    assert float((x[3] - blue).abs().mean()) < 0.05
    assert "5 images" in ds.describe()


def test_folder_centre_crops_non_square_images(image_dir: Path):
    ds = build_dataset(_cfg(name="folder", path=str(image_dir), resolution=30))
    x, _ = ds.get(torch.tensor([1]))  # 90x30, bands blue | green | red: the crop is the green third
    green = torch.tensor([-1.0, 1.0, -1.0]).view(3, 1, 1)
    assert torch.allclose(x[0], green.expand(3, 30, 30))
    ds = build_dataset(_cfg(name="folder", path=str(image_dir), resolution=20))
    x, _ = ds.get(torch.tensor([4]))  # 20x60, bands red / blue / green top to bottom: the blue one
    blue = torch.tensor([-1.0, -1.0, 1.0]).view(3, 1, 1)
    assert torch.allclose(x[0], blue.expand(3, 20, 20))
    # Downscaling a wide image: the shorter side becomes the resolution, the centre survives.
    ds = build_dataset(_cfg(name="folder", path=str(image_dir), resolution=12))
    x, _ = ds.get(torch.tensor([1]))
    assert x.shape == (1, 3, 12, 12)
    assert torch.allclose(x[0, :, 2:10, 4:8], green.expand(3, 8, 4), atol=0.05)


def test_folder_grayscale_and_channels(image_dir: Path, tmp_path: Path):
    gray_dir = tmp_path / "gray"
    gray_dir.mkdir()
    Image.new("L", (24, 36), 0).save(gray_dir / "0.png")
    Image.new("RGB", (24, 24), (255, 255, 255)).save(gray_dir / "1.png")
    # 16-bit grayscale is scaled to 8 bits, not clipped.
    Image.fromarray(np.full((24, 24), 32768, dtype=np.uint16)).save(gray_dir / "2.png")
    ds = build_dataset(_cfg(name="folder", path=str(gray_dir)))
    assert ds.info.shape == (1, 24, 24)
    x, _ = ds.get(torch.arange(3))
    assert torch.equal(x[0], torch.full((1, 24, 24), -1.0))
    assert torch.equal(x[1], torch.full((1, 24, 24), 1.0))
    assert float(x[2].mean()) == pytest.approx(128 / 127.5 - 1, abs=0.01)
    rgb_as_gray = build_dataset(_cfg(name="folder", path=str(image_dir), channels=1, resolution=8))
    x, _ = rgb_as_gray.get(torch.tensor([0]))
    assert x.shape == (1, 1, 8, 8)


def test_folder_zip_matches_directory(image_dir: Path, tmp_path: Path):
    archive = _zip_of(image_dir, tmp_path / "images.zip")
    from_dir = build_dataset(_cfg(name="folder", path=str(image_dir), resolution=16))
    from_zip = build_dataset(_cfg(name="folder", path=str(archive), resolution=16))
    assert from_zip.files == from_dir.files
    idx = torch.tensor([4, 0, 1, 2, 3, 4])
    assert torch.equal(from_zip.get(idx)[0], from_dir.get(idx)[0])


def test_folder_errors(image_dir: Path, tmp_path: Path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="data.path") as info:
        build_dataset(_cfg(name="folder", path=str(missing)))
    assert str(missing) in str(info.value)
    with pytest.raises(DataError, match="data.path"):
        build_dataset(_cfg(name="folder"))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("nothing")
    with pytest.raises(DataError) as info:
        build_dataset(_cfg(name="folder", path=str(empty)))
    assert str(empty) in str(info.value)
    not_zip = tmp_path / "data.bin"
    not_zip.write_bytes(b"1234")
    with pytest.raises(DataError, match="data.path"):
        build_dataset(_cfg(name="folder", path=str(not_zip)))
    with pytest.raises(DataError, match="data.labels: .* no dataset.json, so classes are its sub-folders"):
        build_dataset(_cfg(name="folder", path=str(image_dir), labels=True))
    with pytest.raises(DataError, match="data.num_samples"):
        build_dataset(_cfg(name="folder", path=str(image_dir), num_samples=6))
    assert len(build_dataset(_cfg(name="folder", path=str(image_dir), num_samples=2))) == 2


def test_folder_corrupt_image_is_named(image_dir: Path, tmp_path: Path):
    (image_dir / "x.png").write_bytes(b"this is not a png at all" * 10)
    # Every file's header is read when the data set is built, long before training reaches it.
    with pytest.raises(DataError, match=r"data.path: 1 file\(s\) are not readable images: .*images/x\.png"):
        build_dataset(_cfg(name="folder", path=str(image_dir), resolution=8, channels=3))
    # A file whose header is fine but whose pixels are cut off is named when it is read.
    good = sorted(image_dir.glob("*.png"))[0].read_bytes()
    (image_dir / "x.png").write_bytes(good[: len(good) // 2])
    ds = build_dataset(_cfg(name="folder", path=str(image_dir), resolution=8, channels=3))
    assert ds.get(torch.tensor([0, 1]))[0].shape == (2, 3, 8, 8)  # lazy: the others still load
    with pytest.raises(DataError, match=r"cannot read image .*images/x\.png"):
        ds.get(torch.tensor([0, len(ds) - 1]))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(DataError, match=r"x\.png"):
        build_dataset(_cfg(name="folder", path=str(bad)))
    # Inside a zip, the message names archive and member.
    archive = _zip_of(bad, tmp_path / "bad.zip")
    with pytest.raises(DataError, match=r"bad\.zip:x\.png"):
        build_dataset(_cfg(name="folder", path=str(archive)))


# -- fmnist -------------------------------------------------------------------------------------


def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    data = _idx_bytes(array)
    if gz:
        with gzip.open(path.with_name(path.name + ".gz"), "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def _pattern(n: int) -> np.ndarray:
    r, c = np.meshgrid(np.arange(28), np.arange(28), indexing="ij")
    return np.stack([(r * 28 + c + 7 * i) % 256 for i in range(n)]).astype(np.uint8)


TRAIN_LABELS = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
TEST_LABELS = np.array([9, 0], dtype=np.uint8)


@pytest.fixture
def fmnist_dir(tmp_path: Path) -> Path:
    root = tmp_path / "fmnist"
    root.mkdir()
    _write_idx(root / "train-images-idx3-ubyte", _pattern(5), gz=True)
    _write_idx(root / "train-labels-idx1-ubyte", TRAIN_LABELS, gz=True)
    _write_idx(root / "t10k-images-idx3-ubyte", _pattern(2)[::-1], gz=False)
    _write_idx(root / "t10k-labels-idx1-ubyte", TEST_LABELS, gz=False)
    return root


def test_fmnist_parses_gz_and_plain(fmnist_dir: Path):
    train = build_dataset(_cfg(name="fmnist", path=str(fmnist_dir), resolution=28, labels=True))
    assert len(train) == 5 and train.info.shape == (1, 28, 28) and train.info.c_dim == 10
    x, c = train.get(torch.arange(5))
    expected = torch.from_numpy(_pattern(5)).float().unsqueeze(1) / 127.5 - 1
    assert x.dtype == torch.float32 and torch.allclose(x, expected, atol=1e-6)
    assert torch.equal(c, F.one_hot(torch.tensor([3, 1, 4, 1, 5]), 10).float())
    test = build_dataset(_cfg(name="fmnist", path=str(fmnist_dir), split="test", resolution=28, labels=True))
    x, c = test.get(torch.tensor([0, 1]))
    assert torch.allclose(x, torch.from_numpy(_pattern(2)[::-1].copy()).float().unsqueeze(1) / 127.5 - 1)
    assert c.argmax(dim=1).tolist() == [9, 0]
    unlabeled = build_dataset(_cfg(name="fmnist", path=str(fmnist_dir)))
    assert unlabeled.info.c_dim == 0 and unlabeled.get(torch.tensor([0]))[1] is None


def test_fmnist_resize_and_channels(fmnist_dir: Path, tmp_path: Path):
    ds = build_dataset(_cfg(name="fmnist", path=str(fmnist_dir)))
    assert ds.info.shape == (1, 32, 32)  # default resolution
    x, _ = ds.get(torch.tensor([2, 0]))
    raw = torch.from_numpy(_pattern(5)[[2, 0]]).float().unsqueeze(1) / 255
    ref = F.interpolate(raw, size=(32, 32), mode="bilinear", align_corners=False, antialias=True) * 2 - 1
    assert torch.allclose(x, ref, atol=1e-5)
    assert float(x.min()) >= -1 and float(x.max()) <= 1
    rgb = build_dataset(_cfg(name="fmnist", path=str(fmnist_dir), channels=3, resolution=14))
    x, _ = rgb.get(torch.arange(5))
    assert x.shape == (5, 3, 14, 14)
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])
    # A half-black, half-white image keeps its halves when downscaled.
    root = tmp_path / "halves"
    root.mkdir()
    half = np.zeros((1, 28, 28), dtype=np.uint8)
    half[:, :, 14:] = 255
    _write_idx(root / "train-images-idx3-ubyte", half, gz=False)
    _write_idx(root / "train-labels-idx1-ubyte", np.array([0], dtype=np.uint8), gz=False)
    x, _ = build_dataset(_cfg(name="fmnist", path=str(root), resolution=14)).get(torch.tensor([0]))
    assert torch.allclose(x[0, 0, :, :6], torch.tensor(-1.0)) and torch.allclose(x[0, 0, :, 8:], torch.tensor(1.0))


def test_fmnist_pad_keeps_every_pixel(fmnist_dir: Path):
    ds = build_dataset(_cfg(name="fmnist", path=str(fmnist_dir), resolution=32, fit="pad"))
    x, _ = ds.get(torch.tensor([1]))
    assert x.shape == (1, 1, 32, 32)
    inner = torch.from_numpy(_pattern(5)[1]).float() / 127.5 - 1
    assert torch.allclose(x[0, 0, 2:30, 2:30], inner, atol=1e-6)
    border = torch.cat([x[0, 0, :2].flatten(), x[0, 0, 30:].flatten(), x[0, 0, :, :2].flatten(), x[0, 0, :, 30:].flatten()])
    assert torch.all(border == -1)
    with pytest.raises(DataError, match="data.fit: 'pad' needs data.resolution >= 28, got 16"):
        build_dataset(_cfg(name="fmnist", path=str(fmnist_dir), resolution=16, fit="pad"))


def test_fmnist_bad_files(fmnist_dir: Path, tmp_path: Path):
    bad = tmp_path / "bad"
    bad.mkdir()
    data = bytearray(_idx_bytes(_pattern(2)))
    data[3] = 1  # wrong number of dimensions in the magic number
    (bad / "train-images-idx3-ubyte").write_bytes(bytes(data))
    _write_idx(bad / "train-labels-idx1-ubyte", np.array([0, 1], dtype=np.uint8), gz=False)
    with pytest.raises(DataError, match="magic number") as info:
        build_dataset(_cfg(name="fmnist", path=str(bad)))
    assert "train-images-idx3-ubyte" in str(info.value)
    (bad / "train-images-idx3-ubyte").write_bytes(_idx_bytes(_pattern(2))[:-10])
    with pytest.raises(DataError, match="truncated") as info:
        build_dataset(_cfg(name="fmnist", path=str(bad)))
    assert "train-images-idx3-ubyte" in str(info.value)
    (bad / "train-images-idx3-ubyte").write_bytes(_idx_bytes(_pattern(3)))
    with pytest.raises(DataError, match="2 labels for 3 images"):
        build_dataset(_cfg(name="fmnist", path=str(bad)))
    (bad / "train-images-idx3-ubyte").unlink()
    (bad / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz"):
        build_dataset(_cfg(name="fmnist", path=str(bad)))
    with pytest.raises(DataError, match="data.num_samples"):
        build_dataset(_cfg(name="fmnist", path=str(fmnist_dir), num_samples=6))
    assert len(build_dataset(_cfg(name="fmnist", path=str(fmnist_dir), num_samples=3))) == 3


def test_fmnist_missing_files_message(tmp_path: Path):
    missing = tmp_path / "no-fmnist-here"
    with pytest.raises(DataError) as info:
        build_dataset(_cfg(name="fmnist", path=str(missing)))
    message = str(info.value)
    assert str(missing) in message
    assert "apt-get install dataset-fashion-mnist" in message and "data.path" in message


@pytest.mark.skipif(
    not Path(fmnist_module.DEFAULT_PATH, "train-labels-idx1-ubyte.gz").exists()
    and not Path(fmnist_module.DEFAULT_PATH, "train-labels-idx1-ubyte").exists(),
    reason="Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)",
)
def test_fmnist_real_train_split():
    ds = build_dataset(_cfg(name="fmnist", labels=True))
    assert len(ds) == 60000 and ds.info.shape == (1, 32, 32) and ds.info.c_dim == 10
    assert torch.equal(torch.bincount(ds.classes, minlength=10), torch.full((10,), 6000))
    x, c = ds.get(batch_indices(len(ds), 16, 0, seed=0))
    assert x.shape == (16, 1, 32, 32) and c.shape == (16, 10)
    assert float(x.min()) >= -1 and float(x.max()) <= 1 and float(x.std()) > 0.2


def test_max_items_keeps_the_first_items_only(tmp_path):
    from gancore.config import DataConfig
    from gancore.data import build_dataset

    full = build_dataset(DataConfig(name="synthetic-images", resolution=8, num_samples=64, labels=True))
    limited = build_dataset(DataConfig(name="synthetic-images", resolution=8, num_samples=64, labels=True, max_items=10))
    assert len(limited) == 10 and limited.info == full.info
    x, c = limited.get(torch.arange(10))
    x_full, c_full = full.get(torch.arange(10))
    assert torch.equal(x, x_full) and torch.equal(c, c_full)
    with pytest.raises(IndexError):
        limited.get(torch.tensor([10]))
    assert "first 10 used" in limited.describe()
    with pytest.raises(DataError, match="data.max_items: 100 exceeds the 64 items of synthetic-images"):
        build_dataset(DataConfig(name="synthetic-images", resolution=8, num_samples=64, max_items=100))


def test_max_items_bounds_training_and_is_recorded(tmp_path):
    import json

    from gancore.run import Run
    from gancore.testing import make_tiny_config

    run = Run.build(make_tiny_config("dcgan", steps=3, **{"data.max_items": 16}), out_dir=tmp_path / "run")
    seen = []
    original = run.dataset.get
    run.dataset.get = lambda indices: seen.append(indices.clone()) or original(indices)
    run.train()
    assert int(torch.cat(seen).max()) < 16 and run.epoch == 1  # 3 steps of 8 over 16 items
    assert json.loads((tmp_path / "run" / "config.json").read_text())["data"]["max_items"] == 16


def test_xflip_doubles_the_data_with_mirror_images():
    from gancore.config import DataConfig
    from gancore.data import build_dataset

    plain = build_dataset(DataConfig(name="synthetic-images", resolution=8, num_samples=6, labels=True, max_items=4))
    doubled = build_dataset(DataConfig(name="synthetic-images", resolution=8, num_samples=6, labels=True, max_items=4,
                                       xflip=True))
    assert len(doubled) == 8 and doubled.info == plain.info and "doubled with x-flips" in doubled.describe()
    x, c = doubled.get(torch.tensor([1, 5, 0, 7]))
    x_plain, c_plain = plain.get(torch.tensor([1, 1, 0, 3]))
    assert torch.equal(x[0], x_plain[0]) and torch.equal(x[2], x_plain[2])
    assert torch.equal(x[1], x_plain[1].flip(2)) and torch.equal(x[3], x_plain[3].flip(2))
    assert not torch.equal(x[1], x[0])  # the synthetic images are not symmetric
    assert torch.equal(c, c_plain)
    with pytest.raises(IndexError):
        doubled.get(torch.tensor([8]))
    with pytest.raises(DataError, match="data.xflip: .*points, not images"):
        build_dataset(DataConfig(name="mog25", xflip=True))


# -- Fashion-MNIST found or downloaded on first use ------------------------------------------------


@pytest.fixture
def served_fmnist(http_files, monkeypatch, tmp_path):
    """Stand-in Fashion-MNIST files, gzipped, served as the canonical source; Debian's path empty."""
    import gzip
    import hashlib

    from gancore.testing import write_fake_fmnist

    plain = write_fake_fmnist(tmp_path / "plain", train=24, test=8)
    sums = {}
    for path in plain.iterdir():
        (http_files.folder / f"{path.name}.gz").write_bytes(gzip.compress(path.read_bytes()))
        sums[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setattr(fmnist_module, "DEFAULT_PATH", str(tmp_path / "no-debian-package"))
    monkeypatch.setattr(fmnist_module, "SOURCE_URL", http_files.base + "/")
    monkeypatch.setattr(fmnist_module, "CONTENT_SHA256", sums)
    return http_files


def test_fmnist_is_downloaded_into_the_cache_once(served_fmnist, tmp_path):
    data = build_dataset(DataConfig(name="fmnist", resolution=28))
    assert len(data) == 24 and data.path == tmp_path / "cache" / "fashion-mnist"
    assert sorted(served_fmnist.requests) == ["/train-images-idx3-ubyte.gz", "/train-labels-idx1-ubyte.gz"]
    again = build_dataset(DataConfig(name="fmnist", resolution=28))
    assert torch.equal(again.images, data.images) and len(served_fmnist.requests) == 2  # from the cache
    assert len(build_dataset(DataConfig(name="fmnist", split="test"))) == 8


def test_fmnist_download_with_other_content_is_refused(served_fmnist, monkeypatch, tmp_path):
    monkeypatch.setitem(fmnist_module.CONTENT_SHA256, "train-images-idx3-ubyte", "0" * 64)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: content sha256 .* is not Fashion-MNIST's"):
        build_dataset(DataConfig(name="fmnist"))
    assert not (tmp_path / "cache" / "fashion-mnist" / "train-images-idx3-ubyte.gz").exists()


def test_fmnist_offline_names_the_files_and_where_to_put_them(served_fmnist, monkeypatch, tmp_path):
    monkeypatch.setenv("GANCORE_OFFLINE", "1")
    with pytest.raises(DataError, match=r"downloads are off.*train-images-idx3-ubyte\.gz.*dataset-fashion-mnist"):
        build_dataset(DataConfig(name="fmnist"))
    assert served_fmnist.requests == []


# -- labelled folders: class sub-folders and NVIDIA's dataset.json ---------------------------------


def _write_images(root: Path, names: list[str], size: int = 8) -> None:
    rng = np.random.default_rng(0)
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / name)


def test_class_sub_folders_are_labels(tmp_path):
    _write_images(tmp_path / "data", ["cat/1.png", "cat/2.png", "dog/a/3.png", "zebra/4.jpg"])
    data = build_dataset(DataConfig(name="folder", path=str(tmp_path / "data"), labels=True))
    assert data.info.c_dim == 3 and data.class_names == ["cat", "dog", "zebra"]
    _, c = data.get(torch.arange(4))
    assert c.argmax(dim=1).tolist() == [0, 0, 1, 2] and c.shape == (4, 3)
    assert "3 classes from class sub-folders" in data.describe()
    unlabelled = build_dataset(DataConfig(name="folder", path=str(tmp_path / "data")))
    assert unlabelled.info.c_dim == 0 and unlabelled.get(torch.arange(2))[1] is None


def test_images_outside_class_folders_are_named(tmp_path):
    _write_images(tmp_path / "data", ["cat/1.png", "stray.png"])
    with pytest.raises(DataError, match=r"in no class folder \(e\.g\. .*stray\.png\)"):
        build_dataset(DataConfig(name="folder", path=str(tmp_path / "data"), labels=True))


def _nvidia_zip(tmp_path: Path, labels: list | None) -> Path:
    """A zip as NVIDIA's dataset_tool.py writes it: 00000/img0000000N.png and dataset.json."""
    import json

    names = [f"00000/img{i:08d}.png" for i in range(6)]
    _write_images(tmp_path / "src", names)
    path = tmp_path / "dataset.zip"
    with zipfile.ZipFile(path, "w") as z:
        for name in names:
            z.write(tmp_path / "src" / name, name)
        z.writestr("dataset.json", json.dumps({"labels": None if labels is None else [[n, l] for n, l in zip(names, labels)]}))
    return path


def test_nvidia_dataset_zip_labels(tmp_path):
    path = _nvidia_zip(tmp_path, [3, 0, 1, 3, 2, 0])
    data = build_dataset(DataConfig(name="folder", path=str(path), labels=True))
    assert data.info.c_dim == 4 and "from dataset.json" in data.describe()
    assert data.get(torch.arange(6))[1].argmax(dim=1).tolist() == [3, 0, 1, 3, 2, 0]


def test_nvidia_labels_that_are_not_class_indices_are_refused(tmp_path):
    path = _nvidia_zip(tmp_path, [[0.5, 0.5]] * 6)
    with pytest.raises(DataError, match=r"dataset\.json: labels must be class indices"):
        build_dataset(DataConfig(name="folder", path=str(path), labels=True))


def test_a_conditional_run_trains_on_an_nvidia_zip(tmp_path):
    from gancore.cli import main
    from gancore.testing import make_tiny_config
    import json

    path = _nvidia_zip(tmp_path, [1, 0, 1, 0, 1, 0])
    raw = make_tiny_config("dcgan", steps=2, batch=4, **{"data.name": "folder", "data.path": str(path),
                                                       "data.labels": True, "data.resolution": 8})
    raw["data"].pop("num_samples", None)
    raw["data"].pop("channels", None)
    run_file = tmp_path / "run.json"
    run_file.write_text(json.dumps(raw))
    assert main(["train", str(run_file), "--out", str(tmp_path / "run")]) == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["gancore"]["data_info"]["c_dim"] == 2


# -- Hugging Face datasets (the optional extra) ----------------------------------------------------


@pytest.fixture
def hf_images(tmp_path):
    """A small image data set with class labels, as save_to_disk and as parquet."""
    datasets = pytest.importorskip("datasets")
    rng = np.random.default_rng(1)
    images = [Image.fromarray(rng.integers(0, 255, (10, 12, 3), dtype=np.uint8)) for _ in range(6)]
    features = datasets.Features({"img": datasets.Image(), "kind": datasets.ClassLabel(names=["a", "b", "c"])})
    data = datasets.Dataset.from_dict({"img": images, "kind": [2, 0, 1, 2, 0, 1]}, features=features)
    data.save_to_disk(str(tmp_path / "disk"))
    (tmp_path / "parquet").mkdir()
    data.to_parquet(str(tmp_path / "parquet" / "part-0.parquet"))
    return tmp_path, images


@pytest.mark.parametrize("where", ["disk", "parquet"])
def test_huggingface_images_and_labels(hf_images, where):
    from gancore.data.folder import load_square_image

    root, images = hf_images
    data = build_dataset(DataConfig(name="hf", path=str(root / where), labels=True))
    assert len(data) == 6 and data.info.shape == (3, 10, 10) and data.info.c_dim == 3
    x, c = data.get(torch.arange(6))
    expected = torch.stack([torch.from_numpy(load_square_image(im, 10, 3)) for im in images]).float() * (2 / 255) - 1
    assert torch.equal(x, expected)
    assert c.argmax(dim=1).tolist() == [2, 0, 1, 2, 0, 1]


def test_huggingface_trains_with_workers(hf_images):
    from gancore.run import Run
    from gancore.testing import make_tiny_config

    root, _ = hf_images
    raw = make_tiny_config("dcgan", steps=2, batch=4, data_workers=1, **{
        "data.name": "huggingface", "data.path": str(root / "disk"), "data.labels": True, "data.resolution": 8})
    raw["data"].pop("num_samples", None)
    raw["data"].pop("channels", None)
    run = Run.build(raw).train()
    assert run.step == 2 and run.data_info.c_dim == 3


def test_huggingface_errors_name_the_problem(hf_images):
    root, _ = hf_images
    with pytest.raises(DataError, match="data.image_column: .* no column 'picture'"):
        build_dataset(DataConfig(name="huggingface", path=str(root / "disk"), image_column="picture"))
    with pytest.raises(DataError, match=r"'someone/faces' is no local data set, and downloads are off"):
        build_dataset(DataConfig(name="huggingface", path="someone/faces"))
