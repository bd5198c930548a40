"""Blocking calls that acquire a resource, run in a worker thread without leaking it on cancellation."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

logger = logging.getLogger("mediasrv")

P = ParamSpec("P")
R = TypeVar("R")


async def acquire_in_thread(
    release: Callable[[R], object], func: Callable[P, R], *args: P.args, **kwargs: P.kwargs
) -> R:
    """``func(*args, **kwargs)`` in a worker thread; its result is what the caller now owns.

    ``asyncio.to_thread`` cannot stop a thread that is running: a request cancelled meanwhile
    (the client left, a timeout fired) loses the result, and with it the open file or
    connection the thread just acquired. Here the thread runs to the end whatever happens to
    the caller, and when the caller was cancelled first, ``release(result)`` runs (on the event
    loop, so it must not block for long) instead of leaking it.
    """
    future = asyncio.ensure_future(asyncio.to_thread(func, *args, **kwargs))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        future.add_done_callback(lambda done: _release_orphan(done, release))
        raise


def _release_orphan(done: asyncio.Future[R], release: Callable[[R], object]) -> None:
    if done.cancelled() or done.exception() is not None:
        return  # nothing was acquired
    try:
        release(done.result())
    except Exception:
        logger.exception("releasing the result of a cancelled call failed")
