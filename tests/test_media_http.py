"""The HTTP backend over a real socket, against real upstream servers (tests/upstreams.py):
a range-capable file server, one that ignores Range and conditions, a faulty one, and a
canary that no SSRF attempt may reach."""

from __future__ import annotations

import gzip
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from conftest import (
    PROJECT_DIR,
    Server,
    abort_after_first_bytes,
    free_port,
    get,
    open_stalled_stream,
    reset,
    sha256,
    start_server,
    wait_until,
)
from mediasrv import Health
from mediasrv_http import HttpBackend, HttpSettings
from upstreams import (
    FAR_FUTURE_DATE,
    GZIP_TEXT,
    HOP_CACHE_CONTROL,
    SLOW_BODY_SENT,
    TRUNCATED_DECLARED,
    TRUNCATED_SENT,
    Upstream,
    UpstreamLoop,
    canary_app,
    faulty_app,
    files_app,
    ignorer_app,
)

BIG_SIZE = 3 * 1024 * 1024 + 123  # several chunks, not a multiple of any chunk size
HUGE_SIZE = 10 * 1024 * 1024
CHUNK_SIZE = 64 * 1024
FILES_MAX_CONNECTIONS = 8
SECRET = "sekrit-api-key-7f3a9c"
BEARER_SECRET = "bearer-sekrit-51d0e2"


@dataclass
class Upstreams:
    root: Path
    files: Upstream
    ignorer: Upstream
    faulty: Upstream
    canary: Upstream
    refused_port: int


@pytest.fixture(scope="module")
def upstreams(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstreams]:
    root = tmp_path_factory.mktemp("upstream-files")
    (root / "big.bin").write_bytes(os.urandom(BIG_SIZE))
    (root / "huge.bin").write_bytes(os.urandom(HUGE_SIZE))
    (root / "empty.bin").write_bytes(b"")
    (root / "hello.txt").write_text("hello from the files upstream")
    (root / "logo@2x.png").write_bytes((PROJECT_DIR / "media" / "icon.png").read_bytes())
    (root / "with space ü.txt").write_text("unicode")
    (root / "100%.txt").write_text("percent")
    (root / "nested" / "deeper").mkdir(parents=True)
    (root / "nested" / "deeper" / "photo.jpg").write_bytes((PROJECT_DIR / "media" / "landscape.jpg").read_bytes())
    (root / "page.html").write_text("<script>alert(1)</script>")
    loop = UpstreamLoop()
    try:
        canary = loop.serve(canary_app())
        yield Upstreams(
            root=root,
            files=loop.serve(files_app(root)),
            ignorer=loop.serve(ignorer_app(root)),
            faulty=loop.serve(faulty_app(canary.port)),
            canary=canary,
            refused_port=free_port(),
        )
    finally:
        loop.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, upstreams: Upstreams) -> Iterator[Server]:
    files, ignorer, faulty = upstreams.files.origin, upstreams.ignorer.origin, upstreams.faulty.origin
    settings = f"""
[backends.files]
kind = "http"
base_url = "{files}/files/"
timeout = 5
headers = {{ "X-Api-Key" = "{SECRET}", "Authorization" = "Bearer {BEARER_SECRET}" }}
max_connections = {FILES_MAX_CONNECTIONS}
chunk_size = {CHUNK_SIZE}

[backends.cached]
kind = "http"
base_url = "{files}/files"
cache_control = "public, max-age=60"

[backends.plain]
kind = "http"
base_url = "{ignorer}/plain/"
chunk_size = {CHUNK_SIZE}

[backends.chunked]
kind = "http"
base_url = "{ignorer}/chunked/"

[backends.faulty]
kind = "http"
base_url = "{faulty}/faulty/"
timeout = 1
headers = {{ "X-Api-Key" = "{SECRET}" }}

[backends.tiny]
kind = "http"
base_url = "{faulty}/faulty/"
timeout = 1
max_connections = 1

[backends.refused]
kind = "http"
base_url = "http://127.0.0.1:{upstreams.refused_port}/"
timeout = 1
"""
    server = start_server(tmp_path_factory.mktemp("http-server"), settings)
    yield server
    server.stop()


def upstream_get(upstream: Upstream, path: str) -> httpx.Response:
    """A request straight to an upstream, not recorded by the checks below as ours."""
    return httpx.get(upstream.origin + path, headers={"accept-encoding": "identity"}, timeout=10)


