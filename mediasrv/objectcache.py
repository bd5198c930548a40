"""Small answers kept in memory, answered ahead of the app's layers, never stale.

A ``GET /media/{backend}/{key}`` with no Range and no conditional header, of an object a
backend can fingerprint cheaply (see ``StorageBackend.fingerprint``), is answered once by
the media endpoint, and a whole small 200 is kept: status, headers and body, under the URL
as sent (its raw path and query string) and, when there is a query, the ``Accept`` header,
which ``format=auto`` decides on. A rendered variant or an ``?info=json`` answer is kept like
an original. The next request for the same URL is answered from memory by ``SmallObjects``,
which ``MediaServer`` calls before any middleware, if:

- the backend's fingerprint of the key is still the one taken around the first answer, so a
  changed, replaced or deleted source is seen at once;
- for a URL with a query, the result cache's purge epoch is unchanged (a purge here drops
  its variants at once; one in another worker sharing the disk tier, within a second);
- the URL's ``exp``, if it has one, has not passed: a signed URL's answer is kept only while
  the signature would be accepted, and only a URL the endpoint accepted is ever kept.

Everything else goes through the app's middleware to the media endpoint as before. An answer
from memory is counted and logged by the same ``Observer`` as any other.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mediasrv.connections import find_connection
from mediasrv.content_types import NOSNIFF_HEADER
from mediasrv.errors import BackendUnavailable, InvalidKey
from mediasrv.keys import validate_key
from mediasrv.limits import Slot, StreamLimiter
from mediasrv.observer import Observer, RequestRecord, request_record
from mediasrv.outcome import Outcome
from mediasrv.responses import Headers, MediaResponse
from mediasrv.signing import EXPIRY_PARAMETER, parse_query

if TYPE_CHECKING:  # the registry reads settings, which hold this module's settings table
    from mediasrv.registry import BackendRegistry

# A request carrying one of these is answered by the media endpoint: its answer depends on them.
_REQUEST_DEPENDENT = frozenset(
    {b"range", b"if-match", b"if-none-match", b"if-modified-since", b"if-unmodified-since", b"if-range"}
)
ENTRY_OVERHEAD = 512  # bytes an entry costs beyond its body and headers (objects, dict slot)

# The raw path, the query string, and the Accept header (empty without a query).
EntryKey = tuple[bytes, bytes, bytes]
PurgeEpoch = Callable[[], Hashable]


class SmallObjectSettings(BaseModel):
    """``[small_objects]``: the per-worker memory cache of small answers."""

    model_config = ConfigDict(extra="forbid")

    max_bytes: int = Field(default=16 * 1024 * 1024, ge=0, description="memory per worker; 0: off")
    max_object_bytes: int = Field(default=128 * 1024, ge=0, description="largest body kept")


@dataclass(frozen=True, slots=True)
class CachedObject:
    """One kept 200 response, valid while its source's fingerprint (and, for a URL with a
    query, the purge epoch) is unchanged and until ``expires`` (Unix seconds)."""

    backend: str
    key: str
    fingerprint: Hashable
    headers: Headers  # as the client got them, nosniff included
    body: bytes
    transform: str | None = None  # the record's, for the log line
    epoch: Hashable = None
    expires: float = math.inf

    @property
    def cost(self) -> int:
        return len(self.body) + sum(len(name) + len(value) for name, value in self.headers) + ENTRY_OVERHEAD


class SmallObjectCache:
    """Least recently used entries under a total of ``max_bytes``."""

    def __init__(self, max_bytes: int, max_object_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.max_object_bytes = max_object_bytes
        self.size = 0
        self._entries: OrderedDict[EntryKey, CachedObject] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: EntryKey) -> CachedObject | None:
        """The entry kept under ``key``, however old; now the most recently used."""
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: EntryKey, entry: CachedObject) -> None:
        """Keep ``entry``, dropping the least recently used ones to stay under ``max_bytes``."""
        self.discard(key)
        if entry.cost > self.max_bytes:
            return
        self._entries[key] = entry
        self.size += entry.cost
        while self.size > self.max_bytes:
            _, oldest = self._entries.popitem(last=False)
            self.size -= oldest.cost

    def discard(self, key: EntryKey) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.size -= entry.cost


def entry_key(scope: Scope) -> EntryKey | None:
    """The key a request's answer is kept and found under; None when it depends on more than
    the URL and the Accept header (a range, a condition, two Accept headers, not a GET)."""
    raw_path = scope.get("raw_path")
    if scope["method"] != "GET" or not raw_path:
        return None
    accept: bytes | None = None
    for name, value in scope["headers"]:
        if name in _REQUEST_DEPENDENT:
            return None
        if name == b"accept":
            if accept is not None:
                return None
            accept = value
    query = scope["query_string"]
    return raw_path, query, (accept or b"") if query else b""


class SmallObjects:
    """The memory cache of small answers: ``answer`` serves from it, ahead of the app's layers;
    ``keeper`` wraps the media endpoint and keeps what it answers."""

    def __init__(
        self,
        registry: BackendRegistry,
        limiter: StreamLimiter,
        send_timeout: float,
        cache: SmallObjectCache,
        observer: Observer,
        purge_epoch: PurgeEpoch | None = None,
    ) -> None:
        self.registry = registry
        self.limiter = limiter
        self.send_timeout = send_timeout
        self.cache = cache
        self.observer = observer
        self.purge_epoch: PurgeEpoch = purge_epoch or _no_purges

    async def answer(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Answer a media request from memory; False (nothing sent) when it isn't there, is no
        longer valid, or no stream slot is free (the endpoint answers 503)."""
        started = time.perf_counter()
        key = entry_key(scope)
        if key is None:
            return False
        entry = self.cache.get(key)
        if entry is None:
            return False
        if not self._valid(entry):
            self.cache.discard(key)
            return False
        client = scope.get("client")
        try:
            slot = self.limiter.acquire(client[0] if client else None)
        except BackendUnavailable:
            return False
        record = RequestRecord(backend=entry.backend, key=entry.key, transform=entry.transform)
        in_flight = self.observer.in_flight
        in_flight.enter()
        sent = 0
        try:
            sent = await self._send(entry, slot, record, scope, receive, send)
        finally:
            in_flight.leave()
            self.observer.finished(scope, record, 200, sent, time.perf_counter() - started)
        return True

    def keeper(self, app: ASGIApp) -> ASGIApp:
        """``app`` (the media endpoint), keeping its small whole answers here."""
        return _Keeper(app, self)

    def _valid(self, entry: CachedObject) -> bool:
        backend = self.registry.backends[entry.backend]
        if backend.fingerprint(entry.key) != entry.fingerprint:
            return False
        if entry.epoch is not None and self.purge_epoch() != entry.epoch:
            return False
        return entry.expires == math.inf or time.time() <= entry.expires

    async def _send(
        self, entry: CachedObject, slot: Slot, record: RequestRecord, scope: Scope, receive: Receive, send: Send
    ) -> int:
        """Send ``entry``'s response; the body bytes handed to the server."""
        connection = find_connection(scope)
        if connection is not None and not connection.closed and not connection.buffered_bytes():
            try:  # nothing queued for this client: uvicorn writes both at once, without waiting
                await send({"type": "http.response.start", "status": 200, "headers": entry.headers})
                await send({"type": "http.response.body", "body": entry.body})
            finally:
                slot.release()
            return len(entry.body)
        # The client may be slow, or gone: MediaResponse holds it to send_timeout.
        sent = 0

        def finish(outcome: str) -> None:
            slot.release()
            record.outcome = outcome

        async def counted_send(message: Message) -> None:
            nonlocal sent
            sent += len(message.get("body", b""))
            await send(message)

        streams = self.observer.metrics.of(entry.backend).streams_in_flight
        streams.inc()
        try:
            response = MediaResponse(
                200,
                entry.headers,
                MemoryChunks(entry.body),
                content_length=len(entry.body),
                connection=connection,
                send_timeout=self.send_timeout,
                on_finish=finish,
            )
            await response(scope, receive, counted_send)
        finally:
            streams.dec()
        return sent


