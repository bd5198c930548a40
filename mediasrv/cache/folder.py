"""A bounded folder of cache files, shared by every process that opens it.

Each file is a header line (JSON: length, sha256, content type, ETag, metadata) and the body.
A file is written under a temporary name and renamed into place, so a reader sees all of
it or none; the length and digest catch what a rename cannot (a crash before the data
reached the disk, a bit flip, a truncated copy), and such a file is dropped, never served.
Recency is the file's mtime, refreshed by a hit (at most once a minute), so every process
sees every other's use; the least recently used files go first when the folder grows past ``max_bytes``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from mediasrv.cache.store import StoredResult, StoreError

MAGIC = b"mediasrv-cache 1\n"
LOW_WATERMARK = 0.9  # an eviction frees down to this share of max_bytes, so it runs rarely
RESCAN_INTERVAL = 60.0  # seconds; other processes' writes are counted at least this often
STALE_TEMPORARY = 3600.0  # seconds after which a temporary file is a crashed writer's
TOUCH_AFTER = 60.0  # seconds: a hit refreshes a file's mtime at most this often (LRU needs no finer)
NOWAIT_MAX_BYTES = 256 * 1024  # larger files are always read in a worker thread


class CorruptEntry(StoreError):
    """A cache file whose length or digest is wrong (it has been removed)."""


class WouldBlock(Exception):
    """The file is not (all) in the page cache, or too big to read on the event loop."""


@dataclass
class Scan:
    """What a walk of the folder found."""

    entries: int
    bytes: int


class CacheFolder:
    """``root`` holds the files in ``<source>/<name>``; ``root/.tmp`` the files being written.

    Every method but ``read_cached`` blocks (file system calls): the store runs them in a worker
    thread. The byte
    count is this process's estimate, corrected by a walk of the folder at start-up, at least
    every RESCAN_INTERVAL when writing, and under an exclusive lock before evicting.
    """

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.tmp = root / ".tmp"
        self.lock_path = root / ".evict.lock"
        self.bytes = 0
        self.entries = 0
        self.evictions = 0
        self.nowait = hasattr(os, "RWF_NOWAIT")
        self._scanned_at = 0.0

    def open(self) -> None:
        """Create the folders and count what is there (the index survives a restart)."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        self._remove_stale_temporaries()
        self.scan()

    def path(self, source: str, name: str) -> Path:
        return self.root / source[:2] / source / name

    def read(self, source: str, name: str) -> StoredResult | None:
        """The file's result, checked, or None; a corrupt file is removed (CorruptEntry)."""
        path = self.path(source, name)
        try:
            with path.open("rb") as file:
                data = file.read()
                modified = os.fstat(file.fileno()).st_mtime
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc.strerror}") from None
        return self._checked(path, data, modified)

    def read_cached(self, source: str, name: str) -> StoredResult | None:
        """``read`` without blocking, for the event loop: only a small file wholly in the page
        cache (``RWF_NOWAIT``); WouldBlock otherwise, and the caller reads it in a thread.

        A hit then costs no thread hop: for a small variant, the hop is most of the work.
        """
        if not self.nowait:
            raise WouldBlock
        path = self.path(source, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError:
            raise WouldBlock from None  # the thread's read reports it
        try:
            info = os.fstat(fd)
            if info.st_size > NOWAIT_MAX_BYTES:
                raise WouldBlock
            buffer = bytearray(info.st_size)
            if os.preadv(fd, [buffer], 0, os.RWF_NOWAIT) != info.st_size:
                raise WouldBlock
        except BlockingIOError:
            raise WouldBlock from None
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL):  # not on this file system
                self.nowait = False
            raise WouldBlock from None
        finally:
            os.close(fd)
        return self._checked(path, bytes(buffer), info.st_mtime)

    def _checked(self, path: Path, data: bytes, modified: float) -> StoredResult:
        result = _decode(data)
        if result is None:
            self._remove(path)
            raise CorruptEntry(f"{path}: corrupt (length or digest wrong); removed")
        if time.time() - modified > TOUCH_AFTER:
            with contextlib.suppress(FileNotFoundError):  # evicted meanwhile: what was read is whole
                os.utime(path)  # recency, seen by every process
        return result

    def write(self, source: str, name: str, result: StoredResult) -> None:
        """Write ``result`` atomically, then evict if the folder is over its bound."""
        data = _encode(result)
        path = self.path(source, name)
        temporary = self.tmp / uuid.uuid4().hex
        try:
            with temporary.open("wb") as file:
                file.write(data)
            try:
                os.replace(temporary, path)
            except FileNotFoundError:  # a new source's folder, or one just purged
                path.parent.mkdir(parents=True, exist_ok=True)
                os.replace(temporary, path)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise StoreError(f"cannot write {path}: {_reason(exc)}") from None
        self.bytes += len(data)
        self.entries += 1
        if self.bytes > self.max_bytes or time.monotonic() - self._scanned_at > RESCAN_INTERVAL:
            self.evict()

    def remove_source(self, source: str) -> int:
        """Remove every file of ``source``; how many there were."""
        folder = self.root / source[:2] / source
        doomed = self.tmp / f"purge-{uuid.uuid4().hex}"
        try:
            os.rename(folder, doomed)  # at once invisible to every reader
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise StoreError(f"cannot remove {folder}: {exc.strerror}") from None
        removed = [entry.stat().st_size for entry in os.scandir(doomed) if entry.is_file()]
        shutil.rmtree(doomed, ignore_errors=True)
        self.bytes = max(0, self.bytes - sum(removed))
        self.entries = max(0, self.entries - len(removed))
        return len(removed)

    def scan(self) -> Scan:
        """Count the folder's files and bytes (every process's), and keep them as the estimate."""
        files = self._files()
        self.entries, self.bytes = len(files), sum(size for _, size, _ in files)
        self._scanned_at = time.monotonic()
        return Scan(self.entries, self.bytes)

    def evict(self) -> int:
        """Under an exclusive lock (one evicting process at a time), walk the folder and
        remove the least recently used files until it is under the low watermark."""
        try:
            with self.lock_path.open("a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                return self._evict_locked()
        except OSError as exc:
            raise StoreError(f"cannot evict from {self.root}: {exc.strerror}") from None

    def _evict_locked(self) -> int:
        files = self._files()
        total = sum(size for _, size, _ in files)
        removed = 0
        if total > self.max_bytes:
            target = self.max_bytes * LOW_WATERMARK
            for _, size, path in sorted(files):
                if total <= target:
                    break
                if self._remove(path):
                    total -= size
                    removed += 1
        self.entries, self.bytes = len(files) - removed, total
        self.evictions += removed
        self._scanned_at = time.monotonic()
        return removed

    def _files(self) -> list[tuple[float, int, Path]]:
        """(mtime, size, path) of every cache file."""
        found = []
        for shard in _subfolders(self.root):
            for source in _subfolders(shard):
                for entry in os.scandir(source):
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:  # evicted or purged meanwhile
                        continue
                    found.append((info.st_mtime, info.st_size, Path(entry.path)))
        return found

    def _remove(self, path: Path) -> bool:
        try:
            path.unlink()
            return True
        except FileNotFoundError:
            return False

    def _remove_stale_temporaries(self) -> None:
        cutoff = time.time() - STALE_TEMPORARY
        for entry in os.scandir(self.tmp):
            try:
                if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path, ignore_errors=True)
                    else:
                        os.unlink(entry.path)
            except FileNotFoundError:
                continue


def _subfolders(folder: Path) -> list[Path]:
    try:
        return [Path(entry.path) for entry in os.scandir(folder) if entry.is_dir() and not entry.name.startswith(".")]
    except FileNotFoundError:
        return []


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "the disk is full"
    return exc.strerror or type(exc).__name__


def _encode(result: StoredResult) -> bytes:
    header = {
        "length": len(result.body),
        "sha256": result.digest,
        "content_type": result.content_type,
        "etag": result.etag,
        "metadata": dict(result.metadata),
    }
    return MAGIC + json.dumps(header, separators=(",", ":")).encode() + b"\n" + result.body


def _decode(data: bytes) -> StoredResult | None:
    """The result in a file's bytes, or None when anything is off."""
    if not data.startswith(MAGIC):
        return None
    end = data.find(b"\n", len(MAGIC))
    if end < 0:
        return None
    try:
        header = json.loads(data[len(MAGIC) : end])
        body = data[end + 1 :]
        if len(body) != header["length"] or hashlib.sha256(body).hexdigest() != header["sha256"]:
            return None
        return StoredResult(body, str(header["content_type"]), str(header["etag"]), len(body), header["metadata"])
    except (ValueError, KeyError, TypeError):
        return None
