"""The disk result store on a real folder: atomic writes, checked reads, LRU eviction, the
index rebuilt at start-up, the source cache, purge, and the lock shared between processes."""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import PROJECT_DIR
from mediasrv.cache import ResultKey, StoredResult, StoreError
from mediasrv.cache.disk import DiskSettings, DiskStore
from mediasrv.cache.folder import WouldBlock

MIB = 1024 * 1024


def disk_store(path: Path, **extra: object) -> DiskStore:
    return DiskStore(DiskSettings.model_validate({"path": path, **extra}))


def result(body: bytes, etag: str = '"v1"') -> StoredResult:
    return StoredResult.whole(body, "image/webp", etag, {"format": "webp", "width": "400"})


def key(variant: str = '"v1"', source: str = "photos/a.jpg") -> ResultKey:
    backend, _, name = source.partition("/")
    return ResultKey.of(backend, name, variant)


def stored_files(root: Path) -> list[Path]:
    return [path for path in (root / "results").rglob("*") if path.is_file() and ".tmp" not in path.parts]


@pytest.mark.asyncio
async def test_disk_store_gives_back_what_was_put(tmp_path: Path) -> None:
    store = disk_store(tmp_path)
    await store.start()
    body = os.urandom(30_000)
    await store.put(key(), result(body))
    found = await store.get(key())
    assert found is not None
    assert (found.body, found.content_type, found.etag, found.size) == (body, "image/webp", '"v1"', len(body))
    assert found.metadata == {"format": "webp", "width": "400"}
    assert await store.get(key('"other"')) is None
    assert not list((tmp_path / "results" / ".tmp").iterdir())  # nothing left half-written
    await store.stop()


@pytest.mark.asyncio
async def test_disk_store_keeps_its_index_across_a_restart(tmp_path: Path) -> None:
    first = disk_store(tmp_path)
    await first.start()
    for index in range(3):
        await first.put(key(f'"v{index}"'), result(b"x" * 1000))
    await first.stop()
    second = disk_store(tmp_path)
    await second.start()
    stats = await second.stats()
    assert (stats.entries, second.results.bytes) == (3, stats.bytes)
    assert stats.bytes is not None and stats.bytes > 3000
    assert (await second.get(key('"v2"'))) is not None
    await second.stop()


@pytest.mark.asyncio
async def test_disk_store_evicts_the_least_recently_used_first(tmp_path: Path) -> None:
    store = disk_store(tmp_path, max_bytes=MIB)
    await store.start()
    size = 200 * 1024
    for index in range(5):  # 5 x 200 KiB: just under 1 MiB, v0 the oldest, last used minutes ago
        await store.put(key(f'"v{index}"'), result(os.urandom(size)))
        used = time.time() - 600 + index * 60
        os.utime(store.results.path(key().source, key(f'"v{index}"').name), (used, used))
    assert await store.get(key('"v0"')) is not None  # v0 used again: v1 is now the oldest
    await store.put(key('"v5"'), result(os.urandom(size)))
    assert await store.get(key('"v1"')) is None
    for kept in ('"v0"', '"v3"', '"v4"', '"v5"'):
        assert await store.get(key(kept)) is not None, kept
    stats = await store.stats()
    assert stats.bytes is not None and stats.bytes <= MIB * 0.9
    assert stats.evictions >= 1
    await store.stop()


@pytest.mark.asyncio
@pytest.mark.parametrize("damage", ["flip", "truncate", "empty", "garbage"])
async def test_disk_store_drops_a_corrupt_file_instead_of_serving_it(tmp_path: Path, damage: str) -> None:
    store = disk_store(tmp_path)
    await store.start()
    await store.put(key(), result(os.urandom(10_000)))
    [path] = stored_files(tmp_path)
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[-100] ^= 0x01
    elif damage == "truncate":
        data = data[:-1]
    elif damage == "empty":
        data = bytearray()
    else:
        data = bytearray(b"not a cache file at all")
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="corrupt"):
        await store.get(key())
    assert not path.exists()
    assert await store.get(key()) is None
    await store.stop()


@pytest.mark.asyncio
async def test_disk_store_removes_a_crashed_writers_temporary_file(tmp_path: Path) -> None:
    temporary = tmp_path / "results" / ".tmp" / "deadbeef"
    temporary.parent.mkdir(parents=True)
    temporary.write_bytes(b"half a result")
    old = time.time() - 2 * 3600
    os.utime(temporary, (old, old))
    store = disk_store(tmp_path)
    await store.start()
    assert not temporary.exists()
    assert (await store.stats()).entries == 0
    await store.stop()


