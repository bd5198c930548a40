"""The worker side of ``?info=json`` on images made here: facts from the header, placeholders
from a small thumbnail, and a 50 MP source in bounded memory."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import blurhash
import pytest
import pyvips
import thash
from blurhash.blurhash import base83_decode

from conftest import PROJECT_DIR
from images import RED as RED_CMYK_SOURCE
from images import animated_gif, close_to, cmyk_jpeg, jpeg, photo, solid
from mediasrv.errors import UnprocessableImage
from mediasrv.transforms import describe
from mediasrv.transforms.info import INFO_FIELDS, InfoRequest

MAX_PIXELS = 50_000_000


def image_info(source: bytes, request: InfoRequest) -> dict[str, object]:
    return describe.image_info(source, request, MAX_PIXELS)

RED = (200, 30, 40)


def webp_data(url: str) -> bytes:
    prefix = "data:image/webp;base64,"
    assert url.startswith(prefix)
    return base64.b64decode(url.removeprefix(prefix))


def test_info_jpeg_orientation_6_reports_displayed_size() -> None:
    source = jpeg(300, 200, orientation=6)
    info = image_info(source, InfoRequest())
    assert list(info) == list(INFO_FIELDS)
    assert (info["width"], info["height"]) == (200, 300)
    assert info["orientation"] == 6
    assert info["format"] == "jpeg"
    assert info["has_alpha"] is False
    assert info["pages"] == 1
    assert info["bytes"] == len(source)
    lqip = pyvips.Image.new_from_buffer(webp_data(info["lqip"]), "")
    assert lqip.height > lqip.width  # the placeholder is oriented like the image shown


def test_info_solid_colour_placeholders_decode_back_to_it() -> None:
    info = image_info(bytes(solid(120, 80, RED).pngsave_buffer()), InfoRequest())
    assert info["dominant_color"] == "#c81e28"
    # BlurHash's DC term is the average colour, in 24-bit sRGB after the size and AC-range characters.
    assert base83_decode(info["blurhash"][2:6]) == (RED[0] << 16) | (RED[1] << 8) | RED[2]
    decoded = [pixel for row in blurhash.decode(info["blurhash"], 32, 32) for pixel in row]
    for band, want in enumerate(RED):
        assert sum(pixel[band] for pixel in decoded) / len(decoded) == pytest.approx(want, abs=1)
    average = thash.thumb_hash_to_average_rgba(list(base64.b64decode(info["thumbhash"])))
    assert all(abs(got * 255 - want) <= 6 for got, want in zip(average[:3], RED, strict=True)), average
    assert average[3] == pytest.approx(1.0)
    assert thash.thumb_hash_to_approximate_aspect_ratio(list(base64.b64decode(info["thumbhash"]))) == pytest.approx(
        1.5, rel=0.15
    )
    lqip = pyvips.Image.new_from_buffer(webp_data(info["lqip"]), "")
    assert len(info["lqip"]) < 1024
    assert lqip.width / lqip.height == pytest.approx(1.5, rel=0.1)
    assert [round(value) for value in lqip.getpoint(lqip.width // 2, lqip.height // 2)[:3]] == pytest.approx(
        list(RED), abs=12
    )


def test_info_blurhash_components_are_configurable() -> None:
    source = bytes(photo(200, 150).jpegsave_buffer())
    default = image_info(source, InfoRequest(fields=("blurhash",)))["blurhash"]
    wide = image_info(source, InfoRequest(fields=("blurhash",), blurhash_components=(9, 2)))["blurhash"]
    assert blurhash.components(default) == (4, 3)
    assert blurhash.components(wide) == (9, 2)
    assert len(wide) == 4 + 2 * 9 * 2  # size flag, max AC, DC (4), then 2 characters per AC component


def test_info_png_with_alpha() -> None:
    image = photo(64, 48).bandjoin((pyvips.Image.xyz(64, 48)[0] * 4).cast("uchar"))  # alpha ramps 0 -> 252
    info = image_info(bytes(image.pngsave_buffer()), InfoRequest())
    assert info["format"] == "png"
    assert info["has_alpha"] is True
    hashed = list(base64.b64decode(info["thumbhash"]))
    assert thash.thumb_hash_to_average_rgba(hashed)[3] < 0.9  # ThumbHash keeps the transparency
    assert pyvips.Image.new_from_buffer(webp_data(info["lqip"]), "").hasalpha()


def test_info_fully_transparent_image_still_has_a_colour() -> None:
    info = image_info(bytes(solid(20, 20, (10, 200, 10, 0)).pngsave_buffer()), InfoRequest(fields=("dominant_color",)))
    assert info == {"dominant_color": "#0ac80a"}


def test_info_animated_gif_counts_frames() -> None:
    info = image_info(animated_gif(40, 30), InfoRequest(fields=("width", "height", "format", "pages")))
    assert info == {"width": 40, "height": 30, "format": "gif", "pages": 3}


def test_info_sixteen_bit_png_and_grey_jpeg() -> None:
    sixteen = (photo(50, 40).cast("ushort") * 256).copy(interpretation="rgb16")
    grey = solid(50, 40, (90,)).copy(interpretation="b-w")
    for source in (bytes(sixteen.pngsave_buffer()), bytes(grey.jpegsave_buffer())):
        info = image_info(source, InfoRequest(fields=("width", "height", "dominant_color", "thumbhash")))
        assert (info["width"], info["height"]) == (50, 40)
        assert info["dominant_color"].startswith("#") and len(info["dominant_color"]) == 7
    assert info["dominant_color"] == "#5a5a5a"


def test_info_cmyk_jpeg_placeholders_are_srgb() -> None:
    info = image_info(cmyk_jpeg(), InfoRequest(fields=("format", "dominant_color", "lqip")))
    assert info["format"] == "jpeg"
    colour = tuple(int(info["dominant_color"][i : i + 2], 16) for i in (1, 3, 5))
    assert close_to(colour, RED_CMYK_SOURCE), colour
    lqip = pyvips.Image.new_from_buffer(webp_data(info["lqip"]), "")
    assert close_to(tuple(round(v) for v in lqip.getpoint(lqip.width // 2, lqip.height // 2)[:3]), RED_CMYK_SOURCE)


def test_info_fields_limit_the_answer_in_the_canonical_order() -> None:
    info = image_info(bytes(photo(30, 20).jpegsave_buffer()), InfoRequest(fields=("width", "bytes", "format")))
    assert list(info) == ["width", "bytes", "format"]


def test_info_header_fields_need_no_decode() -> None:
    """Without placeholders even a truncated JPEG answers from its header."""
    source = bytes(photo(300, 200).jpegsave_buffer())
    info = image_info(source[: len(source) // 2], InfoRequest(fields=("width", "height", "format")))
    assert info == {"width": 300, "height": 200, "format": "jpeg"}


@pytest.mark.parametrize("source", [b"plain text, not an image\n", b"\xff\xd8\xff\xe0 truncated"])
def test_info_not_an_image_raises(source: bytes) -> None:
    with pytest.raises(UnprocessableImage):
        image_info(source, InfoRequest())


def test_info_truncated_jpeg_placeholders_raise() -> None:
    source = bytes(photo(300, 200).jpegsave_buffer())
    with pytest.raises(UnprocessableImage, match="not a decodable image"):
        image_info(source[: len(source) // 2], InfoRequest(fields=("blurhash",)))


def test_info_over_max_pixels_is_refused_from_the_header() -> None:
    source = bytes(photo(300, 200).jpegsave_buffer())
    with pytest.raises(UnprocessableImage, match="max_source_pixels"):
        describe.image_info(source, InfoRequest(fields=("width",)), max_pixels=300 * 200 - 1)


CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    from mediasrv.transforms.describe import image_info
    from mediasrv.transforms.info import InfoRequest
    source = open(sys.argv[1], "rb").read()
    image_info(open(sys.argv[2], "rb").read(), InfoRequest(), 50_000_000)  # imports and libvips warmed up
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    info = image_info(source, InfoRequest(), 50_000_000)
    print(json.dumps({"info": info, "seconds": time.monotonic() - started,
                      "growth_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before}))
    """
)


