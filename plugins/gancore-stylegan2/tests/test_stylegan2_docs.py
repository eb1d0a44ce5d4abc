"""The README and the backbone page describe every setting, and the README's example runs."""

import re
from pathlib import Path

import attrs
import pytest
import torch

from gancore_stylegan2.config import StyleGAN2Config

PLUGIN = Path(__file__).resolve().parents[1]
REPO = PLUGIN.parents[1]
README = (PLUGIN / "README.md").read_text()
PAGE = (REPO / "docs" / "backbones" / "stylegan2.md").read_text()


@pytest.mark.parametrize("text", [README, PAGE], ids=["README", "docs-page"])
def test_every_setting_is_documented(text):
    settings = text.split("## Settings")[1].split("\n## ")[0]
    for field in attrs.fields(StyleGAN2Config):
        assert f"`{field.name}`" in settings, field.name


def test_parameter_tables_agree():
    rows = {line for line in PAGE.splitlines() if line.startswith("| 256 ") or line.startswith("| 1024 ")}
    assert rows and rows <= set(README.splitlines())


def test_readme_python_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    example = re.findall(r"```python\n(.*?)```", README, flags=re.S)[0]
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)
    images = namespace["images"]
    assert images.shape == (16, 1, 32, 32) and torch.isfinite(images).all()
    assert (tmp_path / "g" / "model.safetensors").is_file()
