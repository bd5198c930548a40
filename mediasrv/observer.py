"""The access log and the metrics: one ASGI middleware sees every request end to end, and the
media endpoint notes on a RequestRecord what only it knows (backend, key, error, outcome)."""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mediasrv.metrics import Metrics

access_logger = logging.getLogger("mediasrv.access")

RECORD_SCOPE_KEY = "mediasrv.record"
MEDIA_PATH_PREFIX = "/media/"


class Outcome:
    """How a response body ended."""

    COMPLETE = "complete"
    CLIENT_DISCONNECTED = "client_disconnected"
    CLIENT_STALLED = "client_stalled"
    SOURCE_FAILED = "source_failed"


@dataclass
class RequestRecord:
    """What the media endpoint learnt about one request, for the log line and the metrics."""

    backend: str | None = None  # set only for a configured backend, so labels stay bounded
    key: str | None = None
    range: str | None = None
    error: str | None = None
    open_seconds: float | None = None
    outcome: str = Outcome.COMPLETE


def request_record(scope: Scope) -> RequestRecord:
    """The record of the request in ``scope`` (a fresh one if no observer is installed)."""
    record = scope.get(RECORD_SCOPE_KEY)
    return record if isinstance(record, RequestRecord) else RequestRecord()


def error_kind(exc: BaseException) -> str:
    """An error's metric label: its class name in snake case (``UpstreamTimeout`` -> ``upstream_timeout``)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()


class RequestObserver:
    """Writes one JSON access-log line per request and updates the metrics."""

    def __init__(self, app: ASGIApp, metrics: Metrics, access_log: bool) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        record = RequestRecord()
        scope[RECORD_SCOPE_KEY] = record
        started = time.perf_counter()
        status = 0
        sent = 0
        streaming_backend: str | None = None

        async def observed_send(message: Message) -> None:
            nonlocal status, sent, streaming_backend
            if message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            elif message["type"] == "http.response.start":
                status = message["status"]
                if record.backend is not None and status in (200, 206) and scope["method"] == "GET":
                    streaming_backend = record.backend
                    self.metrics.streams_in_flight.labels(streaming_backend).inc()
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        except BaseException:
            status = status or 500
            raise
        finally:
            if streaming_backend is not None:
                self.metrics.streams_in_flight.labels(streaming_backend).dec()
            duration = time.perf_counter() - started
            if scope["path"].startswith(MEDIA_PATH_PREFIX):
                self._count(scope["method"], record, status, sent)
            if self.access_log:
                access_logger.info(_log_line(scope, record, status, sent, duration))

    def _count(self, method: str, record: RequestRecord, status: int, sent: int) -> None:
        backend = record.backend or ""
        metrics = self.metrics
        metrics.requests.labels(backend, method, str(status)).inc()
        if sent:
            metrics.bytes_sent.labels(backend).inc(sent)
        if record.open_seconds is not None:
            metrics.open_latency.labels(backend).observe(record.open_seconds)
        if record.error is not None:
            metrics.errors.labels(backend, record.error).inc()
        if record.outcome == Outcome.CLIENT_DISCONNECTED:
            metrics.client_disconnects.labels(backend).inc()
        elif record.outcome != Outcome.COMPLETE:
            metrics.errors.labels(backend, record.outcome).inc()


def _log_line(scope: Scope, record: RequestRecord, status: int, sent: int, duration: float) -> str:
    """The access-log line: JSON, so keys with any character stay one parseable line. The query
    string and headers are left out: they may carry tokens."""
    client = scope.get("client")
    line: dict[str, Any] = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "client": client[0] if client else None,
        "method": scope["method"],
        "path": scope["path"],
        "status": status,
        "bytes": sent,
        "duration_ms": round(duration * 1000, 2),
    }
    if record.backend is not None or record.key is not None:
        line.update(backend=record.backend, key=record.key, range=record.range, outcome=record.outcome)
    if record.error is not None:
        line["error"] = record.error
    return json.dumps(line)  # ASCII: a key's lone surrogates can't break the log stream
