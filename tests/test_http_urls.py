"""mediasrv_http.urls: the HTTP backend's URL building and redirect checks."""

from __future__ import annotations

import pytest
from yarl import URL

from mediasrv import InvalidKey
from mediasrv_http.urls import build_url, check_segment, is_under, parse_base_url

BASE = parse_base_url("https://cdn.example.com:8443/static/v1")


# --- base_url -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "normalised"),
    [
        ("https://cdn.example.com/static/", "https://cdn.example.com/static/"),
        ("https://cdn.example.com/static", "https://cdn.example.com/static/"),
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000/"),
        ("HTTP://CDN.Example.COM/a%20b/", "http://cdn.example.com/a%20b/"),
        ("http://[::1]:8080/x", "http://[::1]:8080/x/"),
    ],
)
def test_base_url_is_normalised_to_end_with_a_slash(value: str, normalised: str) -> None:
    assert str(parse_base_url(value)) == normalised


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("ftp://example.com/", "http:// or https://"),
        ("example.com/static/", "http:// or https://"),
        ("http:///static/", "no host"),
        ("http://user:pass@example.com/", "credentials"),
        ("http://token@example.com/", "credentials"),
        ("http://example.com/static/?sig=1", "query"),
        ("http://example.com/static/?", "query"),
        ("http://example.com/static/#frag", "fragment"),
        ("http://example.com:99999/", "not a valid URL"),
        ("http://example.com/a%2fb/", "unsafe path segment 'a%2Fb'"),
    ],
)
def test_bad_base_urls_are_refused(value: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_base_url(value)


# --- keys -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "url"),
    [
        ("a.jpg", "https://cdn.example.com:8443/static/v1/a.jpg"),
        ("a/b/c.jpg", "https://cdn.example.com:8443/static/v1/a/b/c.jpg"),
        ("logo@2x.png", "https://cdn.example.com:8443/static/v1/logo%402x.png"),
        ("@evil.example:80/x", "https://cdn.example.com:8443/static/v1/%40evil.example%3A80/x"),
        ("with space ü.txt", "https://cdn.example.com:8443/static/v1/with%20space%20%C3%BC.txt"),
        ("100%.jpg", "https://cdn.example.com:8443/static/v1/100%25.jpg"),
        ("a%20b", "https://cdn.example.com:8443/static/v1/a%2520b"),
        ("q?x=1#f", "https://cdn.example.com:8443/static/v1/q%3Fx=1%23f"),
        ("m;jsessionid=1", "https://cdn.example.com:8443/static/v1/m%3Bjsessionid=1"),
        ("w=100,h=50(1)!.jpg", "https://cdn.example.com:8443/static/v1/w=100,h=50(1)!.jpg"),
        ("2024:01:01.jpg", "https://cdn.example.com:8443/static/v1/2024%3A01%3A01.jpg"),
        ("a/b:c", "https://cdn.example.com:8443/static/v1/a/b%3Ac"),
    ],
)
def test_keys_are_encoded_segment_by_segment_under_the_base(key: str, url: str) -> None:
    built = build_url(BASE, key)
    assert str(built) == url
    assert (built.scheme, built.host, built.port) == ("https", "cdn.example.com", 8443)
    assert built.raw_path.startswith("/static/v1/")
    assert built.query_string == "" and built.fragment == ""


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/etc/passwd",
        "a//b",
        "..",
        "a/../../b",
        ".",
        "...",
        ". .",
        "%2e%2e",
        "%2E%2e/x",
        "%252e%252e",
        "%25252e%25252e",
        "..;x",
        "%2e%2e;x",
        "a%2fb",
        "a%252fb",
        "a%5cb",
        "a\\b",
        "a%00b",
        "a%2500b",
        "a\nb",
        "http://evil.example/x",
        "http:/evil.example/x",
        "https:evil.example",
        "javascript:alert(1)",
        "x:y",
        "%" + "25" * 6 + "2e",
    ],
)
def test_keys_that_could_leave_the_base_are_invalid(key: str) -> None:
    with pytest.raises(InvalidKey):
        build_url(BASE, key)


@pytest.mark.parametrize("segment", ["a", "%", "100%", "%zz", "a%20b", "..a", "a..", ".hidden", "~x"])
def test_harmless_segments_pass(segment: str) -> None:
    check_segment(segment)


# --- redirect targets --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("location", "under"),
    [
        ("https://cdn.example.com:8443/static/v1/b.jpg", True),
        ("https://CDN.example.com:8443/static/v1/b.jpg?sig=1", True),
        ("b.jpg", True),
        ("/static/v1/deeper/b.jpg", True),
        ("/static/v2/b.jpg", False),
        ("/static/v1", False),
        ("/static/v1/", False),
        ("../b.jpg", False),
        ("/static/v1/%2e%2e/v2/b.jpg", False),
        ("/static/v1/a%2f..%2f..%2fb", False),
        ("http://cdn.example.com:8443/static/v1/b.jpg", False),
        ("https://cdn.example.com/static/v1/b.jpg", False),
        ("https://evil.example:8443/static/v1/b.jpg", False),
        ("//evil.example/static/v1/b.jpg", False),
        ("https://user@cdn.example.com:8443/static/v1/b.jpg", False),
    ],
)
def test_redirect_targets_must_stay_under_the_base(location: str, under: bool) -> None:
    current = build_url(BASE, "a.jpg")
    assert is_under(BASE, current.join(URL(location))) is under


# --- responses ----------------------------------------------------------------------------------
