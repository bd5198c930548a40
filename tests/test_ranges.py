"""Range header parsing and byte-range resolution (RFC 9110 §14)."""

from __future__ import annotations

import pytest

from mediasrv import ByteRange, ContentRange, parse_range, parse_unsatisfied_range, serves
from mediasrv.errors import RangeNotSatisfiable


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-499", ByteRange(0, 499)),
        ("bytes=500-999", ByteRange(500, 999)),
        ("bytes=7-7", ByteRange(7, 7)),
        ("bytes=500-", ByteRange(500)),
        ("bytes=0-", ByteRange(0)),
        ("bytes=-500", ByteRange(suffix=500)),
        ("bytes=-0", ByteRange(suffix=0)),
        ("bytes = 0 - 1", ByteRange(0, 1)),
        ("bytes=\t5-\t", ByteRange(5)),
        ("bytes=- 3", ByteRange(suffix=3)),
        ("bytes=0-1 ", ByteRange(0, 1)),
        ("bytes=0000010-0000020", ByteRange(10, 20)),
        ("bytes=9223372036854775806-", ByteRange(9223372036854775806)),
    ],
)
def test_parse_range_valid(header: str, expected: ByteRange) -> None:
    assert parse_range(header) == expected


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "bytes",
        "bytes=",
        "bytes=-",
        "bytes=abc",
        "bytes=a-b",
        "bytes=1-2-3",
        "bytes=--1",
        "bytes=-1-",
        "bytes=1.5-2",
        "bytes=+1-2",
        "bytes=0x10-",
        "bytes=１-2",  # non-ASCII digit
        "0-1",
        "=0-1",
        "bytes:0-1",
        "bytes=0-1;",
    ],
)
def test_parse_range_malformed_is_none(header: str | None) -> None:
    assert parse_range(header) is None


def test_parse_range_first_after_last_is_none() -> None:
    assert parse_range("bytes=5-1") is None


@pytest.mark.parametrize("header", ["items=0-1", "pages=0-", "none", "bytesx=0-1"])
def test_parse_range_other_units_are_none(header: str) -> None:
    assert parse_range(header) is None


@pytest.mark.parametrize("header", ["bytes=0-1,3-4", "bytes=0-1, 3-4", "bytes=-1,0-", "bytes=0-1,"])
def test_parse_range_multiple_ranges_are_none(header: str) -> None:
    assert parse_range(header) is None


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-" + "9" * 20, 1000, ContentRange(0, 999, 1000)),
        ("bytes=-" + "9" * 20, 1000, ContentRange(0, 999, 1000)),
    ],
)
def test_parse_range_huge_last_or_suffix_means_to_the_end(header: str, size: int, expected: ContentRange) -> None:
    byte_range = parse_range(header)
    assert byte_range is not None
    assert byte_range.resolve(size) == expected


@pytest.mark.parametrize("header", ["bytes=" + "9" * 20 + "-", "bytes=" + "1" * 5000 + "-"])
def test_parse_range_huge_first_is_unsatisfiable(header: str) -> None:
    byte_range = parse_range(header)
    assert byte_range is not None
    with pytest.raises(RangeNotSatisfiable):
        byte_range.resolve(10**18)


@pytest.mark.parametrize(
    ("byte_range", "size", "expected"),
    [
        (ByteRange(0, 499), 1000, ContentRange(0, 499, 1000)),
        (ByteRange(0, 0), 1, ContentRange(0, 0, 1)),
        (ByteRange(500), 1000, ContentRange(500, 999, 1000)),
        (ByteRange(999), 1000, ContentRange(999, 999, 1000)),
        (ByteRange(10, 10_000), 100, ContentRange(10, 99, 100)),  # last clamped to size - 1
        (ByteRange(0, 99), 100, ContentRange(0, 99, 100)),
        (ByteRange(suffix=10), 100, ContentRange(90, 99, 100)),
        (ByteRange(suffix=100), 100, ContentRange(0, 99, 100)),
        (ByteRange(suffix=500), 100, ContentRange(0, 99, 100)),  # suffix longer than the object
        (ByteRange(suffix=1), 1, ContentRange(0, 0, 1)),
    ],
)
def test_byte_range_resolve(byte_range: ByteRange, size: int, expected: ContentRange) -> None:
    assert byte_range.resolve(size) == expected


@pytest.mark.parametrize(
    ("byte_range", "size"),
    [
        (ByteRange(100), 100),
        (ByteRange(100, 200), 100),
        (ByteRange(1000, 2000), 10),
        (ByteRange(0), 0),
        (ByteRange(0, 10), 0),
        (ByteRange(suffix=0), 100),
        (ByteRange(suffix=5), 0),
        (ByteRange(suffix=0), 0),
    ],
)
def test_byte_range_resolve_unsatisfiable(byte_range: ByteRange, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable) as caught:
        byte_range.resolve(size)
    assert caught.value.size == size
    assert caught.value.status == 416


