"""The guide's SQL example: objects are rows of one SQLite table, streamed blob by blob.

A single-module plugin: name it in settings (``plugins = ["mediasrv_sqlite"]``, the file beside
the settings file) or package it as docs/writing-a-backend.md shows. The same shape serves any
SQL database whose driver can read a blob in pieces (PostgreSQL large objects, MySQL
``SUBSTRING``): a bounded pool of connections, one query per open, chunks read as they go.

    CREATE TABLE objects (key TEXT PRIMARY KEY, data BLOB NOT NULL, content_type TEXT,
                          modified REAL NOT NULL)  -- Unix seconds
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from pydantic import Field, field_validator

from mediasrv import (
    BackendSettings,
    BackendUnavailable,
    ByteRange,
    ChunkReader,
    Conditions,
    ConfigPath,
    ConnectionLimiter,
    Health,
    NotFound,
    ObjectInfo,
    ObjectStream,
    Slot,
    StorageBackend,
    UpstreamError,
    acquire_shielded,
    hookimpl,
)


class SqliteSettings(BackendSettings):
    """``[backends.NAME]`` with ``kind = "sqlite"``."""

    database: ConfigPath  # the database file, opened read-only
    table: str = "objects"
    connections: int = Field(default=4, ge=1, le=64, description="pooled connections, one per stream")
    wait: float = Field(default=5, gt=0, description="seconds a request waits for a free connection")

    @field_validator("table")
    @classmethod
    def _identifier(cls, table: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", table):
            raise ValueError("must be a plain SQL identifier")  # it is written into the queries
        return table


class ConnectionPool:
    """Read-only connections to one database, each lent to one request at a time.

    ``ConnectionLimiter`` bounds the wait for a free one (503 after ``wait`` seconds, never a
    hang); the connections themselves are opened on first use and kept for the backend's life.
    """

    def __init__(self, database: str, size: int, wait: float, busy_detail: str) -> None:
        self.uri = f"{Path(database).absolute().as_uri()}?mode=ro"
        self.limiter = ConnectionLimiter(size, wait, busy_detail)
        self.idle: list[sqlite3.Connection] = []
        self.closed = False

    async def lend(self) -> Lease:
        """A connection and the slot it holds; give both back with ``Lease.give_back``."""
        slot = await self.limiter.acquire()
        try:
            connection = self.idle.pop() if self.idle else await asyncio.to_thread(self._connect)
        except BaseException:
            slot.release()
            raise
        return Lease(self, connection, slot)

    def _connect(self) -> sqlite3.Connection:
        try:
            # check_same_thread=False: a connection moves between worker threads, never shared.
            return sqlite3.connect(self.uri, uri=True, check_same_thread=False)
        except sqlite3.Error as exc:
            raise BackendUnavailable(f"cannot open the database: {exc}") from None

    def close(self) -> None:
        """Close the idle connections; lent ones are closed when given back."""
        self.closed = True
        while self.idle:
            self.idle.pop().close()


class Lease:
    """One lent connection. ``give_back`` is idempotent, so every exit path may call it."""

    def __init__(self, pool: ConnectionPool, connection: sqlite3.Connection, slot: Slot) -> None:
        self.pool = pool
        self.connection: sqlite3.Connection | None = connection
        self.slot = slot

    def give_back(self, broken: bool = False) -> None:
        connection, self.connection = self.connection, None
        if connection is None:
            return
        if broken or self.pool.closed:
            connection.close()
        else:
            self.pool.idle.append(connection)
        self.slot.release()


class SqliteBackend(StorageBackend):
    """Serves the rows of ``table``: the key is the row's ``key``, the body its ``data``."""

    kind = "sqlite"
    Settings = SqliteSettings
    settings: SqliteSettings

    def __init__(self, name: str, settings: BackendSettings) -> None:
        super().__init__(name, settings)
        busy = f"backend {name!r}: all {self.settings.connections} database connections are busy"
        self.pool = ConnectionPool(str(self.settings.database), self.settings.connections, self.settings.wait, busy)
        self.query = f"SELECT rowid, length(data), content_type, modified FROM {self.settings.table} WHERE key = ?"

    async def stop(self) -> None:
        self.pool.close()  # streams still open close their connection as they end

    async def stat(self, key: str) -> ObjectInfo:
        # Shielded like open(): a cancelled HEAD lets its query finish, so that the connection
        # goes back to the pool only once no worker thread is using it.
        return await acquire_shielded(_nothing, self._stat(key))

    async def _stat(self, key: str) -> ObjectInfo:
        lease = await self.pool.lend()
        try:
            row = await asyncio.to_thread(self._row, lease, key)
        finally:
            lease.give_back()
        return row.info

    async def open(self, key: str, byte_range: ByteRange | None, conditions: Conditions) -> ObjectStream:
        # Lending a connection, the query and the blob handle run to the end even if this
        # request is cancelled meanwhile (the client left): then they are closed, not lost.
        stream = await acquire_shielded(_close_stream, self._open(key))
        chunks, size = stream.chunks, stream.info.size
        assert isinstance(chunks, BlobChunks) and size is not None
        try:
            if byte_range is not None:
                stream.content_range = byte_range.resolve(size)  # RangeNotSatisfiable past the end
                chunks.skip_to(stream.content_range.first, stream.content_range.length)
        except BaseException:
            await chunks.aclose()
            raise
        return stream

    async def _open(self, key: str) -> ObjectStream:
        """The whole object, opened: a lent connection, the row's metadata and its blob handle."""
        lease = await self.pool.lend()
        try:
            row, blob = await asyncio.to_thread(self._open_blob, lease, key)
        except BaseException:
            lease.give_back()
            raise
        assert row.info.size is not None
        return ObjectStream(row.info, BlobChunks(blob, lease, 0, row.info.size, self.settings.chunk_size), None)

    async def health(self) -> Health:
        return await acquire_shielded(_nothing, self._health())

    async def _health(self) -> Health:
        try:
            lease = await self.pool.lend()
        except BackendUnavailable as exc:
            return Health(ok=False, error=exc.detail)
        try:
            await asyncio.to_thread(_execute, lease, f"SELECT 1 FROM {self.settings.table} LIMIT 1", ())
        except UpstreamError as exc:
            return Health(ok=False, error=exc.detail)
        finally:
            lease.give_back()
        return Health(ok=True)

    def _row(self, lease: Lease, key: str) -> Row:
        found = _execute(lease, self.query, (key,)).fetchone()
        if found is None:
            raise NotFound()
        rowid, size, content_type, modified = found
        etag = f'"{rowid:x}-{size:x}-{int(modified * 1000):x}"'
        return Row(rowid, ObjectInfo(size=size, content_type=content_type, etag=etag, last_modified=_utc(modified)))

    def _open_blob(self, lease: Lease, key: str) -> tuple[Row, sqlite3.Blob]:
        row = self._row(lease, key)
        assert lease.connection is not None
        try:
            return row, lease.connection.blobopen(self.settings.table, "data", row.rowid, readonly=True)
        except sqlite3.Error as exc:
            raise UpstreamError(f"cannot read {key!r}: {exc}") from None


