"""The ``disk`` result store: bounded folders of results and of source originals on local disk,
shared by every worker process (and every server) that names the same ``[cache] path``."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import TypeVar

from pydantic import Field

from mediasrv.backend import ConfigPath
from mediasrv.cache.folder import CacheFolder, WouldBlock
from mediasrv.cache.settings import GIB, MIB
from mediasrv.cache.store import ResultKey, ResultStore, StoredResult, StoreError, StoreSettings, StoreStats
from mediasrv.hookspecs import hookimpl
from mediasrv.ranges import ByteRange

T = TypeVar("T")


class DiskSettings(StoreSettings):
    """The disk tier's keys of ``[cache]``."""

    path: ConfigPath
    max_bytes: int = Field(default=GIB, ge=MIB)
    source_max_bytes: int = Field(default=256 * MIB, ge=0)


class DiskStore(ResultStore):
    """Results in ``path/results``, originals in ``path/sources``, each bounded on its own.

    Several processes may share the folder: writes are atomic renames, recency is the
    files' mtime, eviction walks the folder under an exclusive lock, and ``exclusive`` is
    a POSIX record lock, which the kernel drops when its process dies, so a crashed worker
    never leaves a key locked. A folder that cannot be created is retried every
    ``reopen_interval`` seconds; meanwhile every call raises StoreError (and the cache renders).
    """

    kind = "disk"
    Settings = DiskSettings
    settings: DiskSettings
    reopen_interval = 10.0
    lock_poll = 0.01  # seconds between two tries of a key lock held by another process
    max_marker_bytes = 4096  # of the purge marker, before it starts again as a new file

    def __init__(self, settings: StoreSettings) -> None:
        super().__init__(settings)
        root = Path(self.settings.path)
        self.results = CacheFolder(root / "results", self.settings.max_bytes)
        self.sources = CacheFolder(root / "sources", max(self.settings.source_max_bytes, 1))
        self.lock_path = root / "locks"
        self.purges_path = root / "purges"
        self._lock_fd: int | None = None
        self._opened_at: float | None = None
        self._open_error = ""
        self._opening = threading.Lock()

    async def start(self) -> None:
        await self._run(lambda: None)  # opens the folders, or notes why not

    async def stop(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @property
    def source_cache(self) -> bool:
        """Whether originals are kept (``source_max_bytes`` > 0)."""
        return self.settings.source_max_bytes > 0

    async def get(self, key: ResultKey, byte_range: ByteRange | None = None) -> StoredResult | None:
        if self._opened_at is not None and not self._open_error:
            try:
                return self.results.read_cached(key.source, key.name)
            except WouldBlock:
                pass
        return await self._run(lambda: self.results.read(key.source, key.name))

    async def put(self, key: ResultKey, result: StoredResult) -> None:
        await self._run(lambda: self.results.write(key.source, key.name, result))

    async def purge(self, source: str) -> int:
        def remove() -> int:
            removed = self.results.remove_source(source) + self.sources.remove_source(source)
            self._mark_purge()
            return removed

        return await self._run(remove)

    def purge_marker(self) -> Hashable:
        """The purge marker file's inode, size and mtime, which every purge through this folder
        changes (None before the first); one ``stat``, cheap enough for the event loop."""
        try:
            marker = os.stat(self.purges_path)
        except OSError:
            return None
        return marker.st_ino, marker.st_size, marker.st_mtime_ns

    def _mark_purge(self) -> None:
        """Append a byte to the marker; past ``max_marker_bytes``, start a new file (a new inode)."""
        try:
            size = os.stat(self.purges_path).st_size
        except FileNotFoundError:
            size = 0
        if size < self.max_marker_bytes:
            with open(self.purges_path, "ab") as marker:
                marker.write(b".")
            return
        fresh = self.purges_path.with_name(f"purges.{os.getpid()}.tmp")
        fresh.write_bytes(b".")
        os.replace(fresh, self.purges_path)

    async def stats(self) -> StoreStats:
        scan = await self._run(self.results.scan)
        sources = await self._run(self.sources.scan)
        return StoreStats(
            scan.entries,
            scan.bytes,
            self.settings.max_bytes,
            self.results.evictions,
            {"path": str(self.settings.path), "sources": self.source_stats(sources.entries, sources.bytes)},
        )

    def source_stats(self, entries: int, size: int) -> dict[str, int]:
        return {
            "entries": entries,
            "bytes": size,
            "max_bytes": self.settings.source_max_bytes,
            "evictions": self.sources.evictions,
        }

    async def get_source(self, source: str, etag: str) -> bytes | None:
        """The original of ``source`` at version ``etag``, if kept."""
        found = await self._run(lambda: self.sources.read(source, _etag_name(etag)))
        return found.body if found is not None else None

    async def put_source(self, source: str, etag: str, body: bytes, content_type: str) -> None:
        """Keep the original of ``source`` at version ``etag`` (unless it alone would fill the folder)."""
        if len(body) > self.settings.source_max_bytes // 2:
            return
        result = StoredResult.whole(body, content_type, etag)
        await self._run(lambda: self.sources.write(source, _etag_name(etag), result))

    def usage(self) -> tuple[int | None, int]:
        return self.results.bytes, self.results.evictions

    def exclusive(self, key: ResultKey, timeout: float) -> AbstractAsyncContextManager[bool]:
        return self._record_lock(hashlib.sha256(f"{key.source}/{key.name}".encode()).digest(), timeout)

    @asynccontextmanager
    async def _record_lock(self, digest: bytes, timeout: float) -> AsyncIterator[bool]:
        # One byte of the locks file per key (48 bits of its digest as the offset): any
        # number of keys, one file, no lock files to clean up.
        fd = self._lock_fd
        offset = int.from_bytes(digest[:6], "big")
        held = fd is not None and await self._acquire(fd, offset, timeout)
        try:
            yield held
        finally:
            if held and fd is not None and self._lock_fd == fd:
                fcntl.lockf(fd, fcntl.LOCK_UN, 1, offset)

    async def _acquire(self, fd: int, offset: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
                return True
            except OSError:  # held by another process (EAGAIN or EACCES)
                if time.monotonic() >= deadline:
                    return False
                await asyncio.sleep(self.lock_poll)

    async def _run(self, call: Callable[[], T]) -> T:
        """``call`` in a worker thread, once the folders are open."""
        return await asyncio.to_thread(self._opened_then, call)

    def _opened_then(self, call: Callable[[], T]) -> T:
        if self._opened_at is None or self._open_error:
            with self._opening:
                if self._opened_at is None or time.monotonic() - self._opened_at > self.reopen_interval:
                    self._open()
        if self._open_error:
            raise StoreError(self._open_error)
        return call()

    def _open(self) -> None:
        self._opened_at = time.monotonic()
        try:
            self.results.open()
            if self.source_cache:
                self.sources.open()
            if self._lock_fd is None:
                self._lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            self._open_error = ""
        except OSError as exc:
            self._open_error = f"cannot use the cache folder {self.settings.path}: {exc.strerror or exc!r}"


def _etag_name(etag: str) -> str:
    return hashlib.sha256(etag.encode()).hexdigest()[:40]


@hookimpl
def mediasrv_register_result_stores(register: Callable[[type[ResultStore]], None]) -> None:
    register(DiskStore)
