"""Secrets in backend settings never reach an admin: what redacted_settings masks."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from mediasrv import BackendSettings
from mediasrv.redaction import MASK, redacted_settings


class PluginSettings(BackendSettings):
    """A third-party plugin's settings, written without SecretStr."""

    url: str = ""
    root: Path = Path("/srv")
    password: SecretStr = SecretStr("")
    api_key: str = ""
    auth_token: str = ""
    client_secret: str = ""
    session_cookie: str = ""
    headers: dict[str, str] = {}
    options: dict[str, str] = {}
    mirrors: list[str] = []
    retries: int = 3
    token_ttl: int = 60


def redact(**values: object) -> dict[str, object]:
    return redacted_settings(PluginSettings(kind="x", **values))  # type: ignore[arg-type]


def test_plain_settings_are_shown_as_json_values() -> None:
    assert redact(url="https://example.com/a", retries=5) == {
        "kind": "x",
        "access": "public",
        "cache_control": "",
        "chunk_size": 1048576,
        "url": "https://example.com/a",
        "root": "/srv",
        "password": "",
        "api_key": "",
        "auth_token": "",
        "client_secret": "",
        "session_cookie": "",
        "headers": {},
        "options": {},
        "mirrors": [],
        "retries": 5,
        "token_ttl": 60,
    }


def test_secret_fields_are_masked_and_empty_ones_shown_empty() -> None:
    shown = redact(password=SecretStr("p4ss"))
    assert shown["password"] == MASK
    assert redact()["password"] == ""


def test_keys_that_look_secret_are_masked_even_as_plain_strings() -> None:
    shown = redact(api_key="k1", auth_token="t1", client_secret="s1", session_cookie="c1")
    assert (shown["api_key"], shown["auth_token"], shown["client_secret"], shown["session_cookie"]) == (MASK,) * 4


def test_numbers_under_secret_looking_keys_stay_visible() -> None:
    assert redact(token_ttl=30)["token_ttl"] == 30


def test_every_header_value_is_masked_whatever_its_name() -> None:
    assert redact(headers={"X-Tenant": "t-1", "Authorization": "Bearer z"})["headers"] == {
        "X-Tenant": MASK,
        "Authorization": MASK,
    }


def test_nested_secret_keys_are_masked() -> None:
    assert redact(options={"region": "eu", "secret": "s"})["options"] == {"region": "eu", "secret": MASK}


def test_passwords_in_urls_are_masked() -> None:
    assert redact(url="https://user:hunter2@example.com:8443/a")["url"] == f"https://user:{MASK}@example.com:8443/a"
    assert redact(mirrors=["http://a:b@m1/", "http://m2/"])["mirrors"] == [f"http://a:{MASK}@m1/", "http://m2/"]
    assert redact(url="mailto:someone@example.com")["url"] == "mailto:someone@example.com"
    assert redact(url="https://user@example.com/")["url"] == "https://user@example.com/"


def test_an_unparseable_url_with_credentials_is_masked_whole() -> None:
    assert redact(url="http://u:p@[::1/")["url"] == MASK


class UrlSettings(BackendSettings):
    base_url: str = ""
    health_path: str = ""
    note: str = ""
    mirrors: list[str] = []


def test_query_values_of_urls_and_url_paths_are_masked() -> None:
    def masked(**values: object) -> dict[str, object]:
        return redacted_settings(UrlSettings(kind="x", **values))  # type: ignore[arg-type]

    assert masked(health_path="/health?token=s3cr3t&x")["health_path"] == f"/health?token={MASK}&x"
    assert masked(health_path="healthz?k=v#frag")["health_path"] == f"healthz?k={MASK}#{MASK}"
    assert masked(base_url="https://u:p@h/a?sig=abc")["base_url"] == f"https://u:{MASK}@h/a?sig={MASK}"
    assert masked(mirrors=["http://m/?t=1"])["mirrors"] == [f"http://m/?t={MASK}"]
    assert masked(note="why? because")["note"] == "why? because"  # not URL-like: left alone
