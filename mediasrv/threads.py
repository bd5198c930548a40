"""Acquiring a resource (a file, a connection, a blob handle) without leaking it when the
request that asked for it is cancelled half-way."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

logger = logging.getLogger("mediasrv")

P = ParamSpec("P")
R = TypeVar("R")


async def acquire_shielded(release: Callable[[R], object], acquiring: Awaitable[R]) -> R:
    """The result of ``acquiring``, which the caller now owns, run to the end whatever happens
    to the caller.

    A request is cancelled when its client leaves or a timeout fires, at whatever ``await`` it
    is in. Cancelled in the middle of acquiring (a worker thread opening a file, a pool handing
    out a connection, a query), the result would be lost and its resource leaked: here the
    acquisition finishes in its own task, and when the caller was cancelled first,
    ``release(result)`` runs once it is done (on the event loop, so it must not block for long).
    ``acquiring`` must clean up after itself when it fails.
    """
    task = asyncio.ensure_future(acquiring)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(lambda done: _release_orphan(done, release))
        raise


async def acquire_in_thread(
    release: Callable[[R], object], func: Callable[P, R], *args: P.args, **kwargs: P.kwargs
) -> R:
    """``func(*args, **kwargs)`` in a worker thread, as ``acquire_shielded`` runs it.

    ``asyncio.to_thread`` cannot stop a running thread: a caller cancelled meanwhile loses the
    open file or handle the thread returns. This closes it with ``release`` instead.
    """
    return await acquire_shielded(release, asyncio.to_thread(func, *args, **kwargs))


def _release_orphan(done: asyncio.Future[R], release: Callable[[R], object]) -> None:
    if done.cancelled() or done.exception() is not None:
        return  # nothing was acquired
    try:
        release(done.result())
    except Exception:
        logger.exception("releasing what a cancelled request acquired failed")
