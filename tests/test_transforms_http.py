"""Image transforms over a real socket to a real ``mediasrv serve``, on the local, S3 (moto) and
HTTP (aiohttp) backends, with images generated at test time: sizes, formats, negotiation, the
derived ETag, 304 without a render, ranges, signatures, the 4xx/5xx cases and the plugin hook."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

import images
from conftest import Server, start_server, wait_until
from images import RED, close_to, decode
from mediasrv import sign_url
from s3_server import MotoServer
from upstreams import UpstreamLoop, files_app, ignorer_app

KEY = "k" * 40
BACKENDS = ["local", "s3", "http"]
MAX_SOURCE_BYTES = 1_000_000
FAILING_SECRET = "secret-in-a-failing-transform"  # what tests/plugins/failing_transform.py raises
WEBP_AND_AVIF = "image/avif,image/webp,image/apng,image/*,*/*;q=0.8"  # Chromium's


@dataclass
class Site:
    server: Server
    root: Path
    moto: MotoServer
    settings: str

    def get(self, path: str, signed: bool = True, **headers: str) -> httpx.Response:
        return httpx.get(self.server.url + (sign_url(path, KEY) if signed else path), headers=headers, timeout=30)

    def head(self, path: str, **headers: str) -> httpx.Response:
        return httpx.head(self.server.url + sign_url(path, KEY), headers=headers, timeout=30)

    def put(self, key: str, data: bytes) -> None:
        """Write ``key`` to every backend's source."""
        (self.root / key).write_bytes(data)
        self.moto.client().put_object(Bucket="transforms", Key=key, Body=data)

    def renders(self) -> float:
        text = httpx.get(f"{self.server.url}/metrics", timeout=10).text
        return sum(float(value) for value in re.findall(r"^mediasrv_renders_total\{[^}]*\} (\S+)$", text, re.M))

    def metric(self, name: str, labels: str) -> float:
        text = httpx.get(f"{self.server.url}/metrics", timeout=10).text
        match = re.search(rf"^{name}\{{{labels}\}} (\S+)$", text, re.M)
        return float(match.group(1)) if match else 0.0


SOURCES = {**images.SAMPLES, "large.jpg": lambda: images.jpeg(1400, 1000, quality=100)}  # over MAX_SOURCE_BYTES


