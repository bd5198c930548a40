"""Limits on client connections, enforced in mediasrv's uvicorn protocol before any request
reaches the app: how long a request head may take (``header_timeout``), how large it may be
(``max_head_bytes``, and at most ``max_headers`` header lines), and how many connections a
worker keeps open (``max_connections``).

uvicorn has none of these for httptools: an idle or byte-by-byte connection is never closed,
and httptools buffers a header of any size before handing it over.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
from dataclasses import dataclass
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from mediasrv.settings import ServerSettings

logger = logging.getLogger("mediasrv")


@dataclass(frozen=True)
class ProtocolLimits:
    """The limits of one worker's connections."""

    header_timeout: float = 10.0
    max_head_bytes: int = 65536
    max_connections: int = 10000

    max_headers: ClassVar[int] = 100  # header lines per request, as Apache's LimitRequestFields
    linger: ClassVar[float] = 2.0  # seconds a refused client may take to read its answer


_limits = ProtocolLimits()


def set_protocol_limits(server: ServerSettings) -> ProtocolLimits:
    """Use ``server``'s limits for this worker's new connections; called as each worker builds its app."""
    global _limits
    _limits = ProtocolLimits(server.header_timeout, server.max_head_bytes, connection_cap(server.max_connections))
    return _limits


def connection_cap(max_connections: int) -> int:
    """``max_connections``, lowered to what the open-file limit allows.

    The soft limit is raised to the hard one first. A quarter of the descriptors (64 at
    least) stays free for the files and upstream connections of streams in flight, so a
    flood of idle connections cannot starve them.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return max_connections
    allowed = max(1, soft - max(64, soft // 4))
    if allowed < max_connections:
        logger.warning("max_connections %d lowered to %d: the open-file limit is %d", max_connections, allowed, soft)
        return allowed
    return max_connections


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the limits above.

    A connection beyond ``max_connections`` is aborted as soon as it is accepted. A request
    head that takes longer than ``header_timeout`` gets ``408`` (a connection that sent
    nothing is just closed); one over ``max_head_bytes`` or ``max_headers`` gets ``431``.
    Either answer closes the connection: the rest of the client's input is read and dropped
    for up to ``linger`` seconds, so the client sees the answer rather than a reset.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = _limits
        # One timer per connection, not one per request: it is left running when a head
        # completes, and when it fires it looks at the head in progress then (see _head_timed_out).
        self._head_deadline: asyncio.TimerHandle | None = None
        self._head_began = 0.0  # loop time the connection opened, or the current head's first byte came
        self._requests = 0  # heads completed on this connection
        self._linger: asyncio.TimerHandle | None = None
        self._awaiting_head = True  # between one request's end and the next one's headers
        self._head_started = False  # the first byte of a request head has arrived
        self._raw_head_bytes = 0  # received while awaiting a head: what httptools buffers
        self._head_bytes = 0  # the parsed request line and headers
        self._header_count = 0
        self._refused = False  # answered with a limit's error: all further input is dropped

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        over_limit = len(self.connections) >= self.limits.max_connections  # uvicorn adds this one next
        super().connection_made(transport)
        if over_limit:
            self._refused = True
            transport.abort()  # at once: its descriptor is worth more to the streams in flight
            return
        self._head_began = self.loop.time()
        self._arm_head_deadline(self.limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_deadline()
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._awaiting_head:
            self._raw_head_bytes += len(data)
        super().data_received(data)
        if self._awaiting_head and not self._refused and self._raw_head_bytes > self.limits.max_head_bytes:
            self._refuse(431, f"request head over {self.limits.max_head_bytes} bytes")

    def send_400_response(self, msg: str) -> None:
        if not self._refused:
            self._refused = True
            super().send_400_response(msg)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._awaiting_head = True
        self._head_started = True
        self._head_bytes = 0
        self._header_count = 0
        self._head_began = self.loop.time()
        if self._head_deadline is None:
            self._arm_head_deadline(self.limits.header_timeout)

    def on_url(self, url: bytes) -> None:
        if not self._refused:
            super().on_url(url)
            self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._refused:
            return
        self._header_count += 1
        self._count_head(len(name) + len(value) + 4)  # ": " and CRLF
        if not self._refused:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._awaiting_head = False
        self._head_started = False
        self._raw_head_bytes = 0
        self._requests += 1
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()
            self._awaiting_head = True

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.limits.max_head_bytes:
            self._refuse(431, f"request head over {self.limits.max_head_bytes} bytes")
        elif self._header_count > self.limits.max_headers:
            self._refuse(431, f"more than {self.limits.max_headers} header lines")

    def _arm_head_deadline(self, delay: float) -> None:
        self._head_deadline = self.loop.call_later(delay, self._head_timed_out)

    def _cancel_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if self._refused or self.transport.is_closing():
            return
        if not self._awaiting_head or (self._requests and not self._head_started):
            return  # a request is being answered, or the connection idles between two (keep-alive's)
        timeout = self.limits.header_timeout
        if self.cycle is not None and not self.cycle.response_complete:
            self._arm_head_deadline(timeout)  # a pipelined head waits on the response going out
            return
        left = self._head_began + timeout - self.loop.time()
        if left > 0:  # this head (or connection) began after the timer was set
            self._arm_head_deadline(left)
        elif not self._head_started:
            self._refused = True
            self.transport.close()  # sent nothing: nothing to answer
        else:
            self._refuse(408, f"request head not complete within {timeout:g} s")

    def _refuse(self, status: int, detail: str) -> None:
        """Answer ``status`` with a JSON detail, then close; later input is dropped."""
        self._refused = True
        self._cancel_head_deadline()
        logger.debug("refused a request from %s: %s", self.client[0] if self.client else "?", detail)
        body = json.dumps({"detail": detail}).encode()
        head = (
            b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body)
        )
        self.transport.write(STATUS_LINE[status] + head + body)
        self.flow.resume_reading()  # keep reading, and dropping, so the client gets the answer
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._linger = self.loop.call_later(self.limits.linger, self.transport.abort)
