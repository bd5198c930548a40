"""The media endpoint in-process: no socket, no subprocess, so a matrix of thousands of
requests runs in seconds. For HTTP semantics only; streaming, disconnects, limits and real
sources are tested over real sockets (conftest.py).

``SourceBackend`` is an in-memory backend that does everything a backend may do itself
(ranges, conditions, If-Range) unless told to ``ignore`` some of it, or to break the
contract (``fault``), so a test can check the core gives the same answers whatever the
backend left to it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx
from starlette.applications import Starlette
from starlette.routing import Route

from mediasrv import (
    BackendSettings,
    ByteRange,
    ChunkReader,
    Conditions,
    ContentRange,
    Health,
    NotFound,
    ObjectInfo,
    ObjectStream,
    StorageBackend,
    check_preconditions,
    range_applies,
)
from mediasrv.limits import StreamLimiter
from mediasrv.media import MediaEndpoint
from mediasrv.registry import BackendRegistry

LAST_MODIFIED = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
LAST_MODIFIED_HTTP = "Tue, 02 Jan 2024 03:04:05 GMT"
IGNORABLE = frozenset({"range", "conditions", "if-range"})


class BytesChunks(ChunkReader):
    def __init__(self, data: bytes, chunk_size: int) -> None:
        self.data = data
        self.chunk_size = chunk_size
        self.closed = False

    async def read(self) -> bytes:
        chunk, self.data = self.data[: self.chunk_size], self.data[self.chunk_size :]
        return chunk

    async def release(self) -> None:
        self.closed = True


class SourceBackend(StorageBackend):
    """Objects from a dict; ``ignore`` names what it leaves to the core, ``fault`` a contract
    break: ``"unasked-range"`` (a range when none was asked) or ``"other-range"`` (the first
    byte, whatever was asked)."""

    kind = "source"

    def __init__(
        self, objects: dict[str, bytes], ignore: frozenset[str] = frozenset(), fault: str = "", chunk_size: int = 7
    ) -> None:
        super().__init__("src", BackendSettings(kind="source", chunk_size=4096))
        assert ignore <= IGNORABLE
        self.objects = objects
        self.ignore = ignore
        self.fault = fault
        self.chunk_size = chunk_size
        self.opened: list[BytesChunks] = []

    async def stat(self, key: str) -> ObjectInfo:
        if key not in self.objects:
            raise NotFound()
        return ObjectInfo(size=len(self.objects[key]), etag=f'"v-{len(self.objects[key])}"', last_modified=LAST_MODIFIED)

    async def open(self, key: str, byte_range: ByteRange | None, conditions: Conditions) -> ObjectStream:
        info = await self.stat(key)
        data = self.objects[key]
        if "conditions" not in self.ignore:
            check_preconditions(conditions, info)
        content_range = self._content_range(byte_range, conditions, info, len(data))
        if content_range is not None:
            data = data[content_range.first : content_range.last + 1]
        chunks = BytesChunks(data, self.chunk_size)
        self.opened.append(chunks)
        return ObjectStream(info, chunks, content_range)

    def _content_range(
        self, byte_range: ByteRange | None, conditions: Conditions, info: ObjectInfo, size: int
    ) -> ContentRange | None:
        if self.fault == "unasked-range" and byte_range is None:
            return ContentRange(0, 0, size)
        if self.fault == "other-range" and byte_range is not None:
            return ContentRange(0, 0, size)
        if byte_range is None or "range" in self.ignore:
            return None
        if "if-range" not in self.ignore and not range_applies(conditions, info):
            return None
        return byte_range.resolve(size)

    async def health(self) -> Health:
        return Health(ok=True)


@asynccontextmanager
async def media_client(backend: StorageBackend) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client whose requests go straight into a media endpoint serving ``backend``
    under ``/media/src/``."""
    endpoint = MediaEndpoint(BackendRegistry({"src": backend}), StreamLimiter(1000), send_timeout=5.0)
    app = Starlette(routes=[Route("/media/{backend}/{key:path}", endpoint.handle, methods=["GET", "HEAD"])])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://mediasrv") as client:
        yield client
