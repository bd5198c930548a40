"""The access log: one JSON line per request, with backend, key, status, bytes, duration
and range, and never a secret or a query string."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from conftest import PROJECT_DIR, Server, abort_after_first_bytes, get, start_server, wait_until

SETTINGS = f"""
[admin]
token = "admin-token-never-logged"

[backends.disk]
kind = "local"
root = "{PROJECT_DIR / "media"}"
"""
IMAGE_SIZE = (PROJECT_DIR / "media" / "landscape.jpg").stat().st_size


def access_lines(server: Server) -> list[dict[str, Any]]:
    """The log's JSON lines (uvicorn's own lines are not JSON)."""
    return [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]


def line_for(server: Server, path: str) -> dict[str, Any]:
    assert wait_until(lambda: any(line["path"] == path for line in access_lines(server)))
    return next(line for line in access_lines(server) if line["path"] == path)


def test_a_media_request_is_one_line_with_backend_key_range_status_and_bytes(tmp_path: Path) -> None:
    server = start_server(tmp_path, SETTINGS)
    try:
        assert get(server, "/media/disk/landscape.jpg", Range="bytes=10-19").status_code == 206
        line = line_for(server, "/media/disk/landscape.jpg")
        assert line["method"] == "GET"
        assert line["backend"] == "disk"
        assert line["key"] == "landscape.jpg"
        assert line["range"] == "bytes=10-19"
        assert line["status"] == 206
        assert line["bytes"] == 10
        assert line["outcome"] == "complete"
        assert line["client"] == "127.0.0.1"
        assert 0 < line["duration_ms"] < 10000
        assert line["time"].endswith("Z")
        assert len([entry for entry in access_lines(server) if entry["path"] == "/media/disk/landscape.jpg"]) == 1
    finally:
        server.stop()


def test_errors_name_their_kind_and_other_routes_are_logged_too(tmp_path: Path) -> None:
    server = start_server(tmp_path, SETTINGS)
    try:
        assert get(server, "/media/disk/missing.jpg").status_code == 404
        assert httpx.get(server.url + "/admin/backends", timeout=10).status_code == 401
        missing = line_for(server, "/media/disk/missing.jpg")
        assert (missing["status"], missing["error"], missing["backend"]) == (404, "not_found", "disk")
        admin = line_for(server, "/admin/backends")
        assert admin["status"] == 401
        assert "backend" not in admin
    finally:
        server.stop()


def test_a_client_that_leaves_is_logged_as_such(tmp_path: Path) -> None:
    big = tmp_path / "media"
    big.mkdir()
    (big / "big.bin").write_bytes(b"\0" * 64 * 1024 * 1024)
    server = start_server(tmp_path / "server", SETTINGS.replace(str(PROJECT_DIR / "media"), str(big)))
    try:
        abort_after_first_bytes(server, "/media/disk/big.bin")
        line = line_for(server, "/media/disk/big.bin")
        assert line["outcome"] == "client_disconnected"
        assert line["status"] == 200
        assert 0 < line["bytes"] < 64 * 1024 * 1024
    finally:
        server.stop()


def test_no_secret_and_no_query_string_in_the_log(tmp_path: Path) -> None:
    server = start_server(tmp_path, SETTINGS)
    try:
        headers = {"Authorization": "Bearer admin-token-never-logged", "Cookie": "session=cookie-never-logged"}
        assert httpx.get(server.url + "/admin/backends", headers=headers, timeout=10).status_code == 200
        response = httpx.get(server.url + "/media/disk/landscape.jpg?signature=sig-never-logged", timeout=10)
        assert len(response.content) == IMAGE_SIZE
        line_for(server, "/media/disk/landscape.jpg")
        log = server.log()
        for secret in ("admin-token-never-logged", "cookie-never-logged", "sig-never-logged"):
            assert secret not in log
    finally:
        server.stop()


def test_a_key_with_quotes_and_newlines_stays_one_parseable_line(tmp_path: Path) -> None:
    server = start_server(tmp_path, SETTINGS)
    try:
        assert get(server, '/media/disk/a%22b%0A%7B"c.jpg').status_code == 400
        line = line_for(server, '/media/disk/a"b\n{"c.jpg')
        assert line["key"] == 'a"b\n{"c.jpg'
        assert line["error"] == "invalid_key"
    finally:
        server.stop()


def test_the_access_log_can_be_turned_off(tmp_path: Path) -> None:
    server = start_server(tmp_path, SETTINGS.replace("[admin]", "[server]\naccess_log = false\n\n[admin]"))
    try:
        assert get(server, "/media/disk/landscape.jpg").status_code == 200
        assert get(server, "/healthz").status_code == 200
        server.stop()
        assert access_lines(server) == []
        assert "Application startup complete" in server.log()
    finally:
        server.stop()