# --- whole objects ------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["files", "plain", "chunked"])
@pytest.mark.parametrize("key", ["big.bin", "huge.bin"])
def test_get_whole_object_is_byte_identical(server: Server, upstreams: Upstreams, backend: str, key: str) -> None:
    response = get(server, f"/media/{backend}/{key}")
    assert response.status_code == 200
    assert sha256(response.content) == sha256((upstreams.root / key).read_bytes())
    if backend != "chunked":
        assert response.headers["content-length"] == str((upstreams.root / key).stat().st_size)
    assert response.headers["accept-ranges"] == "bytes"


def test_get_carries_the_upstream_validators_and_type(server: Server, upstreams: Upstreams) -> None:
    direct = upstream_get(upstreams.files, "/files/nested/deeper/photo.jpg")
    response = get(server, "/media/files/nested/deeper/photo.jpg")
    assert response.status_code == 200
    assert response.headers["etag"] == direct.headers["etag"]
    assert response.headers["last-modified"] == direct.headers["last-modified"]
    assert response.headers["content-type"] == direct.headers["content-type"] == "image/jpeg"
    assert response.content == direct.content


def test_get_empty_object(server: Server) -> None:
    response = get(server, "/media/files/empty.bin")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == "0"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/media/files/logo%402x.png", None),
        ("/media/files/logo@2x.png", None),
        ("/media/files/with%20space%20%C3%BC.txt", b"unicode"),
        ("/media/files/100%25.txt", b"percent"),
    ],
)
def test_keys_with_special_characters_reach_their_object(
    server: Server, upstreams: Upstreams, path: str, body: bytes | None
) -> None:
    status, _, content = server.raw_get(path)
    assert status == 200
    assert content == (body if body is not None else (upstreams.root / "logo@2x.png").read_bytes())


def test_active_content_from_upstream_is_sandboxed(server: Server) -> None:
    response = get(server, "/media/files/page.html")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == "sandbox"


def test_upstream_request_carries_configured_headers_and_asks_for_identity(
    server: Server, upstreams: Upstreams
) -> None:
    before = len(upstreams.files.requests)
    response = get(server, "/media/files/hello.txt", cookie="client_session=abc", authorization="Bearer client")
    assert response.status_code == 200
    (request,) = upstreams.files.requests[before:]
    assert request.method == "GET"
    assert request.raw_path == "/files/hello.txt"
    assert request.headers["x-api-key"] == SECRET
    assert request.headers["authorization"] == f"Bearer {BEARER_SECRET}"  # ours, not the client's
    assert request.headers["accept-encoding"] == "identity"
    assert "cookie" not in request.headers
    assert "range" not in request.headers


def test_cache_control_setting_overrides_and_empty_passes_the_upstreams(server: Server) -> None:
    assert get(server, "/media/cached/hello.txt").headers["cache-control"] == "public, max-age=60"
    assert get(server, "/media/faulty/hop").headers["cache-control"] == HOP_CACHE_CONTROL
    assert "cache-control" not in get(server, "/media/files/hello.txt").headers


# --- HEAD -----------------------------------------------------------------------------------


def test_head_is_a_head_upstream_and_has_no_body(server: Server, upstreams: Upstreams) -> None:
    before = len(upstreams.files.requests)
    status, headers, body = server.raw_get("/media/files/big.bin", method="HEAD")
    assert status == 200
    assert body == b""
    assert headers["content-length"] == str(BIG_SIZE)
    assert headers["etag"] == get(server, "/media/files/big.bin").headers["etag"]
    assert upstreams.files.requests[before].method == "HEAD"


@pytest.mark.parametrize(("path", "expected"), [("/media/files/missing.bin", 404), ("/media/faulty/status/500", 502)])
def test_head_errors(server: Server, path: str, expected: int) -> None:
    status, _, _ = server.raw_get(path, method="HEAD")
    assert status == expected


# --- ranges ---------------------------------------------------------------------------------

RANGES = [
    ("bytes=0-0", 0, 0),
    ("bytes=0-99", 0, 99),
    (f"bytes={BIG_SIZE - 10}-", BIG_SIZE - 10, BIG_SIZE - 1),
    ("bytes=-500", BIG_SIZE - 500, BIG_SIZE - 1),
    (f"bytes={CHUNK_SIZE - 5}-{3 * CHUNK_SIZE + 5}", CHUNK_SIZE - 5, 3 * CHUNK_SIZE + 5),
    (f"bytes=100-{BIG_SIZE * 2}", 100, BIG_SIZE - 1),
    (f"bytes=-{BIG_SIZE * 2}", 0, BIG_SIZE - 1),
]


