"""The access log: one JSON line per request on stdout, written in batches.

Python's ``logging`` costs a LogRecord, a lock and a write per line: about a fifth of the
CPU of serving a small file. Lines are buffered here instead and written at most
``max_delay`` seconds late (or every ``max_lines`` lines), and all of them at shutdown.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any, TextIO


class AccessLog:
    """Buffers lines and writes them to ``stream`` (default: the current ``sys.stdout``)."""

    max_delay = 0.05  # seconds
    max_lines = 256

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self._lines: list[str] = []
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
        """Write every queued line now."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if not self._lines:
            return
        text = "\n".join(self._lines) + "\n"
        self._lines.clear()
        stream = self.stream or sys.stdout
        try:
            stream.write(text)
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