class _Keeper:
    """ASGI layer in front of the media endpoint: keeps a whole small 200 of a version that
    stayed the same from before it was read until after it was sent."""

    def __init__(self, app: ASGIApp, objects: SmallObjects) -> None:
        self.app = app
        self.objects = objects

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        objects = self.objects
        key = entry_key(scope)
        name, source = scope["path_params"]["backend"], scope["path_params"]["key"]
        backend = objects.registry.backends.get(name)
        # A key is checked before the backend sees it: fingerprint() joins it to a path.
        fingerprint = backend.fingerprint(source) if backend and key is not None and _is_valid(source) else None
        expires = _expiry(key[1]) if key is not None and fingerprint is not None else None
        if backend is None or key is None or fingerprint is None or expires is None:
            await self.app(scope, receive, send)
            return
        epoch = objects.purge_epoch() if key[1] else None
        capture = _Capture(objects.cache.max_object_bytes)

        async def capturing_send(message: Message) -> None:
            capture.see(message)
            await send(message)

        await self.app(scope, receive, capturing_send)
        record = request_record(scope)
        if not capture.complete or record.outcome != Outcome.COMPLETE or backend.fingerprint(source) != fingerprint:
            return
        if epoch is not None and objects.purge_epoch() != epoch:
            return
        headers = [*capture.headers, NOSNIFF_HEADER]  # what NoSniffMiddleware, outside this layer, adds
        body = b"".join(capture.body)
        objects.cache.put(key, CachedObject(name, source, fingerprint, headers, body, record.transform, epoch, expires))


