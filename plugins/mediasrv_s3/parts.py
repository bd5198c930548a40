"""Large S3 objects as byte-range parts fetched in parallel and streamed in order.

Real S3 caps each connection's throughput, so one stream reads ``part_size``-byte ranges over
up to ``parallel_parts`` connections at once. The stream starts from the backend's one GET of
the whole answer (``open``), which learns the size and the ETag; every later part is
conditioned on that ETag, so an object replaced mid-stream aborts the stream instead of mixing
two versions.

Memory: at most ``parallel_parts`` parts are alive at once (started and not yet sent), each
holding at most ``part_size`` bytes, so a stream holds under ``parallel_parts x part_size``.
Connections: the stream keeps the pool slot of its first GET for its whole life (as a single
GET does), and takes extra slots only when they are free at once, handing each back after
every part (a request waiting for a slot goes first): a busy pool makes streams slower,
never fail.

The first part, read from that GET, is a probe: the other parts start once it is read, in
parallel only if that pays (``parallel_pays``); else the same GET goes on to the end, so a
source that gains nothing from parts costs exactly the one GET it would without them.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from mediasrv import (
    ChunkReader,
    ConnectionLimiter,
    MediaError,
    NotFound,
    PreconditionFailed,
    Slot,
    UpstreamError,
)


class PartBody(Protocol):
    """What a part's GET answers: its body (an aiobotocore StreamingBody)."""

    async def read(self, amt: int) -> bytes: ...

    def close(self) -> None: ...


# Opens the bytes first..last (inclusive) of the object, conditioned on its ETag.
OpenPart = Callable[[int, int], Awaitable[PartBody]]


class ObjectChanged(UpstreamError):
    """The object was replaced or deleted while it was streamed (its ETag no longer holds)."""


@dataclass(frozen=True, slots=True)
class Part:
    """The bytes ``first``..``last`` (inclusive) of the object."""

    first: int
    last: int

    @property
    def length(self) -> int:
        return self.last - self.first + 1


def plan_parts(first: int, length: int, part_size: int) -> list[Part]:
    """The ``length`` bytes from ``first``, cut into ``part_size`` pieces, in order."""
    end = first + length
    return [Part(start, min(start + part_size, end) - 1) for start in range(first, end, part_size)]


def parallel_pays(window: int, first_byte_seconds: float, transfer_seconds: float) -> bool:
    """Whether parts over ``window`` connections beat one GET, judged by the first part's time
    to first byte and its transfer time: overlapping the transfers saves ``window - 1`` of
    them per part, each extra request may cost its time to first byte again.

    A source that caps each connection answers fast and sends slowly: parts pay. One whose
    every ranged GET costs a whole-object read (moto's does) answers slowly and sends fast:
    there more requests only add that cost.
    """
    return (window - 1) * transfer_seconds > first_byte_seconds


