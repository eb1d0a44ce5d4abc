"""Every distribution builds as published (wheel + sdist, metadata that passes twine check) and works
from its installed files alone: a missing package-data file or entry point fails here, not after a release."""

import os
import re
import shutil
import site
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ImportError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

import pytest

REPO = Path(__file__).resolve().parents[1]
PLUGINS = sorted(p for p in (REPO / "plugins").iterdir() if (p / "pyproject.toml").is_file())
DISTRIBUTIONS = [REPO, *PLUGINS]


def _project(path: Path) -> dict:
    return tomllib.loads((path / "pyproject.toml").read_text())["project"]


@pytest.mark.parametrize("plugin", PLUGINS, ids=[p.name for p in PLUGINS])
def test_each_plugin_requires_a_compatible_range_of_gancore(plugin):
    core_version = tuple(int(x) for x in _project(REPO)["version"].split(".")[:2])
    specs = [d for d in _project(plugin)["dependencies"] if re.match(r"gancore\b(?![-_])", d)]
    assert len(specs) == 1, f"{plugin.name} must depend on gancore once, got {specs}"
    lower = re.search(r">=\s*(\d+)\.(\d+)", specs[0])
    upper = re.search(r"<\s*(\d+)\.(\d+)", specs[0])
    assert lower and upper, f"{plugin.name}: {specs[0]!r} is not a version range (>=X.Y,<X.Z)"
    assert (int(lower[1]), int(lower[2])) <= core_version < (int(upper[1]), int(upper[2]))


def _copy_sources(path: Path, into: Path) -> Path:
    """The distribution's source tree, without build leftovers, so building writes nothing here."""
    target = into / (path.name if path != REPO else "gancore-core")
    ignore = shutil.ignore_patterns(".venv", ".git", "runs", "build", "dist", "*.egg-info", "__pycache__", "tests",
                                    "benchmarks", "docs", "configs", "tools")
    shutil.copytree(path, target, ignore=ignore)
    return target


@pytest.mark.slow
def test_wheels_and_sdists_build_pass_twine_and_train_when_installed(tmp_path):
    dist = tmp_path / "dist"
    for path in DISTRIBUTIONS:
        source = _copy_sources(path, tmp_path / "src")
        subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--wheel", "--sdist", "--outdir", str(dist),
                        str(source)], check=True, capture_output=True, text=True)
    wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    assert len(wheels) == len(sdists) == len(DISTRIBUTIONS)
    check = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *map(str, wheels + sdists)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr

    # A fresh environment with the wheels installed, not the checkout: the third-party
    # dependencies (torch, ...) come from this environment's site-packages, appended after its own.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", *map(str, wheels)], check=True,
                   capture_output=True)
    fresh_site = Path(subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                              text=True).strip())
    (fresh_site / "zz_outer_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.check_output(
        [str(python), "-c", "import gancore, gancore_topk, gancore.metrics.fmnist_cnn as f; "
                            "print(gancore.__file__); print(gancore_topk.__file__); print(f.WEIGHTS_PATH.is_file())"],
        text=True, env=env, cwd=tmp_path,
    ).split()
    assert all(str(venv) in line for line in where[:2]), where  # the installed copies, not the checkout
    assert where[2] == "True"  # package data (the fmnist extractor's weights) is in the wheel
    listing = subprocess.run([str(venv / "bin" / "gancore"), "plugins"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    for plugin in PLUGINS:
        assert plugin.name.removeprefix("gancore-").replace("-", "_") in listing.stdout
    shutil.copy(REPO / "configs" / "mog25-topk.toml", tmp_path / "run.toml")
    train = subprocess.run(
        [str(venv / "bin" / "gancore"), "train", "run.toml", "--steps", "20", "--out", "run", "--set", "train.progress=false"],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )
    assert train.returncode == 0, train.stderr
    assert (tmp_path / "run" / "summary.json").is_file()