class _Capture:
    """What the endpoint sent, as long as it may be kept."""

    def __init__(self, max_body: int) -> None:
        self.max_body = max_body
        self.keep = True
        self.headers: Headers = []
        self.body: list[bytes] = []
        self.length = -1
        self.received = 0
        self.ended = False

    @property
    def complete(self) -> bool:
        return self.keep and self.ended and self.received == self.length

    def see(self, message: Message) -> None:
        if not self.keep:
            return
        if message["type"] == "http.response.start":
            self._see_start(message)
        elif message["type"] == "http.response.body":
            body = message.get("body", b"")
            self.received += len(body)
            self.keep = self.received <= self.length
            self.body.append(body)
            self.ended = not message.get("more_body", False)

    def _see_start(self, message: Message) -> None:
        self.headers = list(message.get("headers", ()))
        lengths = [value for name, value in self.headers if name == b"content-length"]
        self.length = int(lengths[0]) if len(lengths) == 1 and lengths[0].isdigit() else -1
        self.keep = message["status"] == 200 and 0 <= self.length <= self.max_body


def _is_valid(key: str) -> bool:
    try:
        validate_key(key)
    except InvalidKey:
        return False
    return True


def _expiry(query: bytes) -> float | None:
    """Until when an answer to this query may be kept: its ``exp``, else forever; None (don't
    keep) for an ``exp`` that isn't one readable time."""
    expiries = [value for name, value in parse_query(query.decode("latin-1")) if name == EXPIRY_PARAMETER]
    if not expiries:
        return math.inf
    if len(expiries) > 1 or not (expiries[0].isascii() and expiries[0].isdigit()):
        return None
    return float(expiries[0])


def _no_purges() -> Hashable:
    return 0


class MemoryChunks:
    """The chunks of a body in memory: the body, once."""

    def __init__(self, body: bytes) -> None:
        self._body: bytes | None = body

    def __aiter__(self) -> MemoryChunks:
        return self

    async def __anext__(self) -> bytes:
        body, self._body = self._body, None
        if not body:
            raise StopAsyncIteration
        return body

    async def aclose(self) -> None:
        self._body = None  # nothing else to free: the body stays in the cache
