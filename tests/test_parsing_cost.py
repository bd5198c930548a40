"""Request headers are parsed on the event loop: no header up to the head-size limit may cost
much more to parse than an ordinary one (issue 12: Range and entity-tag lists were quadratic,
a 64 KiB header took seconds and stalled every other request).

Timed in-process as a ratio to parsing an ordinary header, each the best of several runs, so
the bound holds on a loaded machine; a quadratic parser misses it by orders of magnitude.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import pytest

from mediasrv import ObjectInfo, parse_http_date, parse_range
from mediasrv.conditional import check_preconditions, conditions_from_headers, range_applies
from mediasrv.errors import MediaError

HEADER_BYTES = 64 * 1024 - 512  # what fits in the default 64 KiB request head beside the request line
MAX_RATIO = 1000  # an ordinary header costs a few microseconds: this is a millisecond or so
INFO = ObjectInfo(size=10, etag='"abc"', last_modified=parse_http_date("Tue, 02 Jan 2024 03:04:05 GMT"))


def fill(prefix: str, unit: str, suffix: str = "") -> str:
    """``prefix``, then ``unit`` repeated up to the header budget, then ``suffix``."""
    return prefix + unit * ((HEADER_BYTES - len(prefix) - len(suffix)) // len(unit)) + suffix


def seconds_per_call(parse: Callable[[str], object], value: str, calls: int) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(calls):
            parse(value)
        best = min(best, (time.perf_counter() - started) / calls)
    return best


def evaluate(name: str) -> Callable[[str], object]:
    """Everything the endpoint does with conditional header ``name``: parse, then evaluate."""

    def run(value: str) -> None:
        conditions = conditions_from_headers({name: value})
        with contextlib.suppress(MediaError):
            check_preconditions(conditions, INFO)
        range_applies(conditions, INFO)

    return run


ADVERSARIAL_RANGES = [
    fill("bytes=0-", " ", "x"),  # the attack pass's: adjacent optional blanks under fullmatch
    fill("bytes=", " ", "0-"),
    fill("bytes=", "\t ", "0-1"),
    fill("bytes=", "0", "-"),
    fill("bytes=-", " ", "5"),
    fill("bytes", " ", "=0-"),
    fill("", "bytes=0-1,"),
    fill("", "-"),
]

ADVERSARIAL_CONDITIONS = [
    fill("x", " ", "x"),  # the attack pass's: a whitespace run between two non-tags
    fill('"a"', " ", "x"),
    fill("", " "),
    fill("", ", "),
    fill('"', "a"),
    fill("", "W/"),
    fill("", '"a",'),
    fill("", '"abc", '),
    fill('"', ', "'),
    fill("", '"a" '),
    fill("", ',"'),
    fill("", '"",'),
    fill("Fri, 31 Dec 9999 23:59:59 ", " "),
]


@pytest.mark.parametrize("value", ADVERSARIAL_RANGES, ids=lambda value: repr(value[:12]))
def test_range_parsing_cost_is_bounded(value: str) -> None:
    ordinary = seconds_per_call(parse_range, "bytes=0-499", 2000)
    adversarial = seconds_per_call(parse_range, value, 10)
    assert adversarial / ordinary < MAX_RATIO, f"{adversarial * 1e3:.2f} ms against {ordinary * 1e6:.2f} µs"


@pytest.mark.parametrize("name", ["if-match", "if-none-match", "if-range", "if-modified-since"])
@pytest.mark.parametrize("value", ADVERSARIAL_CONDITIONS, ids=lambda value: repr(value[:12]))
def test_conditional_header_cost_is_bounded(name: str, value: str) -> None:
    ordinary_value = "Tue, 02 Jan 2024 03:04:05 GMT" if name.endswith("since") else '"xyz", W/"abc"'
    ordinary = seconds_per_call(evaluate(name), ordinary_value, 2000)
    adversarial = seconds_per_call(evaluate(name), value, 10)
    assert adversarial / ordinary < MAX_RATIO, f"{adversarial * 1e3:.2f} ms against {ordinary * 1e6:.2f} µs"
