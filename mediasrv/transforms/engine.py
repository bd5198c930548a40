"""The render engine: libvips through pyvips, run in a render worker process (see pool.py).

Everything here is a module-level function or a picklable value, because plans and results
cross the process boundary.
"""

from __future__ import annotations

import importlib.metadata
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mediasrv.errors import UnprocessableImage
from mediasrv.transforms.negotiation import ANIMATED_FORMATS, CONTENT_TYPES, LEGACY, choose_format

ENGINE_REVISION = "1"
"""Bumped whenever a change here changes rendered bytes, so that derived ETags change too."""

LOADERS = {
    "jpegload_buffer": "jpeg",
    "pngload_buffer": "png",
    "webpload_buffer": "webp",
    "gifload_buffer": "gif",
    "heifload_buffer": "heif",
    "svgload_buffer": "svg",
}
# libvips' loader classes mediasrv decodes; every other loader (TIFF, PDF, matrix, FITS, ...) is
# blocked: each loader is attack surface, and these are the formats of the web.
ALLOWED_LOADER_CLASSES = (
    "VipsForeignLoadJpeg",
    "VipsForeignLoadPng",
    "VipsForeignLoadWebp",
    "VipsForeignLoadNsgif",
    "VipsForeignLoadHeif",
    "VipsForeignLoadSvg",
)
FAIL_ON = "truncated"  # libvips pads a truncated image with grey by default (a 422 is honest)
MAX_COORD = 10_000_000  # libvips' VIPS_MAX_COORD: "no limit" for a thumbnail side
JPEG_SHRINKS = (8, 4, 2)
JPEG_SHRINK_MARGIN = 1.0
"""A JPEG is decoded at 1/shrink (libjpeg's DCT scaling) for the largest shrink that still
leaves at least this much reduction for the final Lanczos resize, i.e. the decode never goes
below the output size. ``python -m bench.engine`` measured it on 2-4 MP photo-like JPEGs to
400 px: 1.13-1.16x libvips' thumbnail_buffer (which keeps a 2x final resize, margin 2), at
46.5-50.6 dB PSNR against a full decode resized by Lanczos3, where the JPEG encode at quality
80 that follows is itself ~39 dB: the shrink's error is far below the encoder's."""

COMPASS = {  # gravity -> (x, y) position of the kept box in the excess, 0 = left/top
    "north": (0.5, 0.0),
    "south": (0.5, 1.0),
    "east": (1.0, 0.5),
    "west": (0.0, 0.5),
    "northeast": (1.0, 0.0),
    "northwest": (0.0, 0.0),
    "southeast": (1.0, 1.0),
    "southwest": (0.0, 1.0),
}
SMART_CROPS = {"center": "centre", "attention": "attention", "entropy": "entropy"}


@dataclass(frozen=True)
class RenderPlan:
    """One render, as the worker needs it: resolved options plus the settings that apply."""

    width: int | None
    height: int | None
    fit: str
    gravity: str
    enlarge: bool
    format: str | None  # the request's format parameter (None: the source's; "auto")
    format_token: str
    quality: int | None
    steps: tuple[tuple[Callable[[Any, Any], Any], Any], ...]
    qualities: tuple[tuple[str, int], ...]
    avif_effort: int
    webp_effort: int
    max_source_pixels: int
    max_dimension: int
    animation: bool
    backend: str = ""  # the source's backend name, for the renders metric


@dataclass(frozen=True)
class RenderResult:
    """A rendered variant. ``transform_seconds`` (decode, resize, operations) and
    ``encode_seconds`` are the worker's own timings, for the stage metrics."""

    body: bytes
    content_type: str
    format: str
    width: int
    height: int
    transform_seconds: float = 0.0
    encode_seconds: float = 0.0


@dataclass(frozen=True)
class SourceHeader:
    """What the header of a source says, read without decoding pixels."""

    format: str
    width: int  # after EXIF orientation
    height: int
    pages: int


_configured = False


def configure() -> None:
    """Set libvips up for a render process: one thread per render (processes scale, threads
    don't), no operation cache, only the loaders mediasrv allows. Idempotent."""
    global _configured
    if _configured:
        return
    os.environ.setdefault("VIPS_CONCURRENCY", "1")
    import pyvips

    pyvips.concurrency_set(1)
    pyvips.cache_set_max(0)
    pyvips.cache_set_max_mem(0)
    pyvips.cache_set_max_files(0)
    pyvips.block_untrusted_set(True)
    pyvips.operation_block_set("VipsForeignLoad", True)
    for loader_class in ALLOWED_LOADER_CLASSES:
        pyvips.operation_block_set(loader_class, False)
    _configured = True


