"""The local disk backend: files under ``root``, read in aiofiles' thread pool."""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import UTC, datetime

import aiofiles.os

from mediasrv import (
    BackendSettings,
    BackendUnavailable,
    ByteRange,
    ChunkReader,
    Conditions,
    ConfigPath,
    ContentRange,
    Health,
    InvalidKey,
    NotFound,
    ObjectInfo,
    ObjectStream,
    StorageBackend,
    UpstreamError,
    acquire_in_thread,
    check_preconditions,
    range_applies,
)

_FILE_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW
_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC

_close = aiofiles.os.wrap(os.close)


class LocalSettings(BackendSettings):
    """``[backends.NAME]`` with ``kind = "local"``."""

    root: ConfigPath


@dataclass
class OpenedFile:
    """What ``open`` learns in its one trip to a worker thread."""

    info: ObjectInfo
    content_range: ContentRange | None
    fd: int | None  # None once the whole body is in ``first_chunk`` and the file is closed
    first_chunk: bytes
    next_offset: int
    remaining: int
    identity: tuple[int, int]  # size and mtime_ns when opened: a change means mixed versions

    def close(self) -> None:
        """Close the file, when its opener was cancelled before taking it."""
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)


class LocalBackend(StorageBackend):
    """Serves regular files strictly inside ``root``.

    Keys that resolve outside the root (through ``..`` or a symlink), hidden files
    (a segment starting with ".") and anything but regular files are not found.
    Opening a file, checking the request's conditions and reading its first chunk take one
    thread hop, so a small file costs one hop in all; each further chunk costs one more.
    """

    kind = "local"
    Settings = LocalSettings
    settings: LocalSettings
    settle_seconds = 2.0  # the coarsest file timestamps (FAT) have 2 s; ext4, xfs, tmpfs a few ms

    def __init__(self, name: str, settings: BackendSettings) -> None:
        super().__init__(name, settings)
        self.root = os.path.realpath(self.settings.root)
        self._stat_file = aiofiles.os.wrap(self._stat_sync)

    async def stat(self, key: str) -> ObjectInfo:
        return _object_info(await self._stat_file(key))

    async def open(self, key: str, byte_range: ByteRange | None, conditions: Conditions) -> ObjectStream:
        opened = await acquire_in_thread(OpenedFile.close, self._open_sync, key, byte_range, conditions)
        return ObjectStream(opened.info, FileChunks(opened, self.settings.chunk_size), opened.content_range)

    def fingerprint(self, key: str) -> Hashable | None:
        """The file's device, inode, size, mtime and ctime: any write, replacement, chmod or
        deletion changes them. None for a file changed in the last ``settle_seconds``: a
        timestamp has a filesystem's granularity (up to 2 s), so a second write within the
        same tick could keep all five the same.

        One stat of a file just served (its inode cached): cheap enough for the event loop.
        Following symlinks is safe: ``open`` confined the path when the entry was made, and
        a link changed since then leads to another inode.
        """
        try:
            result = os.stat(self.root + os.sep + key)  # the key is checked (validate_key): no "..", no "/" first
        except (OSError, ValueError):
            return None
        if time.time() - max(result.st_mtime, result.st_ctime) < self.settle_seconds:
            return None
        return result.st_dev, result.st_ino, result.st_size, result.st_mtime_ns, result.st_ctime_ns

    async def health(self) -> Health:
        readable = await aiofiles.os.access(self.root, os.R_OK | os.X_OK)
        if readable and await aiofiles.os.path.isdir(self.root):
            return Health(ok=True)
        return Health(ok=False, error=f"root {self.root} is not a readable folder")

    def _open_sync(self, key: str, byte_range: ByteRange | None, conditions: Conditions) -> OpenedFile:
        """Open, check conditions and range, read the first chunk; runs in a worker thread."""
        fd = self._open_fd(key)
        try:
            status = os.fstat(fd)
            info = _object_info(status)
            check_preconditions(conditions, info)
            content_range = None
            if byte_range is not None and range_applies(conditions, info):
                assert info.size is not None
                content_range = byte_range.resolve(info.size)
            offset = content_range.first if content_range is not None else 0
            length = content_range.length if content_range is not None else info.size
            assert length is not None
            first_chunk = os.pread(fd, min(self.settings.chunk_size, length), offset) if length else b""
        except BaseException:
            os.close(fd)
            raise
        remaining = length - len(first_chunk)
        if remaining == 0:
            os.close(fd)
        return OpenedFile(
            info,
            content_range,
            fd if remaining else None,
            first_chunk,
            offset + len(first_chunk),
            remaining,
            _identity(status),
        )

    def _open_fd(self, key: str) -> int:
        """A read-only descriptor of the regular file ``key`` names inside the root.

        O_NONBLOCK so that opening a FIFO cannot hang the worker thread.
        """
        if "\x00" in key:  # the core refuses it already; os calls would raise ValueError
            raise InvalidKey("NUL in key")
        if any(segment.startswith(".") for segment in key.split("/")):
            raise NotFound()
        try:
            fd = self._open_beneath(key)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise self._error(exc) from None
            fd = self._open_resolved(key)  # a symlink on the way: it must stay inside the root
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise NotFound()
        return fd

    def _open_beneath(self, key: str) -> int:
        """Open ``key`` one segment at a time from the root, following no symlink (ELOOP or
        ENOTDIR where there is one): confined without a realpath, which costs more than the
        read of a small file."""
        *folders, name = key.split("/")
        if not folders:
            return os.open(os.path.join(self.root, name), _FILE_FLAGS)
        folder_fd = os.open(self.root, _FOLDER_FLAGS)
        try:
            for folder in folders:
                parent_fd, folder_fd = folder_fd, -1
                try:
                    folder_fd = os.open(folder, _FOLDER_FLAGS | os.O_NOFOLLOW, dir_fd=parent_fd)
                finally:
                    os.close(parent_fd)
            return os.open(name, _FILE_FLAGS, dir_fd=folder_fd)
        finally:
            if folder_fd != -1:
                os.close(folder_fd)

    def _open_resolved(self, key: str) -> int:
        path = os.path.realpath(os.path.join(self.root, key))
        if not path.startswith(self.root + os.sep):
            raise NotFound()  # Don't let a symlink take a request outside the root.
        try:
            return os.open(path, _FILE_FLAGS & ~os.O_NOFOLLOW)
        except OSError as exc:
            raise self._error(exc) from None

    def _stat_sync(self, key: str) -> os.stat_result:
        fd = self._open_fd(key)
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)

    def _error(self, exc: OSError) -> Exception:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.EACCES, errno.EPERM, errno.ENAMETOOLONG, errno.ELOOP):
            if not os.path.isdir(self.root):
                return BackendUnavailable(f"backend {self.name!r}: root folder is missing")
            return NotFound()
        return UpstreamError(f"backend {self.name!r}: read failed ({errno.errorcode.get(exc.errno or 0, 'error')})")


