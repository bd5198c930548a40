"""Limits: the per-worker cap on concurrent streams (``[server] max_streams``), and the cap a
backend puts on requests in flight to its source (its connection pool)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from mediasrv.errors import BackendUnavailable


class Slot:
    """One taken slot of a limiter; ``release`` is idempotent so every exit path may call it."""

    __slots__ = ("_release",)

    def __init__(self, release: Callable[[], None]) -> None:
        self._release: Callable[[], None] | None = release

    def release(self) -> None:
        if self._release is not None:
            release, self._release = self._release, None
            release()


class StreamLimiter:
    """Counts streams in flight; refuses a new one at once when full, never queues it."""

    retry_after = 1  # seconds, sent in Retry-After with the 503

    def __init__(self, max_streams: int) -> None:
        self.max_streams = max_streams
        self.active = 0

    def acquire(self) -> Slot:
        """A slot for one stream, or BackendUnavailable (503) when all are taken."""
        if self.active >= self.max_streams:
            raise BackendUnavailable("too many concurrent streams", retry_after=self.retry_after)
        self.active += 1
        return Slot(self._release_one)

    def _release_one(self) -> None:
        self.active -= 1


class ConnectionLimiter:
    """A backend's cap on requests in flight to its source, for a backend to hold from its
    request until the response body is released.

    aiohttp's and botocore's pools wait forever for a free connection; ``acquire`` waits
    ``wait`` seconds at most, then raises BackendUnavailable (503 with Retry-After).
    """

    retry_after = 1  # seconds

    def __init__(self, size: int, wait: float, busy_detail: str) -> None:
        self.size = size
        self.wait = wait
        self.busy_detail = busy_detail
        self._semaphore = asyncio.Semaphore(size)

    async def acquire(self) -> Slot:
        try:
            async with asyncio.timeout(self.wait):
                await self._semaphore.acquire()
        except TimeoutError:
            raise BackendUnavailable(self.busy_detail, retry_after=self.retry_after) from None
        return Slot(self._semaphore.release)

    async def try_acquire(self) -> Slot | None:
        """A slot if one is free now, else None at once: for optional extra connections,
        such as the parallel parts of one S3 stream, which must not queue behind requests."""
        if self._semaphore.locked():
            return None
        await self._semaphore.acquire()  # free, so this returns without waiting
        return Slot(self._semaphore.release)
