"""The core's modules depend on each other in one direction: training never reaches the Hub code, config never the data sets."""

import ast
from pathlib import Path

import gancore.data
from gancore.config import DATASET_NAMES

CORE = Path(gancore.data.__file__).resolve().parents[1]


def _imports(module: str) -> set[str]:
    """Every module a gancore module imports, at the top or inside functions."""
    tree = ast.parse((CORE / f"{module.replace('.', '/')}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_training_does_not_import_the_hub_code():
    for module in ("run", "trainer", "loop", "evaluation", "hooks"):
        hub = {m for m in _imports(module) if m.startswith(("gancore.pretrained", "gancore.modelcard", "huggingface_hub"))}
        assert not hub, f"gancore/{module}.py imports {sorted(hub)}"


def test_config_does_not_import_the_data_sets():
    assert not {m for m in _imports("config") if m.startswith("gancore.data")}


def test_every_dataset_name_has_a_builder():
    assert tuple(gancore.data._BUILDERS) == DATASET_NAMES
    assert gancore.data.DATASET_NAMES is DATASET_NAMES


def test_the_step_does_not_import_the_run():
    # trainer.py, loop.py and evaluation.py get the run passed in; only run.py builds one.
    for module in ("trainer", "loop", "evaluation"):
        tree = ast.parse((CORE / f"{module}.py").read_text())
        top = [n for n in tree.body if isinstance(n, ast.ImportFrom) and n.module == "gancore.run"]
        assert not top, f"gancore/{module}.py imports gancore.run at run time"
