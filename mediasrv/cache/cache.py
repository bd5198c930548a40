"""The result cache: tiers looked up in order (disk, then shared stores, then render), filled
on the way back, one render per variant at a time, and the source cache for originals."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

from mediasrv.cache.disk import DiskStore
from mediasrv.cache.flight import SingleFlight
from mediasrv.cache.metrics import CacheMetrics
from mediasrv.cache.problems import ProblemLog
from mediasrv.cache.store import ResultKey, ResultStore, StoredResult, StoreError, source_id
from mediasrv.errors import MediaError
from mediasrv.objects import ObjectInfo
from mediasrv.ranges import ByteRange

T = TypeVar("T")

Render = Callable[[], Awaitable[StoredResult]]
Fetch = Callable[[], Awaitable[bytes]]


@dataclass
class Tier:
    """A store in the lookup order, with this process's lookups of it."""

    name: str
    store: ResultStore
    hits: int = 0
    misses: int = 0
    evictions_seen: int = 0

    def counted(self, hit: bool) -> None:
        if hit:
            self.hits += 1
        else:
            self.misses += 1


class ResultCache:
    """Rendered variants by (source id, derived ETag) in ``stores``, first to last.

    A store that fails is logged once per ``log_interval`` and treated as a miss: the
    request is rendered and served, never failed by the cache. ``lock_timeout`` bounds the
    wait for another process rendering the same variant (then this one renders too).
    """

    marker_interval = 1.0  # seconds between two reads of the disk tier's purge marker: a stat costs

    def __init__(
        self, stores: list[ResultStore], metrics: CacheMetrics, lock_timeout: float = 15, log_interval: float = 60
    ) -> None:
        self.tiers = [Tier(store.kind, store) for store in stores]
        self.metrics = metrics
        self.lock_timeout = lock_timeout
        self.problems = ProblemLog(log_interval)
        self.disk = next((store for store in stores if isinstance(store, DiskStore)), None)
        self.source_tier = Tier("source", self.disk) if self.disk is not None and self.disk.source_cache else None
        self.coalesced = 0
        self.purges = 0  # run in this process
        self._marker: Hashable = None  # the disk tier's purge marker, as last read
        self._marker_read_at = -math.inf
        self._renders: SingleFlight[StoredResult] = SingleFlight()
        self._fetches: SingleFlight[bytes] = SingleFlight()

    async def start(self) -> None:
        for tier in self.tiers:
            await self._guard(tier, "start", tier.store.start())

    async def stop(self) -> None:
        await self._renders.cancel_all()
        await self._fetches.cancel_all()
        for tier in self.tiers:
            await self._guard(tier, "stop", tier.store.stop())

    async def result(
        self, backend: str, key: str, variant: str, byte_range: ByteRange | None, render: Render
    ) -> StoredResult:
        """The variant ``variant`` (its derived ETag) of ``backend/key``: from the first tier
        that has it, else from ``render()`` (once, whoever else asks meanwhile), stored in
        every tier. Cut to ``byte_range`` (a store may have read just that range)."""
        result_key = ResultKey.of(backend, key, variant)
        found = await self._lookup(result_key, byte_range)
        if found is None:
            found, joined = await self._renders.run(result_key, lambda: self._render(result_key, render))
            if joined:
                self._coalesced()
        return found.sliced(byte_range)

    async def source(self, backend: str, key: str, info: ObjectInfo, fetch: Fetch) -> bytes:
        """The original of ``backend/key`` described by ``info``: kept on disk by its ETag, so
        several variants of one source read it from the backend once."""
        if self.source_tier is None or self.disk is None or not info.etag:
            return await fetch()
        source, etag = source_id(backend, key), info.etag
        body = await self._guard(self.source_tier, "get", self.disk.get_source(source, etag))
        self._count(self.source_tier, body is not None)
        if body is not None:
            return body
        body, joined = await self._fetches.run((source, etag), lambda: self._fetch(source, info, fetch))
        if joined:
            self._coalesced()
        return body

    async def purge(self, backend: str, key: str) -> tuple[dict[str, int], dict[str, str]]:
        """Drop every variant (and the kept original) of ``backend/key`` from every tier:
        how many each dropped, and the tiers that failed with why."""
        source = source_id(backend, key)
        purged: dict[str, int] = {}
        failed: dict[str, str] = {}
        self.purges += 1
        for tier in self.tiers:
            try:
                purged[tier.name] = await tier.store.purge(source)
            except Exception as exc:
                failed[tier.name] = self._problem(tier, "purge", exc)
        # This purge moved the marker too: read it now, or copies kept from here on would
        # hold the old reading and be dropped once it is read again.
        self._marker_read_at = -math.inf
        return purged, failed

    def purge_epoch(self) -> Hashable:
        """A token that changes whenever a purge runs: at once for a purge in this process,
        within ``marker_interval`` seconds for one in another process sharing the disk tier.
        What a copy kept elsewhere (in memory) checks before each use."""
        if self.disk is not None:
            now = time.monotonic()
            if now - self._marker_read_at >= self.marker_interval:
                self._marker, self._marker_read_at = self.disk.purge_marker(), now
        return self.purges, self._marker

    async def stats(self) -> dict[str, Any]:
        """Every tier's contents and this process's hits and misses, for ``/admin/cache``."""
        tiers = [await self._tier_stats(tier) for tier in self.tiers]
        sources = None
        if self.source_tier is not None:
            disk = next(tier for tier in tiers if tier["kind"] == "disk")
            sources = {**_ratio(self.source_tier), **disk.pop("sources", {"entries": None, "bytes": None})}
        return {"tiers": tiers, "sources": sources, "coalesced": self.coalesced, "in_flight": len(self._renders)}

    async def _lookup(self, result_key: ResultKey, byte_range: ByteRange | None) -> StoredResult | None:
        for index, tier in enumerate(self.tiers):
            # A later tier is read whole, to fill the earlier ones; the first may read a range.
            found = await self._guard(tier, "get", tier.store.get(result_key, byte_range if index == 0 else None))
            self._count(tier, found is not None)
            if found is not None:
                if found.content_range is None:
                    await self._fill(result_key, found, self.tiers[:index])
                return found
        return None

    async def _render(self, result_key: ResultKey, render: Render) -> StoredResult:
        if not self.tiers:
            return await render()
        first = self.tiers[0]
        async with first.store.exclusive(result_key, self.lock_timeout) as held:
            if held:  # another process may have rendered it while this one waited for the lock
                found = await self._guard(first, "get", first.store.get(result_key))
                if found is not None:
                    self._count(first, True)
                    return found
            result = await render()
            await self._fill(result_key, result, self.tiers)
            return result

    async def _fetch(self, source: str, info: ObjectInfo, fetch: Fetch) -> bytes:
        assert self.disk is not None and self.source_tier is not None and info.etag
        body = await fetch()
        content_type = info.content_type or "application/octet-stream"
        await self._guard(self.source_tier, "put", self.disk.put_source(source, info.etag, body, content_type))
        self.metrics.bytes.labels("source").set(self.disk.sources.bytes)
        if self.disk.sources.evictions > self.source_tier.evictions_seen:
            self.metrics.evictions.labels("source").inc(self.disk.sources.evictions - self.source_tier.evictions_seen)
            self.source_tier.evictions_seen = self.disk.sources.evictions
        return body

    async def _fill(self, result_key: ResultKey, result: StoredResult, tiers: list[Tier]) -> None:
        async def put(tier: Tier) -> None:
            await self._guard(tier, "put", tier.store.put(result_key, result))
            self._observe_usage(tier)

        await asyncio.gather(*(put(tier) for tier in tiers))

    async def _guard(self, tier: Tier, operation: str, call: Awaitable[T]) -> T | None:
        """``call``'s result, or None when the store failed (logged once per interval)."""
        try:
            return await call
        except MediaError:
            raise  # a range that does not exist is the client's 416, not the store's fault
        except Exception as exc:
            self._problem(tier, operation, exc)
            return None

    def _problem(self, tier: Tier, operation: str, exc: Exception) -> str:
        problem = str(exc) if isinstance(exc, StoreError) else f"unexpected {exc!r}"
        self.problems.report(f"{tier.name} {operation}", problem)
        self.metrics.errors.labels(tier.name, operation).inc()
        return problem

    def _count(self, tier: Tier, hit: bool) -> None:
        tier.counted(hit)
        self.metrics.lookup(tier.name, hit)

    def _coalesced(self) -> None:
        self.coalesced += 1
        self.metrics.coalesced.inc()

    def _observe_usage(self, tier: Tier) -> None:
        held, evictions = tier.store.usage()
        if held is not None:
            self.metrics.bytes.labels(tier.name).set(held)
        if evictions > tier.evictions_seen:
            self.metrics.evictions.labels(tier.name).inc(evictions - tier.evictions_seen)
            tier.evictions_seen = evictions

    async def _tier_stats(self, tier: Tier) -> dict[str, Any]:
        document: dict[str, Any] = {"name": tier.name, "kind": tier.store.kind, **_ratio(tier)}
        try:
            stats = await tier.store.stats()
        except Exception as exc:
            return {**document, "entries": None, "bytes": None, "error": self._problem(tier, "stats", exc)}
        if stats.bytes is not None:
            self.metrics.bytes.labels(tier.name).set(stats.bytes)
        return {
            **document,
            "entries": stats.entries,
            "bytes": stats.bytes,
            "max_bytes": stats.max_bytes,
            "evictions": stats.evictions,
            "error": None,
            **stats.details,
        }


def _ratio(tier: Tier) -> dict[str, Any]:
    lookups = tier.hits + tier.misses
    return {"hits": tier.hits, "misses": tier.misses, "hit_ratio": round(tier.hits / lookups, 4) if lookups else None}
