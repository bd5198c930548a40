"""The pieces of HTTP and URL grammar that mediasrv reads or writes, each defined once:
HTTP dates, entity tags, tokens, header-safe text, control characters and URL schemes.

Every parser here runs in time linear in its input: request headers reach it unchecked,
up to the server's head-size limit, and it runs on the event loop.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

ENTITY_TAG = re.compile(r'(W/)?"[\x21\x23-\x7e\x80-\xff]*"')
"""``entity-tag`` exactly (§8.8.3): optionally ``W/``, then an opaque tag in double quotes."""
_BARE_ENTITY_TAG = re.compile(r"[\x21\x23-\x7e\x80-\xff]+")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_UNSAFE_HEADER_CHARACTER = re.compile(r"[^\t\x20-\x7e\x80-\xff]")
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")

# One member of an entity-tag list, matched at a position (never searched for), with
# possessive repeats that never backtrack. The quoted part is lenient (any character but a
# quote), as clients send back what servers gave them.
_LISTED_ENTITY_TAG = re.compile(r'[ \t]*+(W/)?("[^"]*+")[ \t]*+(?:,|\Z)')
MAX_LISTED_ENTITY_TAGS = 100
"""Members of one list that are looked at; a list is never that long but in an attack."""


def parse_http_date(value: str | None) -> datetime | None:
    """An HTTP date in any of its three forms (§5.6.7) as a UTC datetime, or None.

    None too for a date that is no HTTP date once in GMT (a year beyond 9999 or before 1,
    such as ``Fri, 31 Dec 9999 23:59:59 PST``): such a date is invalid, so it is ignored.
    The asctime form has no zone and means UTC.
    """
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def format_http_date(moment: datetime) -> str | None:
    """``moment`` as an IMF-fixdate (``Tue, 02 Jan 2024 03:04:05 GMT``), or None when it is
    not representable as one (out of range once in GMT). A naive datetime is taken as UTC."""
    try:
        in_gmt = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
    return format_datetime(in_gmt, usegmt=True)


def parse_entity_tags(header: str) -> list[tuple[bool, str]]:
    """The members of an ``If-Match`` / ``If-None-Match`` list as (weak, quoted opaque tag).

    A malformed member is skipped up to the next comma. Each member is matched where it
    starts, so the work is linear in the header's length whatever it holds; members after
    the first ``MAX_LISTED_ENTITY_TAGS`` are not looked at.
    """
    tags: list[tuple[bool, str]] = []
    position, end = 0, len(header)
    for _ in range(MAX_LISTED_ENTITY_TAGS):
        if position >= end:
            break
        match = _LISTED_ENTITY_TAG.match(header, position)
        if match is not None:
            tags.append((match.group(1) is not None, match.group(2)))
            position = match.end()
            continue
        comma = header.find(",", position)
        if comma < 0:
            break
        position = comma + 1
    return tags


def split_entity_tag(etag: str) -> tuple[bool, str]:
    """An entity tag in header form as (weak, quoted opaque tag)."""
    if etag.startswith("W/"):
        return True, etag[2:]
    return False, etag


def entity_tag(value: str | None) -> str | None:
    """A source's ETag in header form: a valid one as it is, a bare (unquoted) one quoted,
    a garbled one None."""
    if value is None:
        return None
    value = value.strip()
    if ENTITY_TAG.fullmatch(value):
        return value
    if _BARE_ENTITY_TAG.fullmatch(value):
        return f'"{value}"'
    return None


def is_strong_entity_tag(value: str) -> bool:
    """Whether ``value`` is exactly one strong entity tag (not a list, not ``W/``)."""
    return not value.startswith("W/") and ENTITY_TAG.fullmatch(value) is not None


def is_token(value: str) -> bool:
    """Whether ``value`` is an HTTP ``token`` (§5.6.2), as a header name must be."""
    return _TOKEN.fullmatch(value) is not None


def is_header_safe(value: str) -> bool:
    """Whether a header value can carry ``value`` as it is: no CR, LF, NUL or other control
    but tab, nothing beyond Latin-1."""
    return _UNSAFE_HEADER_CHARACTER.search(value) is None


def header_safe(value: str) -> str:
    """``value`` with every character a header cannot carry replaced by "?", so text from a
    source cannot inject headers."""
    return _UNSAFE_HEADER_CHARACTER.sub("?", value)


def has_control_character(text: str) -> bool:
    """Whether ``text`` holds a C0 or C1 control character (NUL, CR, LF, DEL, ...)."""
    return _CONTROL_CHARACTER.search(text) is not None


def starts_with_scheme(text: str) -> bool:
    """Whether ``text`` begins like an absolute URL's ``scheme:`` (RFC 3986 §3.1)."""
    return _URL_SCHEME.match(text) is not None
