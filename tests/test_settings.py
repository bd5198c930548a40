"""Settings: file, environment and flags, their errors, and how the CLI reports them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mediasrv.configuration import load_configuration
from mediasrv.settings import CONFIG_ENV, ConfigError, Settings, find_settings_file, load_settings
from mediasrv_local import LocalSettings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No MEDIASRV_* variable of the calling shell leaks into a test."""
    for name in list(os.environ):
        if name.upper().startswith("MEDIASRV_"):
            monkeypatch.delenv(name)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_load_settings_defaults_from_empty_file(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path / "settings.toml", ""))
    assert isinstance(settings, Settings)
    assert settings.plugins == []
    assert settings.server.host == "127.0.0.1"
    assert settings.server.port == 8000
    assert settings.server.workers == 1
    assert settings.server.max_streams == 1000
    assert settings.server.send_timeout == 60
    assert settings.server.shutdown_timeout == 10
    assert settings.admin.token.get_secret_value() == ""
    assert settings.backends == {}


def test_load_settings_file_values(tmp_path: Path) -> None:
    path = write(
        tmp_path / "settings.toml",
        """
plugins = ["my_plugin"]

[server]
host = "0.0.0.0"
port = 9000
workers = 4
max_streams = 50
send_timeout = 5.5

[admin]
token = "s3cret"

[backends.media]
kind = "local"
root = "./media"
chunk_size = 8192
""",
    )
    settings = load_settings(path)
    assert settings.plugins == ["my_plugin"]
    assert (settings.server.host, settings.server.port, settings.server.workers) == ("0.0.0.0", 9000, 4)
    assert settings.server.max_streams == 50
    assert settings.server.send_timeout == 5.5
    assert settings.server.shutdown_timeout == 10  # not in the file: default
    assert settings.admin.token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)
    assert settings.backends == {"media": {"kind": "local", "root": "./media", "chunk_size": 8192}}


def test_load_settings_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "settings.toml", '[server]\nhost = "0.0.0.0"\nport = 9000\n')
    monkeypatch.setenv("MEDIASRV_SERVER__PORT", "9100")
    settings = load_settings(path)
    assert settings.server.port == 9100
    assert settings.server.host == "0.0.0.0"  # the rest of the file's table stays


def test_load_settings_overrides_beat_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "settings.toml", '[server]\nhost = "0.0.0.0"\nport = 9000\n')
    monkeypatch.setenv("MEDIASRV_SERVER__PORT", "9100")
    settings = load_settings(path, {"server": {"port": 9200}})
    assert settings.server.port == 9200
    assert settings.server.host == "0.0.0.0"


def test_load_settings_overrides_beat_file(tmp_path: Path) -> None:
    path = write(tmp_path / "settings.toml", "[server]\nport = 9000\nworkers = 3\n")
    settings = load_settings(path, {"server": {"port": 1234}})
    assert settings.server.port == 1234
    assert settings.server.workers == 3


def test_load_settings_environment_deep_merges_into_backend_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path / "settings.toml",
        """
[backends.local]
kind = "local"
root = "./media"
cache_control = "public, max-age=60"
chunk_size = 8192
""",
    )
    monkeypatch.setenv("MEDIASRV_BACKENDS__LOCAL__CHUNK_SIZE", "16384")
    table = load_settings(path).backends["local"]
    assert table["kind"] == "local"
    assert table["root"] == "./media"
    assert table["cache_control"] == "public, max-age=60"
    backend_settings = LocalSettings.model_validate(table)
    assert backend_settings.chunk_size == 16384


def test_load_settings_environment_bad_value_is_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "settings.toml", "")
    monkeypatch.setenv("MEDIASRV_SERVER__PORT", "not-a-port")
    with pytest.raises(ConfigError, match=r"server\.port"):
        load_settings(path)


def test_settings_error_names_the_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path / "settings.toml", "[server]\nworkers = 2\n")
    monkeypatch.setenv("MEDIASRV_SERVER__PORT", "not-a-port")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert "server.port (from environment variable MEDIASRV_SERVER__PORT): Input should be a valid integer" in str(
        caught.value
    )
    monkeypatch.delenv("MEDIASRV_SERVER__PORT")
    path.write_text("[server]\nport = 'not-a-port'\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert "environment" not in str(caught.value)


def test_backend_settings_error_names_the_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "media").mkdir()
    path = write(tmp_path / "settings.toml", '[backends.disk]\nkind = "local"\nroot = "media"\n')
    monkeypatch.setenv("MEDIASRV_BACKENDS__DISK__CHUNK_SIZE", "12")
    with pytest.raises(ConfigError) as caught:
        load_configuration(path)
    assert "backends.disk.chunk_size (from environment variable MEDIASRV_BACKENDS__DISK__CHUNK_SIZE):" in str(
        caught.value
    )


