"""The per-worker cap on concurrent streams (``[server] max_streams``)."""

from __future__ import annotations

from mediasrv.errors import BackendUnavailable


class StreamLimiter:
    """Counts streams in flight; refuses a new one at once when full, never queues it."""

    retry_after = 1  # seconds, sent in Retry-After with the 503

    def __init__(self, max_streams: int) -> None:
        self.max_streams = max_streams
        self.active = 0

    def acquire(self) -> StreamSlot:
        """A slot for one stream, or BackendUnavailable (503) when all are taken."""
        if self.active >= self.max_streams:
            raise BackendUnavailable("too many concurrent streams", retry_after=self.retry_after)
        self.active += 1
        return StreamSlot(self)


class StreamSlot:
    """One taken slot; ``release`` is idempotent so every exit path may call it."""

    __slots__ = ("_limiter",)

    def __init__(self, limiter: StreamLimiter) -> None:
        self._limiter: StreamLimiter | None = limiter

    def release(self) -> None:
        if self._limiter is not None:
            self._limiter.active -= 1
            self._limiter = None
