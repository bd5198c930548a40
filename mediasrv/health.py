"""Backend health: every backend checked concurrently, with a timeout, and the results reused
for a few seconds so that a burst of probes does not hammer the sources."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mediasrv.backend import StorageBackend
from mediasrv.registry import BackendRegistry

logger = logging.getLogger("mediasrv")


@dataclass(frozen=True)
class HealthReport:
    """The outcome of one health check of one backend."""

    ok: bool
    checked_at: datetime
    latency_ms: float
    error: str | None

    def as_json(self) -> dict[str, Any]:
        """The ``health`` object of ``/admin/backends``."""
        return {
            "ok": self.ok,
            "checked_at": self.checked_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "latency_ms": self.latency_ms,
            "error": self.error,
        }


class HealthMonitor:
    """Checks the registry's backends; results younger than ``max_age`` seconds are reused,
    and callers arriving while a round of checks runs share it."""

    def __init__(self, registry: BackendRegistry, timeout: float, max_age: float) -> None:
        self.registry = registry
        self.timeout = timeout
        self.max_age = max_age
        self._reports: dict[str, HealthReport] = {}
        self._checked_at = -float("inf")
        self._round: asyncio.Task[dict[str, HealthReport]] | None = None

    async def reports(self) -> dict[str, HealthReport]:
        """A report for every backend, by name, in settings order."""
        if time.monotonic() - self._checked_at < self.max_age:
            return self._reports
        if self._round is None:
            self._round = asyncio.create_task(self._check_all())
            self._round.add_done_callback(self._round_done)
        # Shielded: a probe that gives up must not cancel the round other callers wait on.
        return await asyncio.shield(self._round)

    def _round_done(self, task: asyncio.Task[dict[str, HealthReport]]) -> None:
        self._round = None
        if not task.cancelled() and task.exception() is None:
            self._reports = task.result()
            self._checked_at = time.monotonic()

    async def _check_all(self) -> dict[str, HealthReport]:
        names = list(self.registry.backends)
        reports = await asyncio.gather(*(self._check(name) for name in names))
        return dict(zip(names, reports, strict=True))

    async def _check(self, name: str) -> HealthReport:
        backend = self.registry.backends[name]
        checked_at = datetime.now(UTC)
        started = time.perf_counter()
        if name in self.registry.start_errors:
            error: str | None = "failed to start (see the server log)"
        else:
            error = await self._run_check(backend)
        latency_ms = round((time.perf_counter() - started) * 1000, 1)
        return HealthReport(ok=error is None, checked_at=checked_at, latency_ms=latency_ms, error=error)

    async def _run_check(self, backend: StorageBackend) -> str | None:
        """None when healthy, else why not, in words safe to show an admin."""
        try:
            async with asyncio.timeout(self.timeout):
                health = await backend.health()
        except TimeoutError:
            return f"health check timed out after {self.timeout:g} s"
        except Exception as exc:
            # The exception's text may carry URLs or credentials: log it, show its type.
            logger.warning("backend %r (%s): health check raised %r", backend.name, backend.kind, exc)
            return f"health check failed: {type(exc).__name__}"
        if health.ok:
            return None
        return health.error or "unhealthy"