@pytest.mark.parametrize(
    ("byte_range", "expected"),
    [
        (ByteRange(0, 499), "bytes=0-499"),
        (ByteRange(500), "bytes=500-"),
        (ByteRange(suffix=20), "bytes=-20"),
        (ByteRange(0, 0), "bytes=0-0"),
    ],
)
def test_byte_range_header_value(byte_range: ByteRange, expected: str) -> None:
    assert byte_range.header_value() == expected


@pytest.mark.parametrize("header", ["bytes=0-499", "bytes=500-", "bytes=-20"])
def test_byte_range_header_value_round_trips(header: str) -> None:
    parsed = parse_range(header)
    assert parsed is not None
    assert parsed.header_value() == header


@pytest.mark.parametrize(
    ("content_range", "header", "length"),
    [
        (ContentRange(0, 499, 1000), "bytes 0-499/1000", 500),
        (ContentRange(999, 999, 1000), "bytes 999-999/1000", 1),
        (ContentRange(10, 19, None), "bytes 10-19/*", 10),
    ],
)
def test_content_range_header_value_and_length(content_range: ContentRange, header: str, length: int) -> None:
    assert content_range.header_value() == header
    assert content_range.length == length


def test_content_range_of_resolved_range_has_expected_length() -> None:
    resolved = ByteRange(suffix=30).resolve(100)
    assert resolved.length == 30
    assert resolved.header_value() == "bytes 70-99/100"


@pytest.mark.parametrize(
    "kwargs",
    [
        {},  # neither first nor suffix
        {"last": 5},  # a last position alone
        {"first": 0, "suffix": 5},  # both
        {"first": -1},
        {"first": -1, "last": 3},
        {"first": 5, "last": 4},
        {"suffix": -1},
        {"suffix": 5, "last": 9},
    ],
)
def test_byte_range_constructor_rejects_invalid(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        ByteRange(**kwargs)


@pytest.mark.parametrize("kwargs", [{"first": 0}, {"first": 3, "last": 3}, {"suffix": 0}, {"suffix": 7}])
def test_byte_range_constructor_accepts_valid(kwargs: dict[str, int]) -> None:
    byte_range = ByteRange(**kwargs)
    assert (byte_range.first, byte_range.last, byte_range.suffix) == (
        kwargs.get("first"),
        kwargs.get("last"),
        kwargs.get("suffix"),
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("bytes 0-9/10", ContentRange(0, 9, 10)),
        ("bytes 5-5/*", ContentRange(5, 5, None)),
        ("Bytes  100-199/1000 ", ContentRange(100, 199, 1000)),
    ],
)
def test_content_range_parse(value: str, expected: ContentRange) -> None:
    assert ContentRange.parse(value) == expected
    assert ContentRange.parse(expected.header_value()) == expected


@pytest.mark.parametrize(
    "value", ["", "bytes */10", "bytes 9-0/10", "bytes 0-10/10", "items 0-1/2", "bytes 0-1", "bytes -1-2/3", "bytes 0-1/2x"]
)
def test_content_range_parse_refuses_what_is_not_one_range(value: str) -> None:
    with pytest.raises(ValueError):
        ContentRange.parse(value)


@pytest.mark.parametrize(
    ("asked", "served", "ok"),
    [
        (ByteRange(0, 99), ContentRange(0, 99, 1000), True),
        (ByteRange(0, 99), ContentRange(0, 49, 1000), True),  # a server may send less
        (ByteRange(0, 99), ContentRange(1, 99, 1000), False),
        (ByteRange(0, 99), ContentRange(0, 100, 1000), False),
        (ByteRange(10), ContentRange(10, 999, 1000), True),
        (ByteRange(10), ContentRange(0, 999, 1000), False),
        (ByteRange(suffix=10), ContentRange(990, 999, 1000), True),
        (ByteRange(suffix=10), ContentRange(980, 999, 1000), False),
        (ByteRange(suffix=10), ContentRange(0, 9, 1000), False),
    ],
)
def test_a_206_must_serve_the_range_asked(asked: ByteRange, served: ContentRange, ok: bool) -> None:
    assert serves(asked, served) is ok


@pytest.mark.parametrize(
    ("header", "size"),
    [("bytes */1000", 1000), ("BYTES */0", 0), (" bytes\t*/7 ", 7), ("bytes 0-1/10", None), ("bytes */x", None), (None, None)],
)
def test_parse_unsatisfied_range_reads_the_size_of_a_416(header: str | None, size: int | None) -> None:
    assert parse_unsatisfied_range(header) == size
