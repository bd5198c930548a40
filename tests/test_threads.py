"""acquire_shielded / acquire_in_thread: what a cancelled request was acquiring is released, not leaked."""

from __future__ import annotations

import asyncio
import threading

import pytest

from mediasrv import acquire_in_thread, acquire_shielded


@pytest.mark.asyncio
async def test_cancelled_caller_releases_what_the_thread_acquired() -> None:
    go, released = threading.Event(), asyncio.Event()
    got: list[str] = []

    def opening() -> str:
        go.wait(5)
        return "handle"

    def release(handle: str) -> None:
        got.append(handle)
        released.set()

    caller = asyncio.ensure_future(acquire_in_thread(release, opening))
    await asyncio.sleep(0.05)  # the thread is inside opening()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert got == []  # not before the thread is done
    go.set()
    await asyncio.wait_for(released.wait(), 5)
    assert got == ["handle"]


@pytest.mark.asyncio
async def test_uncancelled_caller_owns_the_result_and_failures_release_nothing() -> None:
    released: list[object] = []
    assert await acquire_in_thread(released.append, lambda: 42) == 42

    async def failing() -> int:
        await asyncio.sleep(0.05)
        raise OSError("no such file")

    caller = asyncio.ensure_future(acquire_shielded(released.append, failing()))
    await asyncio.sleep(0.01)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await asyncio.sleep(0.1)  # the shielded acquisition failed meanwhile: its error is retrieved, not logged
    assert released == []
