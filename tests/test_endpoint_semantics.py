"""The endpoint's HTTP semantics in-process (tests/inprocess.py): every Range x If-Range x
precondition combination, against a backend that does all of it itself and backends that
leave each part to the core; the answers must be the same and what RFC 9110 says. Also the
core's check of the range a backend returns (issue 13)."""

from __future__ import annotations

import logging

import pytest
from inprocess import LAST_MODIFIED_HTTP, SourceBackend, media_client

DATA = bytes(range(100))
SIZE = len(DATA)
ETAG = f'"v-{SIZE}"'
OLD_DATE = "Mon, 01 Jan 2001 00:00:00 GMT"

# Range header -> the slice it selects, "unsatisfiable", or None (ignored: the whole object).
RANGES: dict[str | None, slice | str | None] = {
    None: None,
    "bytes=0-9": slice(0, 10),
    "bytes=95-": slice(95, SIZE),
    "bytes=-3": slice(SIZE - 3, SIZE),
    "bytes=90-200": slice(90, SIZE),
    f"bytes={SIZE}-": "unsatisfiable",
    "bytes=0-1,5-6": None,  # several ranges: the whole object
    "bytes=x": None,
}
# If-Range -> whether it names the current representation.
IF_RANGES: dict[str | None, bool] = {
    None: True,
    ETAG: True,
    LAST_MODIFIED_HTTP: True,
    '"old"': False,
    f"W/{ETAG}": False,  # a weak validator never matches
    OLD_DATE: False,
}
# Preconditions -> the status they decide (None: the request goes on).
CONDITIONS: dict[str, tuple[dict[str, str], int | None]] = {
    "none": ({}, None),
    "if-none-match current": ({"if-none-match": ETAG}, 304),
    "if-none-match other": ({"if-none-match": '"x", W/"y"'}, None),
    "if-match current": ({"if-match": f'"x", {ETAG}'}, None),
    "if-match other": ({"if-match": '"x"'}, 412),
    "if-modified-since current": ({"if-modified-since": LAST_MODIFIED_HTTP}, 304),
    "if-modified-since old": ({"if-modified-since": OLD_DATE}, None),
    "if-unmodified-since old": ({"if-unmodified-since": OLD_DATE}, 412),
    "if-unmodified-since current": ({"if-unmodified-since": LAST_MODIFIED_HTTP}, None),
}
IGNORES = [
    frozenset(),
    frozenset({"range"}),
    frozenset({"conditions"}),
    frozenset({"if-range"}),
    frozenset({"conditions", "if-range"}),
    frozenset({"range", "conditions", "if-range"}),
]

Answer = tuple[int, bytes, str | None]


def expected(range_header: str | None, if_range: str | None, decided: int | None) -> Answer:
    """What RFC 9110 says the answer is: (status, body, Content-Range); 412 and 416 bodies
    are JSON errors."""
    if decided is not None:
        return decided, b"", None
    selected = RANGES[range_header]
    if selected is None or (range_header is not None and not IF_RANGES[if_range]):
        return 200, DATA, None
    if selected == "unsatisfiable":
        return 416, b"", f"bytes */{SIZE}"
    assert isinstance(selected, slice)
    return 206, DATA[selected], f"bytes {selected.start}-{selected.stop - 1}/{SIZE}"


@pytest.mark.asyncio
@pytest.mark.parametrize("condition", CONDITIONS)
@pytest.mark.parametrize("ignore", IGNORES, ids=lambda ignore: "ignores " + ("+".join(sorted(ignore)) or "nothing"))
async def test_every_range_and_if_range_under_a_condition(condition: str, ignore: frozenset[str]) -> None:
    backend = SourceBackend({"object.bin": DATA}, ignore=ignore)
    condition_headers, decided = CONDITIONS[condition]
    async with media_client(backend) as client:
        for range_header in RANGES:
            for if_range in IF_RANGES:
                headers = dict(condition_headers)
                if range_header is not None:
                    headers["range"] = range_header
                if if_range is not None:
                    headers["if-range"] = if_range
                response = await client.get("/media/src/object.bin", headers=headers)
                status, body, content_range = expected(range_header, if_range, decided)
                case = f"Range {range_header!r}, If-Range {if_range!r}, {condition}"
                assert response.status_code == status, case
                if status in (200, 206, 304):
                    assert response.content == body, case
                    assert response.headers["etag"] == ETAG, case
                else:
                    assert "detail" in response.json(), case
                assert response.headers.get("content-range") == content_range, case
    assert all(chunks.closed for chunks in backend.opened)


@pytest.mark.asyncio
@pytest.mark.parametrize("condition", CONDITIONS)
@pytest.mark.parametrize("ignore", IGNORES, ids=lambda ignore: "ignores " + ("+".join(sorted(ignore)) or "nothing"))
async def test_head_under_a_condition_ignores_range(condition: str, ignore: frozenset[str]) -> None:
    condition_headers, decided = CONDITIONS[condition]
    async with media_client(SourceBackend({"object.bin": DATA}, ignore=ignore)) as client:
        response = await client.head("/media/src/object.bin", headers={**condition_headers, "range": "bytes=0-9"})
    assert response.status_code == (decided or 200)
    assert response.content == b""
    if response.status_code == 200:
        assert response.headers["content-length"] == str(SIZE)


# --- the core checks the range a backend returns -----------------------------------------------


@pytest.mark.asyncio
async def test_a_range_nobody_asked_for_is_502_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    backend = SourceBackend({"object.bin": DATA}, fault="unasked-range")
    with caplog.at_level(logging.ERROR, logger="mediasrv"):
        async with media_client(backend) as client:
            response = await client.get("/media/src/object.bin")
    assert response.status_code == 502
    assert response.json() == {"detail": "backend 'src' returned another range than the one asked"}
    assert "a plugin bug" in caplog.text
    assert all(chunks.closed for chunks in backend.opened)


@pytest.mark.asyncio
async def test_another_range_than_the_one_asked_is_502(caplog: pytest.LogCaptureFixture) -> None:
    backend = SourceBackend({"object.bin": DATA}, fault="other-range")
    with caplog.at_level(logging.ERROR, logger="mediasrv"):
        async with media_client(backend) as client:
            response = await client.get("/media/src/object.bin", headers={"range": "bytes=10-19"})
    assert response.status_code == 502
    assert "returned bytes 0-0/100 for bytes=10-19: a plugin bug" in caplog.text
    assert all(chunks.closed for chunks in backend.opened)


@pytest.mark.asyncio
async def test_another_range_for_an_unsatisfiable_one_is_416() -> None:
    # tests/faulty_backends.py's "empty-past-the-end": ContentRange(0, 0, N) and no bytes.
    backend = SourceBackend({"object.bin": DATA}, fault="other-range")
    async with media_client(backend) as client:
        response = await client.get("/media/src/object.bin", headers={"range": f"bytes={SIZE + 5}-"})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{SIZE}"
    assert all(chunks.closed for chunks in backend.opened)
