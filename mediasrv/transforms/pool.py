"""The render pool: worker processes that run top-level functions off the event loop.

libvips scales with processes, not Python threads, and a render must never block the event
loop. Each worker runs one call at a time over its own pipe; a bounded number of calls may
wait for a worker (beyond: 503 at once), each call has a deadline (beyond: its worker is killed
and replaced, 503), and a worker that dies is replaced and its call answered 503, never a hang.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import multiprocessing
import os
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from mediasrv.errors import MediaError, RenderUnavailable, UpstreamError

logger = logging.getLogger("mediasrv")

T = TypeVar("T")
QUEUE_FULL = "queue_full"
TIMEOUT = "timeout"
WORKER_DIED = "worker_died"


class RenderCrashed(UpstreamError):
    """A render raised an unexpected error in its worker: a bug in an operation (a plugin's,
    or the core's), logged with its message; the client gets 502 and ``render_failed``, never
    the message."""

    kind = "render_failed"
    default_detail = "render failed"


def default_processes() -> int:
    """One render process per core this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class RenderPool:
    """``processes`` workers, ``queue`` calls waiting at most, ``timeout`` seconds per call.

    ``initializer`` runs once in each worker (libvips set-up); ``on_queue_depth`` is told the
    number of waiting calls whenever it changes (a metric).
    """

    retry_after = 1  # seconds, in the 503's Retry-After
    stop_timeout = 5.0
    start_timeout = 60.0  # seconds a fresh worker may take to import and set up

    def __init__(
        self,
        processes: int,
        queue: int,
        timeout: float,
        initializer: Callable[[], None] | None = None,
        on_queue_depth: Callable[[int], None] | None = None,
    ) -> None:
        self.processes = processes or default_processes()
        self.queue = queue
        self.timeout = timeout
        self.initializer = initializer
        self.on_queue_depth = on_queue_depth
        self._context = multiprocessing.get_context("spawn")  # no inherited event loop or threads
        self._workers: set[_Worker] = set()
        self._idle: list[_Worker] = []
        self._waiters: collections.deque[asyncio.Future[_Worker]] = collections.deque()
        self._threads: ThreadPoolExecutor | None = None
        self._stopping = False

    @property
    def pids(self) -> list[int]:
        """The worker processes' ids."""
        return sorted(worker.pid for worker in self._workers)

    @property
    def waiting(self) -> int:
        """Calls waiting for a worker."""
        return len(self._waiters)

    async def start(self) -> None:
        """Start the workers (they import and set up in the background)."""
        self._stopping = False
        self._threads = ThreadPoolExecutor(max_workers=self.processes + 2, thread_name_prefix="mediasrv-render")
        for _ in range(self.processes):
            self._idle.append(self._spawn())

    async def stop(self) -> None:
        """Refuse new calls, stop every worker (killing one that does not exit in time)."""
        self._stopping = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(RenderUnavailable(QUEUE_FULL, "server is shutting down"))
        workers, self._workers, self._idle = list(self._workers), set(), []
        await asyncio.to_thread(_close_all, workers, self.stop_timeout)
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
            self._threads = None

    async def submit(self, func: Callable[..., T], *args: Any) -> T:
        """``func(*args)`` in a worker process: its result, or the MediaError it raised.

        RenderUnavailable (503 + Retry-After) when the queue is full, the call is over
        ``timeout`` or its worker died; RenderCrashed for any other error in the worker.
        """
        worker = await self._take()
        assert self._threads is not None
        loop = asyncio.get_running_loop()
        if not worker.ready:  # a fresh worker's start-up is not the render's time
            await self._wait_ready(worker)
        future = loop.run_in_executor(self._threads, worker.call, func, args)
        future.add_done_callback(partial(self._returned, worker))
        try:
            async with asyncio.timeout(self.timeout):
                status, value = await asyncio.shield(future)  # a cancelled caller leaves the call to finish
        except TimeoutError:
            worker.kill()
            raise RenderUnavailable(TIMEOUT, f"render took longer than {self.timeout:g}s") from None
        except (EOFError, OSError):
            raise RenderUnavailable(WORKER_DIED, "render worker died; try again") from None
        if status == "ok":
            result: T = value
            return result
        if status == "error":
            raise value
        logger.error("render %s failed in worker %d: %s", getattr(func, "__qualname__", func), worker.pid, value)
        raise RenderCrashed()

    async def _wait_ready(self, worker: _Worker) -> None:
        assert self._threads is not None
        ready = asyncio.get_running_loop().run_in_executor(self._threads, worker.wait_ready, self.start_timeout)
        try:
            await asyncio.shield(ready)
        except asyncio.CancelledError:
            ready.add_done_callback(partial(self._returned, worker))  # back to the pool once up
            raise
        except (EOFError, OSError, TimeoutError):
            self._returned_dead(worker)
            raise RenderUnavailable(WORKER_DIED, "render worker failed to start; try again") from None

    async def _take(self) -> _Worker:
        if self._stopping or self._threads is None:
            raise RenderUnavailable(QUEUE_FULL, "render pool is not running")
        if self._idle:
            worker = self._idle.pop()
            if worker.alive():
                return worker
            logger.warning("idle render worker %d had died; starting another", worker.pid)
            self._workers.discard(worker)
            worker.discard()
            return self._spawn()
        if len(self._waiters) >= self.queue:
            raise RenderUnavailable(QUEUE_FULL, "render queue is full; try again")
        waiter: asyncio.Future[_Worker] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._queue_depth()
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._release(waiter.result())  # handed a worker just as the caller left
            raise
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            self._queue_depth()

    def _returned(self, worker: _Worker, future: asyncio.Future[Any]) -> None:
        """A call ended: the worker goes back, or a fresh one takes the place of a dead one."""
        failed = future.cancelled() or future.exception() is not None  # retrieved: no "never retrieved" log
        if self._stopping or worker not in self._workers:
            return
        if failed or not worker.alive():
            logger.warning("render worker %d died or was killed; starting another", worker.pid)
            self._returned_dead(worker)
        else:
            self._release(worker)

    def _returned_dead(self, worker: _Worker) -> None:
        if self._stopping or worker not in self._workers:
            return
        self._workers.discard(worker)
        worker.discard()
        self._release(self._spawn())

    def _release(self, worker: _Worker) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(worker)
                return
        self._idle.append(worker)

    def _spawn(self) -> _Worker:
        worker = _Worker(self._context, self.initializer)
        self._workers.add(worker)
        return worker

    def _queue_depth(self) -> None:
        if self.on_queue_depth is not None:
            self.on_queue_depth(len(self._waiters))


class _Worker:
    """One render process and the parent's end of its pipe."""

    def __init__(self, context: Any, initializer: Callable[[], None] | None) -> None:
        parent, child = context.Pipe(duplex=True)
        self.process = context.Process(target=serve_calls, args=(child, initializer), name="mediasrv-render")
        self.process.start()
        child.close()  # so the parent's recv sees EOF when the worker dies
        self.connection: Connection = parent
        self.pid: int = self.process.pid
        self.ready = False

    def wait_ready(self, timeout: float) -> None:
        """Block until the worker says it has set up (in a pool thread)."""
        if not self.connection.poll(timeout):
            raise TimeoutError
        self.connection.recv()
        self.ready = True

    def call(self, func: Callable[..., Any], args: tuple[Any, ...]) -> tuple[str, Any]:
        """Send one call and wait for its answer (in a pool thread); EOFError if the worker died."""
        self.connection.send((func, args))
        answer: tuple[str, Any] = self.connection.recv()
        return answer

    def alive(self) -> bool:
        alive: bool = self.process.is_alive()
        return alive

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()

    def discard(self) -> None:
        """Forget a dead or killed worker: reap it and close the pipe."""
        self.kill()
        self.process.join(1)
        self.connection.close()

    def close(self, timeout: float) -> None:
        """Ask the worker to exit; kill it if it has not within ``timeout``."""
        with contextlib.suppress(OSError):
            self.connection.send(None)
        self.process.join(timeout)
        self.discard()


def _close_all(workers: list[_Worker], timeout: float) -> None:
    for worker in workers:
        with contextlib.suppress(OSError):
            worker.connection.send(None)
    for worker in workers:
        worker.close(timeout)


def serve_calls(connection: Connection, initializer: Callable[[], None] | None) -> None:
    """A worker's loop: receive ``(func, args)``, answer ``("ok", result)``, ``("error",
    MediaError)`` or ``("crash", text)``; exit on None or when the parent is gone."""
    # Ctrl-C reaches the whole process group; the server stops its workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if initializer is not None:
        initializer()
    connection.send(("ready", None))
    while True:
        try:
            job = connection.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        func, args = job
        try:
            answer: tuple[str, Any] = ("ok", func(*args))
        except MediaError as exc:
            answer = ("error", exc)
        except Exception as exc:
            answer = ("crash", f"{type(exc).__name__}: {exc}")
        try:
            connection.send(answer)
        except (EOFError, OSError):
            return
        except Exception as exc:  # an answer that does not pickle
            connection.send(("crash", f"unpicklable result: {exc!r}"))
