"""ConnectionLimiter: a backend's bounded wait for one of its source connections."""

from __future__ import annotations

import asyncio

import pytest

from mediasrv import BackendUnavailable, ConnectionLimiter


@pytest.mark.asyncio
async def test_full_limiter_raises_503_after_the_wait() -> None:
    limiter = ConnectionLimiter(2, 0.05, "all 2 busy")
    held = [await limiter.acquire(), await limiter.acquire()]
    with pytest.raises(BackendUnavailable) as raised:
        await limiter.acquire()
    assert raised.value.detail == "all 2 busy"
    assert raised.value.retry_after == 1
    held[0].release()
    assert await limiter.acquire() is not None


@pytest.mark.asyncio
async def test_a_waiter_gets_the_slot_released_meanwhile() -> None:
    limiter = ConnectionLimiter(1, 5.0, "busy")
    slot = await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    assert not waiter.done()
    slot.release()
    (await waiter).release()


@pytest.mark.asyncio
async def test_release_twice_frees_one_slot_only() -> None:
    limiter = ConnectionLimiter(1, 0.05, "busy")
    slot = await limiter.acquire()
    slot.release()
    slot.release()
    again = await limiter.acquire()
    with pytest.raises(BackendUnavailable):
        await limiter.acquire()
    again.release()
