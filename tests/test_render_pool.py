"""The render pool with real worker processes: results and errors cross the process boundary,
the queue is bounded, a render over its timeout or whose worker dies is 503 and the worker is
replaced, and nothing is left running after stop."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import psutil
import pytest

import render_helpers
from mediasrv.errors import RenderUnavailable, UnprocessableImage
from mediasrv.transforms.pool import RenderCrashed, RenderPool

pytestmark = pytest.mark.asyncio


@asynccontextmanager
async def running(processes: int = 1, queue: int = 4, timeout: float = 10.0, **kwargs: object) -> AsyncIterator[RenderPool]:
    pool = RenderPool(processes, queue, timeout, **kwargs)  # type: ignore[arg-type]
    await pool.start()
    try:
        yield pool
    finally:
        pids = pool.pids
        await pool.stop()
        assert not [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]


async def test_calls_run_in_worker_processes() -> None:
    async with running(processes=2) as pool:
        pids = set(await asyncio.gather(*(pool.submit(render_helpers.worker_pid) for _ in range(6))))
        assert os.getpid() not in pids
        assert pids <= set(pool.pids)
        assert await pool.submit(render_helpers.echo, {"a": b"bytes"}) == {"a": b"bytes"}


async def test_a_media_error_crosses_the_process_boundary() -> None:
    async with running() as pool:
        with pytest.raises(UnprocessableImage, match="said the worker"):
            await pool.submit(render_helpers.refuse)
        assert await pool.submit(render_helpers.echo, 1) == 1


async def test_an_unexpected_error_is_render_crashed_and_the_worker_serves_on() -> None:
    async with running() as pool:
        before = pool.pids
        with pytest.raises(RenderCrashed):
            await pool.submit(render_helpers.crash)
        assert await pool.submit(render_helpers.echo, 2) == 2
        assert pool.pids == before


async def test_a_full_queue_is_refused_at_once() -> None:
    depths: list[int] = []
    async with running(processes=1, queue=1, on_queue_depth=depths.append) as pool:
        busy = asyncio.ensure_future(pool.submit(render_helpers.sleep_then, 1.0, "first"))
        await asyncio.sleep(0.1)
        waiting = asyncio.ensure_future(pool.submit(render_helpers.echo, "second"))
        await asyncio.sleep(0.05)
        assert pool.waiting == 1
        started = time.perf_counter()
        with pytest.raises(RenderUnavailable) as caught:
            await pool.submit(render_helpers.echo, "third")
        assert time.perf_counter() - started < 0.5  # not after the busy call's 1 s
        assert (caught.value.status, caught.value.reason, caught.value.retry_after) == (503, "queue_full", 1)
        assert await busy == "first"
        assert await waiting == "second"
        assert depths[-1] == 0 and 1 in depths


async def test_a_render_over_its_timeout_is_503_and_its_worker_replaced() -> None:
    async with running(processes=1, timeout=0.5) as pool:
        old = pool.pids
        started = time.perf_counter()
        with pytest.raises(RenderUnavailable) as caught:
            await pool.submit(render_helpers.sleep_then, 30, "never")
        assert caught.value.reason == "timeout"
        assert time.perf_counter() - started < 10  # not the call's 30 s
        assert await pool.submit(render_helpers.echo, "after") == "after"
        assert pool.pids != old and len(pool.pids) == 1
        assert not psutil.pid_exists(old[0]) or psutil.Process(old[0]).status() == "zombie"


async def test_a_killed_worker_is_replaced_and_its_call_503() -> None:
    async with running(processes=1) as pool:
        call = asyncio.ensure_future(pool.submit(render_helpers.sleep_then, 30, "never"))
        await asyncio.sleep(0.3)
        (pid,) = pool.pids
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(RenderUnavailable) as caught:
            await asyncio.wait_for(call, 5)
        assert caught.value.reason == "worker_died"
        assert await pool.submit(render_helpers.echo, "after") == "after"
        assert pool.pids != [pid]


async def test_a_cancelled_caller_leaves_the_worker_to_finish_and_return() -> None:
    async with running(processes=1) as pool:
        call = asyncio.ensure_future(pool.submit(render_helpers.sleep_then, 0.5, "late"))
        await asyncio.sleep(0.1)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        before = pool.pids
        assert await pool.submit(render_helpers.echo, "next") == "next"  # waits for the worker
        assert pool.pids == before


async def test_stop_refuses_new_calls() -> None:
    pool = RenderPool(1, 1, 5)
    await pool.start()
    await pool.stop()
    submit: Callable[[], object] = render_helpers.worker_pid
    with pytest.raises(RenderUnavailable):
        await pool.submit(submit)


async def test_an_idle_worker_that_died_is_replaced_before_a_call_reaches_it() -> None:
    async with running(processes=1) as pool:
        assert await pool.submit(render_helpers.echo, "up") == "up"
        (pid,) = pool.pids
        os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.2)
        assert await pool.submit(render_helpers.echo, "again") == "again"
        assert pool.pids != [pid]
