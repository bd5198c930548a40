"""Responses of the media endpoint: object headers, errors, and the streaming body."""

from __future__ import annotations

import asyncio
import logging
import mimetypes
from collections.abc import Callable
from typing import Any

import anyio
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from mediasrv.chunks import Chunks
from mediasrv.connections import ClientConnection
from mediasrv.content_types import DEFAULT_CONTENT_TYPE, needs_sandbox, normalise_content_type
from mediasrv.errors import BackendUnavailable, MediaError, NotModified, RangeNotSatisfiable
from mediasrv.grammar import format_http_date, header_safe
from mediasrv.objects import ObjectInfo
from mediasrv.outcome import Outcome
from mediasrv.ranges import ContentRange

logger = logging.getLogger("mediasrv")

Headers = list[tuple[bytes, bytes]]


# Python's built-in table only, so a guess does not depend on the host's /etc/mime.types.
_mime_types = mimetypes.MimeTypes()
for _type, _extension in (
    ("image/webp", ".webp"),
    ("image/avif", ".avif"),
    ("image/jxl", ".jxl"),
    ("image/heic", ".heic"),
    ("video/webm", ".webm"),
    ("audio/flac", ".flac"),
):
    _mime_types.add_type(_type, _extension)


class ClientStalled(Exception):
    """The client accepted no bytes for ``send_timeout`` seconds."""


def header_bytes(value: str) -> bytes:
    """A header value from a backend's metadata, as bytes: characters a header cannot carry
    (CR, LF, NUL and other controls, non-Latin-1) become "?", so metadata cannot inject headers."""
    return header_safe(value).encode("latin-1")


def guess_content_type(key: str) -> str:
    """The media type a key's extension suggests, else application/octet-stream."""
    guessed, _ = _mime_types.guess_type(key, strict=False)
    return guessed or DEFAULT_CONTENT_TYPE


def validator_headers(info: ObjectInfo, cache_control: str) -> Headers:
    """ETag, Last-Modified and Cache-Control: what a 200, 206 and 304 all carry."""
    headers: Headers = []
    if info.etag:
        headers.append((b"etag", header_bytes(info.etag)))
    # Any aware datetime will do (botocore's carry dateutil's tzutc); one no HTTP date can
    # express (a source's "31 Dec 9999 23:59:59 PST") is left out, as a garbled one would be.
    last_modified = format_http_date(info.last_modified) if info.last_modified is not None else None
    if last_modified is not None:
        headers.append((b"last-modified", last_modified.encode()))
    cache_control = cache_control or info.cache_control or ""
    if cache_control:
        headers.append((b"cache-control", header_bytes(cache_control)))
    return headers


def object_headers(info: ObjectInfo, key: str, cache_control: str, content_range: ContentRange | None) -> Headers:
    """Every header of a 200 or 206 (or the HEAD of one) for ``info``."""
    content_type = normalise_content_type(info.content_type) if info.content_type else guess_content_type(key)
    headers = validator_headers(info, cache_control)
    headers.append((b"content-type", header_bytes(content_type)))
    headers.append((b"accept-ranges", b"bytes"))
    if needs_sandbox(content_type):
        headers.append((b"content-security-policy", b"sandbox"))
    if info.content_encoding:
        headers.append((b"content-encoding", header_bytes(info.content_encoding)))
    if content_range is not None:
        headers.append((b"content-range", content_range.header_value().encode()))
        headers.append((b"content-length", str(content_range.length).encode()))
    elif info.size is not None:
        headers.append((b"content-length", str(info.size).encode()))
    return headers


def error_response(exc: MediaError, cache_control: str = "") -> Response:
    """The response for an error decided before the status line: JSON ``detail``, or a bare 304."""
    if isinstance(exc, NotModified):
        headers = validator_headers(exc.info, cache_control) if exc.info else []
        return MediaResponse(304, headers)
    extra: dict[str, str] = {}
    if isinstance(exc, RangeNotSatisfiable) and exc.size is not None:  # "bytes */*" is not HTTP
        extra["content-range"] = f"bytes */{exc.size}"
    if isinstance(exc, BackendUnavailable) and exc.retry_after is not None:
        extra["retry-after"] = str(exc.retry_after)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=extra)


async def close_chunks(chunks: Chunks) -> None:
    """Close a chunk iterator, whatever happens around it: shielded, bounded, never raising."""
    with anyio.move_on_after(MediaResponse.close_timeout, shield=True):
        try:
            await chunks.aclose()
        except Exception as exc:
            logger.warning("closing a chunk iterator failed: %r", exc)


