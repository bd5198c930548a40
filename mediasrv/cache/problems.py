"""Problems of the cache tiers, logged at most once per interval each."""

from __future__ import annotations

import logging
import time

logger = logging.getLogger("mediasrv")


class ProblemLog:
    """One WARNING line per kind of problem per ``interval`` seconds, counting the ones between.

    A cache that cannot write or reach its store fails on every request; serving goes on
    (it renders instead), and the log says so without a line per request.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._logged_at: dict[str, float] = {}
        self._quiet: dict[str, int] = {}

    def report(self, where: str, problem: str) -> None:
        """Note a problem at ``where`` (a tier and operation, such as ``disk put``)."""
        now = time.monotonic()
        logged_at = self._logged_at.get(where)
        if logged_at is not None and now - logged_at < self.interval:
            self._quiet[where] = self._quiet.get(where, 0) + 1
            return
        quiet = self._quiet.pop(where, 0)
        more = f" ({quiet} more since the last report)" if quiet else ""
        logger.warning("result cache: %s failed, serving without it: %s%s", where, problem, more)
        self._logged_at[where] = now
