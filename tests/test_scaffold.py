"""``mediasrv new-transform``: the files it writes, its name checks, and the written module
loaded through the real plugin loading (test_offline_install.py installs one and runs its tests)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from mediasrv.cli import main
from mediasrv.plugins import get_plugin_manager, transform_operations
from mediasrv.scaffold import write_transform
from mediasrv.settings import ConfigError


def test_new_transform_writes_a_plugin_distribution(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new-transform", "sepia_tone", "--dir", str(tmp_path)]) == 0
    plugin = tmp_path / "mediasrv-sepia-tone"
    assert f"wrote {plugin}" in capsys.readouterr().out
    written = sorted(str(path.relative_to(plugin)) for path in plugin.rglob("*") if path.is_file())
    assert written == [
        "README.md",
        "mediasrv_sepia_tone/__init__.py",
        "mediasrv_sepia_tone/operation.py",
        "mediasrv_sepia_tone/py.typed",
        "pyproject.toml",
        "tests/test_sepia_tone_transform.py",
    ]
    project = tomllib.loads((plugin / "pyproject.toml").read_text())
    assert project["project"]["name"] == "mediasrv-sepia-tone"
    assert project["project"]["entry-points"]["mediasrv"] == {"sepia_tone": "mediasrv_sepia_tone"}
    assert "$" not in "".join(path.read_text() for path in plugin.rglob("*.py"))  # every placeholder filled


def test_written_module_registers_its_operation_which_is_not_written_yet(tmp_path: Path) -> None:
    write_transform("scaffolded_op", tmp_path)
    pm = get_plugin_manager(["mediasrv_scaffolded_op"], tmp_path / "mediasrv-scaffolded-op")
    registered = transform_operations(pm)["scaffolded_op"]
    assert registered.plugin_name == "mediasrv_scaffolded_op"
    with pytest.raises(NotImplementedError, match=r"^scaffolded_op: parse\(\) is not written yet$"):
        registered.operation.parse("1")
    with pytest.raises(NotImplementedError, match=r"^scaffolded_op: apply\(\) is not written yet$"):
        registered.operation.apply(None, 1)


@pytest.mark.parametrize(
    ("name", "problem"),
    [("Sepia", "must match"), ("9lives", "must match"), ("width", "built-in or reserved"), ("sig", "built-in or reserved")],
)
def test_new_transform_refuses_names_that_cannot_be_parameters(
    name: str, problem: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["new-transform", name, "--dir", str(tmp_path)]) == 2
    assert problem in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_new_transform_does_not_overwrite(tmp_path: Path) -> None:
    write_transform("sepia", tmp_path)
    (tmp_path / "mediasrv-sepia" / "README.md").write_text("mine")
    with pytest.raises(ConfigError, match="already exists"):
        write_transform("sepia", tmp_path)
    assert (tmp_path / "mediasrv-sepia" / "README.md").read_text() == "mine"
