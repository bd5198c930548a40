"""Small objects kept in memory, answered without a backend call, never stale.

A plain ``GET /media/{backend}/{key}`` (no query, no Range, no conditional header) of an
object a backend can fingerprint cheaply (see ``StorageBackend.fingerprint``) is answered
once by the media endpoint, and its response (status 200, headers, body) is kept. The next
such request is answered from memory if the backend's fingerprint of the key is still the
one taken around the first answer: a changed, replaced or deleted object is seen at once.
Everything else goes to the media endpoint as before.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mediasrv.backend import StorageBackend
from mediasrv.connections import find_connection
from mediasrv.errors import BackendUnavailable, InvalidKey
from mediasrv.keys import validate_key
from mediasrv.limits import StreamLimiter
from mediasrv.observer import request_record
from mediasrv.outcome import Outcome
from mediasrv.responses import Headers, MediaResponse

if TYPE_CHECKING:  # the registry reads settings, which hold this module's settings table
    from mediasrv.registry import BackendRegistry

# A request carrying one of these is answered by the media endpoint: its answer depends on them.
_REQUEST_DEPENDENT = frozenset(
    {b"range", b"if-match", b"if-none-match", b"if-modified-since", b"if-unmodified-since", b"if-range"}
)
ENTRY_OVERHEAD = 512  # bytes an entry costs beyond its body and headers (objects, dict slot)


class SmallObjectSettings(BaseModel):
    """``[small_objects]``: the per-worker memory cache of small objects."""

    model_config = ConfigDict(extra="forbid")

    max_bytes: int = Field(default=16 * 1024 * 1024, ge=0, description="memory per worker; 0: off")
    max_object_bytes: int = Field(default=128 * 1024, ge=0, description="largest body kept")


@dataclass(frozen=True, slots=True)
class CachedObject:
    """One kept 200 response, valid while its backend's fingerprint of the key is unchanged."""

    fingerprint: Hashable
    headers: Headers
    body: bytes

    @property
    def cost(self) -> int:
        return len(self.body) + sum(len(name) + len(value) for name, value in self.headers) + ENTRY_OVERHEAD


class SmallObjectCache:
    """Least recently used entries under a total of ``max_bytes``."""

    def __init__(self, max_bytes: int, max_object_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.max_object_bytes = max_object_bytes
        self.size = 0
        self._entries: OrderedDict[tuple[str, str], CachedObject] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, backend: str, key: str) -> CachedObject | None:
        """The entry kept for ``key``, whatever its fingerprint; now the most recently used."""
        entry = self._entries.get((backend, key))
        if entry is not None:
            self._entries.move_to_end((backend, key))
        return entry

    def put(self, backend: str, key: str, entry: CachedObject) -> None:
        """Keep ``entry``, dropping the least recently used ones to stay under ``max_bytes``."""
        self.discard(backend, key)
        if entry.cost > self.max_bytes:
            return
        self._entries[(backend, key)] = entry
        self.size += entry.cost
        while self.size > self.max_bytes:
            _, oldest = self._entries.popitem(last=False)
            self.size -= oldest.cost

    def discard(self, backend: str, key: str) -> None:
        entry = self._entries.pop((backend, key), None)
        if entry is not None:
            self.size -= entry.cost


class SmallObjectLayer:
    """ASGI layer in front of the media endpoint: answers kept objects, keeps new ones.

    Sits inside the app's middleware (access log, metrics, nosniff), so a response from
    memory is logged and counted like any other. It takes a stream slot (``max_streams``),
    and a client that has bytes still queued or has left gets it through MediaResponse,
    which holds it to ``send_timeout`` and notes how the body ended.
    """

    def __init__(
        self,
        app: ASGIApp,
        registry: BackendRegistry,
        limiter: StreamLimiter,
        send_timeout: float,
        cache: SmallObjectCache,
    ) -> None:
        self.app = app
        self.registry = registry
        self.limiter = limiter
        self.send_timeout = send_timeout
        self.cache = cache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        backend = self._backend_for(scope)
        if backend is None:
            await self.app(scope, receive, send)
            return
        name, key = backend.name, scope["path_params"]["key"]
        entry = self.cache.get(name, key)
        # Only a key the endpoint served has an entry; any other is checked before the backend sees it.
        fingerprint = backend.fingerprint(key) if entry is not None or _is_valid(key) else None
        if entry is not None:
            if entry.fingerprint == fingerprint and await self._answer(entry, scope, receive, send):
                return
            if entry.fingerprint != fingerprint:
                self.cache.discard(name, key)
        if fingerprint is None:
            await self.app(scope, receive, send)
        else:
            await self._answer_and_keep(backend, key, fingerprint, scope, receive, send)

    def _backend_for(self, scope: Scope) -> StorageBackend | None:
        """The backend, if this request's answer may come from, or go to, memory."""
        if scope["method"] != "GET" or scope["query_string"] or self.cache.max_bytes == 0:
            return None
        backend = self.registry.backends.get(scope["path_params"]["backend"])
        if backend is None or backend.settings.access != "public":
            return None  # unknown (404) and signed backends: the endpoint decides every request
        for name, _ in scope["headers"]:
            if name in _REQUEST_DEPENDENT:
                return None
        return backend

    async def _answer(self, entry: CachedObject, scope: Scope, receive: Receive, send: Send) -> bool:
        """Send ``entry``; False (nothing sent) when no stream slot is free, in all or for this
        client: the endpoint answers 503."""
        client = scope.get("client")
        try:
            slot = self.limiter.acquire(client[0] if client else None)
        except BackendUnavailable:
            return False
        record = request_record(scope)
        record.backend, record.key = scope["path_params"]["backend"], scope["path_params"]["key"]
        connection = find_connection(scope)
        if connection is None or connection.closed or connection.buffered_bytes():
            # The client may be slow: MediaResponse holds it to send_timeout.
            def finish(outcome: str) -> None:
                slot.release()
                record.outcome = outcome

            response = MediaResponse(
                200,
                list(entry.headers),
                MemoryChunks(entry.body),
                content_length=len(entry.body),
                connection=connection,
                send_timeout=self.send_timeout,
                on_finish=finish,
            )
            await response(scope, receive, send)
            return True
        try:  # nothing queued for this client: uvicorn writes both at once, without waiting
            await send({"type": "http.response.start", "status": 200, "headers": list(entry.headers)})
            await send({"type": "http.response.body", "body": entry.body})
        finally:
            slot.release()
        return True

    async def _answer_and_keep(
        self, backend: StorageBackend, key: str, fingerprint: Hashable, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Let the endpoint answer, and keep its answer if it is a whole small 200 of the
        version fingerprinted before (and still after) it was read."""
        capture = _Capture(self.cache.max_object_bytes)

        async def capturing_send(message: Message) -> None:
            capture.see(message)
            await send(message)

        await self.app(scope, receive, capturing_send)
        if capture.complete and request_record(scope).outcome == Outcome.COMPLETE:
            if backend.fingerprint(key) == fingerprint:  # and the same version throughout
                self.cache.put(backend.name, key, CachedObject(fingerprint, capture.headers, b"".join(capture.body)))


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
