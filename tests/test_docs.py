"""The documentation tells the truth: quick start, configuration reference, examples, configs."""

import re
from pathlib import Path

import attrs
import pytest

import gancore
from gancore.config import DataConfig, TrainConfig

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def _code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def test_ci_runs_exactly_the_readme_quick_start_commands():
    quick_start = README.split("## Quick start")[1].split("## Using it")[0]
    commands = [block.strip() for block in _code_blocks(quick_start, "bash")]
    assert len(commands) == 2
    ci_lines = [
        line for line in (REPO / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.startswith(("#", "set ", "cd "))
    ]
    assert ci_lines == commands


def test_configuration_reference_covers_every_field():
    reference = (REPO / "docs" / "configuration.md").read_text()
    for section, cls in (("[data]", DataConfig), ("[train]", TrainConfig)):
        table = reference.split(f"## `{section}`")[1].split("\n## ")[0]
        for field in attrs.fields(cls):
            assert f"`{field.name}`" in table, f"docs/configuration.md does not describe {section} {field.name}"


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.toml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    config = gancore.load_config(path)
    assert config.train.steps > 0


RECIPES = sorted((REPO / "configs" / "recipes").glob("*.toml"))


def test_there_is_a_recipe_per_published_setting():
    assert {p.stem for p in RECIPES} >= {"stylegan2-ffhq256", "glead-ffhq256", "glead-church256", "eqgan-sa-ffhq256",
                                        "stylegan2-ffhq1024", "dgl-stylegan2-ffhq1024-half", "topk-mog25"}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_gancore_info_accepts_every_recipe(path, capsys, tmp_path, monkeypatch):
    from gancore.cli import main

    monkeypatch.chdir(tmp_path)  # no data sets, no runs: info describes the networks from the declared shape
    header = path.read_text().split("\n[")[0]
    assert "Target:" in header and "Needs:" in header, f"{path.name}: the header names the paper's number and the data"
    assert main(["info", str(path), "--json"]) == 0
    report = __import__("json").loads(capsys.readouterr().out)
    assert report["params"]["G"] > 0
    if report["config"]["data"]["name"] == "folder":
        assert report["data"]["available"] is False and "no such file" in report["data"]["problem"]


def test_info_without_a_declared_shape_still_needs_the_data(tmp_path, capsys):
    from gancore.cli import main

    config = tmp_path / "run.toml"
    config.write_text('[backbone]\nname = "dcgan"\n[data]\nname = "folder"\npath = "nowhere"\nresolution = 8\n')
    assert main(["info", str(config)]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_readme_plugin_example_works(register_plugin, tiny_run):
    example = next(block for block in _code_blocks(README, "python") if "class Center" in block)
    namespace: dict = {}
    exec(compile(example, "README.md", "exec"), namespace)
    register_plugin(namespace["Center"])
    run = tiny_run("mlp", [{"name": "center", "weight": 1.0}], steps=2)
    assert run.last_stats["Loss/D/center_logit_sq"] >= 0
    with pytest.raises(gancore.ConfigError, match="plugins.center.weight: must be >= 0.0, got -1.0"):
        gancore.load_config({"plugins": [{"name": "center", "weight": -1.0}], "backbone": {"name": "mlp"}})