@pytest.mark.parametrize("backend", ["files", "plain"])
@pytest.mark.parametrize(("header", "first", "last"), RANGES)
def test_range_returns_exact_bytes(
    server: Server, upstreams: Upstreams, backend: str, header: str, first: int, last: int
) -> None:
    data = (upstreams.root / "big.bin").read_bytes()
    response = get(server, f"/media/{backend}/big.bin", range=header)
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes {first}-{last}/{BIG_SIZE}"
    assert response.headers["content-length"] == str(last - first + 1)
    assert response.content == data[first : last + 1]


def test_range_is_forwarded_to_a_range_capable_upstream(server: Server, upstreams: Upstreams) -> None:
    before = len(upstreams.files.requests)
    assert get(server, "/media/files/huge.bin", range="bytes=-10").status_code == 206
    assert upstreams.files.requests[before].headers["range"] == "bytes=-10"


@pytest.mark.parametrize("backend", ["files", "plain"])
@pytest.mark.parametrize("header", [f"bytes={BIG_SIZE}-", f"bytes={BIG_SIZE + 10}-{BIG_SIZE + 20}"])
def test_unsatisfiable_range_is_416(server: Server, backend: str, header: str) -> None:
    response = get(server, f"/media/{backend}/big.bin", range=header)
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{BIG_SIZE}"


def test_range_on_an_upstream_without_content_length_gets_the_whole_object(
    server: Server, upstreams: Upstreams
) -> None:
    # Size unknown, so the range cannot be resolved: RFC 9110 lets a server ignore Range.
    response = get(server, "/media/chunked/big.bin", range="bytes=0-99")
    assert response.status_code == 200
    assert "content-range" not in response.headers
    assert sha256(response.content) == sha256((upstreams.root / "big.bin").read_bytes())


@pytest.mark.parametrize("backend", ["files", "plain"])
def test_if_range_current_honours_range_and_stale_sends_everything(server: Server, backend: str) -> None:
    etag = get(server, f"/media/{backend}/big.bin").headers["etag"]
    current = get(server, f"/media/{backend}/big.bin", range="bytes=0-9", **{"if-range": etag})
    assert current.status_code == 206
    assert len(current.content) == 10
    stale = get(server, f"/media/{backend}/big.bin", range="bytes=0-9", **{"if-range": '"stale"'})
    assert stale.status_code == 200
    assert len(stale.content) == BIG_SIZE


# --- conditional requests -------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["files", "plain"])
def test_if_none_match_current_is_304_without_body(server: Server, upstreams: Upstreams, backend: str) -> None:
    etag = get(server, f"/media/{backend}/big.bin").headers["etag"]
    status, headers, body = server.raw_get(f"/media/{backend}/big.bin", {"If-None-Match": etag})
    assert status == 304
    assert body == b""
    assert headers["etag"] == etag


def test_if_none_match_is_forwarded_so_the_upstream_sends_no_body(server: Server, upstreams: Upstreams) -> None:
    etag = get(server, "/media/files/huge.bin").headers["etag"]
    before = len(upstreams.files.requests)
    status, _, _ = server.raw_get("/media/files/huge.bin", {"If-None-Match": etag})
    assert status == 304
    assert upstreams.files.requests[before].headers["if-none-match"] == etag


@pytest.mark.parametrize("backend", ["files", "plain"])
def test_if_modified_since_last_modified_is_304(server: Server, backend: str) -> None:
    last_modified = get(server, f"/media/{backend}/big.bin").headers["last-modified"]
    assert get(server, f"/media/{backend}/big.bin", **{"if-modified-since": last_modified}).status_code == 304


@pytest.mark.parametrize("backend", ["files", "plain"])
def test_if_match_other_is_412(server: Server, backend: str) -> None:
    response = get(server, f"/media/{backend}/big.bin", **{"if-match": '"other"'})
    assert response.status_code == 412
    assert response.json() == {"detail": "If-Match failed"}


