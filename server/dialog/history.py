"""Short-term conversation history per session (SQLAlchemy; SQLite WAL by default).

Each utterance is its own committed row, so a crash (kill -9) at any point
loses at most the turn in flight and never corrupts earlier ones. An
interrupted assistant message is stored with what the user actually heard;
that is what the model sees next time.

An answer is committed before its `assistant_final` goes out (`add_assistant`),
and what the user turns out to have heard is corrected on the same row later
(`correct_assistant`). A user row whose answer never came (the process died
mid-turn, or the turn failed) is marked `abandoned`: by the failed turn
itself, or when a later start of the core opens the session (`open_session`).
Abandoned questions stay on disk but are not fed to the model, and
`answered_turns` counts only turns that have an answer.

Turn numbers: one process numbers its sessions itself (server/dialog/turn_counter.py). When
other processes write the same sessions (`shared`: several cores on one database, a cluster),
numbers are allocated in the database instead (`allocate_turn`: one atomic upsert of the
session's counter row in `dialog_turn_numbers`), so two cores answering the same session at
once never use one number twice, and a cache that missed another core's turns is reloaded.

Bounded: the context cache keeps at most `max_sessions` sessions (least
recently used out; they reload from the database), each at most
4 × `max_context_turns` messages.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    Engine,
    Index,
    Integer,
    String,
    Text,
    case,
    false,
    func,
    inspect,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, aliased, mapped_column

from server.events.outbox import OutboxEvent
from server.llm.base import ChatMessage
from server.storage.db import Base, Database
from server.storage.utc import UtcDateTime


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
    # A user row whose answer never came (see the module docstring).
    abandoned: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False,
                                                 default=lambda: datetime.now(UTC))


class TurnNumberRow(Base):
    """The last turn number allocated to a session (only where numbers are allocated in the database)."""

    __tablename__ = "dialog_turn_numbers"

    session_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_index: Mapped[int] = mapped_column(Integer, nullable=False)


def upgrade_schema(engine: Engine) -> None:
    """Add the columns a table created by an older version lacks (create_all adds only tables)."""
    columns = {c["name"] for c in inspect(engine).get_columns(DialogTurnRow.__tablename__)}
    if "abandoned" not in columns:
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE dialog_turns ADD COLUMN abandoned BOOLEAN NOT NULL DEFAULT false"))


@dataclass
class _Cached:
    """One row as the cache keeps it (the model sees `message`)."""

    turn_index: int
    role: str
    text: str
    interrupted: bool = False
    heard_text: str = ""

    @property
    def message(self) -> ChatMessage:
        if self.role == "user":
            return ChatMessage("user", self.text)
        return ChatMessage("assistant", (self.heard_text + " …") if self.interrupted else self.text)


class HistoryStore:
    """Write-through store: rows are the truth, a per-session cache keeps reads off the hot path.

    The first turn of a session in this process reads the database; later
    turns build the model's context from memory, so no disk round trip sits
    between the user's words and the first token.
    """

    def __init__(self, db: Database, max_context_turns: int = 12, max_sessions: int = 256,
                 shared: bool = False) -> None:
        self.db = db
        self.shared = shared  # other processes write these sessions too: numbers come from `allocate_turn`
        self.max_context_turns = max_context_turns
        self.max_sessions = max_sessions
        self.opened_at = datetime.now(UTC)  # rows older than this were written by an earlier life of the core
        self._cache: OrderedDict[str, list[_Cached]] = OrderedDict()

    async def open_session(self, session_id: str) -> int:
        """Mark questions an earlier life of the core never answered as abandoned; return `answered_turns`.

        Only rows created before this store was opened are touched: a turn of
        this core may be between its question and its answer right now."""
        def work(s: Session) -> int:
            answer = aliased(DialogTurnRow)
            unanswered = ~select(answer.id).where(
                answer.session_id == session_id, answer.turn_index == DialogTurnRow.turn_index,
                answer.role == "assistant").exists()
            marked = s.execute(update(DialogTurnRow).where(
                DialogTurnRow.session_id == session_id, DialogTurnRow.role == "user",
                DialogTurnRow.abandoned == false(), DialogTurnRow.created_at < self.opened_at, unanswered,
            ).values(abandoned=True).execution_options(synchronize_session=False))
            return int(getattr(marked, "rowcount", 0) or 0)

        if await self.db.run(work):
            self._cache.pop(session_id, None)
        return await self.answered_turns(session_id)

    async def answered_turns(self, session_id: str) -> int:
        """Turns with an answer in history (`session_started.history_turns`)."""
        def query(s: Session) -> int:
            stmt = select(func.count(DialogTurnRow.id)).where(DialogTurnRow.session_id == session_id,
                                                              DialogTurnRow.role == "assistant")
            return int(s.execute(stmt).scalar() or 0)

        return await self.db.run(query)

    async def last_turn_index(self, session_id: str) -> int:
        """The highest turn number used so far, abandoned turns included (numbers are never reused)."""
        def query(s: Session) -> int:
            stmt = select(func.max(DialogTurnRow.turn_index)).where(DialogTurnRow.session_id == session_id)
            return int(s.execute(stmt).scalar() or 0)

        return await self.db.run(query)

    async def allocate_turn(self, session_id: str) -> int:
        """The session's next turn number, allocated in the database (atomic across processes).

        One upsert: a session's first allocation starts after the highest number its rows use
        (sessions numbered before by one process alone); later ones add one to the counter row,
        which the database locks, so concurrent allocations get distinct consecutive numbers."""
        insert = postgresql.insert if self.db.engine.dialect.name == "postgresql" else sqlite.insert
        stored = select(func.coalesce(func.max(DialogTurnRow.turn_index), 0) + 1).where(
            DialogTurnRow.session_id == session_id).scalar_subquery()
        proposed = insert(TurnNumberRow).values(session_id=session_id, last_index=stored)
        last = TurnNumberRow.last_index
        floor = proposed.excluded.last_index - 1  # never below what the rows use
        stmt = proposed.on_conflict_do_update(
            index_elements=[TurnNumberRow.session_id],
            set_={"last_index": case((last < floor, floor), else_=last) + 1},
        ).returning(TurnNumberRow.last_index)
        return await self.db.run(lambda s: int(s.execute(stmt).scalar_one()))

    def forget(self, session_id: str) -> None:
        """Drop the session's cached context (another process wrote turns): the next read reloads it."""
        self._cache.pop(session_id, None)

    async def context(self, session_id: str) -> list[ChatMessage]:
        """The last turns as chat messages, oldest first."""
        cached = self._cache.get(session_id)
        if cached is None:
            cached = await self._load(session_id)
            self._cache[session_id] = cached
            while len(self._cache) > self.max_sessions:
                self._cache.popitem(last=False)
        self._cache.move_to_end(session_id)
        return [c.message for c in cached[-self.max_context_turns * 2:]]

    async def stored(self, session_id: str) -> list[ChatMessage]:
        """The context as the database has it (what a fresh process would feed the model)."""
        return [c.message for c in await self._load(session_id)]

    async def last_answer(self, session_id: str) -> tuple[str, bool, str] | None:
        """The session's latest answer as (text, interrupted, heard_text); None before the first.

        Interrupted answers keep all their text: what was not heard is the remainder that
        "continue" speaks (server/dialog/resume.py)."""
        await self.context(session_id)  # the cache holds the latest rows from here on
        answers = [c for c in self._cache.get(session_id, ()) if c.role == "assistant"]
        return (answers[-1].text, answers[-1].interrupted, answers[-1].heard_text) if answers else None

    async def _load(self, session_id: str) -> list[_Cached]:
        limit = self.max_context_turns * 2

        def query(s: Session) -> list[DialogTurnRow]:
            stmt = (select(DialogTurnRow)
                    .where(DialogTurnRow.session_id == session_id,
                           or_(DialogTurnRow.role != "user", DialogTurnRow.abandoned == false()))
                    .order_by(DialogTurnRow.turn_index.desc(), DialogTurnRow.id.desc()).limit(limit))
            return list(s.scalars(stmt))

        rows = list(reversed(await self.db.run(query)))
        if rows and rows[0].role == "assistant":
            rows = rows[1:]  # never start the context with an answer to a missing question
        return [_Cached(r.turn_index, r.role, r.text, r.interrupted, r.heard_text) for r in rows]

    async def add_user(self, session_id: str, turn_index: int, text: str) -> None:
        self._remember(session_id, _Cached(turn_index, "user", text))
        row = DialogTurnRow(session_id=session_id, turn_index=turn_index, role="user", text=text)
        await self.db.run(lambda s: s.add(row))

    async def add_assistant(self, session_id: str, turn_index: int, text: str, interrupted: bool,
                            heard_text: str, events: Sequence[OutboxEvent] = ()) -> None:
        """Store the answer and its outbox events in one transaction."""
        self._remember(session_id, _Cached(turn_index, "assistant", text, interrupted, heard_text))
        row = DialogTurnRow(session_id=session_id, turn_index=turn_index, role="assistant", text=text,
                            interrupted=interrupted, heard_text=heard_text)
        await self.db.run(lambda s: s.add_all([row, *events]))

    async def correct_assistant(self, session_id: str, turn_index: int, interrupted: bool, heard_text: str,
                                events: Sequence[OutboxEvent] = ()) -> None:
        """What the user really heard of a stored answer (and the turn's closing events), in one transaction."""
        def work(s: Session) -> None:
            s.execute(update(DialogTurnRow).where(
                DialogTurnRow.session_id == session_id, DialogTurnRow.turn_index == turn_index,
                DialogTurnRow.role == "assistant").values(interrupted=interrupted, heard_text=heard_text)
                .execution_options(synchronize_session=False))
            s.add_all(list(events))

        await self.db.run(work)
        for entry in self._cache.get(session_id, ()):
            if entry.turn_index == turn_index and entry.role == "assistant":
                entry.interrupted, entry.heard_text = interrupted, heard_text

    async def abandon(self, session_id: str, turn_index: int) -> None:
        """This turn's question will get no answer: keep it out of the model's context."""
        self._cache.pop(session_id, None)  # reloaded without it
        await self.db.run(lambda s: s.execute(update(DialogTurnRow).where(
            DialogTurnRow.session_id == session_id, DialogTurnRow.turn_index == turn_index,
            DialogTurnRow.role == "user").values(abandoned=True).execution_options(synchronize_session=False)))

    def _remember(self, session_id: str, entry: _Cached) -> None:
        cached = self._cache.get(session_id)
        if cached is not None:
            cached.append(entry)
            del cached[: -self.max_context_turns * 4]