class FileChunks(ChunkReader):
    """The chunks of an opened file: the first one already read, then ``chunk_size`` per read."""

    def __init__(self, opened: OpenedFile, chunk_size: int) -> None:
        self.fd = opened.fd
        self.identity = opened.identity
        self.pending = opened.first_chunk
        self.offset = opened.next_offset
        self.remaining = opened.remaining
        self.chunk_size = chunk_size

    async def read(self) -> bytes:
        if self.pending:
            first, self.pending = self.pending, b""
            return first
        if self.remaining <= 0 or self.fd is None:
            return b""
        size = min(self.chunk_size, self.remaining)
        last = size == self.remaining
        chunk: bytes = await _read_chunk(self.fd, size, self.offset, self.identity if last else None)
        if not chunk:
            raise UpstreamError("file shrank while being read")
        self.offset += len(chunk)
        self.remaining -= len(chunk)
        return chunk

    async def release(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            await _close(fd)


def _read_chunk_sync(fd: int, size: int, offset: int, identity: tuple[int, int] | None) -> bytes:
    """``size`` bytes at ``offset``; for the last chunk (``identity`` given) the file must still
    be the one opened, checked before that chunk goes out, so a file overwritten while served
    gives the client a truncated transfer, not a clean 200 mixing two versions under one ETag."""
    chunk = os.pread(fd, size, offset)
    if identity is not None and _identity(os.fstat(fd)) != identity:
        raise UpstreamError("file changed while being read")
    return chunk


_read_chunk = aiofiles.os.wrap(_read_chunk_sync)


def _identity(result: os.stat_result) -> tuple[int, int]:
    return result.st_size, result.st_mtime_ns


def _object_info(result: os.stat_result) -> ObjectInfo:
    return ObjectInfo(
        size=result.st_size,
        etag=f'"{result.st_ino:x}-{result.st_size:x}-{result.st_mtime_ns:x}"',
        last_modified=datetime.fromtimestamp(result.st_mtime, tz=UTC),
    )
