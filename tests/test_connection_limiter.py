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


@pytest.mark.asyncio
async def test_try_acquire_takes_a_free_slot_and_never_waits() -> None:
    limiter = ConnectionLimiter(1, 5.0, "busy")
    slot = await limiter.try_acquire()
    assert slot is not None
    assert await asyncio.wait_for(limiter.try_acquire(), 0.1) is None
    slot.release()
    assert await limiter.try_acquire() is not None


@pytest.mark.asyncio
async def test_try_acquire_does_not_take_a_slot_a_waiter_is_owed() -> None:
    limiter = ConnectionLimiter(1, 5.0, "busy")
    slot = await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    slot.release()  # owed to the waiter, which has not run yet
    assert await limiter.try_acquire() is None
    (await waiter).release()
