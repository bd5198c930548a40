"""Helpers of the tests that render through the result cache: real photo-like JPEGs made with
pyvips, a server's settings with transforms and a disk cache, and the render counter."""

from __future__ import annotations

from pathlib import Path

import pyvips

from conftest import Server, scrape

RENDERS = "mediasrv_renders_total"
LOOKUPS = "mediasrv_result_cache_requests_total"


def photo_jpeg(width: int, height: int) -> bytes:
    """A photo-like JPEG: a gradient with noise, so the codec works as on a photo."""
    xyz = pyvips.Image.xyz(width, height)
    gradient = (xyz[0] * (200 / width) + xyz[1] * (50 / height)).cast("uchar")
    noise = pyvips.Image.gaussnoise(width, height, sigma=10, mean=128).cast("uchar")
    image = gradient.bandjoin([noise, gradient]).copy(interpretation="srgb")
    return bytes(image.jpegsave_buffer(Q=90))


def dimensions(body: bytes) -> tuple[int, int]:
    """Width and height of an encoded image."""
    image = pyvips.Image.new_from_buffer(body, "")
    return image.width, image.height


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
