"""The operator commands: ``mediasrv check``, ``mediasrv backends`` and ``mediasrv plugins``,
run as a user runs them, in a subprocess."""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PROJECT_DIR, free_port, isolated_environment, write_settings
from s3_server import MotoServer

VERSION = importlib.metadata.version("mediasrv")
DISK = f'[backends.disk]\nkind = "local"\nroot = "{PROJECT_DIR / "media"}"\n'


def mediasrv(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mediasrv", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**isolated_environment(), **(env or {})},
        timeout=60,
    )


def table(output: str) -> list[list[str]]:
    """The rows of a printed table, split on runs of two or more spaces."""
    return [re.split(r"\s{2,}", line.strip()) for line in output.strip().splitlines()]


# --- check ----------------------------------------------------------------------------------


def test_check_accepts_a_valid_file(tmp_path: Path) -> None:
    path = write_settings(tmp_path, DISK + '[backends.cdn]\nkind = "http"\nbase_url = "http://127.0.0.1:9/"\n')
    result = mediasrv("check", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{path}: OK; backends: disk (local), cdn (http)"
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ('[backends.disk]\nkind = "local"\nroot = "x"\nchunk = 5\n', "backends.disk.chunk: Extra inputs are not permitted"),
        ('[backends.disk]\nkind = "nfs"\n', "backends.disk.kind: no plugin provides kind 'nfs'"),
        ("[server]\nport = -1\n", "server.port: Input should be greater than or equal to 0"),
        ("[server\n", "invalid TOML"),
        ('plugins = ["no_such_plugin"]\n', "plugin 'no_such_plugin' (from settings 'plugins'): import failed"),
    ],
)
def test_check_rejects_a_bad_file_with_one_line_and_exit_2(tmp_path: Path, settings: str, message: str) -> None:
    path = write_settings(tmp_path, settings)
    result = mediasrv("check", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"mediasrv: {path}: ") or lines[0].startswith("mediasrv: plugin ")
    assert message in lines[0]


def test_check_of_a_missing_file_is_exit_2(tmp_path: Path) -> None:
    result = mediasrv("check", "--config", str(tmp_path / "nope.toml"), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == f"mediasrv: {tmp_path / 'nope.toml'}: settings file not found"


def test_check_reads_the_default_file_from_the_current_folder(tmp_path: Path) -> None:
    write_settings(tmp_path, DISK)
    result = mediasrv("check", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith(f"{tmp_path / 'settings.toml'}: OK")


# --- backends -------------------------------------------------------------------------------


def test_backends_prints_health_and_exits_1_when_one_fails(tmp_path: Path, moto: MotoServer) -> None:
    moto.client().create_bucket(Bucket="cli-photos")
    settings = DISK + moto.backend_settings("photos", "cli-photos") + (
        f'[backends.gone]\nkind = "http"\nbase_url = "http://127.0.0.1:{free_port()}/"\ntimeout = 2\n'
    )
    path = write_settings(tmp_path, settings)
    result = mediasrv("backends", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    rows = table(result.stdout)
    assert rows[0] == ["NAME", "KIND", "PLUGIN", "HEALTH", "LATENCY", "ERROR"]
    by_name = {row[0]: row for row in rows[1:]}
    assert by_name["disk"][:4] == ["disk", "local", f"mediasrv_local {VERSION}", "ok"]
    assert by_name["photos"][:4] == ["photos", "s3", f"mediasrv_s3 {VERSION}", "ok"]
    assert by_name["gone"][3] == "FAILING"
    assert "refused" in by_name["gone"][5].lower() or "connect" in by_name["gone"][5].lower()
    assert by_name["disk"][4].endswith(" ms")
    assert "s3cr3t" not in result.stdout + result.stderr


def test_backends_exits_0_when_all_are_healthy_and_prints_json(tmp_path: Path) -> None:
    path = write_settings(tmp_path, DISK)
    result = mediasrv("backends", "--config", str(path), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    backends = json.loads(result.stdout)["backends"]
    assert [(backend["name"], backend["health"]["ok"]) for backend in backends] == [("disk", True)]
    assert backends[0]["plugin"] == {"module": "mediasrv_local", "version": VERSION}
    assert backends[0]["settings"]["root"] == str(PROJECT_DIR / "media")


def test_backends_masks_secrets_in_json(tmp_path: Path) -> None:
    settings = (
        '[backends.cdn]\nkind = "http"\nbase_url = "http://127.0.0.1:9/"\ntimeout = 1\n'
        'headers = { "Authorization" = "Bearer cli-secret-token" }\n'
    )
    path = write_settings(tmp_path, settings)
    result = mediasrv("backends", "--config", str(path), "--json", cwd=tmp_path)
    assert result.returncode == 1
    assert json.loads(result.stdout)["backends"][0]["settings"]["headers"] == {"Authorization": "**********"}
    assert "cli-secret-token" not in result.stdout + result.stderr


def test_backends_with_an_invalid_file_is_exit_2(tmp_path: Path) -> None:
    path = write_settings(tmp_path, '[backends.disk]\nkind = "local"\n')
    result = mediasrv("backends", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert "backends.disk.root" in result.stderr


# --- plugins --------------------------------------------------------------------------------


def test_plugins_lists_the_installed_ones_and_the_settings_ones(tmp_path: Path) -> None:
    path = write_settings(tmp_path, 'plugins = ["memory_backend"]\n', plugins=("memory_backend",))
    result = mediasrv("plugins", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = table(result.stdout)
    assert rows[0] == ["NAME", "MODULE", "DISTRIBUTION", "VERSION", "KINDS", "OPERATIONS"]
    assert ["s3", "mediasrv_s3", "mediasrv", VERSION, "s3", "-"] in rows
    assert ["memory_backend", "memory_backend", "-", "-", "memory", "-"] in rows
    assert ["transforms", "mediasrv.transforms.operations", "mediasrv", VERSION, "-", "blur, sharpen"] in rows
    assert ["disk", "mediasrv.cache.disk", "mediasrv", VERSION, "-", "-"] in rows  # the disk result store
    assert len(rows) == 7


def test_plugins_without_a_settings_file_lists_the_installed_ones(tmp_path: Path) -> None:
    result = mediasrv("plugins", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    plugins = json.loads(result.stdout)["plugins"]
    assert [plugin["name"] for plugin in plugins] == ["disk", "http", "local", "s3", "transforms"]
    assert plugins[0]["hooks"] == ["mediasrv_register_result_stores"]
    assert plugins[1]["hooks"] == ["mediasrv_register_backends"]


def test_plugins_with_a_named_but_missing_file_is_exit_2(tmp_path: Path) -> None:
    result = mediasrv("plugins", "--config", str(tmp_path / "nope.toml"), cwd=tmp_path)
    assert result.returncode == 2
    assert "settings file not found" in result.stderr
