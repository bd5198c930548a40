"""Meta-tests: every hook is documented, in its docstring, the README and the plugin guide,
and exercised by a test plugin and by the example plugin."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from conftest import PROJECT_DIR, TESTS_DIR
from mediasrv import hookspecs

HOOKS = [name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("mediasrv_")]
GUIDES = {
    "mediasrv_register_backends": "writing-a-backend.md",
    "mediasrv_register_transforms": "writing-a-transform.md",
    "mediasrv_register_result_stores": "writing-a-result-store.md",
}
# Hooks whose guide walks through a complete distribution under examples/ (the transform
# guide quotes its test plugin instead, tests/plugins/grayscale_transform.py).
EXAMPLE_DISTRIBUTION_HOOKS = ["mediasrv_register_backends"]


def test_there_are_hooks() -> None:
    assert HOOKS == ["mediasrv_register_backends", "mediasrv_register_result_stores", "mediasrv_register_transforms"]
    assert set(GUIDES) == set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_docstring_describing_each_parameter(hook: str) -> None:
    function = getattr(hookspecs, hook)
    doc = inspect.getdoc(function) or ""
    assert len(doc) > 40
    for parameter in inspect.signature(function).parameters:
        assert f":param {parameter}:" in doc


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_in_the_readme(hook: str) -> None:
    assert hook in (PROJECT_DIR / "README.md").read_text()


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_in_the_guide(hook: str) -> None:
    assert f"**`{hook}(" in (PROJECT_DIR / "docs" / GUIDES[hook]).read_text()


@pytest.mark.parametrize("hook", EXAMPLE_DISTRIBUTION_HOOKS)
def test_hook_is_implemented_by_the_example_plugin(hook: str) -> None:
    sources = [path.read_text() for path in (PROJECT_DIR / "examples").glob("*/*/*.py")]
    assert any(f"def {hook}(" in source for source in sources)


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_implemented_by_a_test_plugin(hook: str) -> None:
    sources = [path.read_text() for path in Path(TESTS_DIR / "plugins").glob("*.py")]
    assert any(f"def {hook}(" in source for source in sources)
