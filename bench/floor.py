"""The engine floor: libvips' ``thumbnail_buffer`` to 400 px and the encoder, in a loop in one
process per core with nothing around it (no HTTP, no queue, no pickling). A server can only
approach it; the benchmark prints mediasrv's renders per second as a fraction of it."""

from __future__ import annotations

import multiprocessing
import os
import time
from dataclasses import dataclass
from pathlib import Path

WIDTH = 400
QUALITY = 80  # mediasrv's default for JPEG and WebP, and thumbor's
WEBP_EFFORT = 4  # mediasrv's default


@dataclass(frozen=True)
class FloorResult:
    """Renders per second over all processes, and each render's duration (seconds)."""

    per_second: float
    latencies: list[float]


def render_loop(sources: list[bytes], output: str, seconds: float) -> list[float]:
    """Render ``sources`` in turn for ``seconds``; the duration of each render."""
    os.environ["VIPS_CONCURRENCY"] = "1"
    import pyvips

    pyvips.concurrency_set(1)
    pyvips.cache_set_max(0)
    durations = []
    deadline = time.monotonic() + seconds
    index = 0
    while time.monotonic() < deadline:
        started = time.perf_counter()
        image = pyvips.Image.thumbnail_buffer(sources[index % len(sources)], WIDTH)
        if output == "webp":
            image.webpsave_buffer(Q=QUALITY, effort=WEBP_EFFORT, keep="none")
        else:
            image.jpegsave_buffer(Q=QUALITY, keep="none", optimize_coding=True)
        durations.append(time.perf_counter() - started)
        index += 1
    return durations


def measure_floor(paths: list[Path], output: str, processes: int, seconds: float) -> FloorResult:
    """``processes`` fresh processes rendering for ``seconds`` each, all at once."""
    sources = [path.read_bytes() for path in paths]
    context = multiprocessing.get_context("spawn")  # fresh libvips state, like a render worker
    with context.Pool(processes) as pool:
        pool.starmap(render_loop, [(sources[:1], output, 0.2)] * processes)  # imports, first render
        started = time.monotonic()
        runs = pool.starmap(render_loop, [(sources[i:] + sources[:i], output, seconds) for i in range(processes)])
        elapsed = time.monotonic() - started
    latencies = [duration for run in runs for duration in run]
    return FloorResult(len(latencies) / elapsed, latencies)
