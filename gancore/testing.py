"""pytest plugin for plugin authors: a fresh plugin manager, local plugins, tiny CPU runs.

Installed with gancore (entry point ``pytest11``), so its fixtures are available in any test
suite without imports:

- ``gancore_manager``: a fresh :class:`~gancore.plugins.PluginManager` (installed backbones).
- ``register_plugin(plugin, name=None)``: make a plugin class or instance available by name
  for one test (unregistered afterwards).
- ``tiny_config(backbone="mlp", plugins=(), **settings)``: a raw run config for a tiny CPU run.
- ``tiny_run(backbone="mlp", plugins=(), steps=2, **settings)``: build and train such a run in
  memory and return it (``run.log.history`` holds the logged stats, ``run.last_stats`` the last
  step's).
- ``adapter_factory(key="scale", only=None)`` and ``counting_encoder``: a cond-driven test adapter
  (:class:`gancore.testing_modules.ScaledBias`) for ``G.add_adapter`` and a test cond encoder
  (:class:`gancore.testing_modules.CountingEncoder`), for backbone authors checking the adapter
  protocol.

- ``http_files``: a loopback HTTP server for tests of code that downloads (nothing leaves the
  machine): ``http_files.folder`` is what it serves, ``http_files.url(name)`` a file's URL,
  ``http_files.requests`` the paths asked for; ``$GANCORE_CACHE`` points at a fresh folder and
  downloads are switched on for the test.

``settings`` keys are dotted config paths (``**{"plugins.topk.nu": 0.5}``); a key without a
dot means a ``[train]`` field (``batch=8``).
"""

import copy
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import pytest

from gancore.config import set_value
from gancore.plugins import PluginManager, register_local_plugin, unregister_local_plugin

__all__ = ["TINY_BACKBONES", "FileServer", "capture_first_gradients", "make_tiny_config", "write_fake_fmnist"]

#: Raw config fragments for tiny CPU runs, per backbone.
TINY_BACKBONES: dict[str, dict[str, Any]] = {
    "mlp": {
        "backbone": {"name": "mlp", "width": 32, "z_dim": 4},
        "data": {"name": "mog25", "num_samples": 512},
    },
    "dcgan": {
        "backbone": {"name": "dcgan", "width": 8, "z_dim": 16, "max_width": 32},
        "data": {"name": "synthetic-images", "resolution": 8, "channels": 3, "num_samples": 64},
    },
    # Needs gancore-biggan.
    "biggan": {
        "backbone": {"name": "biggan", "g_ch": 2, "d_ch": 2, "z_dim": 16},
        "data": {"name": "synthetic-images", "resolution": 32, "channels": 3, "num_samples": 64},
    },
    # Needs gancore-stylegan2; the batch must stay a multiple of mbstd_group_size (4).
    "stylegan2": {
        "backbone": {
            "name": "stylegan2", "z_dim": 32, "w_dim": 32, "mapping_layers": 2, "d_mapping_layers": 2,
            "channel_base": 256, "channel_max": 32,
        },
        "data": {"name": "synthetic-images", "resolution": 8, "channels": 3, "num_samples": 64},
    },
}


def make_tiny_config(backbone: str = "mlp", plugins: Sequence[Any] = (), **settings: Any) -> dict[str, Any]:
    """A raw config dict for a tiny, fast, seeded CPU run (see the module docstring)."""
    if backbone not in TINY_BACKBONES:
        raise ValueError(f"no tiny preset for backbone {backbone!r}; presets: {sorted(TINY_BACKBONES)}")
    raw = copy.deepcopy(TINY_BACKBONES[backbone])
    raw["plugins"] = [p if isinstance(p, (str, dict)) else p for p in plugins]
    raw["train"] = {
        "steps": 2,
        "batch": 8,
        "seed": 0,
        "device": "cpu",
        "progress": False,
        "log_every": 1,
        "r1_gamma": 0.1,
        "d_reg_interval": 2,
        "ema_kimg": 0.01,
    }
    for key, value in settings.items():
        problem = set_value(raw, key if "." in key else f"train.{key}", value)
        if problem:
            raise ValueError(problem)
    return raw


