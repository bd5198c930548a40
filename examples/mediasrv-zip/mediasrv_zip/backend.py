"""The zip backend: each member of one archive is an object, its name the key.

Stored members (how JPEG, PNG, WebP and video are usually zipped) are read straight from
their place in the archive, so a range costs a seek. Compressed members are decompressed as
they stream; a range skips by decompressing, and the member's CRC is checked when its end is
read. Blocking zipfile and file calls run in worker threads.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import struct
import threading
import zipfile
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO

from mediasrv import (
    BackendSettings,
    BackendUnavailable,
    ByteRange,
    ChunkReader,
    Conditions,
    ConfigPath,
    ContentRange,
    Health,
    NotFound,
    ObjectInfo,
    ObjectStream,
    StorageBackend,
    UpstreamError,
    acquire_in_thread,
)

LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, ..., file name length, extra field length
LOCAL_HEADER_SIGNATURE = b"PK\x03\x04"
READ_ERRORS = (OSError, zipfile.BadZipFile, zlib.error, EOFError)


class ZipSettings(BackendSettings):
    """``[backends.NAME]`` with ``kind = "zip"``."""

    archive: ConfigPath  # the .zip file; relative to the settings file's folder


@dataclass(frozen=True)
class Member:
    """A member found in the archive, with the archive that was current when it was looked up."""

    info: zipfile.ZipInfo
    archive: zipfile.ZipFile
    path: str


class ZipBackend(StorageBackend):
    """Serves the members of ``archive``. Replacing the file (atomically, by rename) is seen
    on the next request; streams already open finish reading the old one."""

    kind = "zip"
    Settings = ZipSettings
    settings: ZipSettings

    def __init__(self, name: str, settings: BackendSettings) -> None:
        super().__init__(name, settings)
        self.path = str(self.settings.archive)
        self._lock = threading.Lock()
        self._archive: zipfile.ZipFile | None = None
        self._identity: tuple[int, int, int] | None = None

    async def stop(self) -> None:
        with self._lock:
            if self._archive is not None:
                self._archive.close()  # open members keep the file open until they are closed
            self._archive, self._identity = None, None

    async def stat(self, key: str) -> ObjectInfo:
        member = await asyncio.to_thread(self._member, key)
        return _object_info(member.info)

    async def open(self, key: str, byte_range: ByteRange | None, conditions: Conditions) -> ObjectStream:
        # Not asyncio.to_thread: a request cancelled while the thread opens the member would
        # lose the opened reader, and the archive's file with it.
        return await acquire_in_thread(_close_stream, self._open_sync, key, byte_range)

    async def health(self) -> Health:
        try:
            await asyncio.to_thread(self._current)
        except BackendUnavailable as exc:
            return Health(ok=False, error=exc.detail)
        return Health(ok=True)

    def _open_sync(self, key: str, byte_range: ByteRange | None) -> ObjectStream:
        """Find the member, resolve the range and position a reader at its first byte."""
        member = self._member(key)
        info = _object_info(member.info)
        size = member.info.file_size
        content_range: ContentRange | None = byte_range.resolve(size) if byte_range is not None else None
        first = content_range.first if content_range is not None else 0
        length = content_range.length if content_range is not None else size
        try:
            source = _open_stored(member, first) if _is_stored(member.info) else _open_compressed(member, first)
        except (*READ_ERRORS, ValueError) as exc:  # ValueError: the archive was replaced and closed meanwhile
            raise UpstreamError(f"backend {self.name!r}: cannot read {key!r} from the archive ({exc})") from None
        return ObjectStream(info, MemberChunks(source, length, self.settings.chunk_size), content_range)

    def _member(self, key: str) -> Member:
        archive = self._current()
        try:
            info = archive.getinfo(key)
        except KeyError:
            raise NotFound() from None
        if info.is_dir() or info.flag_bits & 0x1:  # folders and encrypted members are not served
            raise NotFound()
        return Member(info, archive, self.path)

    def _current(self) -> zipfile.ZipFile:
        """The archive as it is on disk now, reopened when the file was replaced."""
        with self._lock:
            try:
                stat = os.stat(self.path)
                identity = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
                if self._archive is None or identity != self._identity:
                    archive = zipfile.ZipFile(self.path)
                    if self._archive is not None:
                        self._archive.close()
                    self._archive, self._identity = archive, identity
            except FileNotFoundError:
                raise BackendUnavailable(f"backend {self.name!r}: archive {self.path} is missing") from None
            except (OSError, zipfile.BadZipFile) as exc:
                raise BackendUnavailable(f"backend {self.name!r}: cannot open archive {self.path}: {exc}") from None
            return self._archive


class MemberChunks(ChunkReader):
    """``remaining`` bytes from ``source``, ``chunk_size`` per read, each read in a worker thread."""

    def __init__(self, source: IO[bytes], remaining: int, chunk_size: int) -> None:
        self.source = source
        self.remaining = remaining
        self.chunk_size = chunk_size

    async def read(self) -> bytes:
        if self.remaining <= 0:
            return b""
        try:
            chunk = await asyncio.to_thread(self.source.read, min(self.chunk_size, self.remaining))
        except READ_ERRORS as exc:  # a corrupt member or a failing disk: abort the response
            raise UpstreamError(f"archive member unreadable: {exc}") from None
        if not chunk:
            raise UpstreamError("archive member ended early")
        self.remaining -= len(chunk)
        return chunk

    async def release(self) -> None:
        await asyncio.to_thread(self.source.close)


def _close_stream(stream: ObjectStream) -> None:
    """Close an opened member that no request took (its opener was cancelled)."""
    if isinstance(stream.chunks, MemberChunks):
        stream.chunks.source.close()


def _is_stored(info: zipfile.ZipInfo) -> bool:
    return info.compress_type == zipfile.ZIP_STORED


def _open_stored(member: Member, first: int) -> IO[bytes]:
    """The archive file itself, positioned at byte ``first`` of a stored member's data."""
    source = open(member.path, "rb")  # noqa: SIM115 -- closed by MemberChunks.release
    try:
        source.seek(member.info.header_offset)
        signature, name_length, extra_length = LOCAL_HEADER.unpack(source.read(LOCAL_HEADER.size))
        if signature != LOCAL_HEADER_SIGNATURE:
            raise zipfile.BadZipFile("bad local file header")
        source.seek(member.info.header_offset + LOCAL_HEADER.size + name_length + extra_length + first)
    except BaseException:
        source.close()
        raise
    return source


def _open_compressed(member: Member, first: int) -> IO[bytes]:
    """The decompressed member, positioned at byte ``first`` (by decompressing up to it)."""
    source = member.archive.open(member.info)
    try:
        source.seek(first)
    except BaseException:
        source.close()
        raise
    return source


def _object_info(info: zipfile.ZipInfo) -> ObjectInfo:
    return ObjectInfo(
        size=info.file_size,
        content_type=mimetypes.guess_type(info.filename)[0],
        etag=f'"{info.CRC:08x}-{info.file_size:x}-{info.compress_type}"',
        last_modified=_last_modified(info.date_time),
    )


def _last_modified(date_time: tuple[int, int, int, int, int, int]) -> datetime | None:
    """A member's timestamp. Zip stores local time without a zone; it is taken as UTC."""
    try:
        return datetime(*date_time, tzinfo=UTC)
    except ValueError:  # some archivers write 1980-00-00
        return None
