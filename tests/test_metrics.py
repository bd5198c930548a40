"""/metrics over a real uvicorn: each counter moves by exactly what known requests should
move it, and with --workers 2 every scrape sums both workers."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from conftest import (
    Server,
    abort_after_first_bytes,
    get,
    open_stalled_stream,
    reset,
    scrape,
    start_server,
    value,
    wait_until,
)

BIG = 64 * 1024 * 1024
SETTINGS = f"""
plugins = ["memory_backend"]

[server]
send_timeout = 120

[backends.mem]
kind = "memory"
chunk_size = 65536
objects = {{ "a.txt" = "hello metrics" }}
generated = {{ "big.bin" = {BIG}, "dying.bin" = 1000000 }}
fail_after = {{ "dying.bin" = 300000 }}
errors = {{ "slow.bin" = "timeout", "refused.bin" = "upstream" }}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("metrics"), SETTINGS, plugins=("memory_backend",))
    yield server
    server.stop()


def test_requests_bytes_and_open_latency_move_by_what_was_served(server: Server) -> None:
    before = scrape(server)
    for _ in range(3):
        assert get(server, "/media/mem/a.txt").content == b"hello metrics"
    assert get(server, "/media/mem/a.txt", Range="bytes=0-4").content == b"hello"
    assert httpx.head(server.url + "/media/mem/a.txt", timeout=10).status_code == 200
    after = scrape(server)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("mediasrv_requests_total", backend="mem", method="GET", status="200") == 3
    assert delta("mediasrv_requests_total", backend="mem", method="GET", status="206") == 1
    assert delta("mediasrv_requests_total", backend="mem", method="HEAD", status="200") == 1
    assert delta("mediasrv_sent_bytes_total", backend="mem") == 3 * len(b"hello metrics") + 5
    assert delta("mediasrv_upstream_open_seconds_count", backend="mem") == 5
    assert delta("mediasrv_upstream_open_seconds_bucket", backend="mem", le="+Inf") == 5
    assert delta("mediasrv_upstream_open_seconds_sum", backend="mem") > 0


def test_errors_are_counted_by_kind_and_304_is_not_an_error(server: Server) -> None:
    before = scrape(server)
    assert get(server, "/media/mem/missing.txt").status_code == 404
    assert get(server, "/media/mem/slow.bin").status_code == 504
    assert get(server, "/media/mem/refused.bin").status_code == 502
    assert get(server, "/media/mem/a.txt", Range="bytes=100-").status_code == 416
    assert get(server, "/media/nope/a.txt").status_code == 404
    etag = get(server, "/media/mem/a.txt").headers["etag"]
    assert get(server, "/media/mem/a.txt", **{"If-None-Match": etag}).status_code == 304
    after = scrape(server)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("mediasrv_errors_total", backend="mem", kind="not_found") == 1
    assert delta("mediasrv_errors_total", backend="mem", kind="upstream_timeout") == 1
    assert delta("mediasrv_errors_total", backend="mem", kind="upstream_error") == 1
    assert delta("mediasrv_errors_total", backend="mem", kind="range_not_satisfiable") == 1
    assert delta("mediasrv_errors_total", backend="", kind="not_found") == 1
    assert delta("mediasrv_requests_total", backend="", method="GET", status="404") == 1
    assert delta("mediasrv_requests_total", backend="mem", method="GET", status="304") == 1
    assert delta("mediasrv_requests_total", backend="mem", method="GET", status="504") == 1
    assert not any(name == "mediasrv_errors_total" and ("kind", "not_modified") in labels for name, labels in after)


def test_a_client_leaving_mid_stream_is_a_disconnect(server: Server) -> None:
    before = scrape(server)
    abort_after_first_bytes(server, "/media/mem/big.bin")

    def disconnects() -> float:
        return value(scrape(server), "mediasrv_client_disconnects_total", backend="mem")

    expected = value(before, "mediasrv_client_disconnects_total", backend="mem") + 1
    assert wait_until(lambda: disconnects() == expected)
    after = scrape(server)
    sent = value(after, "mediasrv_sent_bytes_total", backend="mem") - value(before, "mediasrv_sent_bytes_total", backend="mem")
    assert 0 < sent < BIG
    assert value(after, "mediasrv_streams_in_flight", backend="mem") == 0


def test_a_source_failing_mid_stream_is_an_error(server: Server) -> None:
    before = value(scrape(server), "mediasrv_errors_total", backend="mem", kind="source_failed")
    with pytest.raises(httpx.HTTPError):
        get(server, "/media/mem/dying.bin")
    assert wait_until(
        lambda: value(scrape(server), "mediasrv_errors_total", backend="mem", kind="source_failed") == before + 1
    )


def test_streams_in_flight_counts_open_bodies(server: Server) -> None:
    def in_flight() -> float:
        return value(scrape(server), "mediasrv_streams_in_flight", backend="mem")

    assert in_flight() == 0
    sockets = [open_stalled_stream(server, "/media/mem/big.bin") for _ in range(2)]
    try:
        assert wait_until(lambda: in_flight() == 2)
    finally:
        for sock in sockets:
            reset(sock)
    assert wait_until(lambda: in_flight() == 0)


# --- several workers ----------------------------------------------------------------------


def keep_alive_request(server: Server, path: str) -> socket.socket:
    """A socket that has made one complete request and stays open."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    response = b""
    while not response.endswith(b"hello metrics"):
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        response += chunk
    return sock


def worker_of(server: Server, sock: socket.socket) -> int | None:
    """The pid of the worker holding the server side of ``sock``."""
    client_port = sock.getsockname()[1]
    for worker in psutil.Process(server.process.pid).children(recursive=True):
        for connection in worker.net_connections("tcp"):
            if connection.raddr and connection.raddr.port == client_port:
                return worker.pid
    return None


def test_with_two_workers_every_scrape_counts_both(tmp_path: Path) -> None:
    server = start_server(tmp_path, SETTINGS, plugins=("memory_backend",), args=("--workers", "2"))
    sockets: list[socket.socket] = []
    try:
        workers: set[int | None] = set()
        deadline = time.monotonic() + 30
        while (len(workers - {None}) < 2 or len(sockets) < 6) and len(sockets) < 60 and time.monotonic() < deadline:
            sockets.append(keep_alive_request(server, "/media/mem/a.txt"))
            workers.add(worker_of(server, sockets[-1]))
        assert len(workers - {None}) == 2, "every request went to one worker"
        for _ in range(6):  # each scrape may land on either worker
            samples = scrape(server)
            assert value(samples, "mediasrv_requests_total", backend="mem", method="GET", status="200") == len(sockets)
            assert value(samples, "mediasrv_sent_bytes_total", backend="mem") == len(sockets) * len(b"hello metrics")
    finally:
        for sock in sockets:
            sock.close()
        server.stop()
