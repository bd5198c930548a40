"""Value types shared by the core and the backends: ranges, conditions, metadata, health."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from mediasrv.errors import RangeNotSatisfiable

Chunks = AsyncIterator[bytes]


_CONTENT_RANGE = re.compile(r"bytes[ \t]+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ByteRange:
    """One requested HTTP byte range (RFC 9110 §14.1.2); positions are inclusive.

    ``bytes=a-b`` is ``ByteRange(a, b)``, ``bytes=a-`` is ``ByteRange(a)`` and
    ``bytes=-n`` is ``ByteRange(suffix=n)`` (the last n bytes).
    """

    first: int | None = None
    last: int | None = None
    suffix: int | None = None

    def __post_init__(self) -> None:
        if (self.first is None) == (self.suffix is None):
            raise ValueError("a ByteRange has either a first position or a suffix length")
        if self.first is not None and (self.first < 0 or (self.last is not None and self.last < self.first)):
            raise ValueError(f"invalid byte range {self.header_value()}")
        if self.suffix is not None and (self.suffix < 0 or self.last is not None):
            raise ValueError("a suffix range has no last position")

    def header_value(self) -> str:
        """The value of a ``Range`` header asking for this range."""
        if self.suffix is not None:
            return f"bytes=-{self.suffix}"
        return f"bytes={self.first}-{'' if self.last is None else self.last}"

    def resolve(self, size: int) -> ContentRange:
        """The bytes of an object of ``size`` this range selects; RangeNotSatisfiable if none."""
        if self.suffix is not None:
            if self.suffix == 0 or size == 0:
                raise RangeNotSatisfiable(size)
            return ContentRange(max(size - self.suffix, 0), size - 1, size)
        assert self.first is not None
        if self.first >= size:
            raise RangeNotSatisfiable(size)
        last = size - 1 if self.last is None else min(self.last, size - 1)
        return ContentRange(self.first, last, size)


@dataclass(frozen=True, slots=True)
class ContentRange:
    """The bytes ``first``..``last`` (inclusive) of an object of ``size`` (None: unknown)."""

    first: int
    last: int
    size: int | None

    @property
    def length(self) -> int:
        return self.last - self.first + 1

    def header_value(self) -> str:
        """The value of the ``Content-Range`` header of a 206."""
        return f"bytes {self.first}-{self.last}/{'*' if self.size is None else self.size}"

    @classmethod
    def parse(cls, value: str) -> ContentRange:
        """The range of a source's 206 ``Content-Range`` (``bytes FIRST-LAST/SIZE``, SIZE may be
        ``*``); ValueError if it is anything else."""
        match = _CONTENT_RANGE.fullmatch(value.strip())
        if match is None:
            raise ValueError(f"not a byte Content-Range: {value!r}")
        first, last, size = int(match[1]), int(match[2]), None if match[3] == "*" else int(match[3])
        if last < first or (size is not None and last >= size):
            raise ValueError(f"inconsistent Content-Range: {value!r}")
        return cls(first, last, size)


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
