"""Real images for the transform tests, made at test time with pyvips, and ways to inspect
rendered bytes (format from magic bytes, size, pixels)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyvips

RED = (220, 30, 30)
BLUE = (30, 30, 220)
GREEN = (30, 200, 30)
BOMB_SIDE = 20000


def solid(width: int, height: int, colour: tuple[int, ...]) -> Any:
    """An 8-bit sRGB (or sRGB + alpha, for 4 values) image of one colour."""
    image = (pyvips.Image.black(width, height, bands=len(colour)) + list(colour)).cast("uchar")
    return image.copy(interpretation="srgb")


def photo(width: int, height: int) -> Any:
    """A photo-like image: smooth gradients plus noise, so that codecs work as on photos; its
    top-left quadrant is red, the rest blue, to tell orientations apart."""
    xyz = pyvips.Image.xyz(width, height)
    gradient = (xyz[0] * (80 / width) + xyz[1] * (80 / height)).cast("uchar")
    noise = pyvips.Image.gaussnoise(width, height, sigma=12, mean=0)
    base = solid(width, height, BLUE).insert(solid(width // 2, height // 2, RED), 0, 0)
    textured = base + (gradient.bandjoin([gradient, gradient]) * 0.3) + noise.bandjoin([noise, noise])
    return textured.cast("uchar").copy(interpretation="srgb")


def jpeg(width: int = 800, height: int = 600, orientation: int | None = None, quality: int = 90) -> bytes:
    """A photo-like JPEG, with EXIF orientation ``orientation`` when given."""
    image = photo(width, height).copy()
    if orientation is not None:
        image.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    return bytes(image.jpegsave_buffer(Q=quality))


def cmyk_jpeg(width: int = 320, height: int = 240) -> bytes:
    """A CMYK JPEG of RED, without an embedded profile (as many print files are)."""
    cmyk = solid(width, height, RED).icc_export(output_profile="cmyk")
    return bytes(cmyk.jpegsave_buffer(keep="none"))


def png_with_alpha(width: int = 400, height: int = 300) -> bytes:
    """RED, its right half fully transparent."""
    image = solid(width, height, (*RED, 255)).insert(solid(width // 2, height, (*BLUE, 0)), width // 2, 0)
    return bytes(image.pngsave_buffer())


def png16(width: int = 400, height: int = 300) -> bytes:
    """A 16-bit RGBA PNG: RED, its bottom half transparent."""
    image = solid(width, height, (*RED, 255)).insert(solid(width, height // 2, (*GREEN, 0)), 0, height // 2)
    return bytes((image.cast("ushort") * 257).copy(interpretation="rgb16").pngsave_buffer(bitdepth=16))


def palette_png(width: int = 400, height: int = 300) -> bytes:
    """A palette PNG (colour type 3) with transparency (tRNS): RED, its left half transparent."""
    image = solid(width, height, (*RED, 255)).insert(solid(width // 2, height, (*BLUE, 0)), 0, 0)
    data = bytes(image.pngsave_buffer(palette=True))
    assert data[25] == 3 and b"tRNS" in data
    return data


def animated_gif(width: int = 120, height: int = 90, frames: tuple[tuple[int, int, int], ...] = (RED, GREEN, BLUE)) -> bytes:
    """One frame per colour, the first RED."""
    strip = pyvips.Image.arrayjoin([solid(width, height, colour) for colour in frames], across=1).copy()
    strip.set_type(pyvips.GValue.gint_type, "page-height", height)
    strip.set_type(pyvips.GValue.array_int_type, "delay", [100] * len(frames))
    return bytes(strip.gifsave_buffer())


def pixel_bomb_png(side: int = BOMB_SIDE) -> bytes:
    """A valid 1-bit greyscale PNG of side x side pixels: tens of KB that decode to side² pixels."""
    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    compressor = zlib.compressobj(9)
    rows_per_part = 1000
    parts = [compressor.compress(row * min(rows_per_part, side - first)) for first in range(0, side, rows_per_part)]
    idat = b"".join(parts) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def truncated_jpeg() -> bytes:
    data = jpeg(640, 480)
    return data[: len(data) // 2]


NOT_AN_IMAGE = b"this is a text file that someone named photo.jpg\n" * 20

SAMPLES: dict[str, Callable[[], bytes]] = {
    "photo.jpg": lambda: jpeg(800, 600),
    "rotated.jpg": lambda: jpeg(800, 600, orientation=6),
    "cmyk.jpg": cmyk_jpeg,
    "alpha.png": png_with_alpha,
    "png16.png": png16,
    "palette.png": palette_png,
    "anim.gif": animated_gif,
    "bomb.png": pixel_bomb_png,
    "truncated.jpg": truncated_jpeg,
    "notes.jpg": lambda: NOT_AN_IMAGE,
}
"""Every test image by the file name the tests store it under."""


@dataclass(frozen=True)
class Decoded:
    """A rendered image as a client sees it."""

    format: str
    width: int
    height: int
    bands: int
    image: Any

    def pixel(self, x: int, y: int) -> tuple[int, ...]:
        return tuple(round(value) for value in self.image(x, y))


def image_format(data: bytes) -> str:
    """The format the magic bytes say."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[4:12] in (b"ftypavif", b"ftypavis"):
        return "avif"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    return "unknown"


def decode(data: bytes, all_frames: bool = False) -> Decoded:
    """Decode rendered bytes (first frame unless ``all_frames``)."""
    image = pyvips.Image.new_from_buffer(data, "n=-1" if all_frames else "")
    height = image.get("page-height") if all_frames and image.get_typeof("page-height") else image.height
    return Decoded(image_format(data), image.width, height, image.bands, image)


def metadata_fields(data: bytes) -> set[str]:
    """Metadata blocks a decoder finds in ``data`` (EXIF, XMP, ICC, IPTC)."""
    image = pyvips.Image.new_from_buffer(data, "")
    blocks = ("exif-data", "xmp-data", "icc-profile-data", "iptc-data")
    return {name for name in blocks if image.get_typeof(name)}


def close_to(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 40) -> bool:
    return len(actual) >= len(expected) and all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=False))
