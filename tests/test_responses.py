"""Headers built from a backend's metadata."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from mediasrv import ObjectInfo
from mediasrv.responses import validator_headers


def test_last_modified_from_any_aware_datetime_is_sent_in_gmt() -> None:
    # botocore's datetimes carry dateutil's tzutc, not datetime.UTC; others carry offsets.
    plus_two = timezone(timedelta(hours=2))
    info = ObjectInfo(last_modified=datetime(2024, 1, 2, 5, 4, 5, tzinfo=plus_two))
    assert dict(validator_headers(info, ""))[b"last-modified"] == b"Tue, 02 Jan 2024 03:04:05 GMT"
