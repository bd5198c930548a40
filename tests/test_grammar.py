"""The HTTP and URL grammar of mediasrv.grammar: each check once, for the core and the backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from mediasrv import (
    entity_tag,
    format_http_date,
    has_control_character,
    is_header_safe,
    is_strong_entity_tag,
    is_token,
    parse_http_date,
    starts_with_scheme,
)
from mediasrv.grammar import header_safe, parse_entity_tags


@pytest.mark.parametrize(
    ("header", "etag"),
    [
        ('"abc"', '"abc"'),
        ('W/"abc"', 'W/"abc"'),
        ("abc-123", '"abc-123"'),
        (' "abc" ', '"abc"'),
        ('"a"b"', None),
        ("a b", None),
        ("", None),
        (None, None),
    ],
)
def test_upstream_etags_are_kept_quoted_or_dropped(header: str | None, etag: str | None) -> None:
    assert entity_tag(header) == etag


@pytest.mark.parametrize(
    ("header", "tags"),
    [
        ('"a", W/"b" ,"c"', [(False, '"a"'), (True, '"b"'), (False, '"c"')]),
        ('"a,b"', [(False, '"a,b"')]),
        ('x "a", "b"', [(False, '"b"')]),  # a malformed member is skipped to the next comma
        ('"a" x, "b"', [(False, '"b"')]),
        ("", []),
        ("   ", []),
    ],
)
def test_parse_entity_tags(header: str, tags: list[tuple[bool, str]]) -> None:
    assert parse_entity_tags(header) == tags


def test_parse_entity_tags_looks_at_a_bounded_number_of_members() -> None:
    assert len(parse_entity_tags('"a", ' * 1000)) == 100


@pytest.mark.parametrize(("value", "strong"), [('"a"', True), ('W/"a"', False), ('"a", "b"', False), ("a", False)])
def test_is_strong_entity_tag(value: str, strong: bool) -> None:
    assert is_strong_entity_tag(value) is strong


@pytest.mark.parametrize(("value", "token"), [("X-Api-Key", True), ("a b", False), ("a:b", False), ("", False)])
def test_is_token(value: str, token: bool) -> None:
    assert is_token(value) is token


@pytest.mark.parametrize(("value", "safe"), [("a\tb é", True), ("a\r\nb", False), ("a\x00", False), ("€", False)])
def test_header_safety(value: str, safe: bool) -> None:
    assert is_header_safe(value) is safe
    assert is_header_safe(header_safe(value))
    assert header_safe(value) == value or "?" in header_safe(value)


@pytest.mark.parametrize(("text", "control"), [("a/b", False), ("a\x00", True), ("\x7f", True), ("\x85", True)])
def test_has_control_character(text: str, control: bool) -> None:
    assert has_control_character(text) is control


@pytest.mark.parametrize(("text", "scheme"), [("http:", True), ("c:x", True), ("a+b.c-d:", True), ("1a:", False)])
def test_starts_with_scheme(text: str, scheme: bool) -> None:
    assert starts_with_scheme(text) is scheme


@pytest.mark.parametrize("value", ["Fri, 31 Dec 9999 23:59:59 PST", "Fri, 31 Dec 9999 23:59:59 -0001"])
def test_dates_beyond_what_gmt_can_express_are_invalid(value: str) -> None:
    assert parse_http_date(value) is None


def test_format_http_date_in_gmt_or_none() -> None:
    assert format_http_date(datetime(2024, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))) == (
        "Tue, 02 Jan 2024 03:04:05 GMT"
    )
    assert format_http_date(datetime(2024, 1, 2, 3, 4, 5)) == "Tue, 02 Jan 2024 03:04:05 GMT"  # naive: UTC
    assert format_http_date(datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-8)))) is None
    assert parse_http_date(format_http_date(datetime(2024, 1, 2, tzinfo=UTC))) == datetime(2024, 1, 2, tzinfo=UTC)
