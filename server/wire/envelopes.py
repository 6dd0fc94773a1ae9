"""Builders for the Gateway envelopes the mesh and the bridge send (one place for ids and times)."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Mapping

from peromesh.gateway.v1 import envelope_pb2 as gw

MASTER = "master"
BROADCAST = "broadcast"
RESERVED_IDS = frozenset({MASTER, BROADCAST, ""})
PROTOCOL_VERSION = 1
STATUS_OK, STATUS_ERROR = 0, 1

_prefix = os.urandom(4).hex()
_counter = itertools.count(1)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def new_id() -> str:
    """A process-unique envelope id (cheap: a random prefix and a counter)."""
    return f"m{_prefix}-{next(_counter)}"


def action(target: str, name: str, params: Mapping[str, str] | None = None,
           source: str = MASTER, trace_id: str = "") -> gw.Envelope:
    """An ActionRequest envelope (commands and streamed events alike)."""
    return gw.Envelope(id=new_id(), source_id=source, target_id=target, timestamp=now_ms(),
                       trace_id=trace_id, request=gw.ActionRequest(action_name=name, params=params))


def ok(request: gw.Envelope, data: str = "") -> gw.Envelope:
    """A status-0 ActionResponse answering `request`."""
    return gw.Envelope(id=new_id(), source_id=MASTER, target_id=request.source_id, timestamp=now_ms(),
                       trace_id=request.trace_id,
                       response=gw.ActionResponse(request_id=request.id, status=STATUS_OK, data=data))


def error(request_id: str, target: str, code: str, message: str, trace_id: str = "") -> gw.Envelope:
    """A status-1 ActionResponse with a gRPC code name and a precise message."""
    return gw.Envelope(id=new_id(), source_id=MASTER, target_id=target, timestamp=now_ms(), trace_id=trace_id,
                       response=gw.ActionResponse(request_id=request_id, status=STATUS_ERROR,
                                                  error_msg=message, code=code))


def heartbeat(target: str, seq: int) -> gw.Envelope:
    return gw.Envelope(id=new_id(), source_id=MASTER, target_id=target, timestamp=now_ms(),
                       heartbeat=gw.Heartbeat(seq=seq))


def welcome(target: str, welcome_msg: gw.Welcome) -> gw.Envelope:
    return gw.Envelope(id=new_id(), source_id=MASTER, target_id=target, timestamp=now_ms(), welcome=welcome_msg)
