"""Server limits over a real socket: stalled clients, the stream cap, graceful shutdown."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from conftest import Server, local_server_settings, reset, wait_until

SPARSE_SIZE = 512 * 1024 * 1024
SEND_TIMEOUT = 1.5

MakeServer = Callable[..., Server]


@pytest.fixture
def media_dir(tmp_path: Path) -> Path:
    root = tmp_path / "media"
    root.mkdir()
    (root / "sparse.bin").touch()
    os.truncate(root / "sparse.bin", SPARSE_SIZE)
    (root / "small.txt").write_text("small")
    return root


def settings(media_dir: Path, **server: object) -> str:
    return local_server_settings(media_dir, chunk_size=262144, **server)


def stalled_download(server: Server, path: str = "/media/local/sparse.bin") -> socket.socket:
    """A client that asks for a large object and then reads nothing."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".encode())
    return sock


def drain(sock: socket.socket, timeout: float = 10.0) -> tuple[int, bool]:
    """Read until the server closes or resets: (bytes read, whether it ended within ``timeout``)."""
    sock.settimeout(timeout)
    received = 0
    try:
        while chunk := sock.recv(1 << 20):
            received += len(chunk)
    except ConnectionResetError:
        return received, True
    except TimeoutError:
        return received, False
    return received, True


def test_client_that_stops_reading_is_dropped_after_send_timeout(make_server: MakeServer, media_dir: Path) -> None:
    server = make_server(settings(media_dir, send_timeout=SEND_TIMEOUT))
    sock = stalled_download(server)
    time.sleep(0.3)
    assert server.open_files_under(media_dir), "the download should be under way"
    assert wait_until(lambda: server.open_files_under(media_dir) == [], timeout=SEND_TIMEOUT + 5)
    received, ended = drain(sock)
    sock.close()
    assert ended
    assert received < SPARSE_SIZE // 4
    assert "accepted no bytes" in server.log()


def test_slow_but_reading_client_is_not_dropped(make_server: MakeServer, media_dir: Path) -> None:
    (media_dir / "medium.bin").write_bytes(os.urandom(6 * 1024 * 1024))
    server = make_server(settings(media_dir, send_timeout=1))
    sock = stalled_download(server, "/media/local/medium.bin")
    sock.settimeout(10)
    received, started = 0, time.monotonic()
    # Take 16 KiB every 0.1 s for 2.5 s: never idle for the 1 s send timeout.
    while time.monotonic() - started < 2.5:
        received += len(sock.recv(16384))
        time.sleep(0.1)
    received += drain(sock)[0]
    sock.close()
    assert received > 6 * 1024 * 1024  # headers plus the whole body
    assert "accepted no bytes" not in server.log()


def test_stream_limit_answers_503_at_once_and_frees_slots(make_server: MakeServer, media_dir: Path) -> None:
    server = make_server(settings(media_dir, max_streams=2, send_timeout=30))
    held = [stalled_download(server), stalled_download(server)]
    assert wait_until(lambda: len(server.open_files_under(media_dir)) == 2)

    started = time.monotonic()
    refused = httpx.get(f"{server.url}/media/local/small.txt", timeout=5)
    assert time.monotonic() - started < 2
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.json() == {"detail": "too many concurrent streams"}
    # HEAD moves no body and takes no slot.
    assert httpx.head(f"{server.url}/media/local/small.txt").status_code == 200

    for sock in held:
        reset(sock)
    assert wait_until(lambda: server.open_files_under(media_dir) == [])
    assert wait_until(lambda: httpx.get(f"{server.url}/media/local/small.txt").status_code == 200)


def test_errors_do_not_hold_stream_slots(make_server: MakeServer, media_dir: Path) -> None:
    server = make_server(settings(media_dir, max_streams=1))
    for _ in range(5):
        assert httpx.get(f"{server.url}/media/local/missing").status_code == 404
        assert httpx.get(f"{server.url}/media/local/small.txt", headers={"range": "bytes=99-"}).status_code == 416
    etag = httpx.get(f"{server.url}/media/local/small.txt").headers["etag"]
    assert httpx.get(f"{server.url}/media/local/small.txt", headers={"if-none-match": etag}).status_code == 304
    assert httpx.get(f"{server.url}/media/local/small.txt").text == "small"


def test_shutdown_does_not_wait_forever_on_open_streams(make_server: MakeServer, media_dir: Path) -> None:
    server = make_server(settings(media_dir, shutdown_timeout=1, send_timeout=60))
    sock = stalled_download(server)
    assert wait_until(lambda: len(server.open_files_under(media_dir)) == 1)
    started = time.monotonic()
    returncode = server.stop(timeout=15)
    elapsed = time.monotonic() - started
    sock.close()
    assert returncode in (0, -15)  # uvicorn re-raises SIGTERM once it has shut down
    assert elapsed < 8, f"shutdown took {elapsed:.1f}s with shutdown_timeout = 1"
    assert "Application shutdown complete" in server.log()
