"""mediasrv.connections: a request finds its own connection by the addresses in its scope."""

from __future__ import annotations

import asyncio
import socket

import pytest

from mediasrv import connections
from mediasrv.connections import ConnectionTrackingMixin, find_connection


class TrackingProtocol(ConnectionTrackingMixin, asyncio.Protocol):
    """What mediasrv's uvicorn protocol is, minus HTTP."""


def scope_of(client: socket.socket) -> dict[str, object]:
    """The ASGI scope addresses of the server side of ``client``'s connection."""
    server_host, server_port = client.getpeername()[:2]
    client_host, client_port = client.getsockname()[:2]
    return {"server": (server_host, server_port), "client": (client_host, client_port)}


@pytest.fixture(autouse=True)
def untracked(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each test starts with no tracked server address, whatever ran before it in this process.
    monkeypatch.setattr(connections, "_listening", set())


async def connect(host: str, family: socket.AddressFamily) -> tuple[asyncio.Server, socket.socket]:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(TrackingProtocol, host, 0, family=family)
    client = socket.socket(family, socket.SOCK_STREAM)
    client.setblocking(False)
    await loop.sock_connect(client, server.sockets[0].getsockname())
    await asyncio.sleep(0.05)  # let the server side run connection_made
    return server, client


@pytest.mark.asyncio
@pytest.mark.parametrize(("host", "family"), [("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6)])
async def test_a_request_finds_its_connection_until_it_closes(host: str, family: socket.AddressFamily) -> None:
    if family == socket.AF_INET6 and not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        server, client = await connect(host, family)
    except OSError as exc:
        pytest.skip(f"cannot listen on {host}: {exc}")
    try:
        scope = scope_of(client)  # IPv6 addresses have four parts; the key uses two
        connection = find_connection(scope)
        assert connection is not None and not connection.closed
        assert connection.buffered_bytes() == 0
        other = find_connection({**scope, "client": (scope["client"][0], scope["client"][1] + 1)})  # type: ignore[index]
        assert other is not None and other.closed  # another client's address finds nothing open
        client.close()
        await asyncio.sleep(0.05)  # connection_lost forgets the transport
        assert find_connection(scope).closed  # type: ignore[union-attr]
    finally:
        client.close()
        server.close()
        await server.wait_closed()


def test_without_a_tracking_protocol_there_is_no_connection() -> None:
    assert find_connection({"server": ("127.0.0.1", 80), "client": ("127.0.0.1", 5000)}) is None


@pytest.mark.asyncio
async def test_a_request_to_another_server_is_untracked_while_a_tracked_one_listens() -> None:
    """An in-process ASGI client beside a real tracked server in one process (as
    mediasrv.testing.serve and an httpx ASGITransport can be) must not look disconnected."""
    server, client = await connect("127.0.0.1", socket.AF_INET)
    try:
        assert find_connection(scope_of(client)) is not None
        assert find_connection({"server": ("test", 80), "client": ("127.0.0.1", 123)}) is None
    finally:
        client.close()
        server.close()
        await server.wait_closed()