class PartBuffer:
    """The bytes of one part as they arrive, at most ``capacity`` held until they are sent."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.held = 0
        self.received = 0
        self._chunks: deque[bytes] = deque()
        self._done = False
        self._error: BaseException | None = None
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()

    async def put(self, chunk: bytes) -> None:
        """Add ``chunk``, once there is room for it (always, into an empty buffer)."""
        while self.held and self.held + len(chunk) > self.capacity:
            self._writable.clear()
            await self._writable.wait()
        self._chunks.append(chunk)
        self.held += len(chunk)
        self.received += len(chunk)
        self._readable.set()

    def finish(self, error: BaseException | None = None) -> None:
        """No more bytes: the part is complete, or failed with ``error``."""
        self._done = True
        self._error = error
        self._readable.set()

    async def get(self, limit: int) -> bytes:
        """The bytes held, up to ``limit`` (at least one chunk), b"" at the end of the part; the
        part's error once it has none left. Chunks read ahead are joined, so a part fetched
        while another was sent goes out in few large writes, not many small ones."""
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self._done:
                return b""
            self._readable.clear()
            await self._readable.wait()
        taken = [self._chunks.popleft()]
        size = len(taken[0])
        while self._chunks and size + len(self._chunks[0]) <= limit:
            taken.append(self._chunks.popleft())
            size += len(taken[-1])
        self.held -= size
        self._writable.set()
        return taken[0] if len(taken) == 1 else b"".join(taken)


class PartStream(ChunkReader):
    """The parts of one stream, fetched ahead by up to ``window`` workers, yielded in order.

    A worker holds one connection slot and reads parts one after another, each into its
    buffer; a part is claimed only while fewer than ``window`` parts are alive (claimed and
    not yet sent). A part whose transfer fails is retried once from the byte it reached; a
    second failure, or the object changing, fails the stream (the core then aborts the
    client's connection). ``release`` cancels every worker, which closes every connection.

    ``first_body`` is the body of one GET of every part, from the first part's first byte. Its
    first part read, it is closed (the other parts go in parallel) or, when the probe (given
    the GET's time to its headers) finds that parts don't pay (``_decide``), read on to the end.
    """

    attempts = 2  # a failed part is retried once: a client is waiting

    def __init__(
        self,
        parts: list[Part],
        first_body: PartBody,
        base_slot: Slot,
        connections: ConnectionLimiter,
        open_part: OpenPart,
        window: int,
        part_size: int,
        read_size: int,
        first_byte_seconds: float | None = None,
    ) -> None:
        self._parts = parts
        self._open_part = open_part
        self._connections = connections
        self._window = window
        self._read_size = read_size
        self._capacity = part_size  # a longer part (the rest up to the threshold) waits for room
        self._buffers: dict[int, PartBuffer] = {}  # made when first needed, dropped once sent
        self._claimed: set[int] = set()
        self._next = 0  # no part before this one is left to claim
        self._head = 0  # the part being sent; every part before it is sent
        self._base_slot = base_slot  # the first GET's slot, kept until release
        self._base_free = False
        self._workers: dict[asyncio.Task[None], list[Slot]] = {}  # each worker's slot, in a list it may trade
        self._probe = first_byte_seconds if len(parts) > 2 else None
        self._read_on = False  # the probe found that parts don't pay: the first GET goes on to the end
        # Reading on, the rest is read from the first GET's body by ``read`` itself: no worker
        # and no buffer between them, so it costs what one GET costs.
        self._tail: PartBody | None = None
        self._tail_part: int | None = None
        self._tail_received = 0
        self._tail_failures = 0
        self._claim(0)
        self._spawn(base_slot, 0, first_body)

    @property
    def workers(self) -> int:
        """Workers running now (each holds one connection slot)."""
        return len(self._workers)

    @property
    def buffered(self) -> int:
        """Bytes fetched and not yet sent, over every part."""
        return sum(buffer.held for buffer in self._buffers.values())

    async def start(self) -> None:
        """Start as many more workers as the window and the free slots allow."""
        while self._claimable() is not None:
            if self._base_free:
                self._base_free, slot = False, self._base_slot
            else:
                extra = await self._connections.try_acquire()
                if extra is None:
                    return
                slot = extra
            index = self._claimable()  # try_acquire may have let a worker claim it
            if index is None:
                self._return(slot)
                return
            self._claim(index)
            self._spawn(slot, index, None)

    async def read(self) -> bytes:
        while self._head < len(self._parts):
            if self._head == self._tail_part:
                chunk = await self._read_tail()
            else:
                chunk = await self._buffer(self._head).get(self._read_size)
            if chunk:
                return chunk
            self._buffers.pop(self._head, None)
            self._head += 1
            await self.start()
        return b""

    async def release(self) -> None:
        self._close_tail()
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._base_slot.release()

    def _buffer(self, index: int) -> PartBuffer:
        buffer = self._buffers.get(index)
        if buffer is None:
            buffer = self._buffers[index] = PartBuffer(self._capacity)
        return buffer

    def _claimable(self) -> int | None:
        """The next part to fetch, if the window has room for it (one part alone while probing)."""
        window = 1 if self._probe is not None else self._window
        while self._next in self._claimed:
            self._next += 1
        if self._next >= len(self._parts) or len(self._claimed) - self._head >= window:
            return None
        return self._next

    def _claim(self, index: int) -> None:
        self._claimed.add(index)

    def _decide(self, transfer_seconds: float) -> None:
        """After the probe: the rest in parallel parts if that pays, else read on from the first GET."""
        first_byte, self._probe = self._probe, None
        if first_byte is None or parallel_pays(self._window, first_byte, transfer_seconds):
            return
        self._parts = [self._parts[0], Part(self._parts[1].first, self._parts[-1].last)]
        self._read_on = True

    def _spawn(self, slot: Slot, index: int, body: PartBody | None) -> None:
        lease = [slot]
        worker = asyncio.create_task(self._work(lease, index, body))
        self._workers[worker] = lease
        # Done callbacks run even for a task cancelled before its first step (whose finally
        # blocks never run): the slot and the first body are always given back.
        worker.add_done_callback(lambda _: self._finished(worker, lease, body))

    def _finished(self, worker: asyncio.Task[None], lease: list[Slot], body: PartBody | None) -> None:
        del self._workers[worker]
        if body is not None and body is not self._tail:
            body.close()
        self._return(lease[0])

    def _return(self, slot: Slot) -> None:
        if slot is not self._base_slot:
            slot.release()  # idempotent: a slot already handed back stays so
            return
        # A worker still running on an extra slot (the one a slow client holds up, say) takes
        # the base slot instead, so a stream never holds more than one slot while it waits.
        for lease in self._workers.values():
            if lease[0] is not self._base_slot:
                lease[0].release()
                lease[0] = self._base_slot
                return
        self._base_free = True

    async def _work(self, lease: list[Slot], index: int | None, body: PartBody | None) -> None:
        while index is not None:
            started = time.perf_counter()
            # The first GET's body goes on past its first part: kept open for reading on.
            body = await self._fetch(index, body, keep_open=body is not None and index + 1 < len(self._parts))
            probed = self._probe is not None
            if probed:
                self._decide(time.perf_counter() - started)
            if body is not None and self._read_on:  # the rest is this GET's: ``read`` takes it on
                self._tail, self._tail_part = body, index + 1
                self._claim(index + 1)
                return
            if body is not None:
                body.close()  # the other parts come in parallel: this GET's rest is not wanted
                body = None
            if lease[0] is not self._base_slot:
                # An extra connection goes back after each part, so a request waiting for a
                # slot gets it before this stream takes it again.
                lease[0].release()
                slot = await self._connections.try_acquire()
                if slot is None:
                    return
                lease[0] = slot
            index = self._claimable()
            if index is not None:
                self._claim(index)
            if probed:
                await self.start()

    async def _fetch(self, index: int, body: PartBody | None, keep_open: bool = False) -> PartBody | None:
        """Fill the part's buffer, retrying once; the buffer ends with the part's error, if any.
        With ``keep_open``, ``body`` goes on past the part: it is left open, and returned, if
        it delivered the whole part."""
        part, buffer = self._parts[index], self._buffer(index)
        error: MediaError | None = None
        for _ in range(self.attempts):
            try:
                await self._transfer(part, buffer, body, keep_open)
            except Exception as exc:
                error, retried = _failure(exc)
                if not retried:
                    break
            else:
                buffer.finish(None)
                return body if keep_open else None
            body, keep_open = None, False  # a retry asks for this part alone
        buffer.finish(error)
        return None

    async def _read_tail(self) -> bytes:
        """The next chunk of the part read on from the first GET, b"" at its end; a failure is
        retried once, from the byte it reached, as a part's is."""
        part = self._parts[self._head]
        while True:
            try:
                if self._tail is None:
                    self._tail = await self._open_part(part.first + self._tail_received, part.last)
                left = part.length - self._tail_received
                if left == 0:
                    if await self._tail.read(1):
                        raise UpstreamError(f"an S3 part was longer than the {part.length} bytes asked for")
                    self._close_tail()
                    return b""
                chunk = await self._tail.read(min(self._read_size, left))
                if not chunk:
                    raise UpstreamError(f"an S3 part ended after {self._tail_received} of {part.length} bytes")
                self._tail_received += len(chunk)
                return chunk
            except Exception as exc:
                self._close_tail()
                error, retried = _failure(exc)
                self._tail_failures += 1
                if not retried or self._tail_failures >= self.attempts:
                    raise error from None

    def _close_tail(self) -> None:
        if self._tail is not None:
            self._tail.close()
            self._tail = None

    async def _transfer(self, part: Part, buffer: PartBuffer, body: PartBody | None, keep_open: bool) -> None:
        """Read the rest of ``part`` (after the bytes ``buffer`` already has) into ``buffer``;
        ``body`` (or a new GET of the rest of the part) is closed after, unless ``keep_open``."""
        if body is None:
            body = await self._open_part(part.first + buffer.received, part.last)
        try:
            while buffer.received < part.length:
                chunk = await body.read(min(self._read_size, part.length - buffer.received))
                if not chunk:
                    raise UpstreamError(f"an S3 part ended after {buffer.received} of {part.length} bytes")
                await buffer.put(chunk)
            if not keep_open and await body.read(1):  # reads the end too, so the connection goes back to the pool
                raise UpstreamError(f"an S3 part was longer than the {part.length} bytes asked for")
        except BaseException:
            body.close()
            raise
        if not keep_open:
            body.close()


def _failure(exc: Exception) -> tuple[MediaError, bool]:
    """What a part's failed transfer fails the stream with, and whether it is retried: the
    object changing (its ETag no longer holds) never is; any other failure once."""
    if isinstance(exc, (NotFound, PreconditionFailed)):
        return ObjectChanged("the object changed while it was streamed"), False
    if isinstance(exc, ObjectChanged):
        return exc, False
    if isinstance(exc, MediaError):
        return exc, True
    return UpstreamError(f"an S3 part failed ({type(exc).__name__})"), True
