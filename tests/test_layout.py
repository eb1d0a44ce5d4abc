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


def _module_names() -> dict[str, Path]:
    """Every module of gancore/ by its dotted name (a package by its own name)."""
    names = {}
    for path in CORE.rglob("*.py"):
        parts = path.relative_to(CORE.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """The ids of every node inside an ``if TYPE_CHECKING:`` block (imports for annotations only)."""
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            inside |= {id(child) for child in ast.walk(node)}
    return inside


def import_graph() -> dict[str, set[str]]:
    """Which gancore modules each gancore module imports when it runs, at the top or inside functions
    (``if TYPE_CHECKING:`` blocks aside). ``from package import name`` counts as importing the
    submodule ``name`` if there is one, else the package; the parent packages Python initialises
    on the way are not counted (the package ``gancore`` re-exports the API, so everything would)."""
    modules = _module_names()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        skipped = _type_checking_nodes(tree)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_of_gancore_imports_itself_back_at_run_time():
    graph = import_graph()
    assert "gancore.run" in graph["gancore.api"] and "gancore.hooks" in graph["gancore.plugins"]  # the walk sees imports
    cycles = _cycles(graph)
    described = ["; ".join(f"{m} -> {sorted(t for t in graph[m] if t in group)}" for m in group) for group in cycles]
    assert not cycles, f"import cycles: {described}"


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_evaluation_works_on_what_it_declares_it_uses(tmp_path):
    """gancore/evaluation.py names what it uses of a run (EvaluatedRun); a stand-in with just that will do."""
    import torch

    from gancore.data import build_dataset
    from gancore.evaluation import EvaluatedRun, evaluate, keep_best
    from gancore.testing import make_tiny_config
    from gancore.api import load_config

    assert "gancore.run" not in _imports("evaluation")
    config = load_config(make_tiny_config("mlp", eval_samples=200))
    saved: list[str | None] = []

    class StandIn:
        def __init__(self):
            self.config, self.dataset = config, build_dataset(config.data)
            self.data_info, self.device, self.out_dir = self.dataset.info, torch.device("cpu"), tmp_path
            self.manager, self.extractor, self.best_fid = None, None, None
            self.metrics: dict = {}
            self.metrics_protocol: dict = {}

        def sample(self, n, seed=0):
            return self.dataset.get(torch.arange(n) % len(self.dataset))[0]  # a perfect generator

        def save_checkpoint(self, name=None):
            saved.append(name)
            return tmp_path / str(name)

    run: EvaluatedRun = StandIn()
    results = evaluate(run)
    assert results["Metrics/modes_covered"] == 25 and run.metrics == results
    run.metrics["Metrics/fid"] = 3.0
    keep_best(run)
    run.metrics["Metrics/fid"] = 4.0
    keep_best(run)
    assert saved == ["best"] and run.best_fid == 3.0
