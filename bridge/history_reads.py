"""`history:list`: a device pages back through its own conversation (DialogService.ListTurns).

The bridge answers this action itself, not the hub: the history belongs to
the dialog, and the session is the one the hub gave this connection in its
welcome, so a device can read only its own conversation (no session id is
taken from the client).

Request params (all optional): `page_size` (1..50, default 20), `page_token`
(the `next_page_token` of the previous answer). The answer's data is JSON:
`{"turns": [{turn_id, turn_index, user_text, assistant_text, interrupted,
heard_text, abandoned, create_time}], "next_page_token": ""}` with the turns
oldest first and every page older than the one before; `create_time` is ISO
8601 UTC. Refusals carry the dialog's gRPC code name (INVALID_ARGUMENT for a
bad page token) or RESOURCE_EXHAUSTED.

Each read runs as a task of the connection (never in the client reader, so
a slow database cannot hold up an interrupt behind it), at most MAX_READS
at once per connection, each with a deadline of READ_TIMEOUT_S
(bridge/master_reads.py). Cancellation: closing the connection cancels its reads (TaskOwner), which
cancels their gRPC calls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from peromesh.dialog.v1 import dialog_service_pb2 as dpb
from peromesh.dialog.v1 import dialog_service_pb2_grpc as dpb_grpc
from peromesh.gateway.v1 import envelope_pb2 as gw

from .master_reads import MasterRead, Spawn
from .outbound import Outbound

ACTION = "history:list"
MAX_PAGE_SIZE = 50  # the gateway's cap (the RPC allows 100): one answer stays a modest frame
MAX_READS = 2
READ_TIMEOUT_S = 10.0
_DIGITS_MAX = 4


class HistoryReads(MasterRead[dpb.ListTurnsRequest, dpb.ListTurnsResponse]):
    ACTION = ACTION
    MAX_READS = MAX_READS
    TASK_NAME = "history-read"
    BUSY = f"{MAX_READS} history reads are already running; wait for their answers"

    def __init__(self, stub: dpb_grpc.DialogServiceStub, metadata: tuple[tuple[str, str], ...],
                 out: Callable[[Outbound], None], spawn: Spawn) -> None:
        super().__init__(metadata, out, spawn)
        self._stub = stub
        self._node_id = self._session_id = ""

    def configure(self, node_id: str, session_id: str) -> None:
        self._node_id, self._session_id = node_id, session_id

    def _request(self, params: Any) -> dpb.ListTurnsRequest:
        raw = params.get("page_size", "").strip()
        if raw and not (raw.isdigit() and len(raw) <= _DIGITS_MAX and 1 <= int(raw) <= MAX_PAGE_SIZE):
            raise ValueError(f"{ACTION}: page_size must be a whole number 1..{MAX_PAGE_SIZE} (got {raw[:16]!r})")
        return dpb.ListTurnsRequest(session_id=self._session_id, page_size=int(raw) if raw else 0,
                                    page_token=params.get("page_token", ""))

    async def _call(self, request: dpb.ListTurnsRequest) -> dpb.ListTurnsResponse:
        response: dpb.ListTurnsResponse = await self._stub.ListTurns(request, metadata=self._metadata,
                                                                     timeout=READ_TIMEOUT_S)
        return response

    def _data(self, response: dpb.ListTurnsResponse) -> dict[str, Any]:
        return page_data(response)

    def _error_target(self, envelope: gw.Envelope) -> str:
        return self._node_id


def page_data(response: dpb.ListTurnsResponse) -> dict[str, Any]:
    """A ListTurnsResponse as the JSON the gateway answers with (every field present)."""
    return {"turns": [turn_data(t) for t in response.turns], "next_page_token": response.next_page_token}


def turn_data(turn: dpb.StoredTurn) -> dict[str, Any]:
    when = turn.create_time.ToJsonString() if turn.HasField("create_time") else ""
    return {"turn_id": turn.turn_id, "turn_index": turn.turn_index, "user_text": turn.user_text,
            "assistant_text": turn.assistant_text, "interrupted": turn.interrupted,
            "heard_text": turn.heard_text, "abandoned": turn.abandoned, "create_time": when}
