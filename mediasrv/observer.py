"""The access log and the metrics: one ASGI middleware sees every request end to end, and the
media endpoint notes on a RequestRecord what only it knows (backend, key, error, outcome)."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mediasrv.accesslog import AccessLog
from mediasrv.metrics import Metrics
from mediasrv.outcome import Outcome

RECORD_SCOPE_KEY = "mediasrv.record"
MEDIA_PATH_PREFIX = "/media/"


@dataclass
class RequestRecord:
    """What the media endpoint learnt about one request, for the log line and the metrics."""

    backend: str | None = None  # set only for a configured backend, so labels stay bounded
    key: str | None = None
    range: str | None = None
    error: str | None = None
    open_seconds: float | None = None
    transform: str | None = None  # the canonical transform options of a rendered variant
    outcome: str = Outcome.COMPLETE


def request_record(scope: Scope) -> RequestRecord:
    """The record of the request in ``scope`` (a fresh one if no observer is installed)."""
    record = scope.get(RECORD_SCOPE_KEY)
    return record if isinstance(record, RequestRecord) else RequestRecord()


def error_kind(exc: BaseException) -> str:
    """An error's metric label: its ``kind`` when it has one (``signature_expired``), else its
    class name in snake case (``UpstreamTimeout`` -> ``upstream_timeout``)."""
    kind = getattr(exc, "kind", None)
    if isinstance(kind, str):
        return kind
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()


class InFlight:
    """Counts requests being answered, so shutdown can wait for the ones it just cancelled to
    close their sources and write their log lines."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.count += 1
        self._idle.clear()

    def leave(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """Whether every request ended within ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True


class RequestObserver:
    """Writes one JSON access-log line per request and updates the metrics."""

    def __init__(
        self, app: ASGIApp, metrics: Metrics, access_log: AccessLog | None, in_flight: InFlight | None = None
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log
        self.in_flight = in_flight or InFlight()

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
                    self.metrics.of(streaming_backend).streams_in_flight.inc()
            await send(message)

        self.in_flight.enter()
        try:
            await self.app(scope, receive, observed_send)
        except BaseException:
            status = status or 500
            raise
        finally:
            self.in_flight.leave()
            if streaming_backend is not None:
                self.metrics.of(streaming_backend).streams_in_flight.dec()
            duration = time.perf_counter() - started
            if scope["path"].startswith(MEDIA_PATH_PREFIX):
                self._count(scope["method"], record, status, sent)
            if self.access_log is not None:
                self.access_log.write(_log_fields(scope, record, status, sent, duration))

    def _count(self, method: str, record: RequestRecord, status: int, sent: int) -> None:
        metrics = self.metrics.of(record.backend or "")
        metrics.requests(method, status).inc()
        if sent:
            metrics.bytes_sent.inc(sent)
        if record.open_seconds is not None:
            metrics.open_latency.observe(record.open_seconds)
        if record.error is not None:
            metrics.error(record.error).inc()
        if record.outcome == Outcome.CLIENT_DISCONNECTED:
            metrics.client_disconnects.inc()
        elif record.outcome != Outcome.COMPLETE:
            metrics.error(record.outcome).inc()


def _log_fields(scope: Scope, record: RequestRecord, status: int, sent: int, duration: float) -> dict[str, Any]:
    """The access-log line's fields. The query string and headers are left out: they may
    carry tokens."""
    client = scope.get("client")
    fields: dict[str, Any] = {
        "client": client[0] if client else None,
        "method": scope["method"],
        "path": scope["path"],
        "status": status,
        "bytes": sent,
        "duration_ms": round(duration * 1000, 2),
    }
    if record.backend is not None or record.key is not None:
        fields.update(backend=record.backend, key=record.key, range=record.range, outcome=record.outcome)
    if record.transform is not None:
        fields["transform"] = record.transform
    if record.error is not None:
        fields["error"] = record.error
    return fields
