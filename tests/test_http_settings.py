"""mediasrv_http.settings: the ``kind = "http"`` table, checked at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from conftest import start_server
from mediasrv.settings import describe_validation_error
from mediasrv_http import HttpBackend, HttpSettings


def settings(**values: object) -> HttpSettings:
    return HttpSettings.model_validate({"kind": "http", "base_url": "https://cdn.example.com/static", **values})


def test_settings_defaults_follow_the_design() -> None:
    defaults = settings()
    assert defaults.base_url == "https://cdn.example.com/static/"
    assert (defaults.timeout, defaults.max_connections, defaults.health_path) == (10, 64, "")
    assert defaults.headers == {}
    assert defaults.cache_control == ""


def test_header_values_are_secret_in_repr_and_dumps() -> None:
    configured = settings(headers={"Authorization": "Bearer topsecret-42"})
    assert "topsecret-42" not in repr(configured)
    assert "topsecret-42" not in str(configured.model_dump())
    assert "topsecret-42" not in configured.model_dump_json()
    assert configured.headers["Authorization"].get_secret_value() == "Bearer topsecret-42"


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"headers": {"Range": "bytes=0-"}}, "set by mediasrv itself"),
        ({"headers": {"host": "evil.example"}}, "set by mediasrv itself"),
        ({"headers": {"Accept-Encoding": "gzip"}}, "set by mediasrv itself"),
        ({"headers": {"Bad Name": "x"}}, "not a valid HTTP token"),
        ({"headers": {"X-Token": "topsecret-42\r\nX-Injected: 1"}}, "control character"),
        ({"timeout": 0}, "greater than 0"),
        ({"max_connections": 0}, "greater than or equal to 1"),
        ({"health_path": "http://other.example/health"}, "not a URL"),
        ({"health_path": "//other.example/health"}, "must be a path"),
        ({"base_url": "http://example.com/?token=x"}, "query"),
        ({"unknown": 1}, "Extra inputs are not permitted"),
    ],
)
def test_bad_settings_are_refused_without_echoing_secrets(values: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError) as caught:
        settings(**values)
    message = describe_validation_error(caught.value)  # as mediasrv reports it
    assert problem in message
    assert "topsecret-42" not in message


@pytest.mark.parametrize(
    ("health_path", "url"),
    [
        ("", "https://cdn.example.com/static/"),
        ("healthz", "https://cdn.example.com/static/healthz"),
        ("/healthz", "https://cdn.example.com/healthz"),
        ("/status?full=1", "https://cdn.example.com/status?full=1"),
    ],
)
def test_health_path_is_relative_to_base_url_or_the_host(health_path: str, url: str) -> None:
    assert str(HttpBackend("cdn", settings(health_path=health_path)).health_url) == url


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            'base_url = "https://cdn.example.com/static/?sig=1"\nheaders = { "X-Token" = "topsecret-42" }',
            "backends.cdn.base_url: Value error, must not have a query string",
        ),
        (
            'base_url = "https://cdn.example.com/"\nheaders = { "X-Token" = "topsecret-42\\r\\nX-Injected: 1" }',
            "backends.cdn.headers: Value error, the value of header 'X-Token' contains a control character",
        ),
    ],
)
def test_a_bad_http_table_stops_start_up_naming_the_key(tmp_path: Path, table: str, message: str) -> None:
    with pytest.raises(AssertionError, match=r"exited with 2") as caught:
        start_server(tmp_path, f'[backends.cdn]\nkind = "http"\n{table}\n')
    assert message in str(caught.value)
    assert "topsecret-42" not in str(caught.value)
