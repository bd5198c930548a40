"""The core with a test backend plugin (tests/plugins/memory_backend.py), loaded through
settings' ``plugins = [...]`` as a user's own plugin is: any backend gets the same HTTP
semantics, and faults only a fake source can produce on cue are handled."""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import Server, get, reset, start_server, wait_until
from plugins.memory_backend import pattern

BIG = 1024 * 1024 + 7
STALL = 64 * 1024 * 1024
CHUNK = 65536


@pytest.fixture(scope="module")
def events_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("events") / "events.log"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, events_file: Path) -> Iterator[Server]:
    settings = f"""
plugins = ["memory_backend"]

[backends.mem]
kind = "memory"
chunk_size = {CHUNK}
events_file = "{events_file}"
objects = {{ "hello.txt" = "hello world", "page.xhtml" = "<html/>", "feed" = "<feed/>", "inject.txt" = "x", "euro.txt" = "y" }}
generated = {{ "big.bin" = {BIG}, "broken.bin" = 500000, "stall.bin" = {STALL} }}
content_types = {{ "page.xhtml" = "application/xhtml+xml", "feed" = "application/atom+xml", "hello.txt" = "text/plain; charset=utf-8", "inject.txt" = "text/plain\\r\\nSet-Cookie: stolen=1", "euro.txt" = "text/plain; name=€" }}
fail_after = {{ "broken.bin" = 200000 }}
errors = {{ "e404" = "notfound", "e502" = "upstream", "e503" = "unavailable", "e504" = "timeout", "crash" = "crash", "slow" = "library-timeout" }}

[backends.slow]
kind = "memory"
chunk_size = {CHUNK}
events_file = "{events_file}"
open_delay = 1.0
generated = {{ "slow.bin" = {STALL} }}

[backends.broken]
kind = "memory"
fail_start = true

[backends.cutter]
kind = "memory"
chunk_size = {CHUNK}
ignore_range = true
generated = {{ "big.bin" = {BIG} }}
"""
    server = start_server(tmp_path_factory.mktemp("memory-server"), settings, plugins=("memory_backend",))
    yield server
    server.stop()


def events(events_file: Path, with_bytes: bool = False) -> list[str]:
    """The memory backend's "open KEY" / "close KEY [BYTES_READ]" lines so far."""
    lines = events_file.read_text().splitlines() if events_file.exists() else []
    return lines if with_bytes else [line.rsplit(" ", 1)[0] if line.startswith("close") else line for line in lines]


def test_full_get_is_byte_identical(server: Server) -> None:
    response = get(server, "/media/mem/big.bin")
    assert response.status_code == 200
    assert hashlib.sha256(response.content).digest() == hashlib.sha256(pattern(BIG)).digest()
    assert response.headers["etag"] == f'"m-{BIG}"'
    assert response.headers["last-modified"] == "Tue, 02 Jan 2024 03:04:05 GMT"


def test_content_type_comes_from_backend_metadata(server: Server) -> None:
    response = get(server, "/media/mem/hello.txt")
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert "content-security-policy" not in response.headers


@pytest.mark.parametrize("key", ["page.xhtml", "feed"])
def test_xml_types_from_metadata_are_sandboxed(server: Server, key: str) -> None:
    assert get(server, f"/media/mem/{key}").headers["content-security-policy"] == "sandbox"


def test_metadata_cannot_inject_headers(server: Server) -> None:
    status, headers, body = server.raw_get("/media/mem/inject.txt")
    assert status == 200
    assert "set-cookie" not in headers
    assert headers["content-type"] == "application/octet-stream"  # not one valid type: replaced whole
    assert body == b"x"


def test_metadata_outside_latin_1_is_replaced_not_a_crash(server: Server) -> None:
    response = get(server, "/media/mem/euro.txt")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"  # "€" is no token
    assert response.text == "y"


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-0", 0, 0),
        (f"bytes={CHUNK - 3}-{2 * CHUNK + 3}", CHUNK - 3, 2 * CHUNK + 3),
        ("bytes=-10", BIG - 10, BIG - 1),
    ],
)
@pytest.mark.parametrize("backend", ["mem", "cutter"])
def test_ranges_are_exact_whether_or_not_the_backend_cuts(
    server: Server, backend: str, header: str, first: int, last: int
) -> None:
    response = get(server, f"/media/{backend}/big.bin", range=header)
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes {first}-{last}/{BIG}"
    assert response.content == pattern(BIG)[first : last + 1]


@pytest.mark.parametrize("backend", ["mem", "cutter"])
def test_unsatisfiable_range_is_416_whether_or_not_the_backend_cuts(server: Server, backend: str) -> None:
    response = get(server, f"/media/{backend}/big.bin", range=f"bytes={BIG}-")
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{BIG}"


