"""Single flight: concurrent calls for one key in this process share one execution."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Runs at most one ``call`` per key at a time; callers arriving meanwhile await its result.

    The call runs in a task of its own, so a caller that leaves (its client disconnected)
    neither cancels it for the others nor loses the work: the result still reaches the cache.
    """

    def __init__(self) -> None:
        self._flights: dict[Hashable, asyncio.Task[T]] = {}

    async def run(self, key: Hashable, call: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """``call()``'s result (or exception), and whether it was another caller's flight."""
        task = self._flights.get(key)
        joined = task is not None
        if task is None:
            task = asyncio.ensure_future(call())
            self._flights[key] = task
            task.add_done_callback(lambda done: self._landed(key, done))
        return await asyncio.shield(task), joined

    def __len__(self) -> int:
        return len(self._flights)

    async def cancel_all(self) -> None:
        """Cancel the flights still running (at shutdown) and wait for them to end."""
        tasks = list(self._flights.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _landed(self, key: Hashable, task: asyncio.Task[T]) -> None:
        if self._flights.get(key) is task:
            del self._flights[key]
        if not task.cancelled():
            task.exception()  # retrieved: every caller may have left before it failed
