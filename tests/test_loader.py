"""Real batches decoded ahead by worker processes: the same items in the same order, the same training."""

import numpy as np
import pytest
import torch
from PIL import Image

from gancore.config import DataConfig
from gancore.data import batch_indices, build_dataset
from gancore.data.loader import BatchStream, as_images, default_workers
from gancore.run import Run
from gancore.testing import make_tiny_config


@pytest.fixture
def image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(20):
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(tmp_path / f"{i:03d}.png")
    return tmp_path


def test_the_stream_gives_each_steps_batch_as_the_data_set_does(image_folder):
    data = build_dataset(DataConfig(name="folder", path=str(image_folder)))
    stream = BatchStream(data, batch=6, seed=3, rows=slice(None), workers=2)
    try:
        for step in [0, 1, 2, 3, 7, 8, 2]:  # consecutive steps, a jump ahead, a step back
            expected, _ = data.get(batch_indices(len(data), 6, step, 3))
            x, c = stream.get(step)
            assert x.dtype == torch.uint8  # decoded images travel as bytes ...
            assert torch.equal(as_images(x), expected) and c is None  # ... and come back bit for bit
    finally:
        stream.close()


def test_workers_only_for_data_that_reads_files(image_folder):
    assert default_workers(build_dataset(DataConfig(name="mog25", num_samples=64))) == 0
    assert default_workers(build_dataset(DataConfig(name="folder", path=str(image_folder)))) >= 1


def _trained(image_folder, workers):
    raw = make_tiny_config("dcgan", steps=3, batch=4, data_workers=workers,
                           **{"data.name": "folder", "data.path": str(image_folder), "data.resolution": 8})
    raw["data"].pop("num_samples", None)
    raw["data"].pop("channels", None)
    return Run.build(raw).train()


def test_training_with_workers_equals_training_without(image_folder):
    with_workers, without = _trained(image_folder, 2), _trained(image_folder, 0)
    for a, b in zip(with_workers.G.parameters(), without.G.parameters()):
        assert torch.equal(a, b)
    for a, b in zip(with_workers.D.parameters(), without.D.parameters()):
        assert torch.equal(a, b)
    assert with_workers.trainer._stream is None  # the workers stopped with training
