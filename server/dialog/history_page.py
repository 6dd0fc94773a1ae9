"""One page of a session's stored turns, newest page first (DialogService.ListTurns).

A turn is its rows in `dialog_turns` with one turn number: the user's row and
the assistant's row, either of which may be missing (an announcement has no
question; a turn in flight, or abandoned, has no answer). Abandoned questions
are listed too, marked: the user did say them, and a console that hid them
would show a conversation that never happened.

A page token names the oldest turn already returned, bound to its session:
urlsafe base64 of "<session_id>\\n<turn_index>". The next page holds the turns
before that one, so pages stay stable while the conversation goes on (new
turns never shift an older page). Tokens are opaque to clients; one that does
not decode, or names another session, is a `PageTokenError`.

Reads run in a worker thread (Database.run), never on the event loop, and a
page is at most MAX_PAGE_SIZE turns: two indexed queries, bounded rows.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.dialog.history import DialogTurnRow
from server.storage.db import Database

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_TOKEN_CHARS = 512  # a session id is at most 64 characters; anything longer is no token of ours


class PageTokenError(ValueError):
    """A page token that is malformed or belongs to another session."""


@dataclass(frozen=True)
class StoredTurn:
    """One turn as the history keeps it."""

    turn_index: int
    user_text: str = ""
    assistant_text: str = ""
    interrupted: bool = False
    heard_text: str = ""
    abandoned: bool = False
    created_at: datetime | None = None


@dataclass(frozen=True)
class TurnPage:
    """Turns oldest first, and the token for the older ones ("" when there are none)."""

    turns: list[StoredTurn]
    next_page_token: str


def page_size(requested: int) -> int:
    """The page size to use: 0 means DEFAULT_PAGE_SIZE, more than MAX_PAGE_SIZE is capped."""
    if requested < 0:
        raise ValueError(f"page_size must not be negative (got {requested})")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_page_token(session_id: str, before: int) -> str:
    return base64.urlsafe_b64encode(f"{session_id}\n{before}".encode()).decode().rstrip("=")


def decode_page_token(token: str, session_id: str) -> int:
    """The turn number a page token continues before; PageTokenError when it is not one of this session's."""
    if len(token) > MAX_TOKEN_CHARS:
        raise PageTokenError("page_token is not a token of ListTurns (too long)")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise PageTokenError("page_token is not a token of ListTurns (pass next_page_token as it was "
                             "returned)") from None
    owner, _, number = raw.rpartition("\n")
    if not number.isdigit() or not owner:
        raise PageTokenError("page_token is not a token of ListTurns (pass next_page_token as it was returned)")
    if owner != session_id:
        raise PageTokenError("page_token belongs to another session; start again without a page_token")
    return int(number)


async def read_turns(db: Database, session_id: str, size: int, before: int | None = None) -> TurnPage:
    """Up to `size` turns of `session_id` numbered below `before` (all, when None), oldest first."""
    def query(s: Session) -> tuple[list[DialogTurnRow], bool]:
        where = [DialogTurnRow.session_id == session_id]
        if before is not None:
            where.append(DialogTurnRow.turn_index < before)
        numbers = (select(DialogTurnRow.turn_index).where(*where).distinct()
                   .order_by(DialogTurnRow.turn_index.desc()).limit(size + 1))
        found = list(s.scalars(numbers))
        rows = s.scalars(select(DialogTurnRow).where(DialogTurnRow.session_id == session_id,
                                                     DialogTurnRow.turn_index.in_(found[:size])))
        return list(rows), len(found) > size

    rows, more = await db.run(query)
    turns = _group(rows)
    token = encode_page_token(session_id, turns[0].turn_index) if more and turns else ""
    return TurnPage(turns, token)


def _group(rows: list[DialogTurnRow]) -> list[StoredTurn]:
    by_turn: dict[int, dict[str, DialogTurnRow]] = {}
    for row in rows:
        by_turn.setdefault(row.turn_index, {})[row.role] = row
    return [_turn(index, parts) for index, parts in sorted(by_turn.items())]


def _turn(index: int, parts: dict[str, DialogTurnRow]) -> StoredTurn:
    user, answer = parts.get("user"), parts.get("assistant")
    first = min((r.created_at for r in parts.values()), default=None)
    return StoredTurn(
        turn_index=index, user_text=user.text if user else "",
        assistant_text=answer.text if answer else "",
        interrupted=bool(answer and answer.interrupted),
        heard_text=(answer.heard_text if answer.interrupted else answer.text) if answer else "",
        abandoned=bool(user and user.abandoned and answer is None),
        created_at=first)
