"""MemoryService over gRPC: request validation → MemoryEngine → messages; errors → precise statuses."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from opentelemetry import context as otel_context
from opentelemetry import propagate

from peromesh.memory.v1 import memory_service_pb2 as pb
from peromesh.memory.v1 import memory_service_pb2_grpc as pb_grpc
from server.memory.engine import MemoryEngine, MemoryView, Recalled
from server.memory.errors import Conflict, InvalidInput, NotFound
from server.memory.models import MemoryRow, RelationRow
from server.memory.secretary import Secretary
from server.memory.store import MemoryRecord
from server.rpc.errors import DomainErrors, status_errors

log = logging.getLogger(__name__)
R = TypeVar("R")


ENGINE_ERRORS: DomainErrors = {InvalidInput: grpc.StatusCode.INVALID_ARGUMENT, NotFound: grpc.StatusCode.NOT_FOUND,
                                Conflict: grpc.StatusCode.FAILED_PRECONDITION}


def _statuses(
    fn: Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[R]],
) -> Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[R]]:
    """Map engine errors to gRPC statuses (the shared `status_errors`), and run the handler
    in the caller's trace when the metadata carries a W3C traceparent."""
    mapped = status_errors(ENGINE_ERRORS)(fn)

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> R:
        carrier = {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
        token = otel_context.attach(propagate.extract(carrier))
        try:
            return await mapped(self, request, context)
        finally:
            otel_context.detach(token)

    return wrapper


def _ts(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def _dt(ts: Timestamp, present: bool) -> datetime | None:
    if not present:
        return None
    if not (0 <= ts.seconds <= 253402300799):
        raise InvalidInput("timestamp out of range")
    return ts.ToDatetime(tzinfo=UTC)


def memory_message(row: MemoryRow | MemoryRecord, merged_from: list[int] | None = None) -> pb.Memory:
    return pb.Memory(
        id=row.id, text=row.text, reply=row.reply, session_id=row.session_id, source=row.source,
        tags=list(row.tags or []), importance=row.importance, occurred_at=_ts(row.occurred_at),
        created_at=_ts(row.created_at), last_accessed_at=_ts(row.last_accessed_at),
        access_count=row.access_count, prev_id=row.prev_id or 0, next_id=row.next_id or 0,
        delete_reason=pb.DeleteReason.ValueType(row.delete_reason), merged_into_id=row.merged_into_id or 0,
        merged_from_ids=merged_from or [], turn_id=row.turn_id,
    )


def _view(view: MemoryView) -> pb.Memory:
    return memory_message(view.row, view.merged_from)


def relation_message(rel: RelationRow) -> pb.Relation:
    return pb.Relation(a_id=rel.a_id, b_id=rel.b_id, weight=rel.weight, kind=rel.kind)


def _context(ctx: tuple[int, str, datetime] | None) -> pb.MemoryContext | None:
    if ctx is None:
        return None
    return pb.MemoryContext(id=ctx[0], text=ctx[1], occurred_at=_ts(ctx[2]))


def recalled_message(r: Recalled) -> pb.RecalledMemory:
    s = r.scores
    return pb.RecalledMemory(
        memory=memory_message(r.row),
        scores=pb.ScoreBreakdown(semantic=s.semantic, associative=s.associative, recency=s.recency,
                                 lexical=s.lexical, importance=s.importance, final=s.final),
        previous=_context(r.previous), next=_context(r.next),
    )


class MemoryServicer(pb_grpc.MemoryServiceServicer):
    def __init__(self, engine: MemoryEngine, secretary: Secretary) -> None:
        self.engine = engine
        self.secretary = secretary

    @_statuses
    async def AddMemory(self, request: pb.AddMemoryRequest, context: grpc.aio.ServicerContext
                        ) -> pb.AddMemoryResponse:
        view = await self.engine.add_memory(
            request.text, _dt(request.occurred_at, request.HasField("occurred_at")), list(request.tags),
            request.importance if request.HasField("importance") else None, request.session_id,
            request.source)
        return pb.AddMemoryResponse(memory=_view(view))

    @_statuses
    async def IngestTurn(self, request: pb.IngestTurnRequest, context: grpc.aio.ServicerContext
                         ) -> pb.IngestTurnResponse:
        view, duplicate = await self.engine.ingest_turn(
            request.session_id, request.turn_id, request.user_text, request.assistant_text,
            _dt(request.occurred_at, request.HasField("occurred_at")))
        return pb.IngestTurnResponse(memory=None if view is None else _view(view), duplicate=duplicate)

    @_statuses
    async def Recall(self, request: pb.RecallRequest, context: grpc.aio.ServicerContext) -> pb.RecallResponse:
        which = request.WhichOneof("query")
        half_life = request.recency_half_life
        if half_life.seconds < 0 or half_life.nanos < 0:
            raise InvalidInput("recency_half_life must not be negative")
        results, t = await self.engine.recall(
            request.text if which == "text" else None,
            list(request.vector.values) if which == "vector" else None,
            request.top_k, request.spread_steps if request.HasField("spread_steps") else None,
            half_life.ToTimedelta().total_seconds(), request.min_score, request.peek)
        return pb.RecallResponse(
            memories=[recalled_message(r) for r in results],
            timings=pb.RecallTimings(embed_ms=t.embed_ms, vector_ms=t.vector_ms, lexical_ms=t.lexical_ms,
                                     spread_ms=t.spread_ms, fetch_ms=t.fetch_ms, rerank_ms=t.rerank_ms,
                                     total_ms=t.total_ms),
        )

    @_statuses
    async def Relate(self, request: pb.RelateRequest, context: grpc.aio.ServicerContext) -> pb.RelateResponse:
        rel = await self.engine.relate(request.a_id, request.b_id, request.weight, request.kind)
        return pb.RelateResponse(relation=relation_message(rel))

    @_statuses
    async def GetMemory(self, request: pb.GetMemoryRequest, context: grpc.aio.ServicerContext
                        ) -> pb.GetMemoryResponse:
        view, relations = await self.engine.get(request.id)
        return pb.GetMemoryResponse(memory=_view(view), relations=[relation_message(r) for r in relations])

    @_statuses
    async def DeleteMemory(self, request: pb.DeleteMemoryRequest, context: grpc.aio.ServicerContext
                           ) -> pb.DeleteMemoryResponse:
        return pb.DeleteMemoryResponse(changed=await self.engine.delete(request.id, request.erase))

    @_statuses
    async def RestoreMemory(self, request: pb.RestoreMemoryRequest, context: grpc.aio.ServicerContext
                            ) -> pb.RestoreMemoryResponse:
        return pb.RestoreMemoryResponse(memory=_view(await self.engine.restore(request.id)))

    @_statuses
    async def Consolidate(self, request: pb.ConsolidateRequest, context: grpc.aio.ServicerContext
                          ) -> pb.ConsolidateResponse:
        report = await self.secretary.run()
        response = pb.ConsolidateResponse(merged=report.merged, decayed=report.decayed,
                                          forgotten=report.forgotten,
                                          relations_strengthened=report.strengthened)
        response.duration.FromNanoseconds(int(report.seconds * 1e9))
        return response

    @_statuses
    async def GetStats(self, request: pb.GetStatsRequest, context: grpc.aio.ServicerContext
                       ) -> pb.GetStatsResponse:
        st = await self.engine.stats()
        saved = None if st.index_saved_at is None else datetime.fromtimestamp(st.index_saved_at, UTC)
        return pb.GetStatsResponse(
            active_memories=st.counts.active, inactive_memories=st.counts.inactive,
            relations=st.counts.relations, turns=st.counts.turns, indexed_vectors=st.indexed,
            embedding_model=st.model, dimension=st.dim, index_saved_at=_ts(saved), native_core=st.native,
            consolidated_at=_ts(st.consolidated_at), lexical_terms=st.lexical_terms,
        )
