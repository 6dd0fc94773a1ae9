"""The outbox: events written in the same transaction as the state they describe.

A finished turn and its events (long-term-memory write, analytics) commit
together, so a crash can never keep one and lose the other; the relay moves
committed events to the bus afterwards, at least once.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.storage.db import Base
from server.storage.utc import UtcDateTime

LTM_STREAM = "events.ltm"
ANALYTICS_STREAM = "events.analytics"


def _now() -> datetime:
    return datetime.now(UTC)


class OutboxEvent(Base):
    __tablename__ = "outbox_events"
    __table_args__ = (Index("ix_outbox_pending", "delivered_at", "next_attempt_at", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    stream: Mapped[str] = mapped_column(String(64), nullable=False)
    event_type: Mapped[str] = mapped_column(String(64), nullable=False)
    correlation_id: Mapped[str] = mapped_column(String(160), nullable=False)  # session#turn
    payload: Mapped[str] = mapped_column(Text, nullable=False)  # JSON object
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=_now)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False, default=_now)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_error: Mapped[str] = mapped_column(Text, nullable=False, default="")

    def fields(self) -> dict[str, str]:
        """The flat string map that goes on the bus (Redis stream entries are flat)."""
        return {"outbox_id": str(self.id), "type": self.event_type, "correlation_id": self.correlation_id,
                "payload": self.payload, "created_at": self.created_at.isoformat()}


def event(stream: str, event_type: str, correlation_id: str, payload: dict[str, Any]) -> OutboxEvent:
    return OutboxEvent(stream=stream, event_type=event_type, correlation_id=correlation_id,
                       payload=json.dumps(payload, ensure_ascii=False), created_at=_now(), next_attempt_at=_now(),
                       attempts=0, last_error="")
