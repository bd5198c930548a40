"""Byte ranges (RFC 9110 §14): what a request asks for, what a response carries, and whether
the second serves the first. Parsers here run in time linear in their input."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mediasrv.errors import RangeNotSatisfiable

_CONTENT_RANGE = re.compile(r"bytes[ \t]+(\d+)-(\d+)/(\d+|\*)", re.IGNORECASE)
_UNSATISFIED_RANGE = re.compile(r"bytes[ \t]+\*/(\d{1,19})", re.ASCII | re.IGNORECASE)
_NOT_BLANKS = (b"\r", b"\n", b"\x0b", b"\x0c")  # whitespace to bytes.strip(), not to HTTP
_MAX_DIGITS = 19  # no object is 10**19 bytes long; and int() of a huge string is slow
_BEYOND_ANY_OBJECT = 10**_MAX_DIGITS


def parse_range(value: str | None) -> ByteRange | None:
    """The single byte range a ``Range`` header asks for, or None to serve the whole object.

    A missing, malformed, non-bytes or multi-range header gives None: RFC 9110 lets a server
    ignore Range, and mediasrv answers multiple ranges with the full object, as S3 does.
    Parsed with bytes methods, in time linear in the header's length.
    """
    if not value or not value.isascii():
        return None
    # As bytes, whose methods run several times faster than str's; bytes.strip() takes exactly
    # the blanks the grammar allows once CR, LF, VT and FF are refused.
    data = value.encode("ascii")
    if any(blank in data for blank in _NOT_BLANKS):
        return None
    unit, equals, spec = data.partition(b"=")
    if not equals or unit.rstrip().lower() != b"bytes":
        return None
    first_text, dash, last_text = spec.strip().partition(b"-")
    first_text, last_text = first_text.rstrip(), last_text.lstrip()
    if not dash or not _digits_or_empty(first_text) or not _digits_or_empty(last_text):
        return None
    first, last = _position(first_text), _position(last_text)
    if first is None:
        return ByteRange(suffix=last) if last is not None else None
    if last is not None and last < first:
        return None
    return ByteRange(first, last)


def _digits_or_empty(text: bytes) -> bool:
    """ASCII digits only, or nothing."""
    return not text or text.isdigit()


def _position(digits: bytes) -> int | None:
    """A range position; an absurdly long one still means 'past the end of anything'."""
    if not digits:
        return None
    return int(digits) if len(digits) <= _MAX_DIGITS else _BEYOND_ANY_OBJECT


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


def parse_unsatisfied_range(value: str | None) -> int | None:
    """The object size a 416's ``Content-Range: bytes */SIZE`` names, or None."""
    match = _UNSATISFIED_RANGE.fullmatch((value or "").strip())
    return int(match.group(1)) if match else None


def serves(asked: ByteRange, served: ContentRange) -> bool:
    """Whether ``served`` is (a prefix of) what ``asked`` selects; a source may send less.

    A source that answers with bytes other than the ones asked must not reach a client as a
    206: a cache would store the wrong bytes under the range.
    """
    if asked.suffix is not None:
        return served.size is None or (served.last == served.size - 1 and served.length <= asked.suffix)
    if served.first != asked.first:
        return False
    return asked.last is None or served.last <= asked.last
