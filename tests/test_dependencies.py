"""The core's modules import downwards only: no import cycle among them (imports for type
checking aside), and the few edges issue 13 removed stay removed."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter

from conftest import PROJECT_DIR

CORE = PROJECT_DIR / "mediasrv"


def runtime_imports(path: str) -> set[str]:
    """The ``mediasrv.*`` modules a core module imports when it runs (not under TYPE_CHECKING)."""
    tree = ast.parse((CORE / path).read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mediasrv."):
            imported.add(node.module.removeprefix("mediasrv.").split(".")[0])
    return imported


def core_graph() -> dict[str, set[str]]:
    return {path.stem: runtime_imports(path.name) for path in CORE.glob("*.py") if path.stem != "__init__"}


def test_core_modules_have_no_import_cycle() -> None:
    try:
        tuple(TopologicalSorter(core_graph()).static_order())
    except CycleError as exc:
        raise AssertionError(f"import cycle: {' -> '.join(exc.args[1])}") from None


def test_removed_upward_imports_stay_removed() -> None:
    graph = core_graph()
    assert "observer" not in graph["responses"]  # outcomes go back through on_finish
    assert not {"health", "inventory"} & graph["configuration"]
    assert "errors" not in graph["objects"]
