"""The render engine in this process, on real images made at test time: geometry, orientation,
colour, alpha, animation, formats, metadata and the refusals (fast: no server, no pool)."""

from __future__ import annotations

import resource
from functools import cache

import pytest

import images
from images import BLUE, GREEN, RED, close_to, decode
from mediasrv.errors import UnprocessableImage
from mediasrv.transforms import engine
from mediasrv.transforms.engine import RenderResult, jpeg_shrink, plan_geometry
from mediasrv.transforms.negotiation import format_token
from mediasrv.transforms.operations import BUILTIN_OPERATIONS
from mediasrv.transforms.options import parse_transform_query
from mediasrv.transforms.service import render_plan
from mediasrv.transforms.settings import TransformSettings

OPERATIONS = {operation.name: operation for operation in BUILTIN_OPERATIONS}


@cache
def source(name: str) -> bytes:
    return images.SAMPLES[name]()


def render(name: str, query: str, accept: str | None = None, **settings: object) -> RenderResult:
    transform_settings = TransformSettings.model_validate(settings)
    items = [tuple(part.split("=", 1)) for part in query.split("&")]
    options = parse_transform_query(items, transform_settings, OPERATIONS)  # type: ignore[arg-type]
    assert options is not None
    plan = render_plan(options, format_token(options, accept), transform_settings, OPERATIONS)
    return engine.render(source(name), plan)


def test_width_alone_keeps_the_aspect_ratio() -> None:
    result = render("photo.jpg", "width=200")
    decoded = decode(result.body)
    assert (decoded.format, decoded.width, decoded.height) == ("jpeg", 200, 150)
    assert (result.width, result.height, result.content_type) == (200, 150, "image/jpeg")


def test_contain_fits_inside_the_box() -> None:
    decoded = decode(render("photo.jpg", "width=300&height=300").body)
    assert (decoded.width, decoded.height) == (300, 225)


def test_cover_fills_the_box_and_keeps_the_centre() -> None:
    decoded = decode(render("photo.jpg", "width=300&height=300&fit=cover").body)
    assert (decoded.width, decoded.height) == (300, 300)


def test_cover_with_a_compass_gravity_keeps_that_side() -> None:
    # The source's top-left quadrant is red: a tall box at the west edge is red at its top.
    west = decode(render("photo.jpg", "width=100&height=300&fit=cover&gravity=west").body)
    east = decode(render("photo.jpg", "width=100&height=300&fit=cover&gravity=east").body)
    assert (west.width, west.height) == (100, 300)
    assert close_to(west.pixel(50, 20), RED, 60)
    assert close_to(east.pixel(50, 20), BLUE, 60)


@pytest.mark.parametrize("gravity", ["attention", "entropy", "north", "southeast"])
def test_cover_with_every_kind_of_gravity_gives_the_box(gravity: str) -> None:
    decoded = decode(render("photo.jpg", f"width=120&height=200&fit=cover&gravity={gravity}").body)
    assert (decoded.width, decoded.height) == (120, 200)


def test_fill_stretches_to_the_box() -> None:
    decoded = decode(render("photo.jpg", "width=300&height=100&fit=fill").body)
    assert (decoded.width, decoded.height) == (300, 100)


def test_no_upscaling_unless_enlarge() -> None:
    assert decode(render("photo.jpg", "width=1600").body).width == 800
    assert decode(render("photo.jpg", "width=1600&enlarge=1").body).width == 1600


def test_cover_larger_than_the_source_keeps_the_box_shape_without_enlarge() -> None:
    decoded = decode(render("photo.jpg", "width=1200&height=1200&fit=cover").body)
    assert (decoded.width, decoded.height) == (600, 600)


def test_dpr_multiplies_the_size() -> None:
    assert decode(render("photo.jpg", "width=100&dpr=2").body).width == 200


def test_format_conversion_alone_is_capped_at_max_dimension() -> None:
    decoded = decode(render("photo.jpg", "format=png", max_dimension=400).body)
    assert (decoded.format, decoded.width, decoded.height) == ("png", 400, 300)


def test_exif_orientation_is_applied() -> None:
    # Stored 800x600 with orientation 6 (rotate 90 degrees clockwise to display): the stored
    # top-left (red) quadrant is displayed top right.
    result = render("rotated.jpg", "width=300")
    decoded = decode(result.body)
    assert (decoded.width, decoded.height) == (300, 400)
    assert close_to(decoded.pixel(280, 20), RED, 60)
    assert close_to(decoded.pixel(20, 20), BLUE, 60)
    assert close_to(decoded.pixel(280, 380), BLUE, 60)


def test_metadata_is_stripped() -> None:
    assert "exif-data" in images.metadata_fields(source("rotated.jpg"))
    for output in ("jpeg", "webp", "png", "avif"):
        assert images.metadata_fields(render("rotated.jpg", f"width=100&format={output}").body) == set(), output


def test_cmyk_jpeg_becomes_srgb_with_the_right_colour() -> None:
    decoded = decode(render("cmyk.jpg", "width=100").body)
    assert decoded.format == "jpeg"
    assert decoded.bands == 3
    assert decoded.image.interpretation == "srgb"
    assert close_to(decoded.pixel(50, 30), RED, 40)


def test_png_alpha_is_kept() -> None:
    decoded = decode(render("alpha.png", "width=200").body)
    assert (decoded.format, decoded.width, decoded.bands) == ("png", 200, 4)
    assert decoded.pixel(20, 20)[3] == 255
    assert decoded.pixel(180, 20)[3] == 0