def engine_version() -> str:
    """pyvips and libvips versions and the engine revision, for derived ETags.

    Read from the installed distributions, so the server process need not load libvips
    (pyvips-binary's version is the libvips it bundles)."""
    try:
        libvips = importlib.metadata.version("pyvips-binary")
    except importlib.metadata.PackageNotFoundError:  # pyvips over a system libvips
        import pyvips

        libvips = ".".join(str(pyvips.version(part)) for part in range(3))
    return f"mediasrv-engine/{ENGINE_REVISION} pyvips/{importlib.metadata.version('pyvips')} libvips/{libvips}"


def render(source: bytes, plan: RenderPlan) -> RenderResult:
    """Render ``source`` as ``plan`` says; UnprocessableImage (422) for a source that is not a
    decodable image of an allowed format or that is over ``max_source_pixels``."""
    configure()
    import pyvips

    started = time.perf_counter()
    try:
        header = read_header(source, plan.max_source_pixels, plan.animation)
        frames = _keeps_frames(plan, header)
        image = _resized(source, plan, header, frames)
        image = _to_srgb(image)
        for apply, value in plan.steps:
            image = apply(image, value)
        image = image.copy_memory()  # runs the pipeline here, so the timings split decode from encode
        transformed = time.perf_counter()
        output_format = choose_format(plan.format_token, _writable(header.format), _transparent(image), frames)
        body = _encode(image, output_format, plan)
    except pyvips.Error as exc:
        raise UnprocessableImage(f"source is not a decodable image ({_first_line(exc)})") from None
    height = image.get("page-height") if frames and image.get_typeof("page-height") else image.height
    return RenderResult(
        body=body,
        content_type=CONTENT_TYPES[output_format],
        format=output_format,
        width=image.width,
        height=height,
        transform_seconds=transformed - started,
        encode_seconds=time.perf_counter() - transformed,
    )


def read_header(source: bytes, max_pixels: int, animation: bool) -> SourceHeader:
    """The source's format and size from its header alone; UnprocessableImage (422) if it is
    no allowed image or has more than ``max_pixels`` pixels (all frames, when they are kept)."""
    import pyvips

    try:
        image = pyvips.Image.new_from_buffer(source, "", access="sequential")
    except pyvips.Error:
        raise UnprocessableImage("source is not a decodable image") from None
    loader = LOADERS.get(image.get("vips-loader"))
    if loader is None:
        raise UnprocessableImage("source format is not one mediasrv renders")
    pages = image.get("n-pages") if image.get_typeof("n-pages") else 1
    pixels = image.width * image.height * (pages if animation else 1)
    if pixels > max_pixels:
        raise UnprocessableImage(f"source has {pixels} pixels, over max_source_pixels {max_pixels}")
    if loader == "heif" and image.get_typeof("heif-compression") and image.get("heif-compression") == "av1":
        loader = "avif"
    width, height = image.width, image.height
    if image.get_typeof("orientation") and image.get("orientation") in (5, 6, 7, 8):
        width, height = height, width
    return SourceHeader(loader, width, height, pages)


def _transparent(image: Any) -> bool:
    """Whether any pixel is not opaque (GIFs, and many PNGs, have an alpha band that is all
    opaque: those may become JPEGs)."""
    if not image.hasalpha():
        return False
    opaque = 65535 if image.format == "ushort" else 255
    return bool(image[image.bands - 1].min() < opaque)


def _writable(source_format: str) -> str:
    """The source format as an output format (``legacy``: one mediasrv does not write)."""
    return source_format if source_format in CONTENT_TYPES else LEGACY


def _keeps_frames(plan: RenderPlan, header: SourceHeader) -> bool:
    if not plan.animation or header.pages < 2:
        return False
    if plan.format is None:
        return header.format in ANIMATED_FORMATS
    return plan.format in ("auto", *ANIMATED_FORMATS)


@dataclass(frozen=True)
class Geometry:
    """libvips thumbnail arguments, and the compass crop to apply after it (if any)."""

    width: int
    height: int
    size: str
    crop: str | None = None
    box: tuple[int, int] | None = None  # the final (width, height) of a compass crop


