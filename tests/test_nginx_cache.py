"""deploy/nginx-mediasrv.conf, run by Debian's nginx in front of a real mediasrv: repeats are
cache hits, expired entries are revalidated with a 304 from mediasrv, Vary: Accept keeps
AVIF and JPEG clients apart, Range requests are answered correctly, and /admin/ is refused."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cached_render import renders, settings, size_of
from conftest import PROJECT_DIR, Server, free_port, scrape, start_server, value
from images import jpeg
from s3_server import terminate

DEPLOYED = PROJECT_DIR / "deploy" / "nginx-mediasrv.conf"
MAX_AGE = 1  # seconds an object of backend "short" stays fresh in nginx

MAIN_CONF = """\
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {work}/access.log;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    include {work}/mediasrv.conf;
}}
"""


def deployed_config(work: Path, listen: int, upstream: int) -> str:
    """The shipped file with this test's ports and cache folder, each replaced exactly once."""
    text = DEPLOYED.read_text()
    for shipped, here in (
        ("listen 80;", f"listen 127.0.0.1:{listen};"),
        ("server 127.0.0.1:8000;", f"server 127.0.0.1:{upstream};"),
        ("/var/cache/nginx/mediasrv", str(work / "cache")),
    ):
        assert text.count(shipped) == 1, shipped
        text = text.replace(shipped, here)
    return text


@dataclass
class Front:
    nginx: subprocess.Popen[bytes]
    port: int
    mediasrv: Server

    def get(self, path: str, **headers: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.port}{path}", headers=headers, timeout=20)


def start_nginx(binary: str, work: Path, upstream: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    (work / "mediasrv.conf").write_text(deployed_config(work, port, upstream))
    (work / "nginx.conf").write_text(MAIN_CONF.format(work=work))
    argv = [binary, "-c", str(work / "nginx.conf"), "-p", str(work), "-e", str(work / "error.log"), "-g", "daemon off;"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"nginx exited with {process.returncode}: {(work / 'error.log').read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process, port
        except OSError:
            time.sleep(0.05)
    terminate(process)
    raise AssertionError("nginx did not listen within 10 s")


@pytest.fixture(scope="module")
def front(nginx_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    root = tmp_path_factory.mktemp("nginx-front")
    media = root / "media"
    media.mkdir()
    for name in ("hit.jpg", "revalidate.jpg", "vary.jpg", "range.jpg"):
        (media / name).write_bytes(jpeg(640, 480))
    # Backend "short" serves the same folder, fresh for only MAX_AGE seconds in nginx.
    short = f'[backends.short]\nkind = "local"\nroot = "{media}"\ncache_control = "public, max-age={MAX_AGE}"\n'
    text = settings(media, root / "cache", short)
    mediasrv = start_server(root / "server", text)
    # Outside pytest's private temporary folder: nginx's workers run as nobody when its master
    # is root, and must reach their cache folder.
    work = Path(tempfile.mkdtemp(prefix="mediasrv-nginx-"))
    work.chmod(0o777)
    try:
        nginx, port = start_nginx(nginx_binary, work, mediasrv.port)
        yield Front(nginx, port, mediasrv)
        terminate(nginx)
    finally:
        mediasrv.stop()
        shutil.rmtree(work, ignore_errors=True)


def mediasrv_gets(front: Front, status: int, backend: str = "local") -> float:
    samples = scrape(front.mediasrv)
    return value(samples, "mediasrv_requests_total", backend=backend, method="GET", status=str(status))


def test_a_repeated_request_is_an_nginx_hit(front: Front) -> None:
    before = mediasrv_gets(front, 200)
    first = front.get("/media/local/hit.jpg?width=200")
    second = front.get("/media/local/hit.jpg?width=200")
    assert (first.headers["x-cache-status"], second.headers["x-cache-status"]) == ("MISS", "HIT")
    assert second.content == first.content and size_of(second.content) == (200, 150)
    assert second.headers["etag"] == first.headers["etag"]
    assert mediasrv_gets(front, 200) == before + 1


@pytest.mark.parametrize("query", ["", "?width=300"], ids=["original", "variant"])
def test_an_expired_entry_is_revalidated_with_a_304_from_mediasrv(front: Front, query: str) -> None:
    first = front.get(f"/media/short/revalidate.jpg{query}")
    assert first.headers["x-cache-status"] in ("MISS", "EXPIRED", "REVALIDATED")
    renders_before, not_modified_before = renders(front.mediasrv), mediasrv_gets(front, 304, "short")
    time.sleep(MAX_AGE + 1.1)
    again = front.get(f"/media/short/revalidate.jpg{query}")
    assert again.status_code == 200
    assert again.headers["x-cache-status"] == "REVALIDATED"
    assert again.content == first.content
    assert mediasrv_gets(front, 304, "short") == not_modified_before + 1
    assert renders(front.mediasrv) == renders_before  # a 304 renders nothing
    access_log = (Path(front.mediasrv.config_dir) / "server.log").read_text()
    assert access_log.count('"status": 304') >= 1


def test_vary_accept_keeps_avif_and_jpeg_clients_apart(front: Front) -> None:
    path = "/media/local/vary.jpg?width=200&format=auto"
    avif = {"Accept": "image/avif,image/webp,image/*,*/*;q=0.8"}
    jpeg = {"Accept": "image/jpeg,image/*;q=0.5"}
    first_avif, first_jpeg = front.get(path, **avif), front.get(path, **jpeg)
    assert first_avif.headers["content-type"] == "image/avif"
    assert first_jpeg.headers["content-type"] == "image/jpeg"
    assert first_jpeg.content[:3] == b"\xff\xd8\xff" and first_avif.content[4:12] == b"ftypavif"
    assert "accept" in first_avif.headers["vary"].lower()
    for headers, first in ((avif, first_avif), (jpeg, first_jpeg), (avif, first_avif)):
        again = front.get(path, **headers)
        assert again.headers["x-cache-status"] == "HIT"
        assert again.headers["content-type"] == first.headers["content-type"]
        assert again.content == first.content


@pytest.mark.parametrize("query", ["", "?width=250"], ids=["original", "variant"])
def test_a_range_request_through_nginx_is_correct(front: Front, query: str) -> None:
    path = f"/media/local/range.jpg{query}"
    part = front.get(path, Range="bytes=100-299")  # a miss: nginx fetches the whole, cuts the range
    whole = front.get(path)
    assert part.status_code == 206
    assert part.content == whole.content[100:300]
    assert part.headers["content-range"] == f"bytes 100-299/{len(whole.content)}"
    if not query:
        assert whole.content == (Path(front.mediasrv.config_dir).parent / "media" / "range.jpg").read_bytes()
    cached = front.get(path, Range="bytes=-50")
    assert cached.headers["x-cache-status"] == "HIT"
    assert (cached.status_code, cached.content) == (206, whole.content[-50:])


def test_admin_through_nginx_is_refused_without_a_token(front: Front) -> None:
    assert front.get("/admin/cache").status_code == 403
    assert front.get("/healthz").status_code == 200
