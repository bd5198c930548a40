"""The access log: one JSON line per request on stdout, written in batches, off the event loop.

Python's ``logging`` costs a LogRecord, a lock and a write per line: about a fifth of the
CPU of serving a small file. Lines are buffered here instead and handed over at most
``max_delay`` seconds late (or every ``max_lines`` lines), and all of them at shutdown.

A writer thread does the writing: a stdout whose reader stops (a full pipe) blocks that
thread, never the loop. It takes batches from a bounded queue; when the queue is full,
a batch is dropped and its lines counted (``on_dropped``), so serving goes on.
"""

from __future__ import annotations

import asyncio
import json
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO


class AccessLog:
    """Buffers lines and writes them to ``stream`` (default: the current ``sys.stdout``)."""

    max_delay = 0.05  # seconds
    max_lines = 256
    max_batches = 64  # queued for the writer: 16,384 lines at most
    close_timeout = 2.0  # seconds shutdown waits for the writer to drain

    def __init__(self, stream: TextIO | None = None, on_dropped: Callable[[int], None] | None = None) -> None:
        self.stream = stream
        self.on_dropped = on_dropped
        self._lines: list[str] = []
        self._batches: queue.Queue[tuple[str, int] | None] = queue.Queue(self.max_batches)
        self._writer: threading.Thread | None = None
        self._flush_handle: asyncio.TimerHandle | None = None
        self._second = -1
        self._second_text = ""

    def write(self, fields: dict[str, Any]) -> None:
        """Queue one line: ``fields`` as JSON, after a ``time`` field (UTC, milliseconds)."""
        line = json.dumps({"time": self._timestamp(), **fields})  # ASCII: a lone surrogate can't break the stream
        self._lines.append(line)
        if len(self._lines) >= self.max_lines:
            self.flush()
        elif self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_later(self.max_delay, self.flush)

    def flush(self) -> None:
        """Hand every buffered line to the writer now (or drop and count them, when it is behind)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if not self._lines:
            return
        batch = ("\n".join(self._lines) + "\n", len(self._lines))
        self._lines.clear()
        if self._writer is None:
            self._writer = threading.Thread(target=self._write_batches, name="mediasrv-access-log", daemon=True)
            self._writer.start()
        try:
            self._batches.put_nowait(batch)
        except queue.Full:
            if self.on_dropped is not None:
                self.on_dropped(batch[1])

    def close(self) -> None:
        """Flush, then give the writer ``close_timeout`` seconds to write what is queued."""
        self.flush()
        if self._writer is None:
            return
        try:
            self._batches.put(None, timeout=self.close_timeout)
        except queue.Full:
            return  # the writer is stuck on a stdout nobody reads: leave it, it is a daemon
        self._writer.join(self.close_timeout)
        self._writer = None

    def _write_batches(self) -> None:
        while (batch := self._batches.get()) is not None:
            stream = self.stream or sys.stdout
            try:
                stream.write(batch[0])
                stream.flush()
            except (OSError, ValueError):
                pass  # stdout closed or gone: the lines have nowhere to go, serving goes on

    def _timestamp(self) -> str:
        now = time.time()
        second = int(now)
        if second != self._second:  # formatting a date costs more than the rest of the line
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._second_text}.{int((now - second) * 1000):03d}Z"
