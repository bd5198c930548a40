"""Limits: the per-worker cap on concurrent streams (``[server] max_streams``), and the cap a
backend puts on requests in flight to its source (its connection pool)."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable
from functools import lru_cache

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
    """Counts streams in flight, in all and per client address; refuses a new one at once
    when either is full, never queues it.

    The per-client cap (``max_per_client``, 0 = none) keeps one address from holding every
    stream or a backend's whole connection pool, as nginx's ``limit_conn`` does. IPv6
    clients count per /64, the block one subscriber usually gets.
    """

    retry_after = 1  # seconds, sent in Retry-After with the 503

    def __init__(self, max_streams: int, max_per_client: int = 0) -> None:
        self.max_streams = max_streams
        self.max_per_client = max_per_client
        self.active = 0
        self.per_client: dict[str, int] = {}

    def acquire(self, client: str | None = None) -> Slot:
        """A slot for one stream of ``client`` (its address), or BackendUnavailable (503)."""
        if self.active >= self.max_streams:
            raise BackendUnavailable("too many concurrent streams", retry_after=self.retry_after)
        if not self.max_per_client or client is None:
            self.active += 1
            return Slot(self._release_one)
        group = client_group(client)
        held = self.per_client.get(group, 0)
        if held >= self.max_per_client:
            raise BackendUnavailable("too many concurrent streams from this address", retry_after=self.retry_after)
        self.per_client[group] = held + 1
        self.active += 1
        return Slot(lambda: self._release_client(group))

    def _release_one(self) -> None:
        self.active -= 1

    def _release_client(self, group: str) -> None:
        self.active -= 1
        held = self.per_client[group] - 1
        if held:
            self.per_client[group] = held
        else:
            del self.per_client[group]  # so the table holds only addresses streaming now


@lru_cache(maxsize=4096)  # parsing an address costs more than the rest of an answer from memory
def client_group(address: str) -> str:
    """The key a client address counts under: an IPv4 address itself, an IPv6 one's /64."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address  # a Unix socket's path
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


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