def settings_text(root: Path, moto: MotoServer, files: str, ignorer: str) -> str:
    return f"""
plugins = ["grayscale_transform", "failing_transform"]

[signing]
keys = ["{KEY}"]

[transforms]
processes = 2
max_source_bytes = {MAX_SOURCE_BYTES}

[transforms.presets.thumb]
width = 100
height = 100
fit = "cover"
format = "auto"

[backends.local]
kind = "local"
root = "{root}"
cache_control = "public, max-age=600"

[backends.s3]
kind = "s3"
bucket = "transforms"
endpoint_url = "{moto.endpoint_url}"
access_key_id = "testing"
secret_access_key = "testing"

[backends.http]
kind = "http"
base_url = "{files}/files/"

[backends.chunked]
kind = "http"
base_url = "{ignorer}/chunked/"
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, moto: MotoServer) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("transform-sources")
    moto.client().create_bucket(Bucket="transforms")
    loop = UpstreamLoop()
    try:
        files, ignorer = loop.serve(files_app(root)), loop.serve(ignorer_app(root))
        text = settings_text(root, moto, files.origin, ignorer.origin)
        server = start_server(tmp_path_factory.mktemp("transform-server"), text, ("grayscale_transform", "failing_transform"))
        site = Site(server, root, moto, text)
        for key, make in SOURCES.items():
            site.put(key, make())
        assert len((root / "large.jpg").read_bytes()) > MAX_SOURCE_BYTES
        yield site
        site.server.stop()
    finally:
        loop.close()


def test_no_transform_parameter_serves_the_original_bytes(site: Site) -> None:
    response = site.get("/media/local/photo.jpg?v=3", signed=False)
    assert response.status_code == 200
    assert response.content == (site.root / "photo.jpg").read_bytes()
    assert "vary" not in response.headers
    assert site.get("/media/local/notes.jpg", signed=False).content == images.NOT_AN_IMAGE


@pytest.mark.parametrize("backend", BACKENDS)
def test_resize_and_convert(site: Site, backend: str) -> None:
    response = site.get(f"/media/{backend}/photo.jpg?width=200&format=webp")
    assert response.status_code == 200, response.text
    decoded = decode(response.content)
    assert (decoded.format, decoded.width, decoded.height) == ("webp", 200, 150)
    assert response.headers["content-type"] == "image/webp"
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "vary" not in response.headers


@pytest.mark.parametrize("backend", BACKENDS)
def test_etag_is_stable_and_a_304_needs_no_render(site: Site, backend: str) -> None:
    path = f"/media/{backend}/photo.jpg?width=120&format=auto"
    first = site.get(path, accept=WEBP_AND_AVIF)
    second = site.get(path, accept=WEBP_AND_AVIF)
    assert first.status_code == second.status_code == 200
    etag = first.headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]{32}"', etag)
    assert second.headers["etag"] == etag
    assert first.headers["vary"] == "Accept"
    assert decode(first.content).format == "avif"
    renders = site.renders()
    not_modified = site.get(path, accept=WEBP_AND_AVIF, **{"if-none-match": etag})
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert not_modified.headers["etag"] == etag
    assert not_modified.headers["vary"] == "Accept"
    since = site.get(path, accept=WEBP_AND_AVIF, **{"if-modified-since": first.headers["last-modified"]})
    assert since.status_code == 304
    assert site.renders() == renders
    # Another Accept is another variant: its own ETag.
    assert site.get(path, accept="image/webp").headers["etag"] != etag


@pytest.mark.parametrize("backend", BACKENDS)
def test_range_applies_to_the_rendered_bytes(site: Site, backend: str) -> None:
    path = f"/media/{backend}/photo.jpg?width=160&format=png"
    whole = site.get(path)
    part = site.get(path, range="bytes=0-99")
    assert part.status_code == 206
    assert part.content == whole.content[:100]
    assert part.headers["content-range"] == f"bytes 0-99/{len(whole.content)}"
    matching = site.get(path, range="bytes=-10", **{"if-range": whole.headers["etag"]})
    assert (matching.status_code, matching.content) == (206, whole.content[-10:])
    stale = site.get(path, range="bytes=0-9", **{"if-range": '"something-else"'})
    assert (stale.status_code, stale.content) == (200, whole.content)
    beyond = site.get(path, range=f"bytes={len(whole.content)}-")
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{len(whole.content)}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("key", "size", "bands"),
    [
        ("cmyk.jpg", (80, 60), 3),
        ("png16.png", (80, 60), 4),
        ("palette.png", (80, 60), 4),
        ("alpha.png", (80, 60), 4),
        ("anim.gif", (80, 60), 4),
        ("rotated.jpg", (80, 107), 3),
    ],
)
def test_every_kind_of_source_renders(site: Site, backend: str, key: str, size: tuple[int, int], bands: int) -> None:
    response = site.get(f"/media/{backend}/{key}?width=80&format=webp")
    assert response.status_code == 200, response.text
    decoded = decode(response.content)
    assert (decoded.format, (decoded.width, decoded.height)) == ("webp", size)
    assert decoded.bands == bands or (key == "anim.gif" and decoded.bands == 3)


def test_validators_come_from_the_source(site: Site) -> None:
    original = site.get("/media/local/photo.jpg", signed=False)
    rendered = site.get("/media/local/photo.jpg?width=50")
    assert rendered.headers["last-modified"] == original.headers["last-modified"]
    assert rendered.headers["cache-control"] == "public, max-age=600"
    assert rendered.headers["etag"] != original.headers["etag"]
    assert site.get("/media/local/photo.jpg?width=50", **{"if-match": '"nope"'}).status_code == 412
    assert site.get("/media/local/photo.jpg?width=50", **{"if-match": rendered.headers["etag"]}).status_code == 200


def test_head_has_the_get_headers_without_a_body(site: Site) -> None:
    get = site.get("/media/local/photo.jpg?width=70&format=jpeg")
    head = site.head("/media/local/photo.jpg?width=70&format=jpeg")
    assert head.status_code == 200
    assert head.content == b""
    for name in ("etag", "content-length", "content-type", "last-modified"):
        assert head.headers[name] == get.headers[name]


def test_vary_accept_even_when_auto_keeps_the_source_format(site: Site) -> None:
    response = site.get("/media/local/photo.jpg?width=90&format=auto", accept="*/*")
    assert decode(response.content).format == "jpeg"
    assert response.headers["vary"] == "Accept"
    transparent = site.get("/media/local/alpha.png?width=90&format=auto", accept="image/jpeg,*/*")
    assert decode(transparent.content).format == "png"
    assert transparent.headers["vary"] == "Accept"


def test_orientation_and_alpha_survive_the_server(site: Site) -> None:
    rotated = decode(site.get("/media/s3/rotated.jpg?width=150").content)
    assert (rotated.width, rotated.height) == (150, 200)
    assert close_to(rotated.pixel(140, 10), RED, 60)
    transparent = decode(site.get("/media/http/alpha.png?width=100&format=webp").content)
    assert transparent.bands == 4 and transparent.pixel(90, 10)[3] == 0


def test_animated_gif_is_rendered_as_its_first_frame(site: Site) -> None:
    decoded = decode(site.get("/media/local/anim.gif?width=60").content, all_frames=True)
    assert (decoded.format, decoded.width, decoded.image.height) == ("gif", 60, 45)


def test_new_etag_when_the_source_changes(site: Site) -> None:
    for backend in BACKENDS:
        site.put("changing.jpg", images.jpeg(300, 200))
        before = site.get(f"/media/{backend}/changing.jpg?width=100")
        time.sleep(1.1)  # whole-second Last-Modified: make the change visible to every source
        site.put("changing.jpg", images.jpeg(320, 200))
        after = site.get(f"/media/{backend}/changing.jpg?width=100")
        assert before.status_code == after.status_code == 200
        assert before.headers["etag"] != after.headers["etag"], backend
        assert site.get(f"/media/{backend}/changing.jpg?width=100", **{"if-none-match": before.headers["etag"]}).status_code == 200


def test_etag_is_stable_across_restarts(site: Site, tmp_path: Path) -> None:
    path = "/media/s3/photo.jpg?width=110&format=webp"
    etag = site.get(path).headers["etag"]
    other = start_server(tmp_path / "again", site.settings, ("grayscale_transform", "failing_transform"))
    try:
        again = httpx.get(other.url + sign_url(path, KEY), timeout=30)
        assert again.headers["etag"] == etag
        assert again.content == site.get(path).content
    finally:
        other.stop()


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("width=100&colour=red", "colour"),
        ("width=100&width=200", "width"),
        ("width=0", "width"),
        ("width=5000", "width"),
        ("height=-1", "height"),
        ("fit=squash", "fit"),
        ("width=10&gravity=up", "gravity"),
        ("format=bmp", "format"),
        ("width=10&quality=500", "quality"),
        ("width=10&dpr=9", "dpr"),
        ("width=10&blur=0", "blur"),
        ("width=10&sharpen=x", "sharpen"),
        ("width=10&enlarge=2", "enlarge"),
        ("width=10&grayscale=maybe", "grayscale"),
        ("preset=nope", "preset"),
    ],
)
def test_bad_parameters_are_400_naming_them(site: Site, query: str, parameter: str) -> None:
    renders = site.renders()
    response = site.get(f"/media/local/photo.jpg?{query}")
    assert response.status_code == 400
    assert response.json()["detail"].startswith(f"{parameter}: ")
    assert site.renders() == renders


def test_a_render_that_fails_unexpectedly_is_a_502_without_its_message(site: Site) -> None:
    before = site.metric("mediasrv_errors_total", 'backend="local",kind="render_failed"')
    response = site.get("/media/local/photo.jpg?width=100&explode=1")
    assert response.status_code == 502
    assert response.json() == {"detail": "render failed"}
    assert FAILING_SECRET not in response.text
    assert site.metric("mediasrv_errors_total", 'backend="local",kind="render_failed"') == before + 1
    assert FAILING_SECRET in site.server.log()  # logged for the operator
    assert site.get("/media/local/photo.jpg?width=100").status_code == 200  # the worker serves on


def test_arbitrary_parameters_need_a_signature(site: Site) -> None:
    missing = site.get("/media/local/photo.jpg?width=100", signed=False)
    assert missing.status_code == 403
    assert "signature required" in missing.json()["detail"]
    signed = sign_url("/media/local/photo.jpg?width=100", KEY)
    tampered = signed.replace("width=100", "width=101")
    assert site.get(tampered, signed=False).status_code == 403
    assert site.get(signed, signed=False).status_code == 200
    expired = sign_url("/media/local/photo.jpg?width=100&exp=1000", KEY)
    assert site.get(expired, signed=False).json()["detail"] == "signature expired"


def test_presets_need_no_signature(site: Site) -> None:
    thumb = site.get("/media/local/photo.jpg?preset=thumb", signed=False, accept="image/webp")
    assert thumb.status_code == 200
    decoded = decode(thumb.content)
    assert (decoded.format, decoded.width, decoded.height) == ("webp", 100, 100)
    assert thumb.headers["vary"] == "Accept"
    retina = decode(site.get("/media/local/photo.jpg?preset=thumb&dpr=2&format=png", signed=False).content)
    assert (retina.format, retina.width, retina.height) == ("png", 200, 200)
    mixed = site.get("/media/local/photo.jpg?preset=thumb&width=30", signed=False)
    assert mixed.status_code == 400
    assert mixed.json()["detail"].startswith("width: ")


@pytest.mark.parametrize(
    ("key", "detail"),
    [
        ("notes.jpg", "not a decodable image"),
        ("truncated.jpg", "not a decodable image"),
        ("bomb.png", "over max_source_pixels"),
        ("large.jpg", "over max_source_bytes"),
    ],
)
def test_unprocessable_sources_are_422(site: Site, key: str, detail: str) -> None:
    for backend in BACKENDS:
        response = site.get(f"/media/{backend}/{key}?width=100")
        assert response.status_code == 422, (backend, response.text)
        assert detail in response.json()["detail"]


def test_max_source_bytes_stops_reading_a_source_of_unknown_size(site: Site) -> None:
    response = site.get("/media/chunked/large.jpg?width=100")
    assert response.status_code == 422
    assert "over max_source_bytes" in response.json()["detail"]
    assert site.get("/media/chunked/photo.jpg?width=100").status_code == 200


def test_pixel_bomb_is_refused_with_flat_memory(site: Site) -> None:
    for _ in range(3):
        assert site.get("/media/local/bomb.png?width=100").status_code == 422
    workers = render_workers(site.server)
    assert len(workers) == 2
    # Peak resident memory of each render process (VmHWM): decoding 400 MP would take 400 MB+.
    for worker in workers:
        peak = next(line for line in Path(f"/proc/{worker.pid}/status").read_text().splitlines() if line.startswith("VmHWM"))
        assert int(peak.split()[1]) < 200 * 1024, peak


def test_plugin_operation_end_to_end(site: Site) -> None:
    response = site.get("/media/local/photo.jpg?width=100&grayscale=1&format=png")
    assert response.status_code == 200
    decoded = decode(response.content)
    assert decoded.bands == 1 or all(len(set(decoded.pixel(x, 10)[:3])) == 1 for x in (5, 50, 95))
    colour = decode(site.get("/media/local/photo.jpg?width=100&grayscale=0&format=png").content)
    assert colour.bands == 3 and len(set(colour.pixel(5, 10))) > 1


def test_operations_are_listed_in_admin_and_the_cli(site: Site) -> None:
    plugins = {plugin["name"]: plugin for plugin in httpx.get(f"{site.server.url}/admin/plugins").json()["plugins"]}
    assert plugins["grayscale_transform"]["operations"] == ["grayscale"]
    assert plugins["grayscale_transform"]["hooks"] == ["mediasrv_register_transforms"]
    assert plugins["transforms"]["operations"] == ["blur", "sharpen"]
    result = subprocess.run(
        [sys.executable, "-m", "mediasrv", "plugins", "--json", "--config", str(site.server.config_dir / "settings.toml")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=site.server.config_dir,
    )
    assert result.returncode == 0, result.stderr
    listed = {plugin["name"]: plugin for plugin in json.loads(result.stdout)["plugins"]}
    assert listed["grayscale_transform"]["operations"] == ["grayscale"]


def test_access_log_has_the_canonical_options_and_never_the_signature(site: Site) -> None:
    site.get("/media/local/photo.jpg?width=77&dpr=2&format=webp&fit=contain")
    assert wait_until(lambda: '"transform": "format=webp&width=154"' in site.server.log())
    line = next(line for line in site.server.log().splitlines() if '"transform": "format=webp&width=154"' in line)
    assert "sig" not in line


def test_render_metrics(site: Site) -> None:
    before = site.metric("mediasrv_renders_total", 'backend="local",format="gif"')
    site.get("/media/local/photo.jpg?width=33&format=gif")
    assert site.metric("mediasrv_renders_total", 'backend="local",format="gif"') == before + 1
    for stage in ("fetch", "transform", "encode"):
        assert site.metric("mediasrv_render_seconds_count", f'stage="{stage}"') > 0
    text = httpx.get(f"{site.server.url}/metrics").text
    assert "mediasrv_render_queue_depth 0.0" in text


# A server of its own, one render process and a queue of one, with the slow test operation.
@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("tight-sources")
    (root / "photo.jpg").write_bytes(images.jpeg(400, 300))
    settings = f"""