class MediaResponse(Response):
    """Headers decided up front, then the chunks (or no body, for HEAD and 304).

    Owns the chunk iterator: it is closed when the body is done, when the source fails,
    when the client disconnects and when the client stalls (``connection`` is how it
    notices; without one it relies on the server). A failure after the status line
    aborts the connection, so the client sees a truncated transfer, never a short 200.
    ``on_finish`` is called last, with how the body ended (an ``Outcome``).
    """

    close_timeout = 5.0

    def __init__(
        self,
        status_code: int,
        headers: Headers,
        chunks: Chunks | None = None,
        *,
        content_length: int | None = None,
        connection: ClientConnection | None = None,
        send_timeout: float = 60.0,
        on_finish: Callable[[str], None] | None = None,
    ) -> None:
        self.status_code = status_code
        self.raw_headers = headers
        self.background = None
        self.chunks = chunks
        self.content_length = content_length
        self.connection = connection
        self.send_timeout = send_timeout
        self.on_finish = on_finish
        self.outcome = Outcome.COMPLETE

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            if self.chunks is not None:
                await self._stream(send, self.connection)
            if self.outcome == Outcome.COMPLETE:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            if self.chunks is not None:
                await close_chunks(self.chunks)
            if self.on_finish is not None:
                self.on_finish(self.outcome)

    async def _stream(self, send: Send, connection: ClientConnection | None) -> str:
        """Send every chunk; the Outcome, kept in ``self.outcome`` (also when this raises)."""
        try:
            self.outcome = await self._send_chunks(send, connection)
        except asyncio.CancelledError:
            self.outcome = Outcome.CANCELLED  # shutdown_timeout ran out while streaming
            raise
        except Exception:
            self.outcome = Outcome.SOURCE_FAILED
            raise
        return self.outcome

    async def _send_chunks(self, send: Send, connection: ClientConnection | None) -> str:
        assert self.chunks is not None
        sent = 0
        try:
            async for chunk in self.chunks:
                sent += len(chunk)
                if self.content_length is not None and sent > self.content_length:
                    raise RuntimeError(f"source yielded more than the {self.content_length} bytes it declared")
                await self._send_chunk(send, chunk, connection)
                if connection is not None and connection.closed:
                    logger.debug("client disconnected after %d bytes", sent)
                    await self._abort(connection)  # so uvicorn learns of it before the app returns
                    return Outcome.CLIENT_DISCONNECTED
            if self.content_length is not None and sent != self.content_length:
                raise RuntimeError(f"source ended after {sent} of {self.content_length} bytes")
            return Outcome.COMPLETE
        except ClientStalled:
            logger.info("client accepted no bytes for %ss; connection aborted", self.send_timeout)
            await self._abort(connection)
            return Outcome.CLIENT_STALLED
        except Exception as exc:
            logger.warning("stream failed after %d bytes, connection aborted: %r", sent, exc)
            if connection is None:
                raise  # the server closes the connection; the client still sees a short body
            await self._abort(connection)
            return Outcome.SOURCE_FAILED

    async def _send_chunk(self, send: Send, chunk: bytes, connection: ClientConnection | None) -> None:
        """Send one chunk; ClientStalled when the client takes no byte for ``send_timeout``.

        uvicorn's send waits for the write buffer to drain before it writes anything, so a
        send cancelled by the timeout wrote nothing and can be retried as long as the client
        keeps taking bytes, however slowly.
        """
        message: dict[str, Any] = {"type": "http.response.body", "body": chunk, "more_body": True}
        if connection is not None and connection.buffered_bytes() == 0:
            await send(message)  # nothing queued: uvicorn's send cannot block
            return
        while True:
            unsent = connection.unsent_bytes() if connection is not None else 0
            try:
                async with asyncio.timeout(self.send_timeout):
                    await send(message)
                return
            except TimeoutError:
                if connection is None or connection.closed or connection.unsent_bytes() >= unsent:
                    raise ClientStalled from None

    @staticmethod
    async def _abort(connection: ClientConnection | None) -> None:
        if connection is not None:
            connection.abort()
            # Let the loop run connection_lost before the app returns: then uvicorn knows the
            # client is gone instead of logging an ERROR for an incomplete response.
            await asyncio.sleep(0)
