"""SlicedChunks and ChunkReader: cutting whole-object chunks, releasing resources once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from mediasrv.chunks import ChunkReader, SlicedChunks

DATA = b"0123456789abcdefghij"  # 20 bytes


class Source:
    """An async chunk iterator that records how far it was read and whether it was closed."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = list(chunks)
        self.reads = 0
        self.closed = 0

    def __aiter__(self) -> Source:
        return self

    async def __anext__(self) -> bytes:
        if not self._chunks:
            raise StopAsyncIteration
        self.reads += 1
        return self._chunks.pop(0)

    async def aclose(self) -> None:
        self.closed += 1


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


async def collect(chunks: AsyncIterator[bytes]) -> list[bytes]:
    return [chunk async for chunk in chunks]


@pytest.mark.asyncio
@pytest.mark.parametrize("chunk_size", [1, 3, 7, 20, 64])
@pytest.mark.parametrize(("first", "length"), [(0, 20), (0, 1), (5, 10), (6, 14), (19, 1), (3, 0), (2, 3)])
async def test_sliced_chunks_yields_exact_slice(chunk_size: int, first: int, length: int) -> None:
    source = Source(split(DATA, chunk_size))
    chunks = await collect(SlicedChunks(source, first, length))
    assert b"".join(chunks) == DATA[first : first + length]
    assert all(chunks), "no empty chunk is yielded"


@pytest.mark.asyncio
async def test_sliced_chunks_across_chunk_boundaries() -> None:
    source = Source([b"abcd", b"efgh", b"ijkl"])
    chunks = await collect(SlicedChunks(source, 2, 7))
    assert chunks == [b"cd", b"efgh", b"i"]


@pytest.mark.asyncio
async def test_sliced_chunks_skips_whole_chunks_before_first() -> None:
    source = Source([b"abcd", b"efgh", b"ijkl"])
    assert await collect(SlicedChunks(source, 8, 2)) == [b"ij"]


@pytest.mark.asyncio
async def test_sliced_chunks_stops_reading_once_length_is_served() -> None:
    source = Source([b"abcd", b"efgh", b"ijkl", b"mnop"])
    assert await collect(SlicedChunks(source, 1, 3)) == [b"bcd"]
    assert source.reads == 1


@pytest.mark.asyncio
async def test_sliced_chunks_ignores_empty_source_chunks() -> None:
    source = Source([b"", b"ab", b"", b"cd", b""])
    assert b"".join(await collect(SlicedChunks(source, 1, 2))) == b"bc"


@pytest.mark.asyncio
async def test_sliced_chunks_aclose_closes_source_when_never_iterated() -> None:
    source = Source([b"abcd"])
    sliced = SlicedChunks(source, 0, 4)
    await sliced.aclose()
    assert source.closed == 1
    assert source.reads == 0


@pytest.mark.asyncio
async def test_sliced_chunks_aclose_closes_source_after_partial_iteration() -> None:
    source = Source([b"ab", b"cd", b"ef"])
    sliced = SlicedChunks(source, 0, 6)
    assert await anext(sliced) == b"ab"
    await sliced.aclose()
    assert source.closed == 1


@pytest.mark.asyncio
async def test_sliced_chunks_aclose_closes_async_generator_source() -> None:
    finished: list[str] = []

    async def generator() -> AsyncIterator[bytes]:
        try:
            yield b"abc"
            yield b"def"
        finally:
            finished.append("closed")

    source = generator()
    sliced = SlicedChunks(source, 1, 4)
    assert await anext(sliced) == b"bc"
    await sliced.aclose()
    assert finished == ["closed"]


class Reader(ChunkReader):
    """A ChunkReader over a list of chunks; an Exception in the list is raised by read()."""

    def __init__(self, items: list[bytes | Exception]) -> None:
        self.items = list(items)
        self.reads = 0
        self.releases = 0

    async def read(self) -> bytes:
        self.reads += 1
        if not self.items:
            return b""
        item = self.items.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    async def release(self) -> None:
        self.releases += 1


@pytest.mark.asyncio
async def test_chunk_reader_yields_chunks_then_releases_once_at_end() -> None:
    reader = Reader([b"ab", b"cd"])
    assert await collect(reader) == [b"ab", b"cd"]
    assert reader.releases == 1


@pytest.mark.asyncio
async def test_chunk_reader_release_not_repeated_by_aclose_after_end() -> None:
    reader = Reader([b"ab"])
    await collect(reader)
    await reader.aclose()
    await reader.aclose()
    assert reader.releases == 1


@pytest.mark.asyncio
async def test_chunk_reader_no_read_after_end() -> None:
    reader = Reader([b"ab"])
    await collect(reader)
    reads = reader.reads
    with pytest.raises(StopAsyncIteration):
        await anext(reader)
    assert reader.reads == reads
    assert reader.releases == 1


@pytest.mark.asyncio
async def test_chunk_reader_releases_once_on_read_error() -> None:
    error = OSError("disk gone")
    reader = Reader([b"ab", error, b"never"])
    assert await anext(reader) == b"ab"
    assert reader.releases == 0
    with pytest.raises(OSError) as caught:
        await anext(reader)
    assert caught.value is error
    assert reader.releases == 1
    await reader.aclose()
    assert reader.releases == 1
    # Released: iteration is over, the remaining chunk is never read.
    with pytest.raises(StopAsyncIteration):
        await anext(reader)
    assert reader.releases == 1


@pytest.mark.asyncio
async def test_chunk_reader_releases_on_cancellation_during_read() -> None:
    class Cancelled(Reader):
        async def read(self) -> bytes:
            raise asyncio.CancelledError

    reader = Cancelled([])
    with pytest.raises(asyncio.CancelledError):
        await anext(reader)
    assert reader.releases == 1


@pytest.mark.asyncio
async def test_chunk_reader_aclose_before_iteration_releases_once() -> None:
    reader = Reader([b"ab", b"cd"])
    await reader.aclose()
    assert reader.releases == 1
    assert reader.reads == 0
    await reader.aclose()
    assert reader.releases == 1
    assert await collect(reader) == []
    assert reader.reads == 0


@pytest.mark.asyncio
async def test_chunk_reader_aclose_mid_iteration_releases_once() -> None:
    reader = Reader([b"ab", b"cd", b"ef"])
    assert await anext(reader) == b"ab"
    await reader.aclose()
    assert reader.releases == 1
    assert await collect(reader) == []
    assert reader.releases == 1


@pytest.mark.asyncio
async def test_chunk_reader_empty_releases_on_first_read() -> None:
    reader = Reader([])
    assert await collect(reader) == []
    assert reader.reads == 1
    assert reader.releases == 1


@pytest.mark.asyncio
async def test_chunk_reader_sliced_closes_reader() -> None:
    reader = Reader([b"abcd", b"efgh"])
    sliced = SlicedChunks(reader, 2, 3)
    assert await collect(sliced) == [b"cd", b"e"]
    assert reader.releases == 0  # the slice is served; the core's aclose frees the rest
    await sliced.aclose()
    assert reader.releases == 1


def test_chunk_reader_without_read_or_release_cannot_be_made() -> None:
    class OnlyRead(ChunkReader):
        async def read(self) -> bytes:
            return b""

    with pytest.raises(TypeError, match="release"):
        OnlyRead()

