"""mediasrv-zip's tests: mediasrv's conformance suite on stored and on compressed archives,
and what is particular to archives."""

from __future__ import annotations

import os
import zipfile
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from mediasrv import BackendUnavailable, ByteRange, Conditions, NotFound, StorageBackend, UpstreamError
from mediasrv.testing import BackendConformance, SampleObject, serve, started
from mediasrv_zip import ZipBackend, ZipSettings


def write_archive(path: Path, objects: Mapping[str, bytes], compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for key, data in objects.items():
            archive.writestr(zipfile.ZipInfo(key, date_time=(2024, 5, 6, 7, 8, 10)), data, compress_type=compression)
    return path


def zip_backend(archive: Path, chunk_size: int = 4096) -> ZipBackend:
    return ZipBackend("archive", ZipSettings(kind="zip", archive=archive, chunk_size=chunk_size))


class TestStoredArchive(BackendConformance):
    compression = zipfile.ZIP_STORED

    @pytest_asyncio.fixture
    async def backend(self, objects: dict[str, SampleObject], tmp_path: Path) -> AsyncIterator[StorageBackend]:
        data = {key: sample.data for key, sample in objects.items()}
        self.archive = write_archive(tmp_path / "objects.zip", data, self.compression)
        async with started(zip_backend(self.archive, self.chunk_size)) as backend:
            yield backend

    async def break_object(self, backend: StorageBackend, key: str) -> bool:
        os.truncate(self.archive, 0)  # the disk under the archive failed
        return True


class TestDeflatedArchive(TestStoredArchive):
    compression = zipfile.ZIP_DEFLATED


@pytest.mark.asyncio
async def test_member_metadata(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / "a.zip", {"photos/cat.jpg": b"jpeg bytes"})
    async with started(zip_backend(archive)) as backend:
        info = await backend.stat("photos/cat.jpg")
    assert info.size == 10
    assert info.content_type == "image/jpeg"
    assert info.last_modified is not None and info.last_modified.isoformat() == "2024-05-06T07:08:10+00:00"
    assert info.etag is not None and info.etag.startswith('"')


@pytest.mark.asyncio
async def test_folder_entry_is_not_an_object(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as writer:
        writer.mkdir("photos")
        writer.writestr("photos/cat.jpg", b"x")
    async with started(zip_backend(archive)) as backend:
        with pytest.raises(NotFound):
            await backend.stat("photos/")
        with pytest.raises(NotFound):
            await backend.stat("photos")


@pytest.mark.asyncio
async def test_replaced_archive_is_seen_and_open_stream_finishes(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / "a.zip", {"a.bin": b"old" * 5000}, zipfile.ZIP_DEFLATED)
    async with started(zip_backend(archive)) as backend:
        stream = await backend.open("a.bin", None, Conditions())
        write_archive(tmp_path / "new.zip", {"a.bin": b"new" * 10})
        os.replace(tmp_path / "new.zip", archive)
        assert (await backend.stat("a.bin")).size == 30
        body = b"".join([chunk async for chunk in stream.chunks])
    assert body == b"old" * 5000


@pytest.mark.asyncio
async def test_stored_range_reads_only_what_it_serves(tmp_path: Path) -> None:
    data = os.urandom(1 << 20)
    archive = write_archive(tmp_path / "a.zip", {"big.bin": data})
    async with started(zip_backend(archive, chunk_size=65536)) as backend:
        stream = await backend.open("big.bin", ByteRange(700_000, 700_009), Conditions())
        body = b"".join([chunk async for chunk in stream.chunks])
    assert body == data[700_000:700_010]


@pytest.mark.asyncio
async def test_corrupt_compressed_member_aborts_the_stream(tmp_path: Path) -> None:
    archive = write_archive(tmp_path / "a.zip", {"a.txt": b"hello world " * 1000}, zipfile.ZIP_DEFLATED)
    raw = bytearray(archive.read_bytes())
    raw[60:70] = b"\xff" * 10  # inside the compressed data
    archive.write_bytes(bytes(raw))
    async with started(zip_backend(archive)) as backend:
        with pytest.raises(UpstreamError):
            stream = await backend.open("a.txt", None, Conditions())
            async for _ in stream.chunks:
                pass


@pytest.mark.asyncio
async def test_missing_or_invalid_archive_is_unhealthy_and_unavailable(tmp_path: Path) -> None:
    async with started(zip_backend(tmp_path / "absent.zip")) as backend:
        health = await backend.health()
        assert not health.ok and "missing" in (health.error or "")
        with pytest.raises(BackendUnavailable):
            await backend.stat("a.txt")
    (tmp_path / "text.zip").write_text("not a zip")
    async with started(zip_backend(tmp_path / "text.zip")) as backend:
        assert not (await backend.health()).ok


def test_member_served_through_the_real_server(tmp_path: Path) -> None:
    photo = bytes(range(256)) * 100
    archive = write_archive(tmp_path / "a.zip", {"photos/cat.jpg": photo})
    with serve(zip_backend(archive)) as served:
        whole = httpx.get(served.media_url("photos/cat.jpg"), timeout=10)
        assert whole.status_code == 200 and whole.content == photo
        ranged = httpx.get(served.media_url("photos/cat.jpg"), headers={"Range": "bytes=100-199"}, timeout=10)
        assert ranged.status_code == 206 and ranged.content == photo[100:200]
        revalidated = httpx.get(served.media_url("photos/cat.jpg"), headers={"If-None-Match": whole.headers["etag"]})
        assert revalidated.status_code == 304
