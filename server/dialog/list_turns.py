"""DialogService.ListTurns: a request checked, a page read (history_page.py), the answer built.

Kept apart from the Converse servicer: a read of stored rows shares nothing
with the live stream but the database. Every refusal is INVALID_ARGUMENT
with the field it is about, raised as StatusError (the servicer's
`status_errors` turns it into the status).
"""

from __future__ import annotations

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from server.dialog.history_page import StoredTurn, decode_page_token, page_size, read_turns
from server.rpc.errors import StatusError
from server.storage.db import Database

MAX_SESSION_ID_CHARS = 64  # dialog_turns.session_id is String(64)


async def list_turns(db: Database, request: pb.ListTurnsRequest) -> pb.ListTurnsResponse:
    session_id = request.session_id
    if not session_id:
        raise _invalid("session_id is required: the session whose turns to list")
    if len(session_id) > MAX_SESSION_ID_CHARS:
        raise _invalid(f"session_id is longer than {MAX_SESSION_ID_CHARS} characters")
    try:
        size = page_size(request.page_size)
        before = decode_page_token(request.page_token, session_id) if request.page_token else None
    except ValueError as exc:  # PageTokenError included
        raise _invalid(str(exc)) from None
    page = await read_turns(db, session_id, size, before)
    return pb.ListTurnsResponse(turns=[_message(session_id, t) for t in page.turns],
                                next_page_token=page.next_page_token)


def _message(session_id: str, turn: StoredTurn) -> pb.StoredTurn:
    message = pb.StoredTurn(turn_id=f"{session_id}#{turn.turn_index}", turn_index=turn.turn_index,
                            user_text=turn.user_text, assistant_text=turn.assistant_text,
                            interrupted=turn.interrupted, heard_text=turn.heard_text, abandoned=turn.abandoned)
    if turn.created_at is not None:
        stamp = Timestamp()
        stamp.FromDatetime(turn.created_at)
        message.create_time.CopyFrom(stamp)
    return message


def _invalid(message: str) -> StatusError:
    return StatusError(grpc.StatusCode.INVALID_ARGUMENT, message)
