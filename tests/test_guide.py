"""docs/writing-a-backend.md stays true: its code is the example plugin's code (which the
tests install and run), and it covers the whole plugin interface."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import mediasrv
from conftest import PROJECT_DIR
from mediasrv import cache, errors, testing

GUIDE_PATH = PROJECT_DIR / "docs" / "writing-a-backend.md"
GUIDE = GUIDE_PATH.read_text()
TRANSFORM_GUIDE = (PROJECT_DIR / "docs" / "writing-a-transform.md").read_text()
TRANSFORM_NAMES = ("Choice", "Integer", "Number", "Operation", "flag", "InvalidTransform", "UnprocessableImage")
EXCERPTS = re.findall(r"```(?:python|toml)\n# (examples/\S+)\n(.*?)```", GUIDE, re.DOTALL)


def test_guide_is_linked_from_the_readme() -> None:
    assert "(docs/writing-a-backend.md)" in (PROJECT_DIR / "README.md").read_text()


def test_guide_quotes_the_example_plugin() -> None:
    quoted = {path for path, _ in EXCERPTS}
    assert quoted >= {
        "examples/mediasrv-zip/pyproject.toml",
        "examples/mediasrv-zip/mediasrv_zip/__init__.py",
        "examples/mediasrv-zip/mediasrv_zip/backend.py",
        "examples/mediasrv-zip/tests/test_zip_backend.py",
    }


@pytest.mark.parametrize(("path", "code"), EXCERPTS, ids=[f"{path}:{code[:20]}" for path, code in EXCERPTS])
def test_guide_excerpt_is_the_example_code(path: str, code: str) -> None:
    assert code in Path(PROJECT_DIR / path).read_text(), f"the guide's {path} excerpt differs from the file"


@pytest.mark.parametrize(
    "name",
    [
        *(
            name
            for name in mediasrv.__all__
            if name not in ("Chunks", "parse_http_date", "ContentRange", *TRANSFORM_NAMES)
        ),
        *testing.__all__,
        "MEDIASRV_TRACE_PLUGINS",
        "/admin/plugins",
        "mediasrv backends",
        'extra="forbid"',
        "released",
    ],
)
def test_guide_covers(name: str) -> None:
    assert name in GUIDE


@pytest.mark.parametrize(
    "error", [name for name, value in vars(errors).items() if isinstance(value, type) and name != "MediaError"]
)
def test_guide_lists_every_error(error: str) -> None:
    assert f"`{error}" in GUIDE


@pytest.mark.parametrize("name", TRANSFORM_NAMES)
def test_transform_guide_covers(name: str) -> None:
    assert f"`{name}" in TRANSFORM_GUIDE


def test_transform_guide_quotes_its_test_plugin() -> None:
    excerpts = re.findall(r"```python\n# (tests/plugins/\S+)\n(.*?)```", TRANSFORM_GUIDE, re.DOTALL)
    assert [path for path, _ in excerpts] == ["tests/plugins/grayscale_transform.py"]
    for path, code in excerpts:
        assert code in (PROJECT_DIR / path).read_text(), f"the transform guide's {path} excerpt differs from the file"


def test_transform_guide_is_linked_from_the_readme() -> None:
    assert "(docs/writing-a-transform.md)" in (PROJECT_DIR / "README.md").read_text()


@pytest.mark.parametrize("name", [name for name in cache.__all__ if name not in ("ResultCache", "CacheSettings")])
def test_result_store_guide_covers(name: str) -> None:
    assert f"`{name}" in (PROJECT_DIR / "docs" / "writing-a-result-store.md").read_text()
