"""Client connections of this worker, so a response can tell that its client left and can
abort (not politely close) the connection of a client that stopped reading.

ASGI gives an app no handle on its connection, and uvicorn's ``send`` silently does nothing
once the client is gone; a polite ``close()`` waits forever to flush to a client that reads
nothing. mediasrv's uvicorn protocol (``ConnectionTrackingMixin``) records each transport here.
"""

from __future__ import annotations

import asyncio
import fcntl
import sys
import termios
from collections.abc import Mapping
from typing import Any

Address = tuple[str, int]
ConnectionKey = tuple[Address, Address]

_transports: dict[ConnectionKey, asyncio.BaseTransport] = {}
# The local addresses a tracking protocol has accepted connections on in this process: a
# request to any other server (an in-process ASGI client, another app) is not tracked here.
_listening: set[Address] = set()


class ClientConnection:
    """The transport under one request, as far as a response needs it (None: already gone)."""

    def __init__(self, transport: asyncio.WriteTransport | None) -> None:
        self._transport = transport

    @property
    def closed(self) -> bool:
        """The client is gone, or the connection is being torn down."""
        return self._transport is None or self._transport.is_closing()

    def buffered_bytes(self) -> int:
        """Bytes in the transport's own write buffer (cheap; no system call)."""
        return 0 if self._transport is None else self._transport.get_write_buffer_size()

    def unsent_bytes(self) -> int:
        """Bytes written but not yet acknowledged by the client: in the transport's buffer
        and, on Linux, in the kernel's send queue (which can hold megabytes on its own)."""
        if self._transport is None:
            return 0
        return self.buffered_bytes() + _kernel_send_queue(self._transport)

    def abort(self) -> None:
        """Drop the connection at once, discarding unsent data (the client sees a reset)."""
        if self._transport is not None:
            self._transport.abort()


def find_connection(scope: Mapping[str, Any]) -> ClientConnection | None:
    """The connection a request came on; None when not served by a tracking protocol.

    Look it up when the request starts and keep it: once the client has gone, its
    addresses may come back on a new connection.
    """
    server, client = scope.get("server"), scope.get("client")
    if not server or not client or (server[0], server[1]) not in _listening:
        return None
    transport = _transports.get(((server[0], server[1]), (client[0], client[1])))
    # Duck-typed: uvloop's transports are not asyncio.WriteTransport subclasses.
    return ClientConnection(transport)  # type: ignore[arg-type]


class ConnectionTrackingMixin:
    """Mixed into an asyncio protocol (uvicorn's HTTP protocols): records its transport."""

    _connection_key: ConnectionKey | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._connection_key = _key_of(transport)
        if self._connection_key is not None:
            _listening.add(self._connection_key[0])
            _transports[self._connection_key] = transport
        super().connection_made(transport)  # type: ignore[misc]

    def connection_lost(self, exc: Exception | None) -> None:
        if self._connection_key is not None:
            _transports.pop(self._connection_key, None)
        super().connection_lost(exc)  # type: ignore[misc]


def _kernel_send_queue(transport: asyncio.BaseTransport) -> int:
    sock = transport.get_extra_info("socket")
    if sock is None or not hasattr(termios, "TIOCOUTQ"):
        return 0
    try:
        queued = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except OSError:
        return 0
    return int.from_bytes(queued, sys.byteorder, signed=True)


def _key_of(transport: asyncio.BaseTransport) -> ConnectionKey | None:
    sock = transport.get_extra_info("socket")
    if sock is None:
        return None
    try:
        local, remote = sock.getsockname(), sock.getpeername()
    except OSError:
        return None  # the client reset the connection before it was set up (ENOTCONN)
    if not isinstance(local, tuple) or not isinstance(remote, tuple):
        return None  # a Unix socket: no addresses to match a scope by
    return (str(local[0]), int(local[1])), (str(remote[0]), int(remote[1]))
