"""Backends that each break one rule of the StorageBackend contract, run through
mediasrv.testing by test_conformance_catches.py to prove the suite notices.

Copied into a pytester folder as ``test_faulty.py``; ``Test*`` classes there are collected.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import ClassVar

import pytest_asyncio

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
    PreconditionFailed,
    StorageBackend,
    UpstreamError,
)
from mediasrv.testing import BackendConformance, SampleObject, started


class BytesChunks(ChunkReader):
    def __init__(
        self,
        data: bytes,
        chunk_size: int,
        fault: str = "",
        fd: int | None = None,
        broken: Callable[[], bool] = lambda: False,
        on_release: Callable[[], None] = lambda: None,
    ) -> None:
        self.data = memoryview(data)
        self.chunk_size = chunk_size
        self.fault = fault
        self.fd = os.open(os.devnull, os.O_RDONLY) if fd is None else fd  # the resource that release() frees
        self.broken = broken
        self.on_release = on_release
        self.kept: list[bytes] = []

    async def read(self) -> bytes:
        if self.data and self.broken():
            if self.fault == "ends-cleanly":  # the source failed: says "end of data" instead of raising
                return b""
            raise UpstreamError("the source failed")
        chunk, self.data = bytes(self.data[: self.chunk_size]), self.data[self.chunk_size :]
        if self.fault == "keeps-chunks":  # holds every chunk it has served until released
            self.kept.append(chunk)
        return chunk

    async def release(self) -> None:
        self.kept.clear()
        self.on_release()
        if self.fault != "leak":  # forgets to free the resource
            os.close(self.fd)

    async def aclose(self) -> None:
        if self.fault != "aclose-ignored":  # overrides ChunkReader.aclose and never releases
            await super().aclose()


class FaultyBackend(StorageBackend):
    """A correct in-memory backend, unless ``fault`` names the rule to break."""

    kind = "faulty"
    fault = ""
    objects: dict[str, bytes] = {}
    broken = False  # set by Faulty.break_object: the source fails from then on
    streams = 0  # open streams

    async def stop(self) -> None:
        while self.fault == "stop-waits" and self.streams:  # waits for clients to finish
            await asyncio.sleep(0.01)

    async def stat(self, key: str) -> ObjectInfo:
        if key not in self.objects:
            raise KeyError(key) if self.fault == "library-error" else NotFound()
        if self.fault == "stat-reads-body":  # reads the whole body to learn the size
            return self._info(key, len(bytes(bytearray(self.objects[key]))))
        return self._info(key, len(self.objects[key]))

    def _info(self, key: str, size: int) -> ObjectInfo:
        naive = self.fault == "naive-datetime"
        modified = datetime(2024, 1, 1) if naive else datetime(2024, 1, 1, tzinfo=UTC)
        return ObjectInfo(size=size, etag=f'"{size}"', last_modified=modified)

    async def open(self, key: str, byte_range: ByteRange | None, conditions: Conditions) -> ObjectStream:
        fd = os.open(os.devnull, os.O_RDONLY)  # a connection taken from a pool
        try:
            await asyncio.sleep(0.001)  # the round trip to the source
            return await self._open(key, byte_range, conditions, fd)
        except BaseException:
            if self.fault != "cancel-leak":  # a cancelled or failed open forgets its connection
                os.close(fd)
            raise

    async def _open(self, key: str, byte_range: ByteRange | None, conditions: Conditions, fd: int) -> ObjectStream:
        info = await self.stat(key)
        data = self.objects[key]
        if self.fault == "open-reads-body":  # buffers the whole object before the first byte
            data = bytes(bytearray(data))
        stale = conditions.if_range is not None and conditions.if_range != info.etag
        if self.fault == "if-range-as-if-match" and stale:
            raise PreconditionFailed()
        content_range: ContentRange | None = None
        if byte_range is not None:
            if self.fault == "empty-past-the-end" and byte_range.first is not None and byte_range.first >= len(data):
                return ObjectStream(info, BytesChunks(b"", 1, fd=fd), ContentRange(0, 0, len(data)))
            content_range = byte_range.resolve(len(data))
            shift = 1 if self.fault == "off-by-one" else 0
            data = data[content_range.first + shift : content_range.last + 1 + shift]
        self.streams += 1
        chunks = BytesChunks(data, self.settings.chunk_size, self.fault, fd, lambda: self.broken, self._closed)
        return ObjectStream(info, chunks, content_range)

    def _closed(self) -> None:
        self.streams -= 1

    async def health(self) -> Health:
        return Health(ok=self.fault != "unhealthy", error="broken" if self.fault == "unhealthy" else None)


class Faulty(BackendConformance):
    fault: ClassVar[str] = ""
    large_object_size = 1024 * 1024  # ample against a 4 KiB chunk size, and quicker
    memory_per_stream = 128 * 1024
    idle_connections = 1  # it pools nothing: a single leaked descriptor beyond noise shows

    @pytest_asyncio.fixture
    async def backend(self, objects: dict[str, SampleObject]) -> AsyncIterator[StorageBackend]:
        instance = FaultyBackend("faulty", BackendSettings(kind="faulty", chunk_size=self.chunk_size))
        instance.fault = self.fault
        instance.objects = {key: sample.data for key, sample in objects.items()}
        async with started(instance) as backend:
            yield backend

    async def break_object(self, backend: StorageBackend, key: str) -> bool:
        assert isinstance(backend, FaultyBackend)
        backend.broken = True
        return True


class TestCorrect(Faulty):
    fault = ""


class TestLeak(Faulty):
    fault = "leak"


class TestAcloseIgnored(Faulty):
    fault = "aclose-ignored"


class TestOffByOne(Faulty):
    fault = "off-by-one"


class TestLibraryError(Faulty):
    fault = "library-error"


class TestNaiveDatetime(Faulty):
    fault = "naive-datetime"


class TestEmptyPastTheEnd(Faulty):
    fault = "empty-past-the-end"


class TestUnhealthy(Faulty):
    fault = "unhealthy"


class TestStatReadsBody(Faulty):
    fault = "stat-reads-body"


class TestOpenReadsBody(Faulty):
    fault = "open-reads-body"


class TestKeepsChunks(Faulty):
    fault = "keeps-chunks"


class TestCancelLeak(Faulty):
    fault = "cancel-leak"


class TestStopWaits(Faulty):
    fault = "stop-waits"
    timeout = 1.0


class TestIfRangeAsIfMatch(Faulty):
    fault = "if-range-as-if-match"


class TestEndsCleanly(Faulty):
    fault = "ends-cleanly"
