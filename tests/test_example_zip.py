"""The example plugin examples/mediasrv-zip, as its author would ship it: installed by pip
from its folder (into a target directory, so this environment's entry points stay as they
are), its own tests passing against the installed copy, and a server loading it through its
entry point and serving a member over HTTP."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import PROJECT_DIR, Server, isolated_environment, start_server

EXAMPLE_DIR = PROJECT_DIR / "examples" / "mediasrv-zip"
PHOTO = (PROJECT_DIR / "media" / "landscape.jpg").read_bytes()


@pytest.fixture(scope="module")
def example_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example's folder, copied so that building it leaves nothing in the checkout."""
    copy = tmp_path_factory.mktemp("example") / "mediasrv-zip"
    shutil.copytree(EXAMPLE_DIR, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    return copy


@pytest.fixture(scope="module")
def site(example_copy: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the installed example: put it on PYTHONPATH to have it installed.

    No build isolation and no index: the build uses this environment's setuptools, offline."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(example_copy),
        ],
        check=True,
        timeout=120,
    )
    return target


@pytest.fixture
def catalogue(tmp_path: Path, site: Path) -> Iterator[Server]:
    """A server with one zip backend, whose archive holds a stored photo and a deflated text."""
    with zipfile.ZipFile(tmp_path / "catalogue.zip", "w") as archive:
        archive.writestr("photos/landscape.jpg", PHOTO, compress_type=zipfile.ZIP_STORED)
        archive.writestr("notes/readme.txt", "compressed text\n" * 100, compress_type=zipfile.ZIP_DEFLATED)
    settings = '[backends.catalogue]\nkind = "zip"\narchive = "catalogue.zip"\n'
    env = {"PYTHONPATH": str(site), "MEDIASRV_TRACE_PLUGINS": "1"}
    server = start_server(tmp_path, settings, env=env)
    yield server
    server.stop()


def assert_plugin_loaded(server: Server, backend: str, kind: str, distribution: str) -> None:
    """``backend`` of ``kind`` is served by the installed ``distribution`` (an entry point):
    in /admin/plugins and /admin/backends, and in the log's plugin trace and start line."""
    plugins = httpx.get(f"{server.url}/admin/plugins", timeout=10).json()["plugins"]
    assert {
        "name": kind,
        "module": "mediasrv_zip",
        "distribution": distribution,
        "version": "0.1.0",
        "hooks": ["mediasrv_register_backends"],
        "kinds": [kind],
        "operations": [],
    } in plugins, plugins
    listing = httpx.get(f"{server.url}/admin/backends/{backend}", timeout=10).json()
    assert listing["plugin"] == {"module": "mediasrv_zip", "version": "0.1.0"}
    assert listing["health"]["ok"] is True
    log = server.log()
    assert f"from {distribution} " in log, log  # plugin trace: plugin 'zip': mediasrv_zip from mediasrv-zip 0.1.0
    assert f"registered kind {kind!r}" in log, log
    assert f"backend {backend!r} ({kind}) started" in log, log


def test_example_passes_its_own_tests_installed(example_copy: Path, site: Path) -> None:
    # -P: not the copy's source folder on sys.path, so the tests import the installed package.
    result = subprocess.run(
        [sys.executable, "-P", "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=example_copy,
        env={**isolated_environment(), "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout and "failed" not in result.stdout
    assert (
        str(site)
        in subprocess.run(
            [sys.executable, "-P", "-c", "import mediasrv_zip; print(mediasrv_zip.__file__)"],
            cwd=example_copy,
            env={**isolated_environment(), "PYTHONPATH": str(site)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )


def test_example_installed_plugin_serves_over_http(catalogue: Server) -> None:
    response = httpx.get(f"{catalogue.url}/media/catalogue/photos/landscape.jpg")
    assert response.status_code == 200
    assert response.content == PHOTO
    assert response.headers["content-type"] == "image/jpeg"
    ranged = httpx.get(f"{catalogue.url}/media/catalogue/photos/landscape.jpg", headers={"Range": "bytes=100-199"})
    assert ranged.status_code == 206
    assert ranged.content == PHOTO[100:200]
    assert httpx.get(f"{catalogue.url}/media/catalogue/notes/readme.txt").text == "compressed text\n" * 100
    cached = httpx.get(
        f"{catalogue.url}/media/catalogue/photos/landscape.jpg", headers={"If-None-Match": response.headers["etag"]}
    )
    assert cached.status_code == 304
    assert httpx.get(f"{catalogue.url}/media/catalogue/photos/missing.jpg").status_code == 404
    assert_plugin_loaded(catalogue, "catalogue", "zip", "mediasrv-zip")
