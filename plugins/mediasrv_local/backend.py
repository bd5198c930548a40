"""The local disk backend: files under ``root``, read with aiofiles."""

from __future__ import annotations

import errno
import os
import stat
from datetime import UTC, datetime

import aiofiles
import aiofiles.os
from aiofiles.threadpool.binary import AsyncFileIO

from mediasrv import (
    BackendSettings,
    BackendUnavailable,
    ByteRange,
    ChunkReader,
    Conditions,
    ConfigPath,
    Health,
    NotFound,
    ObjectInfo,
    ObjectStream,
    StorageBackend,
    UpstreamError,
    check_preconditions,
    range_applies,
)


class LocalSettings(BackendSettings):
    """``[backends.NAME]`` with ``kind = "local"``."""

    root: ConfigPath


class LocalBackend(StorageBackend):
    """Serves regular files strictly inside ``root``.

    Keys that resolve outside the root (through ``..`` or a symlink), hidden files
    (a segment starting with ".") and anything but regular files are not found.
    """

    kind = "local"
    Settings = LocalSettings
    settings: LocalSettings

    def __init__(self, name: str, settings: BackendSettings) -> None:
        super().__init__(name, settings)
        self.root = os.path.realpath(self.settings.root)
        self._stat_file = aiofiles.os.wrap(self._stat_sync)

    async def stat(self, key: str) -> ObjectInfo:
        return _object_info(await self._stat_file(key))

    async def open(self, key: str, byte_range: ByteRange | None, conditions: Conditions) -> ObjectStream:
        file = await aiofiles.open(key, "rb", buffering=0, opener=self._open_fd)
        try:
            info = _object_info(os.fstat(file.fileno()))
            check_preconditions(conditions, info)
            content_range = None
            if byte_range is not None and range_applies(conditions, info):
                assert info.size is not None
                content_range = byte_range.resolve(info.size)
                os.lseek(file.fileno(), content_range.first, os.SEEK_SET)  # unbuffered: no hop needed
        except BaseException:
            await file.close()
            raise
        length = content_range.length if content_range is not None else info.size
        assert length is not None
        return ObjectStream(info, FileChunks(file, length, self.settings.chunk_size), content_range)

    async def health(self) -> Health:
        readable = await aiofiles.os.access(self.root, os.R_OK | os.X_OK)
        if readable and await aiofiles.os.path.isdir(self.root):
            return Health(ok=True)
        return Health(ok=False, error=f"root {self.root} is not a readable folder")

    def _resolve(self, key: str) -> str:
        """The real path of ``key``, which must lie inside the root; runs in a worker thread."""
        if any(segment.startswith(".") for segment in key.split("/")):
            raise NotFound()
        path = os.path.realpath(os.path.join(self.root, key))
        if not path.startswith(self.root + os.sep):
            raise NotFound()  # Don't let a symlink take a request outside the root.
        return path

    def _open_fd(self, key: str, flags: int) -> int:
        """``open()``'s opener: O_NONBLOCK so that a FIFO cannot hang the worker thread."""
        path = self._resolve(key)
        try:
            fd = os.open(path, flags | os.O_NONBLOCK)
        except OSError as exc:
            raise self._error(exc) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise NotFound()
        return fd

    def _stat_sync(self, key: str) -> os.stat_result:
        path = self._resolve(key)
        try:
            result = os.stat(path)
        except OSError as exc:
            raise self._error(exc) from None
        if not stat.S_ISREG(result.st_mode):
            raise NotFound()
        return result

    def _error(self, exc: OSError) -> Exception:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.EACCES, errno.EPERM, errno.ENAMETOOLONG, errno.ELOOP):
            if not os.path.isdir(self.root):
                return BackendUnavailable(f"backend {self.name!r}: root folder is missing")
            return NotFound()
        return UpstreamError(f"backend {self.name!r}: read failed ({errno.errorcode.get(exc.errno or 0, 'error')})")


class FileChunks(ChunkReader):
    """Reads ``length`` bytes from an open file, ``chunk_size`` at a time, then closes it."""

    def __init__(self, file: AsyncFileIO, length: int, chunk_size: int) -> None:
        self.file = file
        self.remaining = length
        self.chunk_size = chunk_size

    async def read(self) -> bytes:
        if self.remaining <= 0:
            return b""
        chunk: bytes = await self.file.read(min(self.chunk_size, self.remaining))
        if not chunk:
            raise UpstreamError("file shrank while being read")
        self.remaining -= len(chunk)
        return chunk

    async def release(self) -> None:
        await self.file.close()


def _object_info(result: os.stat_result) -> ObjectInfo:
    return ObjectInfo(
        size=result.st_size,
        etag=f'"{result.st_ino:x}-{result.st_size:x}-{result.st_mtime_ns:x}"',
        last_modified=datetime.fromtimestamp(result.st_mtime, tz=UTC),
    )


__all__: list[str] = ["LocalBackend", "LocalSettings", "FileChunks"]
