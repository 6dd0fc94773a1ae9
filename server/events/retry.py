"""Retrying a loop step that fails for a while (database or Redis down): bounded backoff, one log per streak.

The relay and the stream consumers must outlive any outage, so their loops
never end on an error; but an outage of an hour must not write a warning
per second either. A `FailureStreak` is the shared policy: the first failure
of a streak is logged as a warning (with the error), later ones at debug, the
recovery once at info; the wait grows exponentially (with jitter, so several
cores do not retry in lockstep) up to a bound.
"""

from __future__ import annotations

import logging
import random
import time


class FailureStreak:
    """Consecutive failures of one loop, and how long to wait before the next try."""

    def __init__(self, what: str, log: logging.Logger, base_s: float = 0.5, max_s: float = 30.0) -> None:
        if base_s < 0 or max_s < base_s:
            raise ValueError("need 0 <= base_s <= max_s")
        self.what, self.log = what, log
        self.base_s, self.max_s = base_s, max_s
        self.failures = 0  # in the current streak; 0 while healthy
        self.total_failures = 0
        self._since = 0.0

    @property
    def failing(self) -> bool:
        return self.failures > 0

    def failed(self, exc: BaseException) -> float:
        """Record a failure; returns the seconds to wait before retrying."""
        if self.failures == 0:
            self._since = time.monotonic()
            self.log.warning("%s failing, retrying with backoff: %s", self.what, exc)
        else:
            self.log.debug("%s still failing (%d): %s", self.what, self.failures + 1, exc)
        self.failures += 1
        self.total_failures += 1
        delay = min(self.max_s, self.base_s * 2.0 ** min(self.failures - 1, 30))
        return delay * random.uniform(0.5, 1.0)

    def succeeded(self) -> None:
        """Record a success; ends (and reports) a streak if one was running."""
        if self.failures:
            self.log.info("%s recovered after %d failures in %.1f s", self.what, self.failures,
                          time.monotonic() - self._since)
            self.failures = 0
