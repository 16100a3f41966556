"""The import rules of docs/architecture.md, checked on the code (every import, including the
ones inside functions): the contract package at the bottom, stages that reach each other
only through it, task plug-ins that nothing below them imports, no import cycle, and a live
path that names no task."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

from seawatch.contracts.frames import BUILTIN_TASKS

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "seawatch"

# Layers, bottom up; each may import its own layer's modules and the layers below.
CONTRACTS = {"contracts"}
SETTINGS = {
    "config",
    "settings_base",
    "kafka_settings",
    "storage_settings",
    "task_settings",
    "alert_settings",
    "review_settings",
    "dashboard_settings",
    "secrets",
}
STAGES = {"ingest", "inference", "storage", "alerts"}
# The live path: the loop, the router and the preparer serve whatever heads they are given.
LIVE_PATH = ("pipeline.py", "inference/router.py", "ingest/prepare.py")


def _module(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every seawatch module ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("seawatch"):
                # ``from package import module`` imports the module; ``from module import
                # name`` the module (the graph keeps the names that are modules)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("seawatch"))
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    """module -> the seawatch modules (files) it imports."""
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        targets = _imports(path)
        for target in targets:
            submodules = any(t.startswith(f"{target}.") and t in modules for t in targets)
            if target in modules and target != name and not submodules:
                edges[name].add(target)
    return {name: edges[name] for name in modules}


def _part(module: str) -> str:
    """The top-level part of ``seawatch.x.y``: ``x``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _violations(graph: dict[str, set[str]], sources: set[str], allowed: set[str]) -> list[str]:
    return sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        if _part(module) in sources
        for target in targets
        if _part(target) not in allowed and _part(target) != _part(module)
    )


def test_the_contract_package_imports_nothing_else_of_seawatch(graph):
    assert _violations(graph, CONTRACTS, CONTRACTS) == []


def test_settings_import_only_contracts_and_settings(graph):
    assert _violations(graph, SETTINGS, CONTRACTS | SETTINGS) == []


def test_stages_reach_each_other_only_through_the_contracts(graph):
    """ingest, inference, storage and alerts import the contracts and the settings, never
    another stage and never a task plug-in (seawatch.models) or the registry."""
    assert _violations(graph, STAGES, CONTRACTS | SETTINGS) == []


def test_the_live_path_imports_no_task_plug_in(graph):
    live = {f"seawatch.{p.removesuffix('.py').replace('/', '.')}" for p in LIVE_PATH}
    live |= {"seawatch.daemon"}  # the daemon builds heads through the registry only
    reached = sorted(
        f"{m} -> {t}" for m in live for t in graph[m] if t.startswith("seawatch.models")
    )
    assert reached == []


def test_there_is_no_import_cycle(graph):
    """Depth-first search over every import, lazy ones included."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == [], "\n".join(" -> ".join(c) for c in cycles[:5])


@pytest.mark.parametrize("relative", LIVE_PATH)
def test_the_live_path_names_no_task(relative):
    """The loop, the router and the preparer hold no task name: a task is a registry key."""
    tree = ast.parse((PACKAGE / relative).read_text())
    named = sorted(
        {
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and node.value in BUILTIN_TASKS
        }
    )
    assert named == [], f"{relative} names tasks {named}"


def test_every_built_in_task_folder_has_the_same_files():
    """One folder per task with the same file names (docs/architecture.md)."""
    expected = {"network.py", "synthetic.py", "train.py", "export.py", "evaluate.py", "head.py"}
    for task in BUILTIN_TASKS:
        folder = PACKAGE / "models" / task
        missing = sorted(expected - {p.name for p in folder.glob("*.py")})
        assert missing == [], f"models/{task} lacks {missing}"
        assert (folder / "README.md").is_file(), f"models/{task} has no README.md"
