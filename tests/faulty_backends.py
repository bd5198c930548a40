"""Backends that each break one rule of the StorageBackend contract, run through
mediasrv.testing by test_conformance_catches.py to prove the suite notices.

Copied into a pytester folder as ``test_faulty.py``; ``Test*`` classes there are collected.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
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
    StorageBackend,
)
from mediasrv.testing import BackendConformance, SampleObject, started


class BytesChunks(ChunkReader):
    def __init__(self, data: bytes, chunk_size: int, fault: str = "") -> None:
        self.data = data
        self.chunk_size = chunk_size
        self.fault = fault
        self.fd = os.open(os.devnull, os.O_RDONLY)  # the resource that release() frees

    async def read(self) -> bytes:
        chunk, self.data = self.data[: self.chunk_size], self.data[self.chunk_size :]
        return chunk

    async def release(self) -> None:
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

    async def stat(self, key: str) -> ObjectInfo:
        if key not in self.objects:
            raise KeyError(key) if self.fault == "library-error" else NotFound()
        naive = self.fault == "naive-datetime"
        modified = datetime(2024, 1, 1) if naive else datetime(2024, 1, 1, tzinfo=UTC)
        return ObjectInfo(size=len(self.objects[key]), etag=f'"{len(self.objects[key])}"', last_modified=modified)

    async def open(self, key: str, byte_range: ByteRange | None, conditions: Conditions) -> ObjectStream:
        info = await self.stat(key)
        data = self.objects[key]
        content_range: ContentRange | None = None
        if byte_range is not None:
            if self.fault == "empty-past-the-end" and byte_range.first is not None and byte_range.first >= len(data):
                return ObjectStream(info, BytesChunks(b"", 1), ContentRange(0, 0, len(data)))
            content_range = byte_range.resolve(len(data))
            shift = 1 if self.fault == "off-by-one" else 0
            data = data[content_range.first + shift : content_range.last + 1 + shift]
        return ObjectStream(info, BytesChunks(data, self.settings.chunk_size, self.fault), content_range)

    async def health(self) -> Health:
        return Health(ok=self.fault != "unhealthy", error="broken" if self.fault == "unhealthy" else None)


class Faulty(BackendConformance):
    fault: ClassVar[str] = ""

    @pytest_asyncio.fixture
    async def backend(self, objects: dict[str, SampleObject]) -> AsyncIterator[StorageBackend]:
        instance = FaultyBackend("faulty", BackendSettings(kind="faulty", chunk_size=self.chunk_size))
        instance.fault = self.fault
        instance.objects = {key: sample.data for key, sample in objects.items()}
        async with started(instance) as backend:
            yield backend


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
