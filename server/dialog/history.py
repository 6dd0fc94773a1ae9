"""Short-term conversation history per session (SQLAlchemy; SQLite WAL by default).

Each utterance is its own committed row, so a crash (kill -9) at any point
loses at most the turn in flight and never corrupts earlier ones. An
interrupted assistant message is stored with what the user actually heard;
that is what the model sees next time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import Boolean, DateTime, Index, Integer, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from server.events.outbox import OutboxEvent
from server.llm.base import ChatMessage
from server.storage.db import Base, Database


class DialogTurnRow(Base):
    __tablename__ = "dialog_turns"
    __table_args__ = (Index("ix_dialog_turns_session_index", "session_id", "turn_index", "role", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(String(64), nullable=False)
    turn_index: Mapped[int] = mapped_column(Integer, nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)  # user | assistant
    text: Mapped[str] = mapped_column(Text, nullable=False)
    heard_text: Mapped[str] = mapped_column(Text, nullable=False, default="")
    interrupted: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False,
                                                 default=lambda: datetime.now(UTC))


class HistoryStore:
    """Write-through store: rows are the truth, a per-session cache keeps reads off the hot path.

    The first turn of a session in this process reads the database; later
    turns build the model's context from memory, so no disk round trip sits
    between the user's words and the first token.
    """

    def __init__(self, db: Database, max_context_turns: int = 12) -> None:
        self.db = db
        self.max_context_turns = max_context_turns
        self._cache: dict[str, list[ChatMessage]] = {}

    async def count_turns(self, session_id: str) -> int:
        def query(s: Session) -> int:
            stmt = select(func.max(DialogTurnRow.turn_index)).where(DialogTurnRow.session_id == session_id)
            return int(s.execute(stmt).scalar() or 0)

        return await self.db.run(query)

    async def context(self, session_id: str) -> list[ChatMessage]:
        """The last turns as chat messages, oldest first."""
        if session_id not in self._cache:
            self._cache[session_id] = await self._load(session_id)
        return list(self._cache[session_id][-self.max_context_turns * 2:])

    async def _load(self, session_id: str) -> list[ChatMessage]:
        limit = self.max_context_turns * 2

        def query(s: Session) -> list[DialogTurnRow]:
            stmt = (select(DialogTurnRow).where(DialogTurnRow.session_id == session_id)
                    .order_by(DialogTurnRow.turn_index.desc(), DialogTurnRow.id.desc()).limit(limit))
            return list(s.scalars(stmt))

        rows = list(reversed(await self.db.run(query)))
        if rows and rows[0].role == "assistant":
            rows = rows[1:]  # never start the context with an answer to a missing question
        return [ChatMessage("user", r.text) if r.role == "user" else
                ChatMessage("assistant", (r.heard_text + " …") if r.interrupted else r.text) for r in rows]

    async def add_user(self, session_id: str, turn_index: int, text: str) -> None:
        self._remember(session_id, ChatMessage("user", text))
        await self._add(DialogTurnRow(session_id=session_id, turn_index=turn_index, role="user", text=text))

    async def add_assistant(self, session_id: str, turn_index: int, text: str, interrupted: bool,
                            heard_text: str, events: Sequence[OutboxEvent] = ()) -> None:
        """Store the answer and its outbox events in one transaction."""
        self._remember(session_id, ChatMessage("assistant", (heard_text + " …") if interrupted else text))
        row = DialogTurnRow(session_id=session_id, turn_index=turn_index, role="assistant", text=text,
                            interrupted=interrupted, heard_text=heard_text)
        await self.db.run(lambda s: s.add_all([row, *events]))

    def _remember(self, session_id: str, message: ChatMessage) -> None:
        cached = self._cache.get(session_id)
        if cached is not None:
            cached.append(message)
            del cached[: -self.max_context_turns * 4]

    async def _add(self, row: DialogTurnRow) -> None:
        await self.db.run(lambda s: s.add(row))
