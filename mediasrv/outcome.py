"""How a response body ended: decided by the response, recorded by the observer."""

from __future__ import annotations


class Outcome:
    """How a response body ended."""

    COMPLETE = "complete"
    CLIENT_DISCONNECTED = "client_disconnected"
    CLIENT_STALLED = "client_stalled"
    SOURCE_FAILED = "source_failed"
    CANCELLED = "cancelled"  # cut at shutdown, after shutdown_timeout