@pytest.mark.parametrize(
    ("key", "status"),
    [("e404", 404), ("e502", 502), ("e503", 503), ("e504", 504), ("crash", 502), ("slow", 504), ("absent", 404)],
)
def test_backend_errors_map_to_statuses_before_any_byte(server: Server, key: str, status: int) -> None:
    response = get(server, f"/media/mem/{key}")
    assert response.status_code == status
    assert set(response.json()) == {"detail"}
    assert response.headers["x-content-type-options"] == "nosniff"
    status_head, _, body = server.raw_get(f"/media/mem/{key}", method="HEAD")
    assert status_head == status
    assert body == b""


def test_unmapped_library_error_leaks_nothing(server: Server) -> None:
    response = get(server, "/media/mem/crash")
    assert response.json() == {"detail": "backend 'mem' failed"}
    assert "secret-token" not in response.text
    assert "Traceback" not in response.text
    assert "unmapped error" in server.log()


def test_failure_mid_stream_aborts_the_connection(server: Server, events_file: Path) -> None:
    with (
        pytest.raises(httpx.RemoteProtocolError),
        httpx.stream("GET", f"{server.url}/media/mem/broken.bin", timeout=10) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-length"] == "500000"
        for _ in response.iter_bytes():
            pass
    assert "stream failed after 200000 bytes" in server.log()
    assert "ASGI callable returned without completing response" not in server.log()  # an abort is no error
    assert events(events_file).count("close broken.bin") >= 1


def test_if_none_match_evaluated_by_the_core_closes_the_stream(server: Server, events_file: Path) -> None:
    before = events(events_file)
    response = get(server, "/media/mem/big.bin", **{"if-none-match": f'"m-{BIG}"'})
    assert response.status_code == 304
    assert response.content == b""
    new = events(events_file)[len(before) :]
    assert new == ["open big.bin", "close big.bin"]


def test_if_range_ignored_by_backend_is_corrected_by_the_core(server: Server, events_file: Path) -> None:
    before = events(events_file)
    response = get(server, "/media/mem/big.bin", range="bytes=0-9", **{"if-range": '"stale"'})
    assert response.status_code == 200
    assert len(response.content) == BIG
    new = events(events_file)[len(before) :]
    assert new == ["open big.bin", "close big.bin", "open big.bin", "close big.bin"]


def test_if_range_stale_with_range_past_the_end_sends_the_whole_object(server: Server) -> None:
    response = get(server, "/media/mem/big.bin", range=f"bytes={BIG + 1}-", **{"if-range": '"stale"'})
    assert response.status_code == 200
    assert len(response.content) == BIG


def test_if_range_current_with_range_past_the_end_is_416(server: Server) -> None:
    response = get(server, "/media/mem/big.bin", range=f"bytes={BIG + 1}-", **{"if-range": f'"m-{BIG}"'})
    assert response.status_code == 416


def test_client_disconnect_closes_the_chunk_iterator(server: Server, events_file: Path) -> None:
    before = len(events(events_file))
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(b"GET /media/mem/stall.bin HTTP/1.1\r\nHost: test\r\n\r\n")
    assert sock.recv(65536)
    reset(sock)
    assert wait_until(lambda: "close stall.bin" in events(events_file)[before:], timeout=5)
    assert events(events_file)[before:] == ["open stall.bin", "close stall.bin"]
    assert int(events(events_file, with_bytes=True)[-1].split()[-1]) < STALL // 2


def test_client_gone_before_the_object_opened_streams_nothing(server: Server, events_file: Path) -> None:
    before = len(events(events_file))
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(b"GET /media/slow/slow.bin HTTP/1.1\r\nHost: test\r\n\r\n")
    time.sleep(0.2)  # the server is inside open(), which takes 1 s
    reset(sock)
    assert wait_until(lambda: "close slow.bin" in events(events_file)[before:], timeout=5)
    new = events(events_file, with_bytes=True)[before:]
    assert new[0] == "open slow.bin"
    assert new[1].startswith("close slow.bin ")
    assert int(new[1].split()[-1]) <= CHUNK  # at most the one chunk read before the first send


def test_backend_that_failed_to_start_answers_503_and_others_serve(server: Server) -> None:
    response = get(server, "/media/broken/anything")
    assert response.status_code == 503
    assert response.json() == {"detail": "backend 'broken' failed to start"}
    assert "backend 'broken' (memory) failed to start: ConnectionRefusedError" in server.log()
    assert "backend 'mem' (memory) started" in server.log()
    assert get(server, "/media/mem/hello.txt").status_code == 200
