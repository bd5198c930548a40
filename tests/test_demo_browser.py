"""``/demo/`` in a real headless Chromium: while every image request is held back (DevTools'
Fetch domain), each placeholder is already in the DOM with its image's aspect ratio; once let
through, each image decoded at the width its srcset candidate asked, in AVIF or WebP as
Chromium's own Accept header allowed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import pyvips

from browser import Page, chromium
from conftest import Server, get, start_server
from images import jpeg, photo

# name -> (width, height) as displayed
IMAGES = {"wide.jpg": (1600, 1000), "turned.jpg": (800, 1200), "cutout.png": (600, 400)}
VIEWPORT = {"width": 800, "height": 600, "deviceScaleFactor": 1, "mobile": False}

PLACEHOLDERS = """
[...document.querySelectorAll('.frame')].map(frame => {
  const box = frame.getBoundingClientRect();
  const img = frame.querySelector('img');
  return {alt: img.alt, ratio: box.width / box.height, width: box.width,
          background: getComputedStyle(frame).backgroundImage,
          complete: img.complete, naturalWidth: img.naturalWidth};
})
"""
# Each image's own pixels, read through a fresh Image of its chosen candidate (the <img>'s
# naturalWidth is divided by the srcset density; this one is not).
DECODED = """
Promise.all([...document.querySelectorAll('.frame img')].map(async img => {
  await img.decode();
  const probe = new Image();
  probe.src = img.currentSrc;
  await probe.decode();
  return {alt: img.alt, src: img.currentSrc, naturalWidth: probe.naturalWidth, loaded: img.complete};
}))
"""


@pytest.fixture
def demo_server(tmp_path: Path) -> Any:
    media = tmp_path / "media"
    media.mkdir()
    (media / "wide.jpg").write_bytes(bytes(photo(1600, 1000).jpegsave_buffer(Q=85)))
    (media / "turned.jpg").write_bytes(jpeg(1200, 800, orientation=6))
    cutout = photo(600, 400).bandjoin((pyvips.Image.xyz(600, 400)[0] * 0.4).cast("uchar"))
    (media / "cutout.png").write_bytes(bytes(cutout.pngsave_buffer()))
    (media / "readme.txt").write_text("not an image: not listed\n")
    settings = f"""
[server]
demo = true
demo_backend = "local"

[transforms]
allow_unsigned = true

[backends.local]
kind = "local"
root = "{media}"
"""
    server = start_server(tmp_path / "server", settings)
    yield server
    server.stop()


def test_demo_page_lists_the_images_with_placeholders(demo_server: Server) -> None:
    response = get(demo_server, "/demo/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert page.count('<img src="/media/local/') == len(IMAGES)
    assert "readme.txt" not in page
    assert 'srcset="/media/local/wide.jpg?width=320&amp;format=auto 320w, ' in page
    assert "aspect-ratio: 800 / 1200" in page  # turned.jpg as displayed
    assert page.count("background-image: url(data:image/webp;base64,") == len(IMAGES)


def test_demo_is_off_unless_asked(make_server: Any, tmp_path: Path) -> None:
    server = make_server(f'[backends.local]\nkind = "local"\nroot = "{tmp_path}"\n')
    assert httpx.get(server.url + "/demo/", timeout=10).status_code == 404


def test_demo_needs_a_folder_backend(tmp_path: Path) -> None:
    settings = f'[server]\ndemo = true\ndemo_backend = "photos"\n\n[backends.local]\nkind = "local"\nroot = "{tmp_path}"\n'
    with pytest.raises(AssertionError, match="server.demo_backend: no backend named 'photos'"):
        start_server(tmp_path / "server", settings)


def test_demo_in_chromium(demo_server: Server, chromium_binary: str) -> None:
    asyncio.run(_check_in_chromium(chromium_binary, demo_server.url))


async def _check_in_chromium(binary: str, origin: str) -> None:
    async with chromium(binary) as browser:
        page = await browser.new_page()
        await page.call("Emulation.setDeviceMetricsOverride", **VIEWPORT)
        await page.call("Network.enable")
        await page.call("Page.enable")
        await page.call("Fetch.enable", patterns=[{"urlPattern": "*/media/*", "resourceType": "Image"}])
        await page.call("Page.navigate", url=f"{origin}/demo/")
        held = [await page.wait_for("Fetch.requestPaused") for _ in IMAGES]
        await _check_placeholders(page)
        for request in held:
            accept = request["params"]["request"]["headers"]["Accept"]
            assert "image/avif" in accept and "image/webp" in accept, accept  # Chromium's own
            await page.call("Fetch.continueRequest", requestId=request["params"]["requestId"])
        await page.wait_for("Page.loadEventFired")
        decoded = await page.evaluate(DECODED)
        _check_decoded(decoded, page)


async def _check_placeholders(page: Page) -> None:
    """Every image request is held: the boxes are laid out from the info, showing the LQIP."""
    await page.wait_for("Page.domContentEventFired")
    frames = await page.evaluate(PLACEHOLDERS)
    assert sorted(frame["alt"] for frame in frames) == sorted(IMAGES)
    for frame in frames:
        width, height = IMAGES[frame["alt"]]
        assert frame["ratio"] == pytest.approx(width / height, rel=0.01), frame
        assert frame["width"] > 100, frame
        assert frame["background"].startswith('url("data:image/webp;base64,'), frame
        assert not frame["complete"] and frame["naturalWidth"] == 0, frame  # the image has not arrived


def _check_decoded(decoded: list[dict[str, Any]], page: Page) -> None:
    assert sorted(image["alt"] for image in decoded) == sorted(IMAGES)
    for image in decoded:
        asked = int(parse_qs(urlsplit(image["src"]).query)["width"][0])
        assert image["loaded"] and image["naturalWidth"] == asked, image
    responses = [
        event["params"]["response"] for event in page.events("Network.responseReceived")
        if "/media/" in event["params"]["response"]["url"]
    ]  # fmt: skip
    assert len(responses) >= len(IMAGES)
    for response in responses:
        assert response["status"] == 200, response["url"]
        assert response["mimeType"] in ("image/avif", "image/webp"), response
        assert response["headers"].get("Vary", response["headers"].get("vary")) == "Accept"
