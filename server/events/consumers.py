"""What happens to relayed events: long-term memory writes and analytics.

Handlers raise to say "retry later" (the memory server is down) and return
normally for done — or for events that can never succeed (logged), so a
poison event does not retry forever.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime

import grpc
from opentelemetry import metrics

from peromesh.memory.v1 import memory_service_pb2 as mem_pb
from peromesh.memory.v1 import memory_service_pb2_grpc as mem_grpc
from server.events.bus import Handler

log = logging.getLogger(__name__)
_RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED,
              grpc.StatusCode.ABORTED, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)


def ltm_writer(channel: grpc.aio.Channel, metadata: Sequence[tuple[str, str]] = (),
               timeout_s: float = 15.0) -> Handler:
    """events.ltm → MemoryService.IngestTurn (idempotent per turn id on the memory side)."""
    stub = mem_grpc.MemoryServiceStub(channel)

    async def handle(fields: dict[str, str]) -> None:
        payload = json.loads(fields["payload"])
        request = mem_pb.IngestTurnRequest(session_id=payload["session_id"], turn_id=fields["correlation_id"],
                                           user_text=payload["user_text"][:8000],
                                           assistant_text=payload["assistant_text"][:32000])
        request.occurred_at.FromDatetime(datetime.fromisoformat(fields["created_at"]))
        trace_headers = tuple((k, v) for k, v in (payload.get("trace") or {}).items() if isinstance(v, str))
        try:
            await stub.IngestTurn(request, timeout=timeout_s, metadata=(*metadata, *trace_headers))
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _RETRYABLE:
                raise
            log.error("memory refused turn %s for good: %s %s", fields["correlation_id"], exc.code().name,
                      exc.details(), extra={"corr": fields["correlation_id"]})

    return handle


_meter = metrics.get_meter("peromesh.analytics")
_turns = _meter.create_counter("peromesh.analytics.turns", description="finished turns by outcome")
_tokens = _meter.create_counter("peromesh.analytics.tokens", description="generated tokens")


async def analytics_recorder(fields: dict[str, str]) -> None:
    """events.analytics → counters (and one structured log line per turn)."""
    payload = json.loads(fields["payload"])
    outcome = "interrupted" if payload.get("interrupted") else "completed"
    _turns.add(1, {"outcome": outcome})
    _tokens.add(int(payload.get("tokens", 0)))
    log.info("turn %s: %s, %s tokens, first delta %.1f ms, first audio %.1f ms", fields["correlation_id"], outcome,
             payload.get("tokens", 0), payload.get("t_first_delta_ms", 0.0), payload.get("t_first_audio_ms", 0.0),
             extra={"corr": fields["correlation_id"]})
