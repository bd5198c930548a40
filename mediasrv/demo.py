"""``GET /demo/`` (``[server] demo = true``): every image in a folder backend, as a front end
would show it: ``<img srcset>`` at three widths with ``format=auto``, laid out before it loads
by its ``?info=json`` (the box's aspect ratio, then its LQIP and dominant colour as the
placeholder, with its BlurHash and ThumbHash beside them for scripts).

The page is rendered on the server, so the placeholders are in the HTML the browser first
parses, before any image request; every value is escaped.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from html import escape
from pathlib import Path
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from mediasrv.backend import StorageBackend
from mediasrv.errors import MediaError
from mediasrv.registry import BackendRegistry
from mediasrv.responses import error_response
from mediasrv.settings import ConfigError
from mediasrv.transforms.info import InfoDocument

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".avif"})
PLACEHOLDER_FIELDS = ("width", "height", "format", "bytes", "dominant_color", "blurhash", "thumbhash", "lqip")
MAX_WIDTH = 1280  # the srcset's largest candidate; the others are a half and a quarter of it
COLUMN = 640  # CSS pixels the page's column is wide

Describe = Callable[[StorageBackend, str, tuple[str, ...]], Awaitable[InfoDocument]]
"""``describe(backend, key, fields)``: the ``?info=json`` document of one image."""


@dataclass(frozen=True)
class Sample:
    """One image of the page: where it is and what ``?info=json`` said about it."""

    backend: str
    key: str
    info: InfoDocument

    def url(self, width: int) -> str:
        return f"/media/{quote(self.backend)}/{quote(self.key)}?width={width}&format=auto"

    @property
    def widths(self) -> list[int]:
        """Three widths, never above the image's own (a render never enlarges by default)."""
        largest = min(MAX_WIDTH, int(self.info["width"]))
        return sorted({max(1, largest // 4), max(1, largest // 2), largest})

    @property
    def sizes(self) -> str:
        """How wide the image is shown: the column, or its own width when it is narrower."""
        shown = min(COLUMN, int(self.info["width"]))
        return f"(max-width: {COLUMN + 40}px) 100vw, {shown}px"


class DemoPage:
    """The page's route: lists the backend's folder and describes each image on each request
    (the info is rendered in the workers; the result cache keeps it when configured)."""

    def __init__(self, registry: BackendRegistry, backend: str, describe: Describe) -> None:
        self.registry = registry
        self.backend = backend
        self.folder = demo_folder(registry, backend)
        self.describe = describe

    async def handle(self, request: Request) -> Response:
        try:
            backend = self.registry.get(self.backend)
        except MediaError as exc:
            return error_response(exc)
        samples = []
        for key in image_keys(self.folder):
            try:
                samples.append(Sample(self.backend, key, await self.describe(backend, key, PLACEHOLDER_FIELDS)))
            except MediaError:
                continue  # a file that is no image (or too big) is left out, not a broken page
        return HTMLResponse(render_demo_page(samples), headers={"cache-control": "no-cache"})


def demo_folder(registry: BackendRegistry, backend: str) -> Path:
    """The folder of the demo's backend: it must be one with a ``root`` folder (kind local)."""
    if backend not in registry.backends:
        raise ConfigError(f"server.demo_backend: no backend named {backend!r}")
    root = getattr(registry.backends[backend].settings, "root", None)
    if not isinstance(root, Path):
        raise ConfigError(f"server.demo_backend: backend {backend!r} has no root folder to list (use a local one)")
    return root


def image_keys(folder: Path) -> list[str]:
    """The keys of the image files directly in ``folder`` (not hidden), sorted."""
    if not folder.is_dir():
        return []
    return sorted(
        path.name
        for path in folder.iterdir()
        if path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES
    )


STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; margin: 2em auto; max-width: 680px; padding: 0 1em; color: #222; }
figure { margin: 0 0 2.5em; }
.frame { position: relative; overflow: hidden; background-size: cover; background-position: center; }
.frame img { position: absolute; inset: 0; width: 100%; height: 100%; opacity: 0; transition: opacity .4s; }
.frame.loaded img { opacity: 1; }
figcaption { color: #555; font-size: 13px; margin-top: .4em; }
code { font-size: 12px; word-break: break-all; }
"""


def render_demo_page(samples: list[Sample]) -> str:
    """The whole page."""
    figures = "\n".join(_figure(sample) for sample in samples) or "<p>No images in the demo folder.</p>"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mediasrv demo</title>
<style>{STYLE}</style>
</head>
<body>
<h1>mediasrv demo</h1>
<p>Each image below is one <code>&lt;img srcset&gt;</code> at three widths with
<code>format=auto</code>: your browser picks the width, and mediasrv the best format its
<code>Accept</code> header allows. Until the image arrives, its box already has the right
aspect ratio and shows the LQIP and dominant colour from <code>?info=json</code>.</p>
{figures}
</body>
</html>
"""


def _figure(sample: Sample) -> str:
    info = sample.info
    width, height = int(info["width"]), int(info["height"])
    srcset = ", ".join(f"{escape(sample.url(w))} {w}w" for w in sample.widths)
    frame_style = (
        f"aspect-ratio: {width} / {height}; max-width: {width}px;"
        f" background-color: {escape(str(info['dominant_color']))};"
        f" background-image: url({escape(str(info['lqip']))})"
    )
    info_url = f"/media/{quote(sample.backend)}/{quote(sample.key)}?info=json"
    return f"""<figure>
<div class="frame placeholder" style="{frame_style}" data-width="{width}" data-height="{height}"
 data-blurhash="{escape(str(info["blurhash"]))}" data-thumbhash="{escape(str(info["thumbhash"]))}">
<img src="{escape(sample.url(sample.widths[len(sample.widths) // 2]))}" srcset="{srcset}" sizes="{sample.sizes}"
 width="{width}" height="{height}" alt="{escape(sample.key)}" decoding="async"
 onload="this.parentElement.classList.add('loaded')">
</div>
<figcaption>{escape(sample.key)}: {width}&times;{height} {escape(str(info["format"]))},
{int(info["bytes"]):,} bytes; <a href="{escape(info_url)}">info</a>,
BlurHash <code>{escape(str(info["blurhash"]))}</code></figcaption>
</figure>"""
