"""The StorageBackend interface that every backend plugin implements."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Hashable
from pathlib import Path
from typing import Annotated, ClassVar, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo

from mediasrv.errors import BackendUnavailable, MediaError, PluginFailure, UpstreamTimeout
from mediasrv.objects import Conditions, Health, ObjectInfo, ObjectStream
from mediasrv.ranges import ByteRange

logger = logging.getLogger("mediasrv")

def _resolve_config_path(path: Path, info: ValidationInfo) -> Path:
    config_dir = (info.context or {}).get("config_dir")
    path = path.expanduser()
    if not path.is_absolute() and config_dir is not None:
        path = Path(config_dir) / path
    return path


T = TypeVar("T")

ConfigPath = Annotated[Path, AfterValidator(_resolve_config_path)]
"""A path setting; a relative one resolves against the settings file's folder."""


class BackendSettings(BaseModel):
    """Settings every backend has; a backend's own ``Settings`` subclasses this.

    Unknown keys are errors, so a typo in settings.toml stops start-up.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    access: Literal["public", "signed"] = Field(
        default="public", description="signed: every GET/HEAD needs a valid signed URL ([signing] keys)"
    )
    cache_control: str = Field(default="", description="Cache-Control sent with objects; empty: none")
    chunk_size: int = Field(default=1024 * 1024, ge=4096, le=64 * 1024 * 1024, description="bytes per chunk read")


class StorageBackend(ABC):
    """One configured source of objects, such as a bucket, an upstream or a folder.

    A subclass sets ``kind`` (the ``kind = "..."`` of its settings tables) and ``Settings``,
    and implements ``stat``, ``open`` and ``health``. One instance is made per
    ``[backends.NAME]`` table. The request path calls these methods directly; pooled
    clients are made in ``start`` and closed in ``stop``, never per request.
    """

    kind: ClassVar[str]
    Settings: ClassVar[type[BackendSettings]] = BackendSettings

    def __init__(self, name: str, settings: BackendSettings) -> None:
        self.name = name
        self.settings = settings

    async def start(self) -> None:
        """Create pooled clients. Must not fail because the source is unreachable."""

    async def stop(self) -> None:
        """Close what ``start`` created."""

    def started(self, resource: T | None) -> T:
        """``resource`` (a client or session that ``start`` made, None before it and after
        ``stop``); BackendUnavailable (503) when there is none, so a request that arrives
        outside the backend's lifetime gets an answer, not an AttributeError."""
        if resource is None:
            raise BackendUnavailable(f"backend {self.name!r} is not started")
        return resource

    @abstractmethod
    async def stat(self, key: str) -> ObjectInfo:
        """Metadata of ``key`` without reading its body (for HEAD).

        Raises NotFound, InvalidKey, UpstreamError, BackendUnavailable or UpstreamTimeout.
        """

    @abstractmethod
    async def open(self, key: str, byte_range: ByteRange | None, conditions: Conditions) -> ObjectStream:
        """Open ``key`` in one round trip to the source: metadata, the range served, and chunks.

        ``byte_range`` None means the whole object. When a range is asked and the object
        is shorter, raise ``RangeNotSatisfiable(size)``; a backend that cannot read a range
        may return the whole object (``content_range=None``) and the core cuts it.
        ``conditions`` may be forwarded to the source (raise NotModified or
        PreconditionFailed on its answer); the core evaluates them against the metadata
        anyway. Raise errors before returning: once returned, the response has started.
        """

    def fingerprint(self, key: str) -> Hashable | None:
        """A token of the version of ``key`` now, that changes whenever its bytes may have
        changed; None when the backend can't tell without a round trip (the default) or
        can't vouch for it yet. Called on the event loop, so it must not block: it lets the
        core keep small objects in memory and check them on every request.
        """
        return None

    @abstractmethod
    async def health(self) -> Health:
        """Whether the source answers and the credentials work; cheap, no object read."""


async def guarded(backend: StorageBackend, call: Awaitable[T]) -> T:
    """Await a backend call; a library error that escaped the plugin becomes 502/504, logged."""
    try:
        return await call
    except MediaError:
        raise
    except TimeoutError:
        raise UpstreamTimeout(f"backend {backend.name!r} timed out") from None
    except Exception:
        logger.exception("backend %r (%s) raised an unmapped error (plugin_error)", backend.name, backend.kind)
        raise PluginFailure(f"backend {backend.name!r} failed") from None