def test_info_50_megapixel_source_in_bounded_memory(tmp_path: Path) -> None:
    """Shrink-on-load: the placeholders of a 50 MP JPEG (150 MB decoded) cost a few MB."""
    big, small = tmp_path / "big.jpg", tmp_path / "small.jpg"
    photo(8640, 5760).jpegsave(str(big), Q=75)  # 49.8 MP, under the default limit
    photo(64, 64).jpegsave(str(small))
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(big), str(small)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    measured = json.loads(result.stdout)
    assert (measured["info"]["width"], measured["info"]["height"]) == (8640, 5760)
    source_kib = big.stat().st_size // 1024
    assert measured["growth_kib"] < source_kib + 64 * 1024, measured  # a full decode alone is 146 MiB
    assert measured["seconds"] < 30, measured  # a hang guard: it takes well under a second idle


def test_readme_info_example_is_the_real_document() -> None:
    """The README's ?info=json response is what the repository's sample gives, byte for byte."""
    readme = (PROJECT_DIR / "README.md").read_text()
    block = next(block for block in re.findall(r"```json\n(.*?)```", readme, re.DOTALL) if '"blurhash"' in block)
    source = (PROJECT_DIR / "media" / "landscape.jpg").read_bytes()
    assert json.loads(block) == image_info(source, InfoRequest())
