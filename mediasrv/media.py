"""The media endpoint: ``GET`` and ``HEAD /media/{backend}/{key:path}``."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from mediasrv.backend import StorageBackend
from mediasrv.backend import guarded as _guarded
from mediasrv.chunks import SlicedChunks
from mediasrv.conditional import check_preconditions, conditions_from_headers, range_applies
from mediasrv.connections import ClientConnection, find_connection
from mediasrv.errors import (
    MediaError,
    NotModified,
    RangeNotSatisfiable,
    SignatureRejected,
    UpstreamError,
)
from mediasrv.keys import validate_key
from mediasrv.limits import Slot, StreamLimiter
from mediasrv.objects import Conditions, ObjectStream
from mediasrv.observer import RequestRecord, error_kind, request_record
from mediasrv.ranges import ByteRange, parse_range, serves
from mediasrv.registry import BackendRegistry
from mediasrv.responses import MediaResponse, close_chunks, error_response, object_headers
from mediasrv.signing import Signer

if TYPE_CHECKING:
    from mediasrv.transforms.service import ImageService

logger = logging.getLogger("mediasrv")


class MediaEndpoint:
    """Serves objects from the registry's backends with full HTTP semantics."""

    def __init__(
        self,
        registry: BackendRegistry,
        limiter: StreamLimiter,
        send_timeout: float,
        signer: Signer | None = None,
        images: ImageService | None = None,
    ) -> None:
        self.registry = registry
        self.limiter = limiter
        self.send_timeout = send_timeout
        self.signer = signer
        self.images = images

    async def handle(self, request: Request) -> Response:
        """Answer one request; every expected failure becomes its status, decided up front."""
        record = request_record(request.scope)
        record.key = request.path_params["key"]
        record.range = request.headers.get("range")
        cache_control = ""
        try:
            name = request.path_params["backend"]
            if name in self.registry.backends:
                record.backend = name
            backend = self.registry.get(name)
            cache_control = backend.settings.cache_control
            if backend.settings.access == "signed":
                self._require_signature(request)
            key = validate_key(record.key)
            if self.images is not None:
                options = self.images.options(request)
                if options is not None:
                    return await self.images.respond(request, backend, key, options, record)
            if request.method == "HEAD":
                return await self._head(backend, key, request, record)
            return await self._get(backend, key, request, record)
        except MediaError as exc:
            if not isinstance(exc, NotModified):
                record.error = error_kind(exc)
            return error_response(exc, cache_control)

    def _require_signature(self, request: Request) -> None:
        """SignatureRejected unless the URL is validly signed: before the key is looked at or
        any backend is called."""
        if self.signer is None:  # start-up refuses this; should it happen, stay closed
            raise SignatureRejected("signature_invalid")
        self.signer.require(request)

    async def _head(self, backend: StorageBackend, key: str, request: Request, record: RequestRecord) -> Response:
        started = time.perf_counter()
        try:
            info = await _guarded(backend, backend.stat(key))
        finally:
            record.open_seconds = time.perf_counter() - started
        check_preconditions(conditions_from_headers(request.headers), info)
        return MediaResponse(200, object_headers(info, key, backend.settings.cache_control, None))

    async def _get(self, backend: StorageBackend, key: str, request: Request, record: RequestRecord) -> Response:
        connection = find_connection(request.scope)  # before opening: a client may leave meanwhile
        byte_range = parse_range(record.range)
        conditions = conditions_from_headers(request.headers)
        client = request.scope.get("client")
        slot = self.limiter.acquire(client[0] if client else None)
        started = time.perf_counter()
        try:
            stream = await self._open(backend, key, byte_range, conditions)
            stream = await self._settle(backend, key, stream, byte_range, conditions)
        except BaseException:
            slot.release()
            raise
        finally:
            record.open_seconds = time.perf_counter() - started
        try:
            return self._stream_response(backend, key, stream, slot, connection, record)
        except BaseException:
            await close_chunks(stream.chunks)
            slot.release()
            raise

    async def _open(
        self, backend: StorageBackend, key: str, byte_range: ByteRange | None, conditions: Conditions
    ) -> ObjectStream:
        try:
            return await _guarded(backend, backend.open(key, byte_range, conditions))
        except RangeNotSatisfiable:
            if byte_range is None or not conditions:
                raise
        # The conditions come first (a 304 or 412 before a 416: RFC 9110 section 13.2.2) and
        # If-Range may name an older version, in which case the range does not apply at all.
        stream = await _guarded(backend, backend.open(key, None, replace(conditions, if_range=None)))
        try:
            check_preconditions(conditions, stream.info)
            if range_applies(conditions, stream.info) and stream.info.size is not None:
                raise RangeNotSatisfiable(stream.info.size)
        except BaseException:
            await close_chunks(stream.chunks)
            raise
        return stream

    async def _settle(
        self,
        backend: StorageBackend,
        key: str,
        stream: ObjectStream,
        byte_range: ByteRange | None,
        conditions: Conditions,
    ) -> ObjectStream:
        """Apply the conditions and the range to an opened stream, whatever the backend did of them.

        Closes the stream before raising (304, 412, 416, and 502 for a range the backend should
        not have served).
        """
        try:
            check_preconditions(conditions, stream.info)
            if byte_range is not None and not range_applies(conditions, stream.info):
                byte_range = None
                if stream.content_range is not None:  # the backend ignored If-Range: reopen whole
                    await close_chunks(stream.chunks)
                    stream = await _guarded(backend, backend.open(key, None, Conditions()))
            if stream.content_range is not None:
                _check_served_range(backend, byte_range, stream)
            elif byte_range is not None and stream.info.size is not None:
                content_range = byte_range.resolve(stream.info.size)
                stream.chunks = SlicedChunks(stream.chunks, content_range.first, content_range.length)
                stream.content_range = content_range
            return stream
        except BaseException:
            await close_chunks(stream.chunks)
            raise

    def _stream_response(
        self,
        backend: StorageBackend,
        key: str,
        stream: ObjectStream,
        slot: Slot,
        connection: ClientConnection | None,
        record: RequestRecord,
    ) -> Response:
        def finish(outcome: str) -> None:
            slot.release()
            record.outcome = outcome

        content_range = stream.content_range
        headers = object_headers(stream.info, key, backend.settings.cache_control, content_range)
        return MediaResponse(
            206 if content_range is not None else 200,
            headers,
            stream.chunks,
            content_length=content_range.length if content_range is not None else stream.info.size,
            connection=connection,
            send_timeout=self.send_timeout,
            on_finish=finish,
        )


def _check_served_range(backend: StorageBackend, asked: ByteRange | None, stream: ObjectStream) -> None:
    """The range a backend returned must be what was asked (or its start, a source may send
    less), else no 206 goes out: 416 when nothing of the object can be served, else 502 and
    an error in the log, since the backend broke its contract."""
    served = stream.content_range
    assert served is not None
    size = stream.info.size if stream.info.size is not None else served.size
    if asked is not None and serves(asked, served) and (served.size is None or served.size == size):
        return
    if asked is not None and size is not None:
        asked.resolve(size)  # RangeNotSatisfiable when no byte of the object is asked
    logger.error(
        "backend %r (%s) returned bytes %s for %s: a plugin bug",
        backend.name,
        backend.kind,
        served.header_value().removeprefix("bytes "),
        asked.header_value() if asked is not None else "a request without a range",
    )
    raise UpstreamError(f"backend {backend.name!r} returned another range than the one asked")
