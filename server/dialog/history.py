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

Abandoning in a cluster (`shared`): a question another live core is answering right now must
not be marked. Each store is one life of a core (`life`, a random id): it writes its id on the
questions it stores (`writer`) and keeps a row in `dialog_core_lives` fresh (`seen_at`, every
`LIFE_REFRESH_S`) while any of its questions waits for an answer, the first refresh committing
with the question itself. Opening a session abandons only questions whose writer is another
life not seen for `LIFE_EXPIRY_S` (dead: a kill -9 stops the refreshes), or, for questions
without a writer (a single process, an older version), the earlier-life rule by time. Cores'
clocks must agree within that expiry (NTP does far better).

Round trips: the turn's writes go through `Database.grouped` (group commit: the writes of
concurrent turns, and the outbox relay's, share transactions); the completion writes only what
changed (an answer heard in full is not updated again, only its closing events are added).

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

import asyncio
import contextlib
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    Boolean,
    Engine,
    Index,
    Integer,
    String,
    Text,
    and_,
    bindparam,
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
from sqlalchemy.sql.dml import ReturningInsert
from sqlalchemy.sql.elements import ColumnElement

from server.events.outbox import OutboxEvent
from server.llm.base import ChatMessage
from server.storage.db import Base, Database
from server.storage.utc import UtcDateTime

LIFE_REFRESH_S = 5.0  # how often a core with unanswered questions says it is alive
LIFE_EXPIRY_S = 30.0  # a life not seen for this long is dead: its unanswered questions are abandoned
MAX_UNANSWERED_S = 900.0  # a question of ours still unanswered after this is no longer kept alive


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
    # The life of the core that stored a question (`HistoryStore.life`); None: one process alone, or older rows.
    writer: Mapped[str | None] = mapped_column(String(32), nullable=True)


class CoreLifeRow(Base):
    """A core's life that stores questions in a shared history, and when it last said it was alive."""

    __tablename__ = "dialog_core_lives"

    life_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


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
    if "writer" not in columns:
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE dialog_turns ADD COLUMN writer VARCHAR(32)"))


