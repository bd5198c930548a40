"""Helpers of the tests that render through the result cache: a server's settings with
transforms and a disk cache, and the render counter."""

from __future__ import annotations

from pathlib import Path

from conftest import Server, scrape
from images import decode

RENDERS = "mediasrv_renders_total"
LOOKUPS = "mediasrv_result_cache_requests_total"


def settings(media: Path, cache: Path | None, extra: str = "") -> str:
    """Unsigned transforms in one render process, a local backend over ``media``, a disk cache
    at ``cache`` (none if None), and ``extra`` TOML."""
    cache_table = f'[cache]\npath = "{cache}"\n' if cache is not None else ""
    return f"""
[transforms]
allow_unsigned = true
processes = 1

[backends.local]
kind = "local"
root = "{media}"
cache_control = "public, max-age=60"

{cache_table}
{extra}
"""


def renders(server: Server) -> float:
    """Renders the server has run, every backend and format."""
    samples = scrape(server)
    return sum(v for (name, _), v in samples.items() if name == RENDERS)


def size_of(body: bytes) -> tuple[int, int]:
    """Width and height of an encoded image."""
    decoded = decode(body)
    return decoded.width, decoded.height
