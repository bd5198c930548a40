"""The ResultStore interface every tier of the result cache implements, and its value types."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from mediasrv.ranges import ByteRange, ContentRange


class StoreError(Exception):
    """A store could not do what was asked (folder unwritable or full, S3 down or denied, a
    corrupt entry). The cache logs it, at most once per interval, and goes on without the store."""


def source_id(backend: str, key: str) -> str:
    """The id every variant of one source is stored under: sha256 of ``backend/key``."""
    return hashlib.sha256(f"{backend}/{key}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ResultKey:
    """Where one variant is stored: its source's id and its derived ETag."""

    source: str
    variant: str

    @classmethod
    def of(cls, backend: str, key: str, variant: str) -> ResultKey:
        return cls(source_id(backend, key), variant)

    @property
    def name(self) -> str:
        """The variant's file or object name: its ETag's digest (an ETag has quotes and slashes)."""
        return hashlib.sha256(self.variant.encode()).hexdigest()[:40]


@dataclass(frozen=True, slots=True)
class StoredResult:
    """A stored variant: its bytes (all of them, or the range ``get`` was asked for), the
    whole result's ``size``, its ``etag`` and ``content_type``, and the renderer's
    ``metadata`` (short strings, such as the output format and dimensions)."""

    body: bytes
    content_type: str
    etag: str
    size: int
    metadata: Mapping[str, str] = field(default_factory=dict)
    content_range: ContentRange | None = None

    @classmethod
    def whole(
        cls, body: bytes, content_type: str, etag: str, metadata: Mapping[str, str] | None = None
    ) -> StoredResult:
        return cls(body, content_type, etag, len(body), dict(metadata or {}))

    @property
    def digest(self) -> str:
        """sha256 of the body, hex."""
        return hashlib.sha256(self.body).hexdigest()

    def sliced(self, byte_range: ByteRange | None) -> StoredResult:
        """This (whole) result cut to ``byte_range``; RangeNotSatisfiable if none of it exists."""
        if byte_range is None or self.content_range is not None:
            return self
        content_range = byte_range.resolve(self.size)
        body = self.body[content_range.first : content_range.last + 1]
        return StoredResult(body, self.content_type, self.etag, self.size, self.metadata, content_range)


@dataclass(frozen=True)
class StoreStats:
    """What a store holds, for ``/admin/cache``; None where the store cannot tell cheaply."""

    entries: int | None
    bytes: int | None
    max_bytes: int | None = None
    evictions: int = 0
    details: Mapping[str, Any] = field(default_factory=dict)


class StoreSettings(BaseModel):
    """Settings of a store; a store's own ``Settings`` subclasses this. Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ResultStore(ABC):
    """One tier of the result cache: a folder, a bucket, a key-value service.

    A subclass sets ``kind`` and ``Settings`` and implements ``get``, ``put``, ``purge`` and
    ``stats``; problems are raised as StoreError, never a library's exception. Pooled
    clients are made in ``start`` and closed in ``stop``. ``start`` may raise StoreError
    (an unusable folder, say): the cache logs it and goes on calling the store, whose calls
    raise StoreError until it works again; meanwhile the cache renders.
    """

    kind: ClassVar[str]
    Settings: ClassVar[type[StoreSettings]] = StoreSettings

    def __init__(self, settings: StoreSettings) -> None:
        self.settings = settings

    async def start(self) -> None:
        """Create pooled clients, folders, indexes."""

    async def stop(self) -> None:
        """Close what ``start`` created."""

    @abstractmethod
    async def get(self, key: ResultKey, byte_range: ByteRange | None = None) -> StoredResult | None:
        """The stored variant, or None. With ``byte_range``, the store may return just that
        range (``content_range`` set) or the whole result; RangeNotSatisfiable if none exists.
        A corrupt entry is not returned: it is dropped and StoreError raised."""

    @abstractmethod
    async def put(self, key: ResultKey, result: StoredResult) -> None:
        """Store a whole result, atomically: a reader sees all of it or nothing."""

    @abstractmethod
    async def purge(self, source: str) -> int:
        """Drop every variant of the source with this ``source_id``; how many were dropped."""

    @abstractmethod
    async def stats(self) -> StoreStats:
        """What the store holds now."""

    def exclusive(self, key: ResultKey, timeout: float) -> AbstractAsyncContextManager[bool]:
        """A lock on ``key`` that other processes using this store honour, waited for at most
        ``timeout`` seconds; yields whether it is held. The default holds nothing (False at once)."""
        return _no_lock()

    def usage(self) -> tuple[int | None, int]:
        """(bytes held, evictions so far) as this process knows them without any I/O, for the
        metrics after each write; (None, 0) when the store cannot tell."""
        return None, 0


@asynccontextmanager
async def _no_lock() -> AsyncIterator[bool]:
    yield False
