"""HTTP conditional requests and byte ranges (RFC 9110 §13 and §14), read from request headers
and evaluated against an object's metadata."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from mediasrv.errors import NotModified, PreconditionFailed
from mediasrv.grammar import ENTITY_TAG, parse_entity_tags, parse_http_date, split_entity_tag
from mediasrv.objects import ByteRange, Conditions, ObjectInfo

_MAX_DIGITS = 19  # no object is 10**19 bytes long; and int() of a huge string is slow
_BEYOND_ANY_OBJECT = 10**_MAX_DIGITS


def parse_range(value: str | None) -> ByteRange | None:
    """The single byte range a ``Range`` header asks for, or None to serve the whole object.

    A missing, malformed, non-bytes or multi-range header gives None: RFC 9110 lets a server
    ignore Range, and mediasrv answers multiple ranges with the full object, as S3 does.
    Parsed with string methods, in time linear in the header's length.
    """
    if not value or not value.isascii():
        return None
    # Tabs as spaces, then nothing but printable ASCII: the default strip(), much faster
    # than strip(" \t"), then removes exactly the blanks the grammar allows.
    value = value.replace("\t", " ")
    if not value.isprintable():
        return None
    unit, equals, spec = value.partition("=")
    if not equals or unit.rstrip().lower() != "bytes":
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    first_text, last_text = first_text.rstrip(), last_text.lstrip()
    if not dash or not _digits_or_empty(first_text) or not _digits_or_empty(last_text):
        return None
    first, last = _position(first_text), _position(last_text)
    if first is None:
        return ByteRange(suffix=last) if last is not None else None
    if last is not None and last < first:
        return None
    return ByteRange(first, last)


def _digits_or_empty(text: str) -> bool:
    """Digits only, or nothing (the text is ASCII already: no "１" or "²")."""
    return not text or text.isdigit()


def _position(digits: str | None) -> int | None:
    """A range position; an absurdly long one still means 'past the end of anything'."""
    if not digits:
        return None
    return int(digits) if len(digits) <= _MAX_DIGITS else _BEYOND_ANY_OBJECT


def conditions_from_headers(headers: Mapping[str, str]) -> Conditions:
    """The conditional headers of a request; invalid dates are ignored, as RFC 9110 says."""
    return Conditions(
        if_match=headers.get("if-match"),
        if_none_match=headers.get("if-none-match"),
        if_modified_since=parse_http_date(headers.get("if-modified-since")),
        if_unmodified_since=parse_http_date(headers.get("if-unmodified-since")),
        if_range=headers.get("if-range"),
    )


def check_preconditions(conditions: Conditions, info: ObjectInfo) -> None:
    """Raise PreconditionFailed (412) or NotModified (304) as RFC 9110 §13.2.2 orders them.

    For GET and HEAD only: a failed ``If-None-Match`` is a 304, never a 412.
    """
    if conditions.if_match is not None:
        if not _matches(conditions.if_match, info.etag, weak=False):
            raise PreconditionFailed("If-Match failed")
    elif conditions.if_unmodified_since is not None and info.last_modified is not None:
        if _seconds(info.last_modified) > _seconds(conditions.if_unmodified_since):
            raise PreconditionFailed("If-Unmodified-Since failed")

    if conditions.if_none_match is not None:
        if _matches(conditions.if_none_match, info.etag, weak=True):
            raise NotModified(info)
    elif conditions.if_modified_since is not None and info.last_modified is not None:
        if _seconds(info.last_modified) <= _seconds(conditions.if_modified_since):
            raise NotModified(info)


def range_applies(conditions: Conditions, info: ObjectInfo) -> bool:
    """Whether a Range may be honoured: no ``If-Range``, or it still names this representation.

    An entity tag must match strongly; a date must equal Last-Modified exactly (§13.1.5).
    """
    validator = conditions.if_range
    if validator is None:
        return True
    validator = validator.strip()
    if validator.startswith(('"', "W/")):
        # One entity tag, not a list; a weak one never matches.
        return ENTITY_TAG.fullmatch(validator) is not None and _matches(validator, info.etag, weak=False)
    date = parse_http_date(validator)
    return date is not None and info.last_modified is not None and (_seconds(date) == _seconds(info.last_modified))


def _matches(header: str, etag: str | None, *, weak: bool) -> bool:
    """Whether an If-Match / If-None-Match list names ``etag``; ``*`` names any existing object."""
    if header.strip() == "*":
        return True
    if etag is None:
        return False
    etag_weak, etag_opaque = split_entity_tag(etag)
    if etag_weak and not weak:
        return False
    for candidate_weak, candidate_opaque in parse_entity_tags(header):
        if candidate_opaque == etag_opaque and (weak or not candidate_weak):
            return True
    return False


def _seconds(moment: datetime) -> int:
    """HTTP dates have whole seconds: compare at that resolution."""
    return int(moment.timestamp())