def write_fake_fmnist(root: Any, train: int = 48, test: int = 20, seed: int = 0) -> Any:
    """Write a fake Fashion-MNIST into folder ``root`` (uncompressed idx files): ``train`` and
    ``test`` 28x28 images whose brightness follows their class; returns ``root``.

    For tests of anything that reads ``[data] name = "fmnist"`` (``data.path = root``).
    """
    from pathlib import Path

    import numpy as np

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", train), ("t10k", test)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 40, (n, 28, 28)) + labels[:, None, None] * 20
        for suffix, array in (("images-idx3-ubyte", images), ("labels-idx1-ubyte", labels)):
            header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
            (root / f"{prefix}-{suffix}").write_bytes(header + array.astype(np.uint8).tobytes())
    return root


def capture_first_gradients(run: Any) -> dict[str, list[Any]]:
    """Record the gradients G's and D's optimizers apply in their first step from now on.

    Returns a dict that fills as the run trains: ``{"G": [grad per parameter], "D": [...]}``
    (the main phase of the next training step, as R1 and path length come after it; G's phases
    come first, so D's first gradients are taken against the G that has just stepped).
    """
    grads: dict[str, list[Any]] = {}
    for net in ("G", "D"):
        optimizer = getattr(run, f"opt_{net}")
        original = optimizer.step

        def step(*args: Any, _net: str = net, _original: Callable = original, **kwargs: Any) -> Any:
            if _net not in grads:
                grads[_net] = [p.grad.clone() for p in getattr(run, _net).parameters()]
            return _original(*args, **kwargs)

        optimizer.step = step
    return grads


@pytest.fixture
def adapter_factory() -> Callable[..., Callable[[str, int, int], Any]]:
    """``make(key="scale", only=None)``: a factory giving a ScaledBias to every (or the named) layer."""
    from gancore.testing_modules import ScaledBias

    def make(key: str = "scale", only: set[str] | None = None) -> Callable[[str, int, int], Any]:
        def factory(name: str, channels: int, resolution: int) -> Any:
            if only is not None and name not in only:
                return None
            return ScaledBias(channels, key)

        return factory

    return make


@pytest.fixture
def counting_encoder() -> Any:
    """A fresh :class:`gancore.testing_modules.CountingEncoder`."""
    from gancore.testing_modules import CountingEncoder

    return CountingEncoder()


@pytest.fixture
def gancore_manager() -> PluginManager:
    """A fresh plugin manager with the installed backbones registered."""
    return PluginManager()


@pytest.fixture
def register_plugin() -> Iterator[Callable[..., str]]:
    """Register plugin classes or instances by name for the duration of one test."""
    names: list[str] = []

    def register(plugin: Any, name: str | None = None) -> str:
        registered = register_local_plugin(plugin, name)
        names.append(registered)
        return registered

    yield register
    for name in names:
        unregister_local_plugin(name)


@pytest.fixture
def tiny_config() -> Callable[..., dict[str, Any]]:
    """Factory of raw configs for tiny CPU runs: ``tiny_config(backbone, plugins, **settings)``."""
    return make_tiny_config


@pytest.fixture
def tiny_run() -> Callable[..., Any]:
    """Factory that builds and trains a tiny in-memory CPU run and returns it."""
    from gancore.run import Run

    def run(
        backbone: str = "mlp", plugins: Sequence[Any] = (), steps: int = 2, out_dir: Any = None, **settings: Any
    ) -> Run:
        raw = make_tiny_config(backbone, plugins, steps=steps, **settings)
        return Run.build(raw, out_dir=out_dir).train()

    return run


class FileServer:
    """A folder served over HTTP on 127.0.0.1 (see the ``http_files`` fixture)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.requests: list[str] = []
        requests = self.requests

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append(self.path)
                super().do_GET()

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(folder)))
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def url(self, name: str) -> str:
        """The URL of ``folder / name``."""
        return f"{self.base}/{name}"

    def close(self) -> None:
        """Stop serving."""
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def http_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FileServer]:
    """A loopback file server, a fresh ``$GANCORE_CACHE`` and downloads switched on."""
    folder = tmp_path / "served"
    folder.mkdir()
    monkeypatch.setenv("GANCORE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GANCORE_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    server = FileServer(folder)
    yield server
    server.close()