@pytest.mark.parametrize("backend", ["files", "plain"])
def test_if_modified_since_beyond_year_9999_is_ignored(server: Server, backend: str) -> None:
    # Issue 12: formatting it for the upstream raised OverflowError: 502 and a traceback.
    response = get(server, f"/media/{backend}/hello.txt", **{"if-modified-since": FAR_FUTURE_DATE})
    assert response.status_code == 200
    assert response.content == b"hello from the files upstream"
    assert "Traceback" not in server.log()


@pytest.mark.parametrize(
    ("method", "headers", "status"),
    [("GET", {}, 200), ("HEAD", {}, 200), ("GET", {"If-None-Match": '"future"'}, 304)],
)
def test_upstream_last_modified_beyond_year_9999_is_dropped(
    server: Server, method: str, headers: dict[str, str], status: int
) -> None:
    # Issue 12: converting it to GMT for Last-Modified raised OverflowError: a 500.
    answer, response_headers, body = server.raw_get("/media/faulty/far-future", headers, method)
    assert answer == status
    assert body == (b"from the future" if (method, status) == ("GET", 200) else b"")
    assert response_headers["etag"] == '"future"'
    assert "last-modified" not in response_headers


# --- compression and headers that are not ours to pass on ------------------------------------


def test_gzip_encoded_upstream_body_passes_through_raw_and_consistent(server: Server) -> None:
    status, headers, body = server.raw_get("/media/faulty/gzip")  # http.client does not decode
    assert status == 200
    assert headers["content-encoding"] == "gzip"
    assert headers["content-length"] == str(len(body))
    assert gzip.decompress(body) == GZIP_TEXT
    assert get(server, "/media/faulty/gzip").content == GZIP_TEXT  # a decoding client gets the text


def test_gzip_encoded_range_applies_to_the_encoded_bytes(server: Server) -> None:
    _, _, whole = server.raw_get("/media/faulty/gzip")
    status, headers, body = server.raw_get("/media/faulty/gzip", {"Range": "bytes=0-9"})
    assert status == 206
    assert headers["content-range"] == f"bytes 0-9/{len(whole)}"
    assert body == whole[:10]


def test_hop_by_hop_and_upstream_private_headers_are_dropped(server: Server) -> None:
    status, headers, body = server.raw_get("/media/faulty/hop")
    assert status == 200
    assert body == b"hop body"
    for name in ("keep-alive", "proxy-authenticate", "set-cookie", "x-internal-secret", "server", "vary"):
        assert name not in headers, name
    assert headers.get("connection") != "close"  # the upstream's "Connection: close" is its own
    assert headers["etag"] == '"hop-1"'


# --- upstream faults ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status", "detail"),
    [
        ("status/404", 404, "not found"),
        ("status/410", 404, "not found"),
        ("status/401", 503, "backend 'faulty' is unavailable: upstream answered 401"),
        ("status/403", 503, "backend 'faulty' is unavailable: upstream answered 403"),
        ("status/429", 503, "backend 'faulty' is unavailable: upstream answered 429"),
        ("status/400", 502, "backend 'faulty': upstream answered 400"),
        ("status/418", 502, "backend 'faulty': upstream answered 418"),
        ("status/500", 502, "backend 'faulty': upstream answered 500"),
        ("status/503", 502, "backend 'faulty': upstream answered 503"),
        ("status/300", 502, "backend 'faulty': upstream answered 300"),
        ("reset", 502, "backend 'faulty': upstream closed the connection"),
        ("slow-headers", 504, "backend 'faulty': upstream timed out"),
        ("redirect-canary", 502, "backend 'faulty': upstream redirected to another origin"),
        ("redirect-canary-scheme-relative", 502, "backend 'faulty': upstream redirected to another origin"),
        ("redirect-canary-https", 502, "backend 'faulty': upstream redirected to another origin"),
        ("redirect-up", 502, "backend 'faulty': upstream redirected outside base_url"),
        ("redirect-dotdot", 502, "backend 'faulty': upstream redirected outside base_url"),
        ("redirect-nowhere", 502, "backend 'faulty': upstream redirected without a valid Location"),
        ("redirect-chain/4", 502, "backend 'faulty': more than 3 redirects upstream"),
    ],
)
def test_upstream_fault_status_and_detail(
    server: Server, upstreams: Upstreams, path: str, status: int, detail: str
) -> None:
    response = get(server, f"/media/faulty/{path}")
    assert response.status_code == status
    assert response.json() == {"detail": detail}
    assert b"upstream-internal-detail" not in response.content
    assert upstreams.canary.requests == []
    assert "/outside" not in upstreams.faulty.paths()


