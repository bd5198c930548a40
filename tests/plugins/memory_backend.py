"""A test-only backend that serves objects from memory, and can misbehave on request.

Loaded through settings' ``plugins = ["memory_backend"]`` (the file is copied beside the
test's settings file), exactly as a user's unpublished plugin is. It proves the core works
with any backend and injects faults that a real server can't produce on cue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from mediasrv import (
    BackendSettings,
    BackendUnavailable,
    ByteRange,
    ChunkReader,
    Conditions,
    ContentRange,
    Health,
    NotFound,
    ObjectInfo,
    ObjectStream,
    StorageBackend,
    UpstreamError,
    UpstreamTimeout,
    hookimpl,
)

LAST_MODIFIED = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
ERRORS: dict[str, Callable[[], Exception]] = {
    "notfound": NotFound,
    "upstream": lambda: UpstreamError("upstream said no"),
    "unavailable": lambda: BackendUnavailable("denied"),
    "timeout": lambda: UpstreamTimeout("too slow"),
    "crash": lambda: RuntimeError("secret-token-in-a-library-error"),
    "library-timeout": lambda: TimeoutError(),
}


def pattern(size: int) -> bytes:
    """The deterministic bytes of a generated object of ``size``."""
    return (bytes(range(251)) * (size // 251 + 1))[:size]


class MemorySettings(BackendSettings):
    objects: dict[str, str] = {}  # key -> text
    generated: dict[str, int] = {}  # key -> size of a pattern() object
    content_types: dict[str, str] = {}  # key -> Content-Type
    ignore_range: bool = False  # always return the whole object: the core must cut
    fail_after: dict[str, int] = {}  # key -> bytes sent before the stream fails
    errors: dict[str, str] = {}  # key -> a name from ERRORS, raised by open and stat
    events_file: str = ""  # "open KEY" / "close KEY BYTES_READ" lines appended here
    open_delay: float = 0.0  # seconds open() takes
    fail_start: bool = False  # start() raises
    healthy: bool = True
    hang_health: bool = False  # health() never returns
    health_raises: bool = False  # health() raises a library error carrying a secret


class MemoryBackend(StorageBackend):
    kind = "memory"
    Settings = MemorySettings
    settings: MemorySettings

    def __init__(self, name: str, settings: BackendSettings) -> None:
        super().__init__(name, settings)
        self.data = {key: text.encode() for key, text in self.settings.objects.items()}
        self.data.update({key: pattern(size) for key, size in self.settings.generated.items()})

    async def start(self) -> None:
        if self.settings.fail_start:
            raise ConnectionRefusedError("cannot reach the source")

    async def stat(self, key: str) -> ObjectInfo:
        self._raise_configured_error(key)
        if key not in self.data:
            raise NotFound()
        return ObjectInfo(
            size=len(self.data[key]),
            content_type=self.settings.content_types.get(key),
            etag=f'"m-{len(self.data[key])}"',
            last_modified=LAST_MODIFIED,
        )

    async def open(self, key: str, byte_range: ByteRange | None, conditions: Conditions) -> ObjectStream:
        info = await self.stat(key)
        await asyncio.sleep(self.settings.open_delay)
        data = self.data[key]
        content_range: ContentRange | None = None
        if byte_range is not None and not self.settings.ignore_range:
            content_range = byte_range.resolve(len(data))
            data = data[content_range.first : content_range.last + 1]
        self._event(f"open {key}")
        chunks = MemoryChunks(data, self.settings.chunk_size, self.settings.fail_after.get(key), key, self._event)
        return ObjectStream(info, chunks, content_range)

    async def health(self) -> Health:
        if self.settings.hang_health:
            await asyncio.Event().wait()
        if self.settings.health_raises:
            raise RuntimeError("secret-token-in-a-health-error")
        return Health(ok=self.settings.healthy, error=None if self.settings.healthy else "configured unhealthy")

    def _raise_configured_error(self, key: str) -> None:
        if key in self.settings.errors:
            raise ERRORS[self.settings.errors[key]]()

    def _event(self, line: str) -> None:
        if self.settings.events_file:
            with Path(self.settings.events_file).open("a") as events:
                events.write(line + "\n")


class MemoryChunks(ChunkReader):
    def __init__(
        self, data: bytes, chunk_size: int, fail_after: int | None, key: str, event: Callable[[str], None]
    ) -> None:
        self.data = data
        self.position = 0
        self.chunk_size = chunk_size
        self.fail_after = fail_after
        self.key = key
        self.event = event

    async def read(self) -> bytes:
        await asyncio.sleep(0)
        if self.fail_after is not None and self.position >= self.fail_after:
            raise UpstreamError("connection reset mid-body")
        end = self.position + self.chunk_size
        if self.fail_after is not None:
            end = min(end, self.fail_after)
        chunk = self.data[self.position : end]
        self.position += len(chunk)
        return chunk

    async def release(self) -> None:
        self.event(f"close {self.key} {self.position}")


@hookimpl
def mediasrv_register_backends(register: Callable[[type[StorageBackend]], None]) -> None:
    register(MemoryBackend)
