"""Value types shared by the core and the backends: conditions, metadata, streams, health
(byte ranges are in ``mediasrv.ranges``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mediasrv.chunks import Chunks
from mediasrv.ranges import ContentRange


@dataclass(frozen=True, slots=True)
class Conditions:
    """The request's conditional headers, as sent (None when absent).

    A backend may forward them to its source so that a 304 moves no body; the core
    evaluates them against the returned metadata either way (see ``mediasrv.conditional``).
    """

    if_match: str | None = None
    if_none_match: str | None = None
    if_modified_since: datetime | None = None
    if_unmodified_since: datetime | None = None
    if_range: str | None = None

    def __bool__(self) -> bool:
        return any(
            value is not None
            for value in (
                self.if_match,
                self.if_none_match,
                self.if_modified_since,
                self.if_unmodified_since,
                self.if_range,
            )
        )


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What is known of an object before its body is read.

    ``etag`` is the header form, quotes included (``"abc"`` or ``W/"abc"``).
    ``last_modified`` is timezone-aware. ``cache_control`` is the source's own, used only
    when the backend has no ``cache_control`` setting.
    """

    size: int | None = None
    content_type: str | None = None
    etag: str | None = None
    last_modified: datetime | None = None
    content_encoding: str | None = None
    cache_control: str | None = None


@dataclass(slots=True)
class ObjectStream:
    """An opened object: its metadata, the bytes it will yield, and the chunks themselves.

    ``content_range`` is None when ``chunks`` yields the whole object, else the range it
    yields. ``chunks`` owns its resources: the core always calls its ``aclose()``.
    """

    info: ObjectInfo
    chunks: Chunks
    content_range: ContentRange | None = None


@dataclass(frozen=True, slots=True)
class Health:
    """A backend's own verdict on itself; ``error`` says why when not ``ok``."""

    ok: bool
    error: str | None = None
