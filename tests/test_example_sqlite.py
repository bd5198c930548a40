"""The guide's SQL example, examples/sqlite/mediasrv_sqlite.py: the conformance suite on a real
SQLite database (a failing source: the row deleted under an open stream), its pool's bounded
wait, and requests through the real server."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from conftest import PROJECT_DIR
from mediasrv import BackendUnavailable, Conditions, StorageBackend
from mediasrv.testing import BackendConformance, SampleObject, serve, started

SCHEMA = "CREATE TABLE objects (key TEXT PRIMARY KEY, data BLOB NOT NULL, content_type TEXT, modified REAL NOT NULL)"


@pytest.fixture(autouse=True)
def sqlite_module(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.syspath_prepend(str(PROJECT_DIR / "examples" / "sqlite"))
    yield


def write_database(path: Path, objects: Mapping[str, SampleObject]) -> Path:
    with sqlite3.connect(path) as connection:
        connection.execute(SCHEMA)
        connection.executemany(
            "INSERT INTO objects VALUES (?, ?, ?, ?)",
            [(key, sample.data, sample.content_type, 1714979290.5) for key, sample in objects.items()],
        )
    connection.close()
    return path


def sqlite_backend(database: Path, chunk_size: int = 4096, connections: int = 2, wait: float = 5) -> StorageBackend:
    from mediasrv_sqlite import SqliteBackend, SqliteSettings

    settings = SqliteSettings(kind="sqlite", database=database, chunk_size=chunk_size, connections=connections, wait=wait)
    return SqliteBackend("db", settings)


class TestSqliteConformance(BackendConformance):
    @pytest_asyncio.fixture
    async def backend(self, objects: dict[str, SampleObject], tmp_path: Path) -> AsyncIterator[StorageBackend]:
        self.database = write_database(tmp_path / "objects.db", objects)
        async with started(sqlite_backend(self.database, self.chunk_size)) as backend:
            yield backend

    async def break_object(self, backend: StorageBackend, key: str) -> bool:
        os.truncate(self.database, 4096)  # the disk under the database failed
        return True


@pytest.mark.asyncio
async def test_pool_waits_then_answers_503_and_lends_again(tmp_path: Path) -> None:
    database = write_database(tmp_path / "a.db", {"a.bin": SampleObject(b"x" * 10000)})
    async with started(sqlite_backend(database, connections=1, wait=0.2)) as backend:
        held = await backend.open("a.bin", None, Conditions())
        started_at = time.monotonic()
        with pytest.raises(BackendUnavailable, match="all 1 database connections are busy"):
            await backend.stat("a.bin")
        assert time.monotonic() - started_at >= 0.2
        assert not (await backend.health()).ok  # no connection free: it says so rather than hanging
        await held.chunks.aclose()  # type: ignore[attr-defined]
        assert (await backend.stat("a.bin")).size == 10000


def test_sqlite_backend_through_the_real_server(tmp_path: Path) -> None:
    data = bytes(range(256)) * 100
    database = write_database(tmp_path / "a.db", {"photos/cat.jpg": SampleObject(data, "image/jpeg")})
    with serve(sqlite_backend(database)) as served:
        whole = httpx.get(served.media_url("photos/cat.jpg"), timeout=10)
        assert whole.status_code == 200 and whole.content == data
        assert whole.headers["content-type"] == "image/jpeg"
        assert whole.headers["last-modified"] == "Mon, 06 May 2024 07:08:10 GMT"
        ranged = httpx.get(served.media_url("photos/cat.jpg"), headers={"Range": "bytes=-10"}, timeout=10)
        assert ranged.status_code == 206 and ranged.content == data[-10:]
        cached = httpx.get(served.media_url("photos/cat.jpg"), headers={"If-None-Match": whole.headers["etag"]})
        assert cached.status_code == 304
        assert httpx.get(served.media_url("photos/dog.jpg"), timeout=10).status_code == 404
