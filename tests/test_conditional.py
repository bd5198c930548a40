"""Conditional requests (RFC 9110 §13): preconditions, If-Range and HTTP dates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from mediasrv import parse_http_date
from mediasrv.conditional import check_preconditions, conditions_from_headers, range_applies
from mediasrv.errors import NotModified, PreconditionFailed
from mediasrv.objects import Conditions, ObjectInfo

# Sub-second part on purpose: HTTP dates have whole seconds.
LAST_MODIFIED = datetime(2024, 1, 2, 3, 4, 5, 600_000, tzinfo=UTC)
LAST_MODIFIED_HTTP = "Tue, 02 Jan 2024 03:04:05 GMT"
SECOND = timedelta(seconds=1)
WHOLE_SECOND = LAST_MODIFIED.replace(microsecond=0)

STRONG = ObjectInfo(size=10, etag='"abc"', last_modified=LAST_MODIFIED)
WEAK = ObjectInfo(size=10, etag='W/"abc"', last_modified=LAST_MODIFIED)
NO_VALIDATORS = ObjectInfo(size=10)


def outcome(conditions: Conditions, info: ObjectInfo) -> str:
    """'ok', '412' or '304'."""
    try:
        check_preconditions(conditions, info)
    except PreconditionFailed:
        return "412"
    except NotModified as exc:
        assert exc.info is info
        return "304"
    return "ok"


def test_check_preconditions_no_conditions_passes() -> None:
    assert outcome(Conditions(), STRONG) == "ok"
    assert outcome(Conditions(), NO_VALIDATORS) == "ok"


# If-Match: strong comparison (§13.1.1).


@pytest.mark.parametrize(
    ("header", "info", "expected"),
    [
        ('"abc"', STRONG, "ok"),
        ('"xyz"', STRONG, "412"),
        ('"ABC"', STRONG, "412"),  # opaque tags are case-sensitive
        ('"xyz", "abc"', STRONG, "ok"),
        ('"xyz","abc"', STRONG, "ok"),
        ('  "abc"  ', STRONG, "ok"),
        ('"xyz", "uvw"', STRONG, "412"),
        ('W/"abc"', STRONG, "412"),  # a weak tag in If-Match never matches
        ('"abc"', WEAK, "412"),  # a weak current etag never matches If-Match
        ('W/"abc"', WEAK, "412"),
        ("*", STRONG, "ok"),
        ("*", WEAK, "ok"),
        ('"abc"', NO_VALIDATORS, "412"),
        ("abc", STRONG, "412"),  # unquoted: not an entity tag
        ("", STRONG, "412"),
    ],
)
def test_check_preconditions_if_match(header: str, info: ObjectInfo, expected: str) -> None:
    assert outcome(Conditions(if_match=header), info) == expected


def test_check_preconditions_if_match_star_passes_for_object_without_etag() -> None:
    # §13.1.1: "*" is false only when there is no current representation; this one exists.
    assert outcome(Conditions(if_match="*"), NO_VALIDATORS) == "ok"


def test_check_preconditions_precondition_failed_is_412() -> None:
    with pytest.raises(PreconditionFailed) as caught:
        check_preconditions(Conditions(if_match='"nope"'), STRONG)
    assert caught.value.status == 412


# If-Unmodified-Since (§13.1.4).


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        (WHOLE_SECOND, "ok"),  # equal at second resolution, although LAST_MODIFIED has .6s
        (WHOLE_SECOND + SECOND, "ok"),
        (WHOLE_SECOND + timedelta(days=365), "ok"),
        (WHOLE_SECOND - SECOND, "412"),
        (WHOLE_SECOND - timedelta(days=1), "412"),
    ],
)
def test_check_preconditions_if_unmodified_since(since: datetime, expected: str) -> None:
    assert outcome(Conditions(if_unmodified_since=since), STRONG) == expected


def test_check_preconditions_if_unmodified_since_ignored_without_last_modified() -> None:
    assert outcome(Conditions(if_unmodified_since=WHOLE_SECOND - timedelta(days=1)), NO_VALIDATORS) == "ok"


def test_check_preconditions_if_unmodified_since_other_timezone() -> None:
    same_instant = WHOLE_SECOND.astimezone(timezone(timedelta(hours=5)))
    assert outcome(Conditions(if_unmodified_since=same_instant), STRONG) == "ok"
    assert outcome(Conditions(if_unmodified_since=same_instant - SECOND), STRONG) == "412"


def test_check_preconditions_if_match_takes_precedence_over_if_unmodified_since() -> None:
    old = WHOLE_SECOND - timedelta(days=1)
    # If-Match passes: If-Unmodified-Since, which would fail, is not evaluated.
    assert outcome(Conditions(if_match='"abc"', if_unmodified_since=old), STRONG) == "ok"
    # If-Match fails: 412 even though If-Unmodified-Since would pass.
    later = WHOLE_SECOND + timedelta(days=1)
    assert outcome(Conditions(if_match='"xyz"', if_unmodified_since=later), STRONG) == "412"


# If-None-Match: weak comparison (§13.1.2).


@pytest.mark.parametrize(
    ("header", "info", "expected"),
    [
        ('"abc"', STRONG, "304"),
        ('W/"abc"', STRONG, "304"),
        ('"abc"', WEAK, "304"),
        ('W/"abc"', WEAK, "304"),
        ('"xyz"', STRONG, "ok"),
        ('W/"xyz"', WEAK, "ok"),
        ('"xyz", W/"abc"', STRONG, "304"),
        ('"xyz" , "abc"', WEAK, "304"),
        ('"xyz", "uvw"', STRONG, "ok"),
        ("*", STRONG, "304"),
        ("*", WEAK, "304"),
        ('"abc"', NO_VALIDATORS, "ok"),
    ],
)
def test_check_preconditions_if_none_match(header: str, info: ObjectInfo, expected: str) -> None:
    assert outcome(Conditions(if_none_match=header), info) == expected


def test_check_preconditions_if_none_match_star_is_304_for_object_without_etag() -> None:
    # §13.1.2: "*" is false whenever a current representation exists, etag or not.
    assert outcome(Conditions(if_none_match="*"), NO_VALIDATORS) == "304"


def test_check_preconditions_not_modified_carries_info() -> None:
    with pytest.raises(NotModified) as caught:
        check_preconditions(Conditions(if_none_match='"abc"'), STRONG)
    assert caught.value.info is STRONG
    assert caught.value.status == 304


# If-Modified-Since (§13.1.3).


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        (WHOLE_SECOND, "304"),  # equal at second resolution
        (WHOLE_SECOND + SECOND, "304"),
        (WHOLE_SECOND - SECOND, "ok"),
        (WHOLE_SECOND - timedelta(days=30), "ok"),
    ],
)
def test_check_preconditions_if_modified_since(since: datetime, expected: str) -> None:
    assert outcome(Conditions(if_modified_since=since), STRONG) == expected


def test_check_preconditions_if_modified_since_ignored_without_last_modified() -> None:
    assert outcome(Conditions(if_modified_since=WHOLE_SECOND + timedelta(days=1)), NO_VALIDATORS) == "ok"


def test_check_preconditions_if_modified_since_ignored_when_if_none_match_present() -> None:
    later = WHOLE_SECOND + timedelta(days=1)
    # If-None-Match does not match: the object is sent though If-Modified-Since says 304.
    assert outcome(Conditions(if_none_match='"xyz"', if_modified_since=later), STRONG) == "ok"
    # If-None-Match matches: 304 though If-Modified-Since alone would send the object.
    earlier = WHOLE_SECOND - timedelta(days=1)
    assert outcome(Conditions(if_none_match='"abc"', if_modified_since=earlier), STRONG) == "304"


def test_check_preconditions_412_before_304() -> None:
    conditions = Conditions(if_match='"xyz"', if_none_match='"abc"')
    assert outcome(conditions, STRONG) == "412"
    conditions = Conditions(if_unmodified_since=WHOLE_SECOND - SECOND, if_modified_since=WHOLE_SECOND)
    assert outcome(conditions, STRONG) == "412"


def test_check_preconditions_if_match_and_if_none_match_both_evaluated() -> None:
    assert outcome(Conditions(if_match='"abc"', if_none_match='"abc"'), STRONG) == "304"
    assert outcome(Conditions(if_match='"abc"', if_none_match='"xyz"'), STRONG) == "ok"


# If-Range (§13.1.5).


def test_range_applies_without_if_range() -> None:
    assert range_applies(Conditions(), STRONG) is True
    assert range_applies(Conditions(if_none_match='"xyz"'), NO_VALIDATORS) is True


@pytest.mark.parametrize(
    ("if_range", "info", "expected"),
    [
        ('"abc"', STRONG, True),
        ('  "abc" ', STRONG, True),
        ('"xyz"', STRONG, False),
        ('W/"abc"', STRONG, False),  # weak validators never match
        ('"abc"', WEAK, False),
        ('W/"abc"', WEAK, False),
        ('"abc"', NO_VALIDATORS, False),
    ],
)
def test_range_applies_entity_tag(if_range: str, info: ObjectInfo, expected: bool) -> None:
    assert range_applies(Conditions(if_range=if_range), info) is expected


@pytest.mark.parametrize(
    ("if_range", "expected"),
    [
        (LAST_MODIFIED_HTTP, True),  # exact equality at second resolution
        ("Tue, 02 Jan 2024 03:04:06 GMT", False),  # later
        ("Tue, 02 Jan 2024 03:04:04 GMT", False),  # earlier
        ("Wed, 03 Jan 2024 03:04:05 GMT", False),
    ],
)
def test_range_applies_date(if_range: str, expected: bool) -> None:
    assert range_applies(Conditions(if_range=if_range), STRONG) is expected


def test_range_applies_date_without_last_modified() -> None:
    assert range_applies(Conditions(if_range=LAST_MODIFIED_HTTP), ObjectInfo(etag='"abc"')) is False


@pytest.mark.parametrize("if_range", ["garbage", "", "*", "abc", "12345", "Tue, 99 Foo 2024"])
def test_range_applies_garbage_is_false(if_range: str) -> None:
    assert range_applies(Conditions(if_range=if_range), STRONG) is False


def test_range_applies_entity_tag_list_is_false() -> None:
    # If-Range holds one entity-tag or one date, never a list: a list is no valid validator.
    assert range_applies(Conditions(if_range='"xyz", "abc"'), STRONG) is False


# Header parsing.


def test_conditions_from_headers_reads_every_field() -> None:
    conditions = conditions_from_headers(
        {
            "if-match": '"a"',
            "if-none-match": '"b"',
            "if-modified-since": LAST_MODIFIED_HTTP,
            "if-unmodified-since": "Wed, 03 Jan 2024 00:00:00 GMT",
            "if-range": '"c"',
        }
    )
    assert conditions == Conditions(
        if_match='"a"',
        if_none_match='"b"',
        if_modified_since=WHOLE_SECOND,
        if_unmodified_since=datetime(2024, 1, 3, tzinfo=UTC),
        if_range='"c"',
    )
    assert conditions


def test_conditions_from_headers_empty() -> None:
    conditions = conditions_from_headers({})
    assert conditions == Conditions()
    assert not conditions


@pytest.mark.parametrize("bad_date", ["garbage", "", "2024-01-02T03:04:05Z", "Tue, 02 Foo 2024 03:04:05 GMT"])
def test_conditions_from_headers_ignores_invalid_dates(bad_date: str) -> None:
    conditions = conditions_from_headers({"if-modified-since": bad_date, "if-unmodified-since": bad_date})
    assert conditions.if_modified_since is None
    assert conditions.if_unmodified_since is None
    # An ignored date cannot fail a request.
    assert outcome(conditions, STRONG) == "ok"


@pytest.mark.parametrize(
    "value",
    [
        "Tue, 02 Jan 2024 03:04:05 GMT",  # IMF-fixdate
        "Tuesday, 02-Jan-24 03:04:05 GMT",  # obsolete RFC 850
        "Tue Jan  2 03:04:05 2024",  # obsolete asctime
    ],
)
def test_parse_http_date_accepts_all_three_formats(value: str) -> None:
    # §5.6.7: a recipient MUST accept all three formats; asctime has no zone and means UTC.
    parsed = parse_http_date(value)
    assert parsed == WHOLE_SECOND
    assert parsed is not None and parsed.tzinfo is not None


def test_parse_http_date_is_timezone_aware() -> None:
    parsed = parse_http_date("Tue, 02 Jan 2024 05:04:05 +0200")
    assert parsed is not None
    assert parsed.utcoffset() is not None
    assert parsed == WHOLE_SECOND


@pytest.mark.parametrize(
    "value", [None, "", "garbage", "Tue, 32 Jan 2024 03:04:05 GMT", "Tue, 02 Jan 2024 25:04:05 GMT"]
)
def test_parse_http_date_invalid_is_none(value: str | None) -> None:
    assert parse_http_date(value) is None