plugins = ["slow_transform"]

[transforms]
allow_unsigned = true
processes = 1
queue = 1
timeout = 2

[backends.local]
kind = "local"
root = "{root}"
"""
    server = start_server(tmp_path_factory.mktemp("tight-server"), settings, ("slow_transform",))
    assert httpx.get(f"{server.url}/media/local/photo.jpg?width=10", timeout=30).status_code == 200  # worker up
    yield server
    server.stop()


def render_workers(server: Server) -> list[psutil.Process]:
    children = psutil.Process(server.process.pid).children()
    return [child for child in children if "spawn_main" in " ".join(child.cmdline())]


def test_queue_overflow_under_a_bounded_burst_is_503(tight: Server) -> None:
    def fetch(index: int) -> httpx.Response:
        return httpx.get(f"{tight.url}/media/local/photo.jpg?width={20 + index}&delay=0.5", timeout=30)

    with ThreadPoolExecutor(8) as executor:
        responses = list(executor.map(fetch, range(8)))
    statuses = sorted(response.status_code for response in responses)
    assert statuses.count(200) >= 2  # one rendering, one waiting
    assert statuses.count(503) >= 4
    refused = next(response for response in responses if response.status_code == 503)
    assert refused.headers["retry-after"] == "1"
    assert "queue is full" in refused.json()["detail"]
    assert 'reason="queue_full"' in httpx.get(f"{tight.url}/metrics").text
    assert httpx.get(f"{tight.url}/media/local/photo.jpg?width=15", timeout=30).status_code == 200


def test_a_render_over_the_timeout_is_503(tight: Server) -> None:
    started = time.perf_counter()
    response = httpx.get(f"{tight.url}/media/local/photo.jpg?width=10&delay=20", timeout=30)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert time.perf_counter() - started < 15  # the render would have taken 20 s
    assert httpx.get(f"{tight.url}/media/local/photo.jpg?width=11", timeout=30).status_code == 200


def test_a_killed_render_worker_is_replaced_and_its_request_503(tight: Server) -> None:
    with ThreadPoolExecutor(1) as executor:
        pending = executor.submit(
            httpx.get, f"{tight.url}/media/local/photo.jpg?width=12&delay=1.5", timeout=30
        )
        time.sleep(0.5)
        (worker,) = render_workers(tight)
        worker.kill()
        response = pending.result()
    assert response.status_code == 503
    assert "worker died" in response.json()["detail"]
    assert httpx.get(f"{tight.url}/media/local/photo.jpg?width=13", timeout=30).status_code == 200
    assert [process.pid for process in render_workers(tight)] != [worker.pid]


def test_the_embedded_settings_serve_the_readme_example(tmp_path: Path) -> None:
    from conftest import PROJECT_DIR

    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "landscape.jpg").write_bytes((PROJECT_DIR / "media" / "landscape.jpg").read_bytes())
    server = start_server(tmp_path, (PROJECT_DIR / "settings.toml").read_text())
    try:
        response = httpx.get(f"{server.url}/media/local/landscape.jpg?width=200&format=webp", timeout=30)
        assert response.status_code == 200
        decoded = decode(response.content)
        assert (decoded.format, decoded.width) == ("webp", 200)
    finally:
        server.stop()