@pytest.mark.asyncio
async def test_disk_store_in_an_unusable_folder_raises_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("a file, not a folder")
    store = disk_store(tmp_path / "file" / "cache")
    with pytest.raises(StoreError, match="cannot use the cache folder"):
        await store.start()  # the cache logs it; the server starts
    with pytest.raises(StoreError, match="cannot use the cache folder"):
        await store.get(key())
    with pytest.raises(StoreError, match="cannot use the cache folder"):
        await store.put(key(), result(b"x"))
    await store.stop()


@pytest.mark.asyncio
async def test_disk_store_on_a_full_disk_raises_store_error_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = disk_store(tmp_path)
    await store.start()

    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)  # a full disk can't be had on cue
    with pytest.raises(StoreError, match="the disk is full"):
        await store.put(key(), result(b"x" * 1000))
    monkeypatch.undo()
    assert stored_files(tmp_path) == []
    assert not list((tmp_path / "results" / ".tmp").iterdir())
    assert await store.get(key()) is None
    await store.stop()


@pytest.mark.asyncio
async def test_disk_store_purge_drops_every_variant_of_one_source_only(tmp_path: Path) -> None:
    store = disk_store(tmp_path)
    await store.start()
    for variant in ('"a"', '"b"', '"c"'):
        await store.put(key(variant), result(b"x"))
    await store.put(key('"a"', "photos/other.jpg"), result(b"y"))
    await store.put_source(key().source, '"src"', b"original", "image/jpeg")
    assert await store.purge(key().source) == 4  # three variants and the kept original
    assert await store.get(key('"a"')) is None
    assert await store.get_source(key().source, '"src"') is None
    assert await store.get(key('"a"', "photos/other.jpg")) is not None
    assert await store.purge(key().source) == 0
    await store.stop()


@pytest.mark.asyncio
async def test_disk_store_keeps_originals_by_their_etag(tmp_path: Path) -> None:
    store = disk_store(tmp_path, source_max_bytes=4 * MIB)
    await store.start()
    original = os.urandom(100_000)
    await store.put_source("s" * 64, '"etag-1"', original, "image/jpeg")
    assert await store.get_source("s" * 64, '"etag-1"') == original
    assert await store.get_source("s" * 64, '"etag-2"') is None  # the source changed: not this one
    await store.put_source("t" * 64, '"big"', os.urandom(3 * MIB), "image/jpeg")  # over half the bound
    assert await store.get_source("t" * 64, '"big"') is None
    await store.stop()


LOCK_SCRIPT = """
import asyncio, sys, time
from mediasrv.cache import ResultKey
from mediasrv.cache.disk import DiskSettings, DiskStore
from mediasrv.cache.folder import WouldBlock

async def main() -> None:
    store = DiskStore(DiskSettings(path=sys.argv[1]))
    await store.start()
    started = time.monotonic()
    async with store.exclusive(ResultKey.of("photos", "a.jpg", '"v1"'), float(sys.argv[2])) as held:
        print(held, round(time.monotonic() - started, 2), flush=True)
    await store.stop()

asyncio.run(main())
"""


def lock_in_another_process(path: Path, timeout: float) -> tuple[bool, float]:
    output = subprocess.run(
        [sys.executable, "-c", LOCK_SCRIPT, str(path), str(timeout)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=PROJECT_DIR,
        check=True,
    ).stdout.split()
    return output[0] == "True", float(output[1])


@pytest.mark.asyncio
async def test_disk_store_lock_is_honoured_by_another_process(tmp_path: Path) -> None:
    store = disk_store(tmp_path)
    await store.start()
    async with store.exclusive(key(), 5) as held:
        assert held
        other = await asyncio.to_thread(lock_in_another_process, tmp_path, 0.3)
        assert other[0] is False and other[1] >= 0.3  # waited, then gave up
        async with store.exclusive(key('"another variant"'), 1) as unrelated:
            assert unrelated
    free = await asyncio.to_thread(lock_in_another_process, tmp_path, 5)
    assert free[0] is True and free[1] < 1
    await store.stop()


@pytest.mark.asyncio
async def test_disk_store_reads_small_cached_files_without_a_thread_and_the_rest_with_one(tmp_path: Path) -> None:
    store = disk_store(tmp_path)
    await store.start()
    small, large = os.urandom(20_000), os.urandom(300 * 1024)
    await store.put(key('"small"'), result(small))
    await store.put(key('"large"'), result(large))
    found = store.results.read_cached(key().source, key('"small"').name)  # on the loop, no await
    assert found is not None and found.body == small
    with pytest.raises(WouldBlock):
        store.results.read_cached(key().source, key('"large"').name)
    assert (await store.get(key('"large"'))).body == large  # type: ignore[union-attr]
    store.results.nowait = False  # a file system without RWF_NOWAIT
    assert (await store.get(key('"small"'))).body == small  # type: ignore[union-attr]
    await store.stop()
