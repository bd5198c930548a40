"""The conformance suite for StorageBackend implementations, for a plugin's own tests.

Subclass :class:`BackendConformance` in a test module and provide one fixture, ``backend``:
an async fixture that stores the ``objects`` it is given in your source, then yields your
backend started, with ``chunk_size = BackendConformance.chunk_size``::

    import pytest_asyncio
    from mediasrv.testing import BackendConformance, SampleObject, started

    class TestMyBackend(BackendConformance):
        @pytest_asyncio.fixture
        async def backend(self, objects: dict[str, SampleObject], tmp_path):
            for key, sample in objects.items():
                ...  # store sample.data (and sample.content_type) under key
            settings = MyBackend.Settings(kind="mine", chunk_size=self.chunk_size, ...)
            async with started(MyBackend("conformance", settings)) as backend:
                yield backend

Every check calls the backend directly (no server): open/stat agreement, full and ranged
reads, errors, key confinement, metadata types, chunk release, concurrency and health.
Needs ``pip install mediasrv[testing]`` (pytest and pytest-asyncio).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import ClassVar, TypeVar

import pytest

from mediasrv.backend import StorageBackend
from mediasrv.chunks import ChunkReader, Chunks
from mediasrv.errors import InvalidKey, NotFound, NotModified, PreconditionFailed, RangeNotSatisfiable
from mediasrv.grammar import ENTITY_TAG
from mediasrv.objects import Conditions, ObjectInfo, ObjectStream
from mediasrv.ranges import ByteRange

__all__ = ["BackendConformance", "SampleObject", "started"]

B = TypeVar("B", bound=StorageBackend)

SMALL = "conformance/small.txt"
EMPTY = "conformance/empty.bin"
LARGE = "conformance/large.bin"
NESTED = "conformance/a/b/nested.json"
ODD_NAME = "conformance/with space, ünïcode & symbols+=@.txt"
MISSING = "conformance/missing.txt"


@dataclass(frozen=True)
class SampleObject:
    """An object the suite needs in the source: its bytes, and the type to store if the source
    stores one (a backend may ignore it)."""

    data: bytes
    content_type: str | None = None


@asynccontextmanager
async def started(backend: B) -> AsyncIterator[B]:
    """``backend``, started for the block and stopped after it."""
    await backend.start()
    try:
        yield backend
    finally:
        await backend.stop()


def pattern(size: int) -> bytes:
    """``size`` bytes in which no two nearby offsets hold the same byte, so a misplaced range shows."""
    return (bytes(range(251)) * (size // 251 + 1))[:size]


async def read_all(chunks: Chunks) -> bytes:
    """Every chunk, joined; each must be ``bytes``."""
    parts = []
    async for chunk in chunks:
        assert isinstance(chunk, bytes), f"a chunk is {type(chunk).__name__}, not bytes"
        parts.append(chunk)
    return b"".join(parts)


async def aclose(chunks: Chunks) -> None:
    """Close a chunk iterator as the core does."""
    await chunks.aclose()


def open_descriptors() -> int | None:
    """File descriptors this process holds (Linux), or None where that is not known."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


