"""``?info=json`` over a real server: the JSON document, its HTTP semantics (derived ETag, 304
without a render, Cache-Control), the signature rule, the limits, and the info of a variant."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import pyvips

from conftest import Server, get, start_server
from images import jpeg, solid
from mediasrv.signing import sign_url
from mediasrv.transforms.info import INFO_FIELDS

KEY = "k" * 40
SETTINGS = """
[transforms]
allow_unsigned = false
processes = 1
max_source_pixels = {max_pixels}

[signing]
keys = ["{key}"]

[backends.local]
kind = "local"
root = "{root}"
cache_control = "public, max-age=60"
"""


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("info") / "media"
    folder.mkdir()
    (folder / "turned.jpg").write_bytes(jpeg(300, 200, orientation=6))
    (folder / "red.png").write_bytes(bytes(solid(160, 90, (200, 30, 40)).pngsave_buffer()))
    (folder / "notes.jpg").write_text("not an image at all\n")
    return folder


def settings(media: Path, max_pixels: int = 50_000_000) -> str:
    return SETTINGS.format(max_pixels=max_pixels, key=KEY, root=media)


@pytest.fixture(scope="module")
def server(media: Path) -> Iterator[Server]:
    """One server for the module (its render pool takes a while to start on a busy machine);
    arbitrary parameters need a signature there, as by default."""
    running = start_server(media.parent / "server", settings(media))
    yield running
    running.stop()


def signed(path: str) -> str:
    return sign_url(path, KEY)


def renders(server: Server, output: str) -> float:
    """mediasrv_renders_total for the local backend and ``output``, from /metrics."""
    text = httpx.get(server.url + "/metrics", timeout=10).text
    pattern = rf'^mediasrv_renders_total\{{backend="local",format="{output}"\}} ([\d.e+]+)$'
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_info_json_of_an_oriented_jpeg(server: Server, media: Path) -> None:
    response = get(server, "/media/local/turned.jpg?info=json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "public, max-age=60"
    assert response.headers["etag"].startswith('"') and "last-modified" in response.headers
    assert "vary" not in response.headers
    info = response.json()
    assert list(info) == list(INFO_FIELDS)
    assert (info["width"], info["height"], info["orientation"]) == (200, 300, 6)
    assert (info["format"], info["has_alpha"], info["pages"]) == ("jpeg", False, 1)
    assert info["bytes"] == (media / "turned.jpg").stat().st_size
    assert re.fullmatch(r"#[0-9a-f]{6}", info["dominant_color"])
    assert len(info["blurhash"]) == 4 + 2 * (4 * 3 - 1) + 2  # 4x3 components by default
    assert base64.b64decode(info["thumbhash"])
    assert info["lqip"].startswith("data:image/webp;base64,") and len(info["lqip"]) < 1024
    lqip = pyvips.Image.new_from_buffer(base64.b64decode(info["lqip"].split(",", 1)[1]), "")
    assert lqip.height > lqip.width


def test_info_fields_limit_the_document(server: Server, media: Path) -> None:
    response = get(server, "/media/local/red.png?info=json&fields=height,width,dominant_color")
    assert response.status_code == 200, response.text
    assert response.json() == {"width": 160, "height": 90, "dominant_color": "#c81e28"}
    whole = get(server, "/media/local/red.png?info=json")
    assert whole.headers["etag"] != response.headers["etag"]


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("info=xml", "info"),
        ("info=json&info=json", "info"),
        ("info=json&fields=width,colour", "fields"),
        ("fields=width", "fields"),
        ("info=json&width=200&widht=3", "widht"),
    ],
)
def test_info_bad_queries_are_400_naming_the_parameter(server: Server, query: str, named: str) -> None:
    response = get(server, f"/media/local/red.png?{query}")
    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith(f"{named}:")


def test_info_alone_ignores_unknown_names_like_the_original(server: Server) -> None:
    """As for the original bytes, a cache buster is harmless when nothing is transformed."""
    response = get(server, "/media/local/red.png?info=json&fields=width&v=3")
    assert response.status_code == 200
    assert response.json() == {"width": 160}


def test_info_304_without_a_render(server: Server, media: Path) -> None:
    path = "/media/local/turned.jpg?info=json&fields=width,blurhash"
    before = renders(server, "json")
    first = get(server, path)
    assert first.status_code == 200
    assert renders(server, "json") == before + 1
    again = get(server, path, **{"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.headers["etag"] == first.headers["etag"]
    assert again.content == b""
    assert renders(server, "json") == before + 1  # answered from the source's metadata alone
    assert get(server, path).headers["etag"] == first.headers["etag"]


def test_info_of_a_variant_describes_the_rendered_bytes(server: Server) -> None:
    image = get(server, signed("/media/local/turned.jpg?width=120&format=webp"))
    info = get(server, signed("/media/local/turned.jpg?width=120&format=webp&info=json"))
    assert image.status_code == 200 and info.status_code == 200, info.text
    described = info.json()
    assert (described["width"], described["height"]) == (120, 180)
    assert (described["format"], described["orientation"]) == ("webp", 1)
    assert described["bytes"] == len(image.content)
    assert info.headers["etag"] != image.headers["etag"]


def test_info_with_format_auto_varies_on_accept(server: Server) -> None:
    path = signed("/media/local/red.png?width=80&format=auto&info=json&fields=format")
    avif, legacy = get(server, path, Accept="image/avif,*/*"), get(server, path, Accept="*/*")
    assert avif.json() == {"format": "avif"} and legacy.json() == {"format": "jpeg"}  # no alpha: JPEG
    assert avif.headers["vary"] == "Accept" and legacy.headers["vary"] == "Accept"
    assert avif.headers["etag"] != legacy.headers["etag"]


def test_info_signature_rules(server: Server, media: Path) -> None:
    assert get(server, "/media/local/red.png?info=json&fields=width").status_code == 200  # no transform: public
    unsigned = get(server, "/media/local/red.png?width=40&info=json&fields=width")
    assert unsigned.status_code == 403, unsigned.text
    accepted = get(server, signed("/media/local/red.png?width=40&info=json&fields=width"))
    assert accepted.status_code == 200, accepted.text
    assert accepted.json() == {"width": 40}
    tampered = signed("/media/local/red.png?width=40&info=json&fields=width").replace("width=40", "width=41")
    assert get(server, tampered).status_code == 403


def test_info_of_a_text_file_is_422(server: Server, media: Path) -> None:
    response = get(server, "/media/local/notes.jpg?info=json")
    assert response.status_code == 422
    assert "not a decodable image" in response.json()["detail"]
    assert get(server, "/media/local/notes.jpg").content == b"not an image at all\n"  # the original is unchanged


def test_info_over_max_source_pixels_is_422(make_server: Callable[..., Server], media: Path) -> None:
    server = make_server(settings(media, max_pixels=10_000))
    response = get(server, "/media/local/turned.jpg?info=json&fields=width")
    assert response.status_code == 422
    assert "max_source_pixels" in response.json()["detail"]
