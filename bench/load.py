"""Measurements, each taken by a client in its own process so the client is never the
bottleneck: curl for throughput and time to first byte, wrk for requests per second, and
psutil sampling a server's resident memory while curl downloads."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass

import psutil

TRANSFER_TIMEOUT = 120.0
RSS_INTERVAL = 0.005


@dataclass(frozen=True)
class Transfer:
    """One download as curl saw it."""

    bytes_per_second: float
    first_byte: float  # seconds from the start to the first byte of the body
    total: float  # seconds for the whole transfer
    size: int


class LoadError(RuntimeError):
    """A measurement whose requests did not all succeed."""


def download(url: str, expected_size: int, byte_range: str = "", rate: int = 0) -> Transfer:
    """GET ``url`` with curl into /dev/null; the body must be exactly ``expected_size`` bytes.

    ``byte_range`` (curl's ``-r``, such as ``0-0``) asks for a 206; ``rate`` makes curl a
    client reading at most that many bytes per second.
    """
    write_out = "%{http_code} %{size_download} %{speed_download} %{time_starttransfer} %{time_total}"
    options = [*(["-r", byte_range] if byte_range else []), *(["--limit-rate", str(rate)] if rate else [])]
    result = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "--max-time", str(TRANSFER_TIMEOUT), "-w", write_out, *options, url],
        capture_output=True,
        text=True,
        timeout=TRANSFER_TIMEOUT + 10,
    )
    status, size, speed, first_byte, total = result.stdout.split()
    if status != ("206" if byte_range else "200") or int(size) != expected_size:
        raise LoadError(f"GET {url}: status {status}, {size} of {expected_size} bytes (curl exit {result.returncode})")
    return Transfer(float(speed), float(first_byte), float(total), int(size))


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def requests_per_second(url: str, connections: int, seconds: int) -> float:
    """wrk's requests per second at ``connections`` for ``seconds`` (one wrk thread: the
    machine's other core is the server's). Any non-2xx answer or socket error fails."""
    result = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", url],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
    )
    output = result.stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if result.returncode != 0 or match is None:
        raise LoadError(f"wrk {url} failed: {result.stderr or output}")
    if "Non-2xx" in output or _socket_errors(output):
        raise LoadError(f"wrk {url}: failed requests:\n{output}")
    return float(match.group(1))


def _socket_errors(output: str) -> int:
    """wrk's socket errors, except ``read`` errors: a server answering ``Connection: close``
    (moto) is counted there although every response was whole."""
    match = re.search(r"Socket errors: connect (\d+), read \d+, write (\d+), timeout (\d+)", output)
    return sum(int(n) for n in match.groups()) if match else 0


@dataclass(frozen=True)
class Memory:
    """A server's resident memory before and during one download."""

    idle: int
    peak: int

    @property
    def growth(self) -> int:
        return self.peak - self.idle


def memory_during_download(pid: int, url: str, expected_size: int, rate: int = 0) -> Memory:
    """The RSS of ``pid`` at rest, and its peak (sampled every 5 ms) while curl downloads ``url``
    (at ``rate`` bytes per second at most, when given)."""
    process = psutil.Process(pid)
    idle = process.memory_info().rss
    peak = idle
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(RSS_INTERVAL)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        download(url, expected_size, rate=rate)
    finally:
        done.set()
        sampler.join()
    return Memory(idle, max(peak, process.memory_info().rss))
