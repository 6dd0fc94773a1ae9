"""Per-connection limits on what a client may send: message rate and frame size.

A token bucket: `rate_per_s` messages per second on average, bursts up to
`burst`. A message over the limit is refused with an error (the client is
told which limit); a client with more than `strikes_to_close` refused
messages inside one `STRIKE_WINDOW_S` window is disconnected.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

STRIKE_WINDOW_S = 10.0


@dataclass(frozen=True)
class Limits:
    max_frame_bytes: int = 256 * 1024  # larger frames get an error and are dropped
    hard_frame_bytes: int = 1024 * 1024  # larger frames close the connection (1009), unread
    rate_per_s: float = 200.0
    burst: int = 400
    strikes_to_close: int = 200
    max_queue_frames: int = 1024
    max_queue_bytes: int = 8 * 1024 * 1024
    hello_timeout_s: float = 10.0


class RateLimiter:
    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._tokens = float(burst)
        self._stamp = time.monotonic()
        self._window_start = self._stamp
        self.strikes = 0

    def allow(self) -> bool:
        """Take one token; False (and a strike in the current window) when the bucket is empty."""
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate_per_s)
        self._stamp = now
        if now - self._window_start > STRIKE_WINDOW_S:
            self._window_start, self.strikes = now, 0
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        self.strikes += 1
        return False
