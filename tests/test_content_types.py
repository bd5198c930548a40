"""Backend content types (issue 12 item 5): normalised to one valid type, and sandboxed unless
known passive; over a real socket from S3 (moto), and in real headless Chromium, where no
script of a dangerous type may run on the server's origin."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest
from aiohttp import web

from components import CHROMIUM_FLAGS
from conftest import Server, start_server
from mediasrv.content_types import needs_sandbox, normalise_content_type
from s3_server import MotoServer
from upstreams import Upstream, UpstreamLoop


@pytest.mark.parametrize(
    ("raw", "sent"),
    [
        ("image/png", "image/png"),
        ("Text/HTML; Charset=UTF-8", "text/html; charset=UTF-8"),
        ('text/plain;charset="utf-8" ; format=flowed', 'text/plain; charset="utf-8"; format=flowed'),
        ("text/plain;;", "text/plain"),
        ("text/plain, text/html", "application/octet-stream"),
        ("application/octet-stream,text/html", "application/octet-stream"),
        ("text/html; charset=utf-8, text/plain", "application/octet-stream"),
        ("text", "application/octet-stream"),
        ("/html", "application/octet-stream"),
        ("text/", "application/octet-stream"),
        ("text/html;charset", "application/octet-stream"),
        ('text/html; a="unterminated', "application/octet-stream"),
        ("text/ html", "application/octet-stream"),
        ("text/html\x00", "application/octet-stream"),
        ("image/png" + " " * 2000, "application/octet-stream"),
    ],
)
def test_content_types_are_rebuilt_as_one_valid_type(raw: str, sent: str) -> None:
    assert normalise_content_type(raw) == sent


@pytest.mark.parametrize(
    "content_type",
    [
        "text/html",
        "application/xhtml+xml",
        "image/svg+xml",
        "text/xml",
        "application/xml",
        "text/xsl",
        "multipart/x-mixed-replace; boundary=x",
        "message/rfc822",
        "application/x-unknown-thing",
        "text/x-component",
        "image/x+xml",
    ],
)
def test_everything_not_known_passive_is_sandboxed(content_type: str) -> None:
    assert needs_sandbox(content_type)


@pytest.mark.parametrize(
    "content_type",
    [
        "image/png",
        "image/avif",
        "video/mp4",
        "audio/mpeg",
        "font/woff2",
        "text/plain; charset=utf-8",
        "text/css",
        "application/json",
        "application/ld+json",
        "application/pdf",
        "application/octet-stream",
        "application/zip",
    ],
)
def test_passive_media_is_not_sandboxed(content_type: str) -> None:
    assert not needs_sandbox(content_type)


def page(beacons: str, name: str) -> str:
    """XHTML that loads an image (it rendered) and runs a script (it ran) against ``beacons``."""
    return (
        '<html xmlns="http://www.w3.org/1999/xhtml"><body>'
        f'<img src="{beacons}/rendered/{name}"/>'
        f'<script>new Image().src = "{beacons}/ran/{name}?origin=" + encodeURIComponent(window.origin);</script>'
        "</body></html>"
    )


def svg(beacons: str, name: str) -> str:
    return (
        '<svg xmlns="http://www.w3.org/2000/svg">'
        f'<script>new Image().src = "{beacons}/ran/{name}";</script></svg>'
    )


def dangerous_objects(beacons: str) -> dict[str, tuple[str, str]]:
    """name -> (Content-Type stored with the S3 object, body)."""
    html = {name: page(beacons, name) for name in ("xsl", "list", "octetlist", "html", "xml", "mixed", "mail")}
    return {
        "xsl": ("text/xsl", html["xsl"]),
        "list": ("text/plain, text/html", html["list"]),
        "octetlist": ("application/octet-stream,text/html", html["octetlist"]),
        "html": ("text/html", html["html"]),
        "xml": ("application/xml", html["xml"]),
        "svg": ("image/svg+xml", svg(beacons, "svg")),
        "mixed": (
            "multipart/x-mixed-replace; boundary=frame",
            f"--frame\r\nContent-Type: text/html\r\n\r\n{html['mixed']}\r\n--frame--\r\n",
        ),
        "mail": (
            "message/rfc822",
            f"From: a@example.com\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: text/html\r\n\r\n{html['mail']}",
        ),
    }


@dataclass
class Site:
    server: Server
    beacons: Upstream
    objects: dict[str, tuple[str, str]]


def beacon_app(control: dict[str, str]) -> web.Application:
    """Records every request; ``/control`` is a page served as plain text/html, no CSP."""

    async def anything(request: web.Request) -> web.StreamResponse:
        if request.path == "/control":
            return web.Response(text=control["page"], content_type="text/html")
        return web.Response(status=204)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    return app


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, moto: MotoServer) -> Iterator[Site]:
    loop = UpstreamLoop()
    control: dict[str, str] = {}
    try:
        beacons = loop.serve(lambda upstream: beacon_app(control))
        control["page"] = page(beacons.origin, "control")
        objects = dangerous_objects(beacons.origin)
        s3 = moto.client()
        s3.create_bucket(Bucket="typed")
        for name, (content_type, body) in objects.items():
            s3.put_object(Bucket="typed", Key=name, Body=body.encode(), ContentType=content_type)
        s3.put_object(Bucket="typed", Key="clip.mp4", Body=b"\0\0\0\x18ftypmp42", ContentType="video/mp4")
        server = start_server(tmp_path_factory.mktemp("typed"), moto.backend_settings("typed", "typed"))
        try:
            yield Site(server, beacons, objects)
        finally:
            server.stop()
    finally:
        loop.close()


@pytest.mark.parametrize(
    ("name", "sent"),
    [
        ("xsl", "text/xsl"),
        ("list", "application/octet-stream"),
        ("octetlist", "application/octet-stream"),
        ("mixed", "multipart/x-mixed-replace; boundary=frame"),
        ("mail", "message/rfc822"),
    ],
)
def test_backend_content_types_are_sent_normalised_and_sandboxed_as_needed(site: Site, name: str, sent: str) -> None:
    response = httpx.get(f"{site.server.url}/media/typed/{name}")
    assert response.headers["content-type"] == sent
    if sent == "application/octet-stream":  # what a browser may guess from it is stopped by nosniff
        assert "content-security-policy" not in response.headers
        assert response.headers["x-content-type-options"] == "nosniff"
    else:
        assert response.headers["content-security-policy"] == "sandbox"


def test_passive_video_is_not_sandboxed(site: Site) -> None:
    response = httpx.get(f"{site.server.url}/media/typed/clip.mp4")
    assert response.headers["content-type"] == "video/mp4"
    assert "content-security-policy" not in response.headers


def open_in_chromium(chromium: str, url: str) -> None:
    """Open ``url`` as a top-level page; stop after 2.5 s (a download never finishes a DOM dump)."""
    with tempfile.TemporaryDirectory(prefix="mediasrv-chromium-") as profile:
        process = subprocess.Popen(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--timeout=2500", "--dump-dom", url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its renderer and helpers too, so all can be stopped
        )
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            pass
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_no_dangerous_type_runs_script_in_chromium(site: Site, chromium_binary: str) -> None:
    open_in_chromium(chromium_binary, f"{site.beacons.origin}/control")
    # The control page (no sandbox) proves this Chromium runs such a script and reports it.
    assert "/ran/control" in [path.split("?")[0] for path in site.beacons.paths()]
    urls = [f"{site.server.url}/media/typed/{name}" for name in site.objects]
    with ThreadPoolExecutor(3) as pool:  # a few at a time: each is a whole browser
        list(pool.map(lambda url: open_in_chromium(chromium_binary, url), urls))
    paths = site.beacons.paths()
    ran = sorted(path for path in paths if path.startswith("/ran/") and "control" not in path)
    assert ran == []
    # They were rendered (their images loaded), so no script ran because of the sandbox.
    assert {"/rendered/xsl", "/rendered/html", "/rendered/xml"} <= set(paths)
