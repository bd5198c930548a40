"""What the guide tells a plugin author to do, where there is no package index: build
mediasrv's sdist and wheel (``make dist``), install mediasrv and the example plugin from those
wheels into a fresh virtualenv with ``pip --no-index``, run the plugin's own tests and
``mypy --strict`` there, and scaffold a new backend with ``mediasrv new-backend``.

mediasrv's own dependencies come from this project's environment, offline: the fresh venv
sees a folder of links to this venv's installed distributions (mediasrv itself left out),
so pip finds them installed and fetches nothing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from conftest import PROJECT_DIR, isolated_environment

EXAMPLE_DIR = PROJECT_DIR / "examples" / "mediasrv-zip"
SQL_EXAMPLE = PROJECT_DIR / "examples" / "sqlite" / "mediasrv_sqlite.py"
# What the newcomer writes into the scaffold's tests once the guide's SQL backend is in place.
MAKE_BACKEND = """def make_backend(source: Path, chunk_size: int = 4096) -> SqliteBackend:
    return SqliteBackend("sqlite", SqliteSettings(kind="sqlite", database=source / "objects.db", chunk_size=chunk_size))
"""
STORE = """def store(source: Path, objects: Mapping[str, SampleObject]) -> None:
    import sqlite3

    with sqlite3.connect(source / "objects.db") as connection:
        connection.execute("CREATE TABLE objects (key TEXT PRIMARY KEY, data BLOB, content_type TEXT, modified REAL)")
        rows = [(key, sample.data, sample.content_type, 1.7e9) for key, sample in objects.items()]
        connection.executemany("INSERT INTO objects VALUES (?, ?, ?, ?)", rows)
    connection.close()
