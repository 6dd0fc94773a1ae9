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
at once per connection, each with a deadline of READ_TIMEOUT_S.
Cancellation: closing the connection cancels its reads (TaskOwner), which
cancels their gRPC calls.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

import grpc

from peromesh.dialog.v1 import dialog_service_pb2 as dpb
from peromesh.dialog.v1 import dialog_service_pb2_grpc as dpb_grpc
from peromesh.gateway.v1 import envelope_pb2 as gw
from server.wire import envelopes as env

from .outbound import Outbound

ACTION = "history:list"
MAX_PAGE_SIZE = 50  # the gateway's cap (the RPC allows 100): one answer stays a modest frame
MAX_READS = 2
READ_TIMEOUT_S = 10.0
_DIGITS_MAX = 4


class HistoryReads:
    def __init__(self, stub: dpb_grpc.DialogServiceStub, metadata: tuple[tuple[str, str], ...],
                 out: Callable[[Outbound], None],
                 spawn: Callable[[Coroutine[Any, Any, None], str], object]) -> None:
        self._stub = stub
        self._metadata = metadata
        self._out = out
        self._spawn = spawn
        self._node_id = self._session_id = ""
        self._running = 0

    def configure(self, node_id: str, session_id: str) -> None:
        self._node_id, self._session_id = node_id, session_id

    @staticmethod
    def wants(envelope: gw.Envelope) -> bool:
        return (envelope.target_id in (env.MASTER, "") and envelope.HasField("request")
                and envelope.request.action_name == ACTION)

    def handle(self, envelope: gw.Envelope) -> None:
        """Check the request and start its read; the answer comes when the dialog has answered."""
        try:
            request = self._request(envelope.request.params)
        except ValueError as exc:
            self._error(envelope, "INVALID_ARGUMENT", str(exc))
            return
        if self._running >= MAX_READS:
            self._error(envelope, "RESOURCE_EXHAUSTED", f"{MAX_READS} history reads are already running; "
                                                        "wait for their answers")
            return
        self._running += 1
        self._spawn(self._read(envelope, request), "history-read")

    def _request(self, params: Any) -> dpb.ListTurnsRequest:
        raw = params.get("page_size", "").strip()
        if raw and not (raw.isdigit() and len(raw) <= _DIGITS_MAX and 1 <= int(raw) <= MAX_PAGE_SIZE):
            raise ValueError(f"{ACTION}: page_size must be a whole number 1..{MAX_PAGE_SIZE} (got {raw[:16]!r})")
        return dpb.ListTurnsRequest(session_id=self._session_id, page_size=int(raw) if raw else 0,
                                    page_token=params.get("page_token", ""))

    async def _read(self, envelope: gw.Envelope, request: dpb.ListTurnsRequest) -> None:
        try:
            response = await self._stub.ListTurns(request, metadata=self._metadata, timeout=READ_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            self._error(envelope, exc.code().name, f"{ACTION}: {exc.details() or exc.code().name}")
            return
        finally:
            self._running -= 1
        answer = env.ok(envelope, json.dumps(page_data(response), ensure_ascii=False))
        self._out(Outbound(answer, size=answer.ByteSize()))

    def _error(self, envelope: gw.Envelope, code: str, message: str) -> None:
        self._out(Outbound(env.error(envelope.id, self._node_id, code, message, trace_id=envelope.trace_id)))


def page_data(response: dpb.ListTurnsResponse) -> dict[str, Any]:
    """A ListTurnsResponse as the JSON the gateway answers with (every field present)."""
    return {"turns": [turn_data(t) for t in response.turns], "next_page_token": response.next_page_token}


def turn_data(turn: dpb.StoredTurn) -> dict[str, Any]:
    when = turn.create_time.ToJsonString() if turn.HasField("create_time") else ""
    return {"turn_id": turn.turn_id, "turn_index": turn.turn_index, "user_text": turn.user_text,
            "assistant_text": turn.assistant_text, "interrupted": turn.interrupted,
            "heard_text": turn.heard_text, "abandoned": turn.abandoned, "create_time": when}
