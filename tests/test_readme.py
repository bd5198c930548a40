"""The README's plugin example, run as written: saved beside a settings file that names it."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import httpx

from conftest import PROJECT_DIR, start_server
from mediasrv.cache import CacheSettings
from mediasrv.redaction import MASK
from mediasrv.settings import AdminSettings, ServerSettings
from mediasrv.transforms.settings import TransformSettings
from mediasrv_http import HttpSettings
from mediasrv_s3 import S3Settings, S3StoreSettings

README = (PROJECT_DIR / "README.md").read_text()


def code_block(language: str, containing: str) -> str:
    for block in re.findall(rf"```{language}\n(.*?)```", README, re.DOTALL):
        if containing in block:
            return str(block)
    raise AssertionError(f"no {language} block containing {containing!r} in README.md")


def test_readme_plugin_example_serves(tmp_path: Path) -> None:
    (tmp_path / "mediasrv_notes.py").write_text(code_block("python", "class NotesBackend"))
    server = start_server(tmp_path, code_block("toml", 'plugins = ["mediasrv_notes"]'))
    try:
        response = httpx.get(f"{server.url}/media/notes/hello.txt")
        assert response.status_code == 200
        assert response.text == "hello"
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        assert httpx.get(f"{server.url}/media/notes/hello.txt", headers={"range": "bytes=1-2"}).text == "el"
        assert httpx.get(f"{server.url}/media/notes/missing.txt").status_code == 404
    finally:
        server.stop()


def test_readme_s3_example_is_valid_and_shows_every_setting() -> None:
    table = tomllib.loads(code_block("toml", 'kind = "s3"'))["backends"]["photos"]
    assert S3Settings.model_validate(table).prefix == "public/"
    assert set(table) == set(S3Settings.model_fields)


def test_readme_http_example_is_valid_and_shows_every_setting() -> None:
    table = tomllib.loads(code_block("toml", 'kind = "http"'))["backends"]["cdn"]
    assert HttpSettings.model_validate(table).base_url == "https://static.example.com/media/"
    assert set(table) == set(HttpSettings.model_fields)


def test_readme_configuration_and_settings_toml_show_every_server_and_admin_key() -> None:
    for text in (code_block("toml", "[server]"), (PROJECT_DIR / "settings.toml").read_text()):
        document = tomllib.loads(text)
        assert set(document["server"]) == set(ServerSettings.model_fields)
        assert set(document["admin"]) == set(AdminSettings.model_fields)
        ServerSettings.model_validate(document["server"])
        AdminSettings.model_validate(document["admin"])


def test_readme_admin_backends_example_has_the_served_shape() -> None:
    backends = json.loads(code_block("json", '"backends"'))["backends"]
    assert [backend["kind"] for backend in backends] == ["local", "s3", "http"]
    for backend in backends:
        assert set(backend) == {"name", "kind", "plugin", "health", "settings"}
        assert set(backend["plugin"]) == {"module", "version"}
        assert set(backend["health"]) == {"ok", "checked_at", "latency_ms", "error"}
    assert set(backends[1]["settings"]) == set(S3Settings.model_fields)
    assert set(backends[2]["settings"]) == set(HttpSettings.model_fields)
    assert backends[1]["settings"]["secret_access_key"] == MASK


def layout_rows() -> list[tuple[str, str]]:
    """(path cell, what) of each row of the README's Layout table."""
    table = README.split("## Layout", 1)[1].split("\n\n", 2)[1]
    rows = [line.split("|")[1:3] for line in table.splitlines()[2:]]
    return [(path.strip(), what.strip()) for path, what in rows]


def layout_paths() -> set[str]:
    """Every path the Layout table names; ``dir/a.py``, ``b.py`` in one cell means dir/b.py too."""
    named: set[str] = set()
    for cell, what in layout_rows():
        names = re.findall(r"`([^`]+)`", cell)
        folder = names[0].rsplit("/", 1)[0] + "/" if "/" in names[0].rstrip("/") else ""
        named.update(name if "/" in name else folder + name for name in names)
        if cell.endswith("/`") and "`" in what:  # a package's modules, listed in the second cell
            named.update(names[0] + name for name in re.findall(r"`(\w+\.py)`", what))
    return named


def test_readme_layout_names_every_module_and_only_existing_ones() -> None:
    named = layout_paths()
    modules = {
        str(path.relative_to(PROJECT_DIR))
        for folder in ("mediasrv", "plugins/mediasrv_http", "plugins/mediasrv_s3")
        for path in (PROJECT_DIR / folder).glob("*.py")
        if path.name not in ("__init__.py", "__main__.py")
    }
    assert modules <= named, f"missing from the Layout table: {sorted(modules - named)}"
    missing = sorted(path for path in named if not (PROJECT_DIR / path).exists())
    assert not missing, f"the Layout table names what does not exist: {missing}"


def test_readme_cache_example_is_valid_and_shows_every_setting() -> None:
    document = tomllib.loads(code_block("toml", "[cache.s3]"))["cache"]
    settings = CacheSettings.model_validate(document)
    assert set(document) - {"s3"} == set(CacheSettings.model_fields)
    assert set(document["s3"]) == set(S3StoreSettings.model_fields)
    assert S3StoreSettings.model_validate(settings.store_tables()["s3"]).prefix == "v1/"


def test_readme_and_settings_toml_show_every_transforms_key() -> None:
    for text in (code_block("toml", "[transforms]"), (PROJECT_DIR / "settings.toml").read_text()):
        document = tomllib.loads(text)
        assert set(document["transforms"]) == set(TransformSettings.model_fields)
        TransformSettings.model_validate(document["transforms"])
    assert tomllib.loads((PROJECT_DIR / "settings.toml").read_text())["transforms"]["allow_unsigned"] is True
