"""Headers built from a backend's metadata."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from mediasrv import ObjectInfo, RangeNotSatisfiable
from mediasrv.responses import error_response, validator_headers


def test_last_modified_from_any_aware_datetime_is_sent_in_gmt() -> None:
    # botocore's datetimes carry dateutil's tzutc, not datetime.UTC; others carry offsets.
    plus_two = timezone(timedelta(hours=2))
    info = ObjectInfo(last_modified=datetime(2024, 1, 2, 5, 4, 5, tzinfo=plus_two))
    assert dict(validator_headers(info, ""))[b"last-modified"] == b"Tue, 02 Jan 2024 03:04:05 GMT"


def test_416_of_an_unknown_size_has_no_content_range() -> None:
    response = error_response(RangeNotSatisfiable(None))
    assert response.status_code == 416
    assert "content-range" not in response.headers


def test_416_of_a_known_size_names_it() -> None:
    assert error_response(RangeNotSatisfiable(10)).headers["content-range"] == "bytes */10"
