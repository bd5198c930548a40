"""Prometheus metrics of the media endpoint.

With ``--workers`` > 1, ``mediasrv serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` before the
workers start, so every worker writes its samples there and ``/metrics`` answered by any
worker sums all of them (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

# The *_created series double what a scraper stores and tell nothing a restart doesn't.
disable_created_metrics()  # type: ignore[no-untyped-call]

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
NAMESPACE = "mediasrv"

RENDER_STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
OPEN_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def multiprocess_mode() -> bool:
    """Whether samples go to the shared directory (set before this process imported prometheus-client)."""
    return MULTIPROCESS_ENV in os.environ


class Metrics:
    """The metric families of one app. Each app has its own registry, so several apps may live
    in one process (tests); in multiprocess mode the shared directory is the store instead."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess = multiprocess_mode()
        self.requests = Counter(
            "requests",
            "Media requests answered, by backend, method and status.",
            ["backend", "method", "status"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.bytes_sent = Counter(
            "sent_bytes",
            "Body bytes of media responses handed to the server, by backend.",
            ["backend"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.streams_in_flight = Gauge(
            "streams_in_flight",
            "Media bodies being streamed now, by backend.",
            ["backend"],
            namespace=NAMESPACE,
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.open_latency = Histogram(
            "upstream_open_seconds",
            "Time for a backend to open an object (or stat it, for HEAD), by backend.",
            ["backend"],
            namespace=NAMESPACE,
            registry=self.registry,
            buckets=OPEN_LATENCY_BUCKETS,
        )
        self.client_disconnects = Counter(
            "client_disconnects",
            "Media streams whose client left before the end, by backend.",
            ["backend"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.errors = Counter(
            "errors",
            "Media requests that failed, by backend and kind (the error's name, or a mid-stream failure).",
            ["backend", "kind"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.access_log_dropped = Counter(
            "access_log_dropped_lines",
            "Access-log lines dropped because stdout took them too slowly.",
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.renders = Counter(
            "renders",
            "Image renders actually run, by backend and output format.",
            ["backend", "format"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.render_seconds = Histogram(
            "render_seconds",
            "Time of each render stage: fetch (source bytes), transform (decode, resize, operations), encode.",
            ["stage"],
            namespace=NAMESPACE,
            registry=self.registry,
            buckets=RENDER_STAGE_BUCKETS,
        )
        self.render_queue_depth = Gauge(
            "render_queue_depth",
            "Renders waiting for a render process.",
            namespace=NAMESPACE,
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.render_rejections = Counter(
            "render_rejections",
            "Renders refused with 503, by reason (queue_full, timeout, worker_died).",
            ["reason"],
            namespace=NAMESPACE,
            registry=self.registry,
        )

        self._backends: dict[str, BackendMetrics] = {}
        # Requests and bytes added up here and handed to the counters when scraped: each
        # Counter.inc takes a lock, and two of them cost 9 us of a 90 us answer from memory,
        # profiled under load. In multiprocess mode another worker answers the scrape, so
        # the counters are written at once there.
        self._tally: dict[tuple[BackendMetrics, str, int], list[int]] | None = None if self.multiprocess else {}

    def of(self, backend: str) -> BackendMetrics:
        """The metrics of one backend ("" for a name that matches none)."""
        metrics = self._backends.get(backend)
        if metrics is None:
            metrics = self._backends[backend] = BackendMetrics(self, backend)
        return metrics

    def count_request(self, backend: BackendMetrics, method: str, status: int, sent: int) -> None:
        """One media request answered with ``status`` and ``sent`` body bytes."""
        if self._tally is None:
            backend.requests(method, status).inc()
            if sent:
                backend.bytes_sent.inc(sent)
            return
        counts = self._tally.get((backend, method, status))
        if counts is None:
            self._tally[(backend, method, status)] = [1, sent]
        else:
            counts[0] += 1
            counts[1] += sent

    def flush(self) -> None:
        """Hand the requests and bytes counted since the last flush to their counters."""
        if not self._tally:
            return
        tally, self._tally = self._tally, {}
        for (backend, method, status), (requests, sent) in tally.items():
            backend.requests(method, status).inc(requests)
            if sent:
                backend.bytes_sent.inc(sent)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric (of every worker, in multiprocess mode)."""
        self.flush()
        if not self.multiprocess:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)

    def worker_exiting(self) -> None:
        """Drop this worker's live gauges from the shared directory."""
        if self.multiprocess:
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


class BackendMetrics:
    """One backend's labelled series, looked up once: ``labels()`` costs more than the update."""

    def __init__(self, metrics: Metrics, backend: str) -> None:
        self._metrics = metrics
        self.backend = backend
        self.bytes_sent = metrics.bytes_sent.labels(backend)
        self.streams_in_flight = metrics.streams_in_flight.labels(backend)
        self.open_latency = metrics.open_latency.labels(backend)
        self.client_disconnects = metrics.client_disconnects.labels(backend)
        self._requests: dict[tuple[str, int], Any] = {}

    def requests(self, method: str, status: int) -> Any:
        """The request counter of one method and status."""
        counter = self._requests.get((method, status))
        if counter is None:
            counter = self._metrics.requests.labels(self.backend, method, str(status))
            self._requests[(method, status)] = counter
        return counter

    def error(self, kind: str) -> Any:
        """The error counter of one kind (errors are rare: looked up each time)."""
        return self._metrics.errors.labels(self.backend, kind)
