"""``?info=json`` in a render worker: an image's facts and placeholders.

Imported only in render processes (through ``info.render_info``). The facts (size, format,
orientation, alpha, pages) come from the image header; the placeholders (dominant colour,
BlurHash, ThumbHash, LQIP) from one small thumbnail made with libvips' shrink-on-load, so a
50 MP JPEG is never decoded at full size.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Sequence

import blurhash
import pyvips
import thash

from mediasrv.errors import UnprocessableImage
from mediasrv.transforms.engine import read_header
from mediasrv.transforms.info import PLACEHOLDER_FIELDS, InfoDocument, InfoRequest


class Thumbnail:
    """The sizes placeholders are made at. ThumbHash is defined on at most 100x100 and BlurHash's
    authors encode from a few dozen pixels: 32 px gives both their detail at a few ms of pure
    Python each; the LQIP is a WebP of at most 32 px, re-encoded smaller until it fits."""

    size = 64  # made once from the source, by shrink-on-load
    hash_size = 32
    lqip_attempts: tuple[tuple[int, int], ...] = ((32, 50), (24, 40), (16, 30), (8, 20))  # (px, quality)
    lqip_limit = 1024  # bytes of the whole data: URL


def image_info(source: bytes, request: InfoRequest, max_pixels: int) -> InfoDocument:
    """The fields ``request`` asks for, about the encoded image ``source``.

    UnprocessableImage (422) when ``source`` is no image mediasrv reads, has more than
    ``max_pixels`` pixels (from its header, before any decode) or is truncated.
    """
    header = read_header(source, max_pixels, animation=False)
    facts: InfoDocument = {
        "width": header.width,  # as displayed: after the EXIF orientation
        "height": header.height,
        "format": header.format,
        "pages": header.pages,
        "bytes": len(source),
    }
    try:
        facts |= header_flags(pyvips.Image.new_from_buffer(source, "", access="sequential"))
        if request.wants_placeholders:
            facts |= placeholders(thumbnail(source), request)
    except pyvips.Error:
        raise UnprocessableImage("source is not a decodable image") from None
    return {name: facts[name] for name in request.fields}


def header_flags(header: pyvips.Image) -> InfoDocument:
    """The EXIF orientation (1 when there is none) and whether there is an alpha channel, from
    a header-only image (nothing decoded)."""
    orientation = int(header.get("orientation")) if header.get_typeof("orientation") else 1
    return {"orientation": orientation, "has_alpha": bool(header.hasalpha())}


def thumbnail(source: bytes) -> pyvips.Image:
    """The first frame, oriented, in 8-bit sRGB with an alpha band, at most Thumbnail.size
    pixels on its longer side, held in memory (it is read several times)."""
    image = pyvips.Image.thumbnail_buffer(
        source, Thumbnail.size, height=Thumbnail.size, size="down", option_string="fail_on=truncated"
    )
    image = image.colourspace("srgb")  # CMYK, grey and 16-bit sources alike become 8-bit sRGB
    if not image.hasalpha():
        image = image.bandjoin(255)
    return image.copy_memory()


def placeholders(image: pyvips.Image, request: InfoRequest) -> InfoDocument:
    """The placeholder fields ``request`` asks for, from an 8-bit sRGBA ``thumbnail``."""
    wanted = PLACEHOLDER_FIELDS.intersection(request.fields)
    found: InfoDocument = {}
    if "dominant_color" in wanted:
        found["dominant_color"] = dominant_color(_pixels(image), image.width * image.height)
    if wanted & {"blurhash", "thumbhash"}:
        small = image.thumbnail_image(Thumbnail.hash_size, height=Thumbnail.hash_size, size="down")
        if "blurhash" in wanted:
            found["blurhash"] = blur_hash(small, request.blurhash_components)
        if "thumbhash" in wanted:
            found["thumbhash"] = thumb_hash(small)
    if "lqip" in wanted:
        found["lqip"] = lqip(image)
    return found


def dominant_color(rgba: bytes, count: int) -> str:
    """``#rrggbb``: the mean of the most common colour cell (16 levels a channel) among the
    visible pixels (alpha at least half), or among all when none is visible."""
    visible = [i * 4 for i in range(count) if rgba[i * 4 + 3] >= 128] or [i * 4 for i in range(count)]
    cells = Counter((rgba[i] >> 4, rgba[i + 1] >> 4, rgba[i + 2] >> 4) for i in visible)
    cell = cells.most_common(1)[0][0]
    members = [i for i in visible if (rgba[i] >> 4, rgba[i + 1] >> 4, rgba[i + 2] >> 4) == cell]
    mean = [round(sum(rgba[i + band] for i in members) / len(members)) for band in range(3)]
    return "#" + "".join(f"{value:02x}" for value in mean)


def blur_hash(image: pyvips.Image, components: tuple[int, int]) -> str:
    """The BlurHash of an sRGBA image, flattened on white (BlurHash has no alpha)."""
    flat = image.flatten(background=[255, 255, 255]).cast("uchar")
    data, width = _pixels(flat), flat.width
    rows = [
        [list(data[(y * width + x) * 3 : (y * width + x) * 3 + 3]) for x in range(width)] for y in range(flat.height)
    ]
    encoded: str = blurhash.encode(rows, components_x=components[0], components_y=components[1])
    return encoded


def thumb_hash(image: pyvips.Image) -> str:
    """The ThumbHash of an sRGBA image of at most 100x100, in standard base64."""
    hashed: Sequence[int] = thash.rgba_to_thumb_hash(image.width, image.height, list(_pixels(image)))
    return base64.b64encode(bytes(hashed)).decode("ascii")


def lqip(image: pyvips.Image) -> str:
    """A ``data:image/webp;base64,...`` URL of a tiny WebP of ``image``, under Thumbnail.lqip_limit
    bytes: the largest of Thumbnail.lqip_attempts that fits."""
    url = ""
    for size, quality in Thumbnail.lqip_attempts:
        small = image.thumbnail_image(size, height=size, size="down")
        url = "data:image/webp;base64," + base64.b64encode(small.webpsave_buffer(Q=quality, keep="none")).decode()
        if len(url) < Thumbnail.lqip_limit:
            break
    return url


def _pixels(image: pyvips.Image) -> bytes:
    return bytes(image.write_to_memory())