def _insert(db: Database) -> Callable[[type[Base]], postgresql.Insert | sqlite.Insert]:
    """INSERT … ON CONFLICT for the database's dialect (PostgreSQL and SQLite spell it alike)."""
    return postgresql.insert if db.engine.dialect.name == "postgresql" else sqlite.insert


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
        self.life = uuid.uuid4().hex  # this life's id on the questions it stores (shared history only)
        self._cache: OrderedDict[str, list[_Cached]] = OrderedDict()
        # Our questions not yet answered (session, turn) → monotonic time stored; bounded by MAX_UNANSWERED_S.
        self._unanswered: dict[tuple[str, int], float] = {}
        self._life_seen = float("-inf")  # monotonic time of the last committed refresh of our life row
        self._keeper: asyncio.Task[None] | None = None
        self._answered_all = asyncio.Event()
        self._allocate = _allocation(db)  # built once: the turn's hottest statement

    async def open_session(self, session_id: str) -> int:
        """Mark questions a dead life of a core never answered as abandoned; return `answered_turns`.

        One transaction. A question another live core (or a turn of ours) is answering right
        now is never touched: see the module docstring for how lives are told apart."""
        dead = self._dead_writer()

        def work(s: Session) -> tuple[int, int]:
            answer = aliased(DialogTurnRow)
            unanswered = ~select(answer.id).where(
                answer.session_id == session_id, answer.turn_index == DialogTurnRow.turn_index,
                answer.role == "assistant").exists()
            marked = s.execute(update(DialogTurnRow).where(
                DialogTurnRow.session_id == session_id, DialogTurnRow.role == "user",
                DialogTurnRow.abandoned == false(), dead, unanswered,
            ).values(abandoned=True).execution_options(synchronize_session=False))
            return int(getattr(marked, "rowcount", 0) or 0), _answer_count(s, session_id)

        marked, answered = await self.db.run(work)
        if marked:
            self._cache.pop(session_id, None)
        return answered

    def _dead_writer(self) -> ColumnElement[bool]:
        """Which unanswered questions no live core is answering (see the module docstring)."""
        earlier = DialogTurnRow.created_at < self.opened_at
        if not self.shared:
            return earlier
        alive = select(CoreLifeRow.life_id).where(
            CoreLifeRow.seen_at >= datetime.now(UTC) - timedelta(seconds=LIFE_EXPIRY_S))
        return or_(and_(DialogTurnRow.writer.is_(None), earlier),
                   and_(DialogTurnRow.writer != self.life, DialogTurnRow.writer.not_in(alive)))

    async def answered_turns(self, session_id: str) -> int:
        """Turns with an answer in history (`session_started.history_turns`)."""
        return await self.db.run(lambda s: _answer_count(s, session_id))

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
        which the database locks, so concurrent allocations get distinct consecutive numbers.
        Group-committed: the lock is held until the group commits, never across an await."""
        stmt = self._allocate
        return await self.db.grouped(lambda s: int(s.execute(stmt, {"session": session_id}).scalar_one()))

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
        writer = self.life if self.shared else None
        # While questions wait the keeper refreshes every LIFE_REFRESH_S; a question only carries the
        # refresh after a quiet spell (then its transaction commits the life row with it).
        refresh = self.shared and time.monotonic() - self._life_seen > 2 * LIFE_REFRESH_S
        if self.shared:
            self._unanswered[(session_id, turn_index)] = time.monotonic()
            self._keep_alive()

        def work(s: Session) -> None:
            if refresh:  # our life row is fresh before any other core can see this question
                self._refresh_life(s)
            s.add(DialogTurnRow(session_id=session_id, turn_index=turn_index, role="user", text=text,
                                writer=writer))

        started = time.monotonic()
        await self.db.grouped(work)
        if refresh:
            self._life_seen = max(self._life_seen, started)

    async def add_assistant(self, session_id: str, turn_index: int, text: str, interrupted: bool,
                            heard_text: str, events: Sequence[OutboxEvent] = ()) -> None:
        """Store the answer and its outbox events in one transaction."""
        self._remember(session_id, _Cached(turn_index, "assistant", text, interrupted, heard_text))

        def work(s: Session) -> None:
            s.add_all([DialogTurnRow(session_id=session_id, turn_index=turn_index, role="assistant", text=text,
                                     interrupted=interrupted, heard_text=heard_text), *events])

        try:
            await self.db.grouped(work)
        finally:
            self._answered(session_id, turn_index)

    async def correct_assistant(self, session_id: str, turn_index: int, interrupted: bool, heard_text: str,
                                events: Sequence[OutboxEvent] = ()) -> None:
        """What the user really heard of a stored answer (and the turn's closing events), in one transaction.

        The row is only updated when it changes: an answer stored as heard in full and completed
        so costs the insert of its closing events alone (nothing at all without events)."""
        cached = next((c for c in self._cache.get(session_id, ())
                       if c.turn_index == turn_index and c.role == "assistant"), None)
        unchanged = cached is not None and (cached.interrupted, cached.heard_text) == (interrupted, heard_text)
        if unchanged and not events:
            return

        def work(s: Session) -> None:
            if not unchanged:
                s.execute(update(DialogTurnRow).where(
                    DialogTurnRow.session_id == session_id, DialogTurnRow.turn_index == turn_index,
                    DialogTurnRow.role == "assistant").values(interrupted=interrupted, heard_text=heard_text)
                    .execution_options(synchronize_session=False))
            s.add_all(list(events))

        await self.db.grouped(work)
        if cached is not None:
            cached.interrupted, cached.heard_text = interrupted, heard_text

    async def abandon(self, session_id: str, turn_index: int) -> None:
        """This turn's question will get no answer: keep it out of the model's context."""
        self._cache.pop(session_id, None)  # reloaded without it
        try:
            await self.db.grouped(lambda s: s.execute(update(DialogTurnRow).where(
                DialogTurnRow.session_id == session_id, DialogTurnRow.turn_index == turn_index,
                DialogTurnRow.role == "user").values(abandoned=True).execution_options(synchronize_session=False)))
        finally:
            self._answered(session_id, turn_index)

    # -- this life, kept fresh while its questions wait (shared history) ------
    def _refresh_life(self, s: Session) -> None:
        now = datetime.now(UTC)
        stmt = _insert(self.db)(CoreLifeRow).values(life_id=self.life, seen_at=now)
        s.execute(stmt.on_conflict_do_update(index_elements=[CoreLifeRow.life_id], set_={"seen_at": now}))

    def _answered(self, session_id: str, turn_index: int) -> None:
        self._unanswered.pop((session_id, turn_index), None)
        if not self._unanswered:
            self._answered_all.set()

    def _keep_alive(self) -> None:
        """Refresh our life row every LIFE_REFRESH_S while questions of ours wait; the task ends
        by itself once all are answered (or given up after MAX_UNANSWERED_S), so it needs no owner."""
        self._answered_all.clear()
        if self._keeper is None or self._keeper.done():
            self._keeper = asyncio.get_running_loop().create_task(self._keep_fresh(), name="history:life")

    async def _keep_fresh(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._answered_all.wait(), LIFE_REFRESH_S)
            given_up = time.monotonic() - MAX_UNANSWERED_S
            for key in [k for k, at in self._unanswered.items() if at < given_up]:
                self._answered(*key)
            if not self._unanswered:
                return
            started = time.monotonic()
            try:
                await self.db.grouped(self._refresh_life)
            except Exception:  # the database is away: the next refresh tries again
                continue
            self._life_seen = max(self._life_seen, started)

    def _remember(self, session_id: str, entry: _Cached) -> None:
        cached = self._cache.get(session_id)
        if cached is not None:
            cached.append(entry)
            del cached[: -self.max_context_turns * 4]


def _allocation(db: Database) -> ReturningInsert[int]:
    """The turn-number upsert for the `session` parameter (see `HistoryStore.allocate_turn`)."""
    session = bindparam("session", type_=String)
    stored = select(func.coalesce(func.max(DialogTurnRow.turn_index), 0) + 1).where(
        DialogTurnRow.session_id == session).scalar_subquery()
    proposed = _insert(db)(TurnNumberRow).values(session_id=session, last_index=stored)
    last = TurnNumberRow.last_index
    floor = proposed.excluded.last_index - 1  # never below what the rows use
    return proposed.on_conflict_do_update(
        index_elements=[TurnNumberRow.session_id],
        set_={"last_index": case((last < floor, floor), else_=last) + 1},
    ).returning(TurnNumberRow.last_index)


def _answer_count(s: Session, session_id: str) -> int:
    stmt = select(func.count(DialogTurnRow.id)).where(DialogTurnRow.session_id == session_id,
                                                      DialogTurnRow.role == "assistant")
    return int(s.execute(stmt).scalar() or 0)
