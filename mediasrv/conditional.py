"""HTTP conditional requests (RFC 9110 §13), read from request headers and evaluated against
an object's metadata."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from mediasrv.errors import NotModified, PreconditionFailed
from mediasrv.grammar import ENTITY_TAG, parse_entity_tags, parse_http_date, split_entity_tag
from mediasrv.objects import Conditions, ObjectInfo


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
