"""A plugin author's mistakes, end to end through ``mediasrv serve``: each exits 2 with one
line on stderr naming the plugin and the problem. Plugins come from settings' ``plugins`` or
from an installed distribution (a dist-info folder on PYTHONPATH, as pip would leave it)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import START_TIMEOUT, free_port, isolated_environment, start_server

BACKEND = """
from mediasrv import BackendSettings, Health, ObjectInfo, StorageBackend, hookimpl


class MistakeSettings(BackendSettings):
    url: str = "http://example.com/"


class MistakeBackend(StorageBackend):
    kind = "mistake"
    Settings = MistakeSettings

    async def stat(self, key):
        return ObjectInfo(size=0)

    async def open(self, key, byte_range, conditions):
        raise NotImplementedError

    async def health(self):
        return Health(ok=True)
"""
REGISTER = """

@hookimpl
def mediasrv_register_backends(register):
    register(MistakeBackend)
"""
SETTINGS = """
plugins = [PLUGINS]

[backends.media]
kind = "mistake"
"""


def install(site: Path, distribution: str, entry_points: dict[str, str]) -> None:
    """A distribution's metadata in ``site``, as an installer writes it."""
    dist_info = site / f"{distribution.replace('-', '_')}-0.1.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 0.1\n")
    lines = [f"{name} = {value}" for name, value in entry_points.items()]
    (dist_info / "entry_points.txt").write_text("[mediasrv]\n" + "\n".join(lines) + "\n")


def serve(tmp_path: Path, modules: dict[str, str], settings: str, installed: bool = False) -> tuple[int, str]:
    """Run ``mediasrv serve`` with ``modules`` (name -> source) beside the settings file, or
    installed as entry points; its exit status and stderr."""
    config_dir, site = tmp_path / "config", tmp_path / "site"
    config_dir.mkdir()
    site.mkdir()
    for name, source in modules.items():
        (site if installed else config_dir).joinpath(f"{name}.py").write_text(textwrap.dedent(source))
    if installed:
        install(site, "mediasrv-mistake", {name.removeprefix("mediasrv_"): name for name in modules})
    names = "" if installed else ", ".join(f'"{name}"' for name in modules)
    (config_dir / "settings.toml").write_text(settings.replace("PLUGINS", names))
    return run_serve(config_dir, site)


