"""The event path's settings: one typed dataclass, one default per setting (its flag: server/app/settings.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class EventsConfig:
    """How the event path keeps going and stays bounded.

    outbox_retention: delivered outbox rows are deleted once this old (undelivered ones never are).
    prune_interval_s: how often the relay prunes.
    trim_interval_s: how often Redis streams are trimmed below every group's acknowledged position.
    dedupe_ttl: how long a consumer remembers an event id it handled (redeliveries within it count once).
    dedupe_capacity: event ids the in-process (embedded) dedupe store keeps, newest first.
    retry_base_s, retry_max_s: the relay's and consumers' backoff while the database or Redis is down.
    """

    outbox_retention: timedelta = timedelta(days=7)
    prune_interval_s: float = 3600.0
    trim_interval_s: float = 30.0
    dedupe_ttl: timedelta = timedelta(days=7)
    dedupe_capacity: int = 10_000
    retry_base_s: float = 0.5
    retry_max_s: float = 30.0

    def __post_init__(self) -> None:
        if self.outbox_retention < timedelta(0) or self.dedupe_ttl <= timedelta(0) or self.dedupe_capacity < 1:
            raise ValueError("outbox retention must be >= 0, the dedupe TTL and capacity > 0")
        if min(self.prune_interval_s, self.trim_interval_s) <= 0:
            raise ValueError("prune and trim intervals must be positive")