def test_upstream_429_passes_its_retry_after(server: Server) -> None:
    assert get(server, "/media/faulty/status/429").headers["retry-after"] == "7"


def test_refused_upstream_is_502(server: Server) -> None:
    response = get(server, "/media/refused/anything.jpg")
    assert response.status_code == 502
    assert response.json() == {"detail": "backend 'refused': cannot connect to upstream"}


@pytest.mark.parametrize("path", ["partial-without-range", "partial-elsewhere"])
def test_a_206_without_the_asked_range_is_502(server: Server, path: str) -> None:
    response = get(server, f"/media/faulty/{path}", range="bytes=0-9")
    assert response.status_code == 502


@pytest.mark.parametrize("path", ["redirect-same", "redirect-relative", "redirect-chain/3"])
def test_redirects_within_base_url_are_followed(server: Server, path: str) -> None:
    response = get(server, f"/media/faulty/{path}")
    assert response.status_code == 200
    assert response.text == "hello from the faulty upstream"


@pytest.mark.parametrize(("path", "sent"), [("truncated", TRUNCATED_SENT), ("slow-body", SLOW_BODY_SENT)])
def test_upstream_dying_mid_body_is_an_incomplete_transfer(server: Server, path: str, sent: int) -> None:
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        get(server, f"/media/faulty/{path}")
    # The same, byte by byte: the declared length, then fewer bytes and the end of the connection.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(f"GET /media/faulty/{path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        received = b""
        for _ in range(10_000):  # bounded; ends when the server drops the connection
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert f"content-length: {TRUNCATED_DECLARED}".encode() in head.lower()
    assert len(body) <= sent < TRUNCATED_DECLARED


# --- keys that must never leave base_url --------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "//127.0.0.1:{canary}/x",
        "/127.0.0.1:{canary}/x",
        "http://127.0.0.1:{canary}/x",
        "http:/127.0.0.1:{canary}/x",
        "http:%2f%2f127.0.0.1:{canary}/x",
        "https:127.0.0.1:{canary}",
        "../x",
        "a/../../x",
        "%2e%2e/x",
        "%2E%2E%2Fx",
        "%252e%252e/x",
        "%252e%252e%252fx",
        "%25252e%25252e/x",
        "..%252f..%252fx",
        "..;/x",
        "a%2f..%2f..%2fx",
        "a%252f..%252fx",
        "nested\\..\\..\\x",
        "a%5cx",
        "a%255cx",
        "a%00b",
        "a%2500b",
        "%20/x",
    ],
)
def test_ssrf_and_traversal_keys_are_400_and_reach_nothing(server: Server, upstreams: Upstreams, path: str) -> None:
    before = len(upstreams.files.requests)
    status, headers, body = server.raw_get("/media/files/" + path.format(canary=upstreams.canary.port))
    assert status == 400, body
    assert headers["x-content-type-options"] == "nosniff"
    assert b"detail" in body
    assert upstreams.files.requests[before:] == []
    assert upstreams.canary.requests == []


@pytest.mark.parametrize(
    ("path", "upstream_path"),
    [
        ("@127.0.0.1:{canary}/x", "/files/%40127.0.0.1%3A{canary}/x"),
        ("user@127.0.0.1:{canary}/x", "/files/user%40127.0.0.1%3A{canary}/x"),
        ("x@127.0.0.1%3A{canary}", "/files/x%40127.0.0.1%3A{canary}"),
        ("a%3F@127.0.0.1:{canary}%23/x", "/files/a%3F%40127.0.0.1%3A{canary}%23/x"),
    ],
)
def test_at_signs_stay_data_under_base_url(server: Server, upstreams: Upstreams, path: str, upstream_path: str) -> None:
    # "@" is an ordinary path character (think logo@2x.png): encoded, it names a missing
    # object under base_url, so the upstream answers 404, and nothing else is asked.
    before = len(upstreams.files.requests)
    status, _, _ = server.raw_get("/media/files/" + path.format(canary=upstreams.canary.port))
    assert status == 404
    (request,) = upstreams.files.requests[before:]
    assert request.raw_path == upstream_path.format(canary=upstreams.canary.port)
    assert upstreams.canary.requests == []