def plan_geometry(plan: RenderPlan, source_width: int, source_height: int) -> Geometry:
    """Where the thumbnail step goes, for a source of this (oriented) size."""
    limit = plan.max_dimension
    width, height = plan.width, plan.height
    if width is None or height is None or plan.fit == "contain":
        size = "both" if plan.enlarge else "down"
        if width is None and height is None:
            return Geometry(min(source_width, limit), min(source_height, limit), "down")
        return Geometry(width or limit, height or limit, size)
    if not plan.enlarge:  # keep the box's shape, scaled down to fit inside the source
        scale = min(1.0, source_width / width, source_height / height)
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
    if plan.fit == "fill":
        return Geometry(width, height, "force")
    if plan.gravity in SMART_CROPS:
        return Geometry(width, height, "both", crop=SMART_CROPS[plan.gravity])
    # Cover, then cut the box at the compass point: resize so the binding side is exact.
    if source_width * height > width * source_height:
        return Geometry(MAX_COORD, height, "both", box=(width, height))
    return Geometry(width, MAX_COORD, "both", box=(width, height))


def jpeg_shrink(geometry: Geometry, source_width: int, source_height: int) -> int:
    """The largest JPEG shrink-on-load factor that leaves the final resize at least
    JPEG_SHRINK_MARGIN of reduction on the binding side."""
    if geometry.box is not None:
        width, height = geometry.box
        scale = max(width / source_width, height / source_height)
    elif geometry.size == "force" or geometry.crop is not None:
        scale = max(geometry.width / source_width, geometry.height / source_height)
    else:
        scale = min(geometry.width / source_width, geometry.height / source_height)
    if scale <= 0:
        return 1
    reduction = 1 / scale
    return next((shrink for shrink in JPEG_SHRINKS if shrink * JPEG_SHRINK_MARGIN <= reduction), 1)


def _resized(source: bytes, plan: RenderPlan, header: SourceHeader, frames: bool) -> Any:
    import pyvips

    geometry = plan_geometry(plan, header.width, header.height)
    options: dict[str, Any] = {"height": geometry.height, "size": geometry.size}
    if geometry.crop is not None:
        options["crop"] = geometry.crop
    if header.format == "jpeg":
        # thumbnail_buffer would stop at shrink 1/2 for a 6x reduction (it keeps a 2x final
        # resize); decoding at the largest factor the margin allows is what makes JPEGs cheap.
        shrink = jpeg_shrink(geometry, header.width, header.height)
        loaded = pyvips.Image.new_from_buffer(source, "", shrink=shrink, fail_on=FAIL_ON, access="sequential")
        image = loaded.thumbnail_image(geometry.width, **options)
    else:
        load_options = f"fail_on={FAIL_ON}" + (",n=-1" if frames else "")
        image = pyvips.Image.thumbnail_buffer(source, geometry.width, option_string=load_options, **options)
    if geometry.box is not None:
        image = _compass_crop(image, geometry.box, COMPASS[plan.gravity])
    return image


def _compass_crop(image: Any, box: tuple[int, int], position: tuple[float, float]) -> Any:
    width, height = min(box[0], image.width), min(box[1], image.height)
    left = math.floor((image.width - width) * position[0])
    top = math.floor((image.height - height) * position[1])
    return image.extract_area(left, top, width, height)


def _to_srgb(image: Any) -> Any:
    """8-bit sRGB (or 8-bit grey), alpha kept: thumbnail already converted through the ICC
    profile (or libvips' CMYK fallback); 16-bit and other spaces are converted here."""
    if image.interpretation in ("b-w", "grey16"):
        return image.colourspace("b-w") if image.format != "uchar" else image
    if image.interpretation != "srgb" or image.format != "uchar":
        image = image.colourspace("srgb")
    return image.cast("uchar") if image.format != "uchar" else image


def _encode(image: Any, output_format: str, plan: RenderPlan) -> bytes:
    """The encoded bytes, every metadata block (EXIF, XMP, ICC, comments) left out."""
    quality = plan.quality or dict(plan.qualities).get(output_format, 100)
    if output_format == "jpeg":
        if image.hasalpha():
            image = image.flatten(background=[255] * (image.bands - 1))
        data = image.jpegsave_buffer(Q=quality, keep="none", optimize_coding=True)
    elif output_format == "png":
        palette = quality < 100
        data = image.pngsave_buffer(keep="none", palette=palette, Q=quality, compression=6)
    elif output_format == "webp":
        data = image.webpsave_buffer(Q=quality, keep="none", effort=plan.webp_effort)
    elif output_format == "avif":
        if image.bands < 3:  # grey: the AV1 encoder wants colour
            image = image.colourspace("srgb")
        data = image.heifsave_buffer(Q=quality, compression="av1", effort=plan.avif_effort, keep="none")
    else:
        data = image.gifsave_buffer(keep="none")
    return bytes(data)


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[-1] if lines else "libvips error")[:200]
