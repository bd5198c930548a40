"""The result cache's metric families (names fixed by DESIGN.md), in the app's registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from mediasrv.metrics import NAMESPACE


class CacheMetrics:
    """Hits and misses per tier, bytes held, evictions, coalesced waiters and store problems.

    ``tier`` is a store's kind (``disk``, ``s3``, ...) or ``source`` for the source cache.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "result_cache_requests",
            "Result cache lookups, by tier and result (hit or miss).",
            ["tier", "result"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.bytes = Gauge(
            "result_cache_bytes",
            "Bytes held by a result cache tier, as last counted.",
            ["tier"],
            namespace=NAMESPACE,
            registry=registry,
            multiprocess_mode="mostrecent",  # workers sharing a folder count the same bytes
        )
        self.evictions = Counter(
            "result_cache_evictions",
            "Entries evicted (least recently used first) from a bounded tier.",
            ["tier"],
            namespace=NAMESPACE,
            registry=registry,
        )
        self.coalesced = Counter(
            "coalesced_requests",
            "Requests that waited for an identical render (or source read) in flight instead of doing their own.",
            namespace=NAMESPACE,
            registry=registry,
        )
        self.errors = Counter(
            "result_cache_errors",
            "Result cache operations that failed and were served around, by tier and operation.",
            ["tier", "operation"],
            namespace=NAMESPACE,
            registry=registry,
        )

    def lookup(self, tier: str, hit: bool) -> None:
        self.requests.labels(tier, "hit" if hit else "miss").inc()
