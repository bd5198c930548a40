"""Images made at test time with libvips, for the info and demo tests."""

from __future__ import annotations

import pyvips


def photo(width: int, height: int) -> pyvips.Image:
    """A photo-like sRGB image: smooth gradients in three bands plus some noise."""
    xyz = pyvips.Image.xyz(width, height)
    x, y = xyz[0], xyz[1]
    noise = pyvips.Image.gaussnoise(width, height, sigma=12, mean=0)
    bands = [x * (255 / width) + noise, y * (255 / height), (x + y) * (127 / (width + height)) + 64]
    return bands[0].bandjoin(bands[1:]).cast("uchar").copy(interpretation="srgb")


def solid(width: int, height: int, colour: tuple[int, ...]) -> pyvips.Image:
    return (pyvips.Image.black(width, height) + list(colour)).cast("uchar").copy(interpretation="srgb")


def with_orientation(image: pyvips.Image, orientation: int) -> bytes:
    tagged = image.copy()
    tagged.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    return bytes(tagged.jpegsave_buffer(Q=85, keep="exif"))


def animated_gif(width: int, height: int, frames: int) -> bytes:
    strip = pyvips.Image.arrayjoin([solid(width, height, (40 * i, 80, 160)) for i in range(frames)], across=1)
    strip.set_type(pyvips.GValue.gint_type, "page-height", height)
    return bytes(strip.gifsave_buffer())