class BackendConformance:
    """The StorageBackend contract as tests; subclass it and provide the ``backend`` fixture.

    Class attributes a subclass may change:

    - ``chunk_size``: configure the backend with it; the large object spans several chunks.
    - ``invalid_keys``: keys the backend must refuse (InvalidKey) or not find (NotFound) when
      called directly. The core refuses these before a backend sees them; a backend must still
      never read outside its root, prefix or base URL. Extend it with your source's own traps.
    - ``concurrent_opens``, ``release_rounds``: how many streams the concurrency and release
      checks open; ``release_rounds`` must exceed your test configuration's pool size.
    - ``timeout``: seconds any single backend call may take.
    """

    chunk_size: ClassVar[int] = 4096
    invalid_keys: ClassVar[tuple[str, ...]] = (
        "../outside.txt",
        "conformance/../../outside.txt",
        "/etc/passwd",
        "conformance/small.txt\x00.jpg",
        "conformance/%2e%2e/%2e%2e/outside.txt",
        "..",
    )
    concurrent_opens: ClassVar[int] = 8
    release_rounds: ClassVar[int] = 16
    timeout: ClassVar[float] = 10.0

    @pytest.fixture
    def objects(self) -> dict[str, SampleObject]:
        """The objects the ``backend`` fixture must store before it yields."""
        return {
            SMALL: SampleObject(b"0123456789 the quick brown fox jumps over the lazy dog\n", "text/plain"),
            EMPTY: SampleObject(b"", "application/octet-stream"),
            LARGE: SampleObject(pattern(3 * self.chunk_size + 123), "application/octet-stream"),
            NESTED: SampleObject(b'{"nested": true}\n', "application/json"),
            ODD_NAME: SampleObject(b"odd name\n", "text/plain"),
        }

    @pytest.fixture
    def backend(self) -> StorageBackend:
        """Override: store ``objects``, then yield the started backend (see the module docs)."""
        raise NotImplementedError(f"{type(self).__name__} must provide a 'backend' fixture")

    # --- helpers ---------------------------------------------------------------------------

    async def call_open(self, backend: StorageBackend, key: str, byte_range: ByteRange | None = None) -> ObjectStream:
        async with asyncio.timeout(self.timeout):
            return await backend.open(key, byte_range, Conditions())

    async def attempt(self, backend: StorageBackend, method: str, key: str) -> object:
        """What ``stat`` or ``open`` of ``key`` returns or raises (an opened stream is closed)."""
        try:
            async with asyncio.timeout(self.timeout):
                if method == "stat":
                    return await backend.stat(key)
                stream = await backend.open(key, None, Conditions())
        except Exception as exc:
            return exc
        await aclose(stream.chunks)
        return stream

    async def read(self, backend: StorageBackend, key: str, byte_range: ByteRange | None = None) -> bytes:
        """The bytes ``open`` yields for ``byte_range``, checked against what it said it serves.

        A backend may serve the whole object for a range (``content_range`` None); the bytes
        the core would cut from it are returned then.
        """
        stream = await self.call_open(backend, key, byte_range)
        try:
            async with asyncio.timeout(self.timeout):
                data = await read_all(stream.chunks)
        finally:
            await aclose(stream.chunks)
        size = stream.info.size
        if stream.content_range is None:
            assert size is None or size == len(data), f"info.size {size} but {len(data)} bytes yielded"
            if byte_range is None:
                return data
            assert size is not None, "a backend that ignores ranges must know the size (the core cuts)"
            served = byte_range.resolve(size)
            return data[served.first : served.last + 1]
        assert byte_range is not None, "content_range set though the whole object was asked"
        served = stream.content_range
        assert len(data) == served.length, f"content_range {served.header_value()} but {len(data)} bytes yielded"
        if served.size is not None:
            assert size is None or size == served.size, f"info.size {size}, content_range {served.header_value()}"
            assert served == byte_range.resolve(served.size), f"asked {byte_range.header_value()}, served {served}"
        return data

    # --- metadata ---------------------------------------------------------------------------

    @pytest.mark.asyncio
    @pytest.mark.parametrize("key", [SMALL, EMPTY, LARGE, NESTED, ODD_NAME])
    async def test_stat_metadata_types(
        self, backend: StorageBackend, objects: Mapping[str, SampleObject], key: str
    ) -> None:
        async with asyncio.timeout(self.timeout):
            info = await backend.stat(key)
        check_info(info, len(objects[key].data))

    @pytest.mark.asyncio
    @pytest.mark.parametrize("key", [SMALL, EMPTY, LARGE])
    async def test_open_and_stat_agree(self, backend: StorageBackend, key: str) -> None:
        async with asyncio.timeout(self.timeout):
            info = await backend.stat(key)
        stream = await self.call_open(backend, key)
        await aclose(stream.chunks)
        opened = stream.info
        for field in ("size", "etag", "last_modified", "content_type"):
            stat_value, open_value = getattr(info, field), getattr(opened, field)
            assert stat_value == open_value, f"{field}: stat says {stat_value!r}, open says {open_value!r}"

    # --- reads ------------------------------------------------------------------------------

    @pytest.mark.asyncio
    @pytest.mark.parametrize("key", [SMALL, EMPTY, LARGE, NESTED, ODD_NAME])
    async def test_full_read(self, backend: StorageBackend, objects: Mapping[str, SampleObject], key: str) -> None:
        assert await self.read(backend, key) == objects[key].data

    @pytest.mark.asyncio
    @pytest.mark.parametrize(
        "make_range",
        [
            pytest.param(lambda size: ByteRange(0, 0), id="first-byte"),
            pytest.param(lambda size: ByteRange(size - 1), id="last-byte"),
            pytest.param(lambda size: ByteRange(size - 1, size - 1), id="last-byte-closed"),
            pytest.param(lambda size: ByteRange(suffix=10), id="suffix"),
            pytest.param(lambda size: ByteRange(suffix=size + 1000), id="suffix-longer-than-object"),
            pytest.param(lambda size: ByteRange(100, size // 2), id="across-chunks"),
            pytest.param(lambda size: ByteRange(5), id="open-ended"),
            pytest.param(lambda size: ByteRange(7, size + 1000), id="last-past-the-end"),
        ],
    )
    async def test_ranged_read(
        self, backend: StorageBackend, objects: Mapping[str, SampleObject], make_range: Callable[[int], ByteRange]
    ) -> None:
        data = objects[LARGE].data
        byte_range = make_range(len(data))
        expected = byte_range.resolve(len(data))
        assert await self.read(backend, LARGE, byte_range) == data[expected.first : expected.last + 1]

    @pytest.mark.asyncio
    @pytest.mark.parametrize(
        ("key", "byte_range"),
        [
            pytest.param(SMALL, ByteRange(10**6), id="start-past-the-end"),
            pytest.param(SMALL, ByteRange(10**6, 10**6 + 9), id="closed-past-the-end"),
            pytest.param(EMPTY, ByteRange(0), id="empty-object"),
            pytest.param(EMPTY, ByteRange(suffix=5), id="empty-object-suffix"),
        ],
    )
    async def test_unsatisfiable_range(
        self, backend: StorageBackend, objects: Mapping[str, SampleObject], key: str, byte_range: ByteRange
    ) -> None:
        size = len(objects[key].data)
        try:
            stream = await self.call_open(backend, key, byte_range)
        except RangeNotSatisfiable as exc:
            assert exc.size == size, f"RangeNotSatisfiable({exc.size!r}), the object has {size} bytes"
            return
        # Serving the whole object instead is allowed: the core answers 416 from its size.
        await aclose(stream.chunks)
        assert stream.content_range is None, f"served {stream.content_range} for {byte_range.header_value()}"
        assert stream.info.size == size, "a backend that ignores ranges must know the size"

    # --- errors and keys ----------------------------------------------------------------------

    @pytest.mark.asyncio
    @pytest.mark.parametrize("key", [MISSING, "conformance/no/such/folder.txt", "conformance/a"])
    async def test_missing_key_is_not_found(self, backend: StorageBackend, key: str) -> None:
        with pytest.raises(NotFound):
            async with asyncio.timeout(self.timeout):
                await backend.stat(key)
        with pytest.raises(NotFound):
            await self.call_open(backend, key)

    @pytest.mark.asyncio
    async def test_invalid_keys_are_refused(self, backend: StorageBackend) -> None:
        for key in self.invalid_keys:
            for method in ("stat", "open"):
                outcome = await self.attempt(backend, method, key)
                assert isinstance(outcome, InvalidKey | NotFound), (
                    f"{method}({key!r}) gave {outcome!r}, not InvalidKey or NotFound"
                )

    @pytest.mark.asyncio
    async def test_conditions_forwarded_or_left_to_the_core(self, backend: StorageBackend) -> None:
        """A backend may act on the conditions (304, 412) or ignore them; it must not fail on them."""
        async with asyncio.timeout(self.timeout):
            info = await backend.stat(SMALL)
        if info.etag is None:
            pytest.skip("the backend gives no ETag")
        cases: list[tuple[Conditions, type[Exception]]] = [
            (Conditions(if_none_match=info.etag), NotModified),
            (Conditions(if_match='"not-the-current-etag"'), PreconditionFailed),
        ]
        for conditions, error in cases:
            try:
                async with asyncio.timeout(self.timeout):
                    stream = await backend.open(SMALL, None, conditions)
            except error:
                continue
            await aclose(stream.chunks)
            assert stream.info.etag == info.etag

    # --- resources ------------------------------------------------------------------------------

    @pytest.mark.asyncio
    @pytest.mark.parametrize("chunks_read", [0, 1])
    async def test_abandoned_stream_is_released(
        self, backend: StorageBackend, objects: Mapping[str, SampleObject], chunks_read: int
    ) -> None:
        """Open and abandon the large object ``release_rounds`` times: each ``aclose`` must free
        the file, response or pool slot, or the rounds exhaust the pool or leak descriptors."""
        data = objects[LARGE].data
        before = open_descriptors()
        for _ in range(self.release_rounds):
            stream = await self.call_open(backend, LARGE)
            async with asyncio.timeout(self.timeout):
                for _ in range(chunks_read):
                    chunk = await anext(stream.chunks)
                    assert 0 < len(chunk) < len(data), f"configure the backend with chunk_size={self.chunk_size}"
                await aclose(stream.chunks)
            if isinstance(stream.chunks, ChunkReader):
                assert stream.chunks.released, "aclose() did not run ChunkReader.release()"
        await asyncio.sleep(0.1)  # let closed transports finish closing
        after = open_descriptors()
        if before is not None and after is not None:
            assert after - before < self.release_rounds // 2, f"{after - before} descriptors leaked"
        assert await self.read(backend, LARGE) == data, "the backend no longer serves after abandoned streams"

    @pytest.mark.asyncio
    async def test_chunks_released_at_the_end(self, backend: StorageBackend) -> None:
        stream = await self.call_open(backend, LARGE)
        async with asyncio.timeout(self.timeout):
            await read_all(stream.chunks)
        if isinstance(stream.chunks, ChunkReader):
            assert stream.chunks.released, "the last chunk was read but release() did not run"
        await aclose(stream.chunks)  # closing twice is harmless

    @pytest.mark.asyncio
    async def test_concurrent_opens(self, backend: StorageBackend, objects: Mapping[str, SampleObject]) -> None:
        reads = [self.read(backend, key) for key in [LARGE, SMALL] * (self.concurrent_opens // 2)]
        results = await asyncio.gather(*reads)
        assert results == [objects[LARGE].data, objects[SMALL].data] * (self.concurrent_opens // 2)

    # --- health ---------------------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_health_ok(self, backend: StorageBackend) -> None:
        async with asyncio.timeout(self.timeout):
            health = await backend.health()
        assert health.ok, f"unhealthy: {health.error}"
        assert health.error is None or isinstance(health.error, str)


def check_info(info: ObjectInfo, size: int) -> None:
    """``info`` has the documented types, and the right size when it gives one."""
    assert isinstance(info, ObjectInfo), f"stat returned {type(info).__name__}, not ObjectInfo"
    assert info.size is None or (type(info.size) is int and info.size == size), f"size {info.size!r}, not {size}"
    assert info.etag is None or (isinstance(info.etag, str) and ENTITY_TAG.fullmatch(info.etag)), (
        f'etag {info.etag!r} is not a quoted entity tag ("..." or W/"...")'
    )
    if info.last_modified is not None:
        assert info.last_modified.tzinfo is not None, "last_modified must be timezone-aware"
        assert info.last_modified.utcoffset() is not None, "last_modified must be timezone-aware"
    for field in ("content_type", "content_encoding", "cache_control"):
        value = getattr(info, field)
        assert value is None or (isinstance(value, str) and value), f"{field} {value!r} is not a non-empty str"