"""
IGNORED = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", ".mypy_cache", ".pytest_cache")


def run(*command: str | Path, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``command`` offline (no index for pip); fails the test with its output if it fails."""
    environment = {**isolated_environment(), "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    environment.pop("PYTHONPATH", None)
    result = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """mediasrv's sdist and wheel as ``make dist`` builds them (the wheel from the sdist, so the
    sdist is complete), and the example plugin's wheel, each from a copy of its sources."""
    root = tmp_path_factory.mktemp("dist")
    source = root / "mediasrv"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(PROJECT_DIR / name, source / name)
    for name in ("mediasrv", "plugins"):
        shutil.copytree(PROJECT_DIR / name, source / name, ignore=IGNORED)
    wheels = root / "wheels"
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", wheels, source)
    example = shutil.copytree(EXAMPLE_DIR, root / "mediasrv-zip", ignore=IGNORED)
    run(sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", wheels, example)
    return wheels


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtualenv whose site-packages is empty but for a .pth naming a folder of links
    to this environment's distributions, without mediasrv (which the tests install)."""
    root = tmp_path_factory.mktemp("fresh")
    venv = root / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    ours = Path(sysconfig.get_paths()["purelib"])
    dependencies = root / "dependencies"
    dependencies.mkdir()
    for entry in ours.iterdir():
        if not re.match(r"(mediasrv|__editable__)|.*\.pth$", entry.name):
            (dependencies / entry.name).symlink_to(entry)
    site = Path(run(venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    (site / "project_dependencies.pth").write_text(f"{dependencies}\n")
    return venv


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mypy cache for the fresh venv's checks: mediasrv and its dependencies are read once."""
    return tmp_path_factory.mktemp("mypy-cache")


def pip_install(venv: Path, *requirements: str | Path, find_links: Path | None = None) -> None:
    links = ("--find-links", find_links) if find_links is not None else ()
    run(sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--no-index", *links, *requirements)


def test_sdist_and_wheel_ship_the_types_and_the_scaffold(wheels: Path) -> None:
    (wheel,) = wheels.glob("mediasrv-*.whl")
    (sdist,) = wheels.glob("mediasrv-*.tar.gz")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"mediasrv/py.typed", "mediasrv_local/py.typed", "mediasrv/scaffold/backend/backend.py.tmpl"} <= names
    assert not any(name.startswith(("plugins/", "tests/")) for name in names)
    assert sdist.stat().st_size > 0
    (example,) = wheels.glob("mediasrv_zip-*.whl")
    assert "mediasrv_zip/py.typed" in zipfile.ZipFile(example).namelist()


def test_fresh_venv_installs_from_wheels_offline_and_runs_the_plugins_tests(
    wheels: Path, fresh_venv: Path, mypy_cache: Path, tmp_path: Path
) -> None:
    pip_install(fresh_venv, "mediasrv-zip[test]", find_links=wheels)
    python = fresh_venv / "bin" / "python"
    example = shutil.copytree(EXAMPLE_DIR, tmp_path / "mediasrv-zip", ignore=IGNORED)
    where = run(python, "-P", "-c", "import mediasrv, mediasrv_zip; print(mediasrv.__file__, mediasrv_zip.__file__)")
    assert all(path.startswith(str(fresh_venv)) for path in where.stdout.split()), where.stdout
    # -P: the tests import the installed plugin, not the copy's folder.
    tests = run(python, "-P", "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=example, timeout=300)
    assert re.search(r"\d+ passed", tests.stdout) and "failed" not in tests.stdout, tests.stdout
    # py.typed: mypy --strict reads mediasrv's and the plugin's types from the installed wheels.
    typed = run(python, "-m", "mypy", "--strict", "--cache-dir", mypy_cache, "tests", cwd=example)
    assert "Success" in typed.stdout


def test_new_backend_scaffold_installs_and_fails_only_where_code_is_missing(
    wheels: Path, fresh_venv: Path, mypy_cache: Path, tmp_path: Path
) -> None:
    bin_dir = fresh_venv / "bin"
    plugin = install_scaffold(wheels, fresh_venv, tmp_path, "new-backend", "sqlite")
    listed = run(bin_dir / "mediasrv", "plugins", cwd=tmp_path)
    assert re.search(r"^sqlite\s+mediasrv_sqlite\s+mediasrv-sqlite\s+0\.1\.0\s+sqlite\s+-$", listed.stdout, re.M)
    typed = run(bin_dir / "python", "-m", "mypy", "--cache-dir", mypy_cache, "mediasrv_sqlite", "tests", cwd=plugin)
    assert "Success" in typed.stdout
    result = plugin_tests(bin_dir / "python", plugin)
    summary = [line for line in result.stdout.splitlines() if line.startswith(("FAILED tests", "ERROR tests"))]
    assert result.returncode == 1 and "1 passed" in result.stdout, result.stdout  # the plugin is registered
    assert not any(line.startswith("ERROR") for line in summary), result.stdout  # no collection or fixture errors
    assert summary and all("is not written yet" in line or "test_object_is_served_over_http" in line for line in summary), (
        result.stdout
    )
    assert "NotImplementedError: SqliteBackend.stat() is not written yet" in result.stdout
    assert "NotImplementedError: SqliteBackend.open() is not written yet" in result.stdout
    assert "NotImplementedError: SqliteBackend.health() is not written yet" in result.stdout
    assert os.path.isfile(plugin / "mediasrv_sqlite" / "py.typed")

    # The newcomer writes the backend (here: the guide's SQL example) and the two test helpers.
    shutil.copy(SQL_EXAMPLE, plugin / "mediasrv_sqlite" / "backend.py")
    test_file = plugin / "tests" / "test_sqlite_backend.py"
    source = test_file.read_text()
    source = re.sub(r"def make_backend\(.*?\n\n\n", MAKE_BACKEND + "\n\n", source, count=1, flags=re.S)
    source = re.sub(r"def store\(.*?\n\n\n", STORE + "\n\n", source, count=1, flags=re.S)
    test_file.write_text(source)
    written = plugin_tests(bin_dir / "python", plugin)
    assert written.returncode == 0, written.stdout
    assert re.search(r"\d+ passed", written.stdout) and "failed" not in written.stdout, written.stdout


# What the newcomer writes into the transform scaffold's operation.py: the guide's grayscale.
GRAYSCALE_OPERATION = """from typing import Any

from mediasrv import flag as parse


def apply(image: Any, enabled: bool) -> Any:
    return image.colourspace("b-w") if enabled else image
"""


def test_new_transform_scaffold_installs_and_fails_only_where_code_is_missing(
    wheels: Path, fresh_venv: Path, mypy_cache: Path, tmp_path: Path
) -> None:
    bin_dir = fresh_venv / "bin"
    plugin = install_scaffold(wheels, fresh_venv, tmp_path, "new-transform", "grey")
    listed = run(bin_dir / "mediasrv", "plugins", cwd=tmp_path)
    assert re.search(r"^grey\s+mediasrv_grey\s+mediasrv-grey\s+0\.1\.0\s+-\s+grey$", listed.stdout, re.M), listed.stdout
    typed = run(bin_dir / "python", "-m", "mypy", "--cache-dir", mypy_cache, "mediasrv_grey", "tests", cwd=plugin)
    assert "Success" in typed.stdout
    result = plugin_tests(bin_dir / "python", plugin)
    summary = [line for line in result.stdout.splitlines() if line.startswith(("FAILED tests", "ERROR tests"))]
    assert result.returncode == 1 and "1 passed" in result.stdout, result.stdout  # the plugin is registered
    assert len(summary) == 3 and all(
        line.startswith("FAILED") and "NotImplementedError: grey: parse() is not written yet" in line for line in summary
    ), result.stdout

    (plugin / "mediasrv_grey" / "operation.py").write_text(GRAYSCALE_OPERATION)
    written = plugin_tests(bin_dir / "python", plugin)
    assert written.returncode == 0 and "4 passed" in written.stdout, written.stdout


def install_scaffold(wheels: Path, venv: Path, parent: Path, command: str, name: str) -> Path:
    """mediasrv in ``venv``, then ``mediasrv COMMAND NAME`` in ``parent`` installed there; its folder."""
    pip_install(venv, "mediasrv[testing]", find_links=wheels)
    run(venv / "bin" / "mediasrv", command, name, "--dir", parent)
    plugin = parent / f"mediasrv-{name}"
    # As the scaffold's README says: an editable install, so that the code written next is what runs.
    pip_install(venv, "--no-build-isolation", "-e", plugin)
    return plugin


def plugin_tests(python: Path, plugin: Path) -> subprocess.CompletedProcess[str]:
    """The scaffolded plugin's own tests, as its author runs them (``-P``: the installed package)."""
    return subprocess.run(
        [python, "-P", "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider"],
        cwd=plugin,
        env={**isolated_environment(), "COLUMNS": "500"},  # whole failure reasons in the summary
        capture_output=True,
        text=True,
        timeout=300,
    )