def test_upstream_paths_all_stayed_under_base_urls(server: Server, upstreams: Upstreams) -> None:
    # Runs after the tests above (file order): everything asked of the upstreams stayed inside.
    assert upstreams.canary.requests == []
    assert all(path.startswith("/files/") for path in upstreams.files.paths())
    assert all(path.startswith(("/plain/", "/chunked/")) for path in upstreams.ignorer.paths())
    assert all(path.startswith("/faulty/") for path in upstreams.faulty.paths())


# --- secrets ----------------------------------------------------------------------------------


def test_header_secrets_never_appear_in_logs_or_error_bodies(server: Server) -> None:
    bodies = [
        get(server, path).content
        for path in (
            "/media/files/missing.bin",
            "/media/faulty/status/401",
            "/media/faulty/status/500",
            "/media/faulty/reset",
            "/media/faulty/redirect-canary",
            "/media/refused/x",
            "/media/files/%252e%252e/x",
        )
    ]
    assert all(SECRET.encode() not in body and BEARER_SECRET.encode() not in body for body in bodies)
    log = server.log()
    assert "backend 'faulty'" in log  # the failures above were logged...
    assert SECRET not in log  # ...without the secrets
    assert BEARER_SECRET not in log


# --- the connection pool ----------------------------------------------------------------------


def test_saturated_pool_answers_503_with_retry_after(server: Server) -> None:
    holder = open_stalled_stream(server, "/media/tiny/drip")  # holds tiny's only connection
    try:
        response = get(server, "/media/tiny/hello.txt")
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.json() == {"detail": "backend 'tiny': all 1 upstream connections are busy"}
    finally:
        reset(holder)
    # The slot comes back once the client is gone.
    assert wait_until(lambda: get(server, "/media/tiny/hello.txt").status_code == 200)


def test_aborted_downloads_release_their_upstream_connections(server: Server, upstreams: Upstreams) -> None:
    for _ in range(100):
        abort_after_first_bytes(server, "/media/files/huge.bin", read=CHUNK_SIZE)
    port = upstreams.files.port
    assert wait_until(lambda: server.connections_to(port) <= FILES_MAX_CONNECTIONS), server.connections_to(port)
    response = get(server, "/media/files/huge.bin")
    assert response.status_code == 200
    assert sha256(response.content) == sha256((upstreams.root / "huge.bin").read_bytes())


def test_completed_downloads_reuse_pooled_connections(server: Server, upstreams: Upstreams) -> None:
    before = len(upstreams.files.requests)
    for _ in range(20):
        assert get(server, "/media/files/hello.txt").status_code == 200
    assert len(upstreams.files.requests) - before == 20
    assert 1 <= server.connections_to(upstreams.files.port) <= FILES_MAX_CONNECTIONS


# --- health, in process against the same upstreams ------------------------------------------


async def backend_health(**settings: object) -> Health:
    backend = HttpBackend("probe", HttpSettings.model_validate({"kind": "http", **settings}))
    await backend.start()
    try:
        return await backend.health()
    finally:
        await backend.stop()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("base", "health_path"),
    [("{files}/files/", ""), ("{files}/files/", "/health"), ("{faulty}/faulty/", "hello.txt"), ("{files}/", "")],
)
async def test_health_ok(upstreams: Upstreams, base: str, health_path: str) -> None:
    base_url = base.format(files=upstreams.files.origin, faulty=upstreams.faulty.origin)
    assert await backend_health(base_url=base_url, health_path=health_path) == Health(ok=True)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("health_path", "error"),
    [
        ("status/403", "HEAD /faulty/status/403: upstream answered 403 (check the credentials in headers)"),
        ("status/500", "HEAD /faulty/status/500: upstream answered 500"),
        ("status/404", "HEAD /faulty/status/404: upstream answered 404"),
        ("slow-headers", "HEAD /faulty/slow-headers: no answer within 1s"),
    ],
)
async def test_health_not_ok(upstreams: Upstreams, health_path: str, error: str) -> None:
    health = await backend_health(
        base_url=f"{upstreams.faulty.origin}/faulty/", health_path=health_path, timeout=1, headers={"X-Api-Key": SECRET}
    )
    assert health == Health(ok=False, error=error)


@pytest.mark.asyncio
async def test_health_of_a_refused_upstream(upstreams: Upstreams) -> None:
    health = await backend_health(base_url=f"http://127.0.0.1:{upstreams.refused_port}/x/")
    assert health == Health(ok=False, error="HEAD /x/: cannot connect to upstream")