def run_serve(config_dir: Path, site: Path) -> tuple[int, str]:
    """``mediasrv serve`` of config_dir/settings.toml with ``site`` on PYTHONPATH: exit status, stderr.
    Each case must stop at start-up; one that serves instead is killed after the timeout."""
    command = [sys.executable, "-m", "mediasrv", "serve", "--config", str(config_dir / "settings.toml")]
    result = subprocess.run(
        [*command, "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        env={**isolated_environment(), "PYTHONPATH": str(site)},
        cwd=config_dir,
    )
    return result.returncode, result.stderr


def assert_one_line(stderr: str, *fragments: str) -> None:
    assert stderr.endswith("\n") and stderr.count("\n") == 1, stderr
    for fragment in fragments:
        assert fragment in stderr, stderr


@pytest.mark.parametrize("installed", [False, True], ids=["settings", "installed"])
def test_serve_plugin_raises_at_import(tmp_path: Path, installed: bool) -> None:
    source = 'raise RuntimeError("no credentials file")\n'
    status, stderr = serve(tmp_path, {"mediasrv_mistake": source}, SETTINGS, installed)
    assert status == 2
    assert_one_line(stderr, "'mistake'" if installed else "'mediasrv_mistake'", "import failed", "no credentials file")


@pytest.mark.parametrize("installed", [False, True], ids=["settings", "installed"])
def test_serve_plugin_registers_non_backend(tmp_path: Path, installed: bool) -> None:
    source = BACKEND + REGISTER.replace("register(MistakeBackend)", "register(MistakeSettings)")
    status, stderr = serve(tmp_path, {"mediasrv_mistake": source}, SETTINGS, installed)
    assert status == 2
    assert_one_line(stderr, "'mistake'" if installed else "'mediasrv_mistake'", "not a StorageBackend subclass")


def test_serve_plugin_registers_builtin_kind(tmp_path: Path) -> None:
    source = BACKEND.replace('kind = "mistake"', 'kind = "local"') + REGISTER
    status, stderr = serve(tmp_path, {"mediasrv_mistake": source}, SETTINGS)
    assert status == 2
    assert_one_line(stderr, "'mediasrv_mistake'", "backend kind 'local' is already registered by plugin 'local'")


def test_serve_two_plugins_register_one_kind(tmp_path: Path) -> None:
    source = BACKEND + REGISTER
    status, stderr = serve(tmp_path, {"mediasrv_first": source, "mediasrv_second": source}, SETTINGS)
    assert status == 2
    assert_one_line(stderr, "'mediasrv_second'", "'mistake' is already registered by plugin 'mediasrv_first'")


def test_serve_installed_plugin_takes_builtin_entry_point_name(tmp_path: Path) -> None:
    config_dir, site = tmp_path / "config", tmp_path / "site"
    (site / "mediasrv_mine.py").parent.mkdir()
    (site / "mediasrv_mine.py").write_text(BACKEND + REGISTER)
    install(site, "mediasrv-mine", {"local": "mediasrv_mine"})
    config_dir.mkdir()
    (config_dir / "settings.toml").write_text(SETTINGS.replace("PLUGINS", ""))
    status, stderr = run_serve(config_dir, site)
    assert status == 2
    assert_one_line(stderr, "'local'", "declared twice", "mediasrv_mine", "mediasrv_local")


@pytest.mark.parametrize("installed", [False, True], ids=["settings", "installed"])
def test_serve_plugin_misspells_hook(tmp_path: Path, installed: bool) -> None:
    source = BACKEND + REGISTER.replace("def mediasrv_register_backends(", "def mediasrv_register_backend(")
    status, stderr = serve(tmp_path, {"mediasrv_mistake": source}, SETTINGS, installed)
    assert status == 2
    assert_one_line(
        stderr, "'mistake'" if installed else "'mediasrv_mistake'", "unknown hook 'mediasrv_register_backend'"
    )


@pytest.mark.parametrize(
    ("table", "validator", "fragments"),
    [
        ("url = 5\n", "", ("backends.media.url", "valid string", "(plugin 'mediasrv_mistake')")),
        ('colour = "red"\n', "", ("backends.media.colour", "(plugin 'mediasrv_mistake')")),
        (
            'url = "x"\n',
            """
    @pydantic.field_validator("url")
    @classmethod
    def _check(cls, url):
        return {}[url]
""",
            ("backends.media: plugin 'mediasrv_mistake' rejected its settings", "KeyError('x')"),
        ),
    ],
    ids=["wrong-type", "unknown-key", "validator-bug"],
)
def test_serve_plugin_settings_model_rejects_table(
    tmp_path: Path, table: str, validator: str, fragments: tuple[str, ...]
) -> None:
    field = '    url: str = "http://example.com/"\n'
    source = "import pydantic\n" + BACKEND.replace(field, field + validator) + REGISTER
    status, stderr = serve(tmp_path, {"mediasrv_mistake": source}, SETTINGS + table)
    assert status == 2
    assert_one_line(stderr, "settings.toml", *fragments)


def test_serve_trace_plugins_logs_registrations_and_hook_calls(tmp_path: Path) -> None:
    (tmp_path / "media").mkdir()
    settings = '[backends.files]\nkind = "local"\nroot = "media"\n'
    server = start_server(tmp_path, settings, env={"MEDIASRV_TRACE_PLUGINS": "1"})
    try:
        log = server.log()
    finally:
        server.stop()
    assert "plugin trace: plugin 'local': mediasrv_local from mediasrv" in log
    assert "plugin trace: mediasrv_register_backends of plugin 'local'" in log
    assert "plugin trace:   registered kind 'local': mediasrv_local.backend.LocalBackend" in log


def test_plugins_command_marks_a_broken_installed_plugin_and_lists_the_rest(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "mediasrv_mistake.py").write_text("import json\n\njson.loads('{')\n")
    install(site, "mediasrv-mistake", {"mistake": "mediasrv_mistake"})
    result = subprocess.run(
        [sys.executable, "-m", "mediasrv", "plugins", "--json"],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        env={**isolated_environment(), "PYTHONPATH": str(site)},
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr
    listing = json.loads(result.stdout)
    assert [plugin["name"] for plugin in listing["plugins"]] == ["disk", "http", "local", "s3", "transforms"]
    (broken,) = listing["broken"]
    assert broken["name"] == "mistake"
    assert "import failed: JSONDecodeError" in broken["problem"]
    assert f"{site / 'mediasrv_mistake.py'}:3" in broken["problem"]  # the plugin's line, not json's