def test_load_settings_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert str(path) in str(caught.value)


def test_load_settings_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path)
    assert str(tmp_path) in str(caught.value)


def test_load_settings_invalid_toml(tmp_path: Path) -> None:
    path = write(tmp_path / "settings.toml", "[server\nport = 1\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert str(path) in message
    assert "TOML" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[server]\nport = "x"\n', "server.port"),
        ("[server]\nport = 70000\n", "server.port"),
        ("[server]\nworkers = 0\n", "server.workers"),
        ("[server]\nsend_timeout = 0\n", "server.send_timeout"),
        ('plugins = "not-a-list"\n', "plugins"),
    ],
)
def test_load_settings_bad_type_names_key(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path / "settings.toml", text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert key in message
    assert str(path) in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("bogus = 1\n", "bogus"),
        ("[server]\nprot = 80\n", "server.prot"),
        ('[admin]\npassword = "x"\n', "admin.password"),
    ],
)
def test_load_settings_unknown_key_is_error(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path / "settings.toml", text))
    assert key in str(caught.value)


@pytest.mark.parametrize("name", ["Media", "-media", "_media", "me dia", "média", "a.b"])
def test_load_settings_bad_backend_name_is_error(tmp_path: Path, name: str) -> None:
    path = write(tmp_path / "settings.toml", f'[backends."{name}"]\nkind = "local"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert "backends" in str(caught.value)
    assert repr(name) in str(caught.value)


def test_load_settings_backend_name_with_trailing_newline_is_error(tmp_path: Path) -> None:
    path = write(tmp_path / "settings.toml", '[backends."media\\n"]\nkind = "local"\n')
    with pytest.raises(ConfigError, match="backend name 'media\\\\n' must match"):
        load_settings(path)


@pytest.mark.parametrize("name", ["media", "m", "0", "my-media_2"])
def test_load_settings_good_backend_names(tmp_path: Path, name: str) -> None:
    path = write(tmp_path / "settings.toml", f'[backends."{name}"]\nkind = "local"\n')
    assert list(load_settings(path).backends) == [name]


def test_find_settings_file_explicit_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "from-env.toml"))
    assert find_settings_file(tmp_path / "explicit.toml") == tmp_path / "explicit.toml"
    assert find_settings_file("relative.toml") == tmp_path / "relative.toml"


def test_find_settings_file_environment_second(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(CONFIG_ENV, "conf/from-env.toml")
    found = find_settings_file()
    assert found == tmp_path / "conf" / "from-env.toml"
    assert found.is_absolute()
    assert find_settings_file(None) == found


def test_find_settings_file_default_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    found = find_settings_file()
    assert found == tmp_path / "settings.toml"
    assert found.is_absolute()


def test_find_settings_file_expands_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert find_settings_file("~/conf.toml") == tmp_path / "conf.toml"


# The command line: a bad settings file stops `mediasrv serve` with one line and status 2.


def run_serve(config: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if not name.upper().startswith("MEDIASRV_")}
    return subprocess.run(
        [sys.executable, "-m", "mediasrv", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=cwd,
        env=env,
        check=False,
    )


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_cli_serve_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    line = error_line(run_serve(path, tmp_path))
    assert str(path) in line


def test_cli_serve_invalid_toml(tmp_path: Path) -> None:
    path = write(tmp_path / "settings.toml", "[server\nport = 1\n")
    line = error_line(run_serve(path, tmp_path))
    assert str(path) in line


def test_cli_serve_unknown_backend_kind(tmp_path: Path) -> None:
    path = write(tmp_path / "settings.toml", '[backends.media]\nkind = "nosuch"\n')
    line = error_line(run_serve(path, tmp_path))
    assert "backends.media.kind" in line
    assert "nosuch" in line


def test_cli_serve_local_backend_unknown_key(tmp_path: Path) -> None:
    path = write(tmp_path / "settings.toml", '[backends.media]\nkind = "local"\nroot = "."\nbogus = 1\n')
    line = error_line(run_serve(path, tmp_path))
    assert "backends.media.bogus" in line