def test_16_bit_png_keeps_transparency_in_8_bits() -> None:
    decoded = decode(render("png16.png", "width=200").body)
    assert decoded.format == "png"
    assert decoded.image.format == "uchar"
    assert close_to(decoded.pixel(100, 20), (*RED, 255), 3)
    assert decoded.pixel(100, 140)[3] == 0


def test_palette_png_with_transparency_stays_transparent() -> None:
    decoded = decode(render("palette.png", "width=200&format=webp").body)
    assert decoded.format == "webp"
    assert decoded.bands == 4
    assert decoded.pixel(20, 20)[3] == 0
    assert close_to(decoded.pixel(180, 20), (*RED, 255), 20)


def test_alpha_flattened_on_white_for_jpeg() -> None:
    decoded = decode(render("alpha.png", "width=200&format=jpeg").body)
    assert (decoded.format, decoded.bands) == ("jpeg", 3)
    assert close_to(decoded.pixel(180, 20), (255, 255, 255), 10)
    assert close_to(decoded.pixel(20, 20), RED, 20)


@pytest.mark.parametrize(
    ("name", "accept", "expected"),
    [
        ("photo.jpg", "image/avif,image/webp,*/*", "avif"),
        ("photo.jpg", "image/webp,*/*", "webp"),
        ("photo.jpg", "*/*", "jpeg"),
        ("alpha.png", "*/*", "png"),
        ("alpha.png", "image/webp", "webp"),
        ("anim.gif", "*/*", "jpeg"),
    ],
)
def test_auto_format(name: str, accept: str, expected: str) -> None:
    result = render(name, "width=60&format=auto", accept)
    assert images.image_format(result.body) == result.format == expected


@pytest.mark.parametrize("output", ["jpeg", "png", "webp", "avif", "gif"])
def test_every_output_format_has_its_magic_bytes(output: str) -> None:
    result = render("photo.jpg", f"width=120&format={output}")
    assert images.image_format(result.body) == output
    assert result.content_type == f"image/{output}"
    assert decode(result.body).width == 120


def test_quality_changes_the_bytes() -> None:
    assert len(render("photo.jpg", "width=300&quality=20").body) < len(render("photo.jpg", "width=300&quality=95").body)


def test_animated_gif_renders_its_first_frame() -> None:
    result = render("anim.gif", "width=60")
    decoded = decode(result.body, all_frames=True)
    assert decoded.format == "gif"
    assert (decoded.width, decoded.height, decoded.image.height) == (60, 45, 45)
    assert close_to(decoded.pixel(30, 20), RED, 10)


def test_animated_gif_keeps_every_frame_when_allowed() -> None:
    result = render("anim.gif", "width=60", animation=True)
    decoded = decode(result.body, all_frames=True)
    assert (decoded.width, decoded.height, decoded.image.height) == (60, 45, 135)
    assert close_to(decoded.pixel(30, 20), RED, 10)
    assert close_to(decoded.pixel(30, 45 + 20), GREEN, 10)
    animated_webp = render("anim.gif", "width=60&format=auto", "image/webp", animation=True)
    assert decode(animated_webp.body, all_frames=True).image.height == 135


def test_blur_and_sharpen_run() -> None:
    plain = decode(render("photo.jpg", "width=200").body)
    blurred = decode(render("photo.jpg", "width=200&blur=5").body)
    sharpened = decode(render("photo.jpg", "width=200&sharpen=2").body)
    # Noise is what a blur removes and a sharpen amplifies: the mean step between neighbours.
    def roughness(decoded: images.Decoded) -> float:
        band = decoded.image[1].cast("float")
        width, height = band.width - 1, band.height
        return float((band.extract_area(1, 0, width, height) - band.extract_area(0, 0, width, height)).abs().avg())

    assert roughness(blurred) < roughness(plain) / 2
    assert roughness(sharpened) > roughness(plain) * 1.2


def test_not_an_image_is_unprocessable() -> None:
    with pytest.raises(UnprocessableImage, match="not a decodable image"):
        render("notes.jpg", "width=100")


def test_truncated_jpeg_is_unprocessable() -> None:
    with pytest.raises(UnprocessableImage):
        render("truncated.jpg", "width=100")


def test_pixel_bomb_is_refused_from_its_header_before_any_decode() -> None:
    bomb = source("bomb.png")
    assert len(bomb) < 100_000
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    with pytest.raises(UnprocessableImage, match="400000000 pixels, over max_source_pixels 50000000"):
        render("bomb.png", "width=100")
    # Decoding it would take 400 MB at least (one byte per pixel): the peak did not move that much.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 100 * 1024


def test_blocked_loaders_are_unprocessable() -> None:
    tiff = bytes(images.solid(20, 20, RED).tiffsave_buffer())
    engine.configure()
    plan = render_plan(
        parse_transform_query([("width", "10")], TransformSettings(), {}),  # type: ignore[arg-type]
        "source",
        TransformSettings(),
        {},
    )
    with pytest.raises(UnprocessableImage):
        engine.render(tiff, plan)


def test_jpeg_shrink_is_the_largest_factor_within_the_margin() -> None:
    plan = render_plan(
        parse_transform_query([("width", "400")], TransformSettings(), {}),  # type: ignore[arg-type]
        "source",
        TransformSettings(),
        {},
    )
    assert jpeg_shrink(plan_geometry(plan, 3200, 2400), 3200, 2400) == 8
    assert jpeg_shrink(plan_geometry(plan, 2400, 1600), 2400, 1600) == 4
    assert jpeg_shrink(plan_geometry(plan, 1000, 800), 1000, 800) == 2
    assert jpeg_shrink(plan_geometry(plan, 600, 400), 600, 400) == 1
