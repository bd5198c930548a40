"""The README's plugin example, run as written: saved beside a settings file that names it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import httpx

from conftest import PROJECT_DIR, start_server
from mediasrv_http import HttpSettings
from mediasrv_s3 import S3Settings

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