class Row:
    """A row found by ``key``: its rowid (for the blob handle) and the object's metadata."""

    def __init__(self, rowid: int, info: ObjectInfo) -> None:
        self.rowid = rowid
        self.info = info


class BlobChunks(ChunkReader):
    """``length`` bytes of a blob from ``first``, a chunk per worker-thread read; the
    connection goes back to the pool when the body ends, fails or is abandoned."""

    def __init__(self, blob: sqlite3.Blob, lease: Lease, first: int, length: int, chunk_size: int) -> None:
        self.blob = blob
        self.lease = lease
        self.offset = first
        self.remaining = length
        self.chunk_size = chunk_size
        self.failed = False

    def skip_to(self, first: int, length: int) -> None:
        """Serve ``length`` bytes from ``first`` instead: a range costs a seek."""
        self.offset, self.remaining = first, length

    async def read(self) -> bytes:
        if self.remaining <= 0:
            return b""
        try:
            chunk = await asyncio.to_thread(self._read, min(self.chunk_size, self.remaining))
        except sqlite3.Error as exc:  # the row changed or went away under the stream: abort it
            self.failed = True
            raise UpstreamError(f"blob unreadable: {exc}") from None
        if not chunk:
            raise UpstreamError("blob ended early")
        self.offset += len(chunk)
        self.remaining -= len(chunk)
        return chunk

    def _read(self, size: int) -> bytes:
        self.blob.seek(self.offset)
        return self.blob.read(size)

    async def release(self) -> None:
        # Runs on the event loop, not in a thread: closing a blob handle does no I/O, and a
        # release that awaited could itself be cancelled half-way (see the guide, section 5).
        self.blob.close()
        self.lease.give_back(broken=self.failed)


def _execute(lease: Lease, query: str, parameters: tuple[object, ...]) -> sqlite3.Cursor:
    assert lease.connection is not None
    try:
        return lease.connection.execute(query, parameters)
    except sqlite3.Error as exc:
        raise UpstreamError(f"query failed: {exc}") from None


def _nothing(result: object) -> None:
    """Nothing to release: the call holds its connection only while it runs."""


def _close_stream(stream: ObjectStream) -> None:
    """Close what ``open`` acquired for a request that was cancelled before taking it."""
    assert isinstance(stream.chunks, BlobChunks)
    stream.chunks.blob.close()
    stream.chunks.lease.give_back()


def _utc(modified: float | None) -> datetime | None:
    return datetime.fromtimestamp(modified, tz=UTC) if modified is not None else None


@hookimpl
def mediasrv_register_backends(register: Callable[[type[StorageBackend]], None]) -> None:
    register(SqliteBackend)
