"""Limits on client connections, over real sockets to ``mediasrv serve``: the request-head
timeout (slowloris), the head-size and header-count limits, the per-worker connection cap,
and clients that reset a connection before it is set up."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from conftest import PROJECT_DIR, Server, local_server_settings, reset, start_server, wait_until

MakeServer = Callable[..., Server]
HEADER_TIMEOUT = 2


def settings(**server: object) -> str:
    return local_server_settings(PROJECT_DIR / "media", **server)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the tests that need no limit of their own."""
    server = start_server(tmp_path_factory.mktemp("limits"), settings(header_timeout=HEADER_TIMEOUT))
    yield server
    server.stop()


def connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def read_until_closed(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything the server sends until it closes (a reset counts as closed)."""
    sock.settimeout(timeout)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def read_response(sock: socket.socket) -> bytes:
    """One response with a Content-Length, read whole."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")).split(b":")[1])
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def status_and_detail(response: bytes) -> tuple[int, str]:
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)["detail"]


def test_an_idle_connection_is_closed_after_header_timeout(server: Server) -> None:
    sock = connect(server)
    started = time.monotonic()
    assert read_until_closed(sock) == b""
    assert HEADER_TIMEOUT - 0.5 < time.monotonic() - started < HEADER_TIMEOUT + 3
    sock.close()


def test_a_head_sent_byte_by_byte_gets_408_after_header_timeout(server: Server) -> None:
    sock = connect(server)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    sock.settimeout(0.2)
    received = b""
    for index in range(40):  # a header line every 0.2 s, never the blank line: 8 s at most
        try:
            sock.sendall(b"X-Drip-%d: y\r\n" % index)
            received += sock.recv(65536)
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            break
        if received:
            break
    received += read_until_closed(sock)
    sock.close()
    assert time.monotonic() - started < HEADER_TIMEOUT + 3
    status, detail = status_and_detail(received)
    assert status == 408
    assert detail == f"request head not complete within {HEADER_TIMEOUT} s"


def test_a_slow_but_complete_head_and_keep_alive_requests_are_served(server: Server) -> None:
    sock = connect(server)
    for _ in range(3):  # each head takes 1 s; the connection lives 3 s in all, beyond header_timeout
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        time.sleep(0.5)
        sock.sendall(b"Host: x\r\n")
        time.sleep(0.5)
        sock.sendall(b"\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 200")
    sock.close()


def test_a_head_over_max_head_bytes_gets_431_and_is_closed(server: Server) -> None:
    sock = connect(server)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
    try:
        for _ in range(64):  # up to 4 MiB of one header value, stopping when refused
            sock.sendall(b"a" * 65536)
    except (BrokenPipeError, ConnectionResetError):
        pass
    status, detail = status_and_detail(read_until_closed(sock))
    sock.close()
    assert status == 431
    assert detail == "request head over 65536 bytes"
    assert httpx.get(server.url + "/healthz").status_code == 200


def test_a_complete_head_over_the_limit_in_one_send_gets_431(server: Server) -> None:
    sock = connect(server)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 66000 + b"\r\n\r\n")
    status, _ = status_and_detail(read_until_closed(sock))
    sock.close()
    assert status == 431


def test_a_head_just_under_the_limit_is_served(server: Server) -> None:
    response = httpx.get(server.url + "/healthz", headers={"X-Big": "a" * 60000})
    assert response.status_code == 200


def test_too_many_header_lines_get_431(server: Server) -> None:
    sock = connect(server)
    headers = b"".join(b"X-H%d: v\r\n" % index for index in range(101))
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    status, detail = status_and_detail(read_until_closed(sock))
    sock.close()
    assert status == 431
    assert detail == "more than 100 header lines"


def test_connections_beyond_max_connections_are_closed_at_once(make_server: MakeServer) -> None:
    server = make_server(settings(max_connections=4))
    held = [connect(server) for _ in range(4)]
    try:
        extra = connect(server)
        started = time.monotonic()
        extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_until_closed(extra) == b""
        assert time.monotonic() - started < 2
        extra.close()
        held.pop().close()
        assert wait_until(lambda: _healthz_status(server) == 200, timeout=5)
    finally:
        for sock in held:
            sock.close()


def _healthz_status(server: Server) -> int:
    try:
        return httpx.get(server.url + "/healthz", timeout=2).status_code
    except httpx.TransportError:
        return 0


def test_clients_that_reset_at_once_leave_no_traceback(server: Server) -> None:
    for _ in range(300):
        sock = socket.socket()
        sock.connect(("127.0.0.1", server.port))
        reset(sock)
    assert httpx.get(server.url + "/healthz").status_code == 200
    log = server.log()
    assert "Traceback" not in log
    assert "OSError" not in log
