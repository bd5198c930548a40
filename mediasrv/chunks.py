"""The chunk contract between a backend and the core, and helpers over chunk iterators."""

from __future__ import annotations

import abc
from typing import Protocol


class Chunks(Protocol):
    """What ``ObjectStream.chunks`` is: an async iterator of ``bytes`` that owns its resources
    and frees them in ``aclose``, which the core always calls (after the end, on errors and
    when the client leaves). An async generator is one; so is every ``ChunkReader``."""

    def __aiter__(self) -> Chunks: ...

    async def __anext__(self) -> bytes: ...

    async def aclose(self) -> None: ...


class SlicedChunks:
    """The bytes ``first``..``first + length - 1`` of a whole-object chunk iterator.

    For backends whose source ignored a Range: the core skips and cuts. Closing this
    closes the source, whether or not iteration started.
    """

    def __init__(self, source: Chunks, first: int, length: int) -> None:
        self._source = source
        self._skip = first
        self._remaining = length

    def __aiter__(self) -> SlicedChunks:
        return self

    async def __anext__(self) -> bytes:
        while self._remaining > 0:
            chunk = await anext(self._source)
            if self._skip >= len(chunk):
                self._skip -= len(chunk)
                continue
            chunk = chunk[self._skip : self._skip + self._remaining]
            self._skip = 0
            self._remaining -= len(chunk)
            return chunk
        raise StopAsyncIteration

    async def aclose(self) -> None:
        await self._source.aclose()


class ChunkReader(abc.ABC):
    """Base for a backend's chunk iterator over a resource that must be released
    (an open file, an S3 body, an HTTP response).

    Subclasses implement ``read`` (b"" at the end) and ``release``. ``release`` runs exactly
    once: at the end of the data, on error, or on ``aclose``, even if iteration never started.
    """

    _released = False

    @abc.abstractmethod
    async def read(self) -> bytes:
        """The next chunk, or b"" when there is no more."""

    @abc.abstractmethod
    async def release(self) -> None:
        """Free the resource."""

    @property
    def released(self) -> bool:
        """Whether ``release`` has run (or is running)."""
        return self._released

    def __aiter__(self) -> ChunkReader:
        return self

    async def __anext__(self) -> bytes:
        if self._released:
            raise StopAsyncIteration
        try:
            chunk = await self.read()
        except BaseException:
            await self.aclose()
            raise
        if not chunk:
            await self.aclose()
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        if not self._released:
            self._released = True
            await self.release()
