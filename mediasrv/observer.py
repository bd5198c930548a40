"""The access log and the metrics: the ``Observer`` notes every finished request, seen end to
end by one ASGI middleware (or answered from memory ahead of it), and the media endpoint notes
on a RequestRecord what only it knows (backend, key, error, outcome)."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mediasrv.accesslog import AccessLog, utc_timestamp
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
        self._idle: asyncio.Event | None = None  # made by the first wait: an Event per request costs

    def enter(self) -> None:
        self.count += 1

    def leave(self) -> None:
        self.count -= 1
        if self.count == 0 and self._idle is not None:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """Whether every request ended within ``timeout`` seconds."""
        if self.count == 0:
            return True
        self._idle = asyncio.Event()
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        finally:
            self._idle = None
        return True


# When the request ended (Unix seconds), the client's address, method, path, status, body
# bytes sent, duration (seconds), and what the media endpoint noted.
LogEntry = tuple[float, str | None, str, str, int, int, float, RequestRecord]


class Observer:
    """Counts each finished request in the metrics and writes its access-log line."""

    def __init__(
        self, metrics: Metrics, access_log: AccessLog[LogEntry] | None, in_flight: InFlight | None = None
    ) -> None:
        self.metrics = metrics
        self.access_log = access_log
        self.in_flight = in_flight or InFlight()

    def finished(self, scope: Scope, record: RequestRecord, status: int, sent: int, duration: float) -> None:
        """Note one answered request: ``sent`` body bytes in ``duration`` seconds."""
        if scope["path"].startswith(MEDIA_PATH_PREFIX):
            self._count(scope["method"], record, status, sent)
        if self.access_log is not None:
            client = scope.get("client")
            ended = time.time()
            self.access_log.write(
                (ended, client[0] if client else None, scope["method"], scope["path"], status, sent, duration, record)
            )

    def _count(self, method: str, record: RequestRecord, status: int, sent: int) -> None:
        metrics = self.metrics.of(record.backend or "")
        self.metrics.count_request(metrics, method, status, sent)
        if record.open_seconds is not None:
            metrics.open_latency.observe(record.open_seconds)
        if record.error is not None:
            metrics.error(record.error).inc()
        if record.outcome == Outcome.CLIENT_DISCONNECTED:
            metrics.client_disconnects.inc()
        elif record.outcome != Outcome.COMPLETE:
            metrics.error(record.outcome).inc()


class RequestObserver:
    """ASGI middleware: sees every request end to end, for the ``Observer``."""

    def __init__(self, app: ASGIApp, observer: Observer) -> None:
        self.app = app
        self.observer = observer

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
        metrics = self.observer.metrics

        async def observed_send(message: Message) -> None:
            nonlocal status, sent, streaming_backend
            if message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            elif message["type"] == "http.response.start":
                status = message["status"]
                if record.backend is not None and status in (200, 206) and scope["method"] == "GET":
                    streaming_backend = record.backend
                    metrics.of(streaming_backend).streams_in_flight.inc()
            await send(message)

        in_flight = self.observer.in_flight
        in_flight.enter()
        try:
            await self.app(scope, receive, observed_send)
        except BaseException:
            status = status or 500
            raise
        finally:
            in_flight.leave()
            if streaming_backend is not None:
                metrics.of(streaming_backend).streams_in_flight.dec()
            self.observer.finished(scope, record, status, sent, time.perf_counter() - started)


def log_line(entry: LogEntry) -> str:
    """The access-log line of a request, a JSON object: ``time``, ``client``, ``method``, ``path``,
    ``status``, ``bytes``, ``duration_ms``; for a media request ``backend``, ``key``, ``range`` and
    ``outcome``, then ``transform`` and ``error`` when set. The query string and headers are
    left out: they may carry tokens. Strings are escaped to ASCII, so a lone surrogate can't
    break the stream."""
    ended, client, method, path, status, sent, duration, record = entry
    line = (
        f'{{"time": "{utc_timestamp(ended)}", "client": {_json(client)}, "method": {_json(method)}, '
        f'"path": {_json(path)}, "status": {status}, "bytes": {sent}, "duration_ms": {round(duration * 1000, 2)!r}'
    )
    if record.backend is not None or record.key is not None:
        line += (
            f', "backend": {_json(record.backend)}, "key": {_json(record.key)}, "range": {_json(record.range)}, '
            f'"outcome": {_json(record.outcome)}'
        )
    if record.transform is not None:
        line += f', "transform": {_json(record.transform)}'
    if record.error is not None:
        line += f', "error": {_json(record.error)}'
    return line + "}"


def _json(text: str | None) -> str:
    return "null" if text is None else encode_basestring_ascii(text)
