"""The client the dialog core uses: recall context for a turn, ingest the finished turn.

Memory must never break a conversation: every call has a deadline, and when
the memory server is down, slow or refuses, the client logs once per outage
and returns nothing (an empty context, no memory) instead of raising.

    client = MemoryClient.connect("127.0.0.1:50053", token)   # or MemoryClient(channel, token)
    lines = await client.recall_context(session_id, user_text)    # before the LLM call
    await client.ingest_turn(session_id, turn_id, user_text, reply)  # after the turn
    await client.close()
"""

from __future__ import annotations

import logging
from datetime import datetime

import grpc
from opentelemetry import propagate

from peromesh.memory.v1 import memory_service_pb2 as pb
from peromesh.memory.v1 import memory_service_pb2_grpc as pb_grpc
from server.memory.rerank import PROMPT_MIN_SEMANTIC, relevant
from server.rpc.auth import bearer_metadata
from server.rpc.channels import open_channel

log = logging.getLogger(__name__)


class MemoryClient:
    def __init__(self, channel: grpc.aio.Channel, token: str | None = None, recall_timeout_s: float = 1.5,
                 ingest_timeout_s: float = 10.0, *, address: str = "", owns_channel: bool = False) -> None:
        """A client on `channel` (the process's one channel to the memory server, which its
        owner closes), or on a channel of its own with `connect`."""
        self.address = address
        self._channel = channel
        self._owns_channel = owns_channel
        self._stub = pb_grpc.MemoryServiceStub(self._channel)
        self._metadata = bearer_metadata(token)
        self.recall_timeout_s = recall_timeout_s
        self.ingest_timeout_s = ingest_timeout_s
        self._down = False

    @classmethod
    def connect(cls, address: str, token: str | None = None, recall_timeout_s: float = 1.5,
                ingest_timeout_s: float = 10.0) -> MemoryClient:
        """A client with its own channel to `address` (closed by `close`)."""
        return cls(open_channel(address), token, recall_timeout_s, ingest_timeout_s, address=address,
                   owns_channel=True)

    def _call_metadata(self) -> tuple[tuple[str, str], ...]:
        """The token plus the current trace context (W3C traceparent), so the memory
        server's stage spans land in the caller's trace (the turn's)."""
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return (*self._metadata, *carrier.items())

    def _failed(self, what: str, exc: grpc.aio.AioRpcError) -> None:
        if not self._down:
            log.warning("memory %s failed (%s: %s); continuing without memory",
                        what, exc.code().name, exc.details())
        self._down = exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)

    def _ok(self) -> None:
        if self._down:
            log.info("memory server at %s is reachable again", self.address)
        self._down = False

    async def recall(self, query: str, top_k: int = 5, min_score: float = 0.0,
                     peek: bool = False) -> list[pb.RecalledMemory]:
        """Recalled memories best first; [] when the server is unavailable. `peek`: not counted
        as an access (no reinforcement), so repeated measurements see the same store."""
        if not query.strip():
            return []
        try:
            response = await self._stub.Recall(pb.RecallRequest(text=query[:8000], top_k=top_k,
                                                                 min_score=min_score, peek=peek),
                                               timeout=self.recall_timeout_s, metadata=self._call_metadata())
        except grpc.aio.AioRpcError as exc:
            self._failed("recall", exc)
            return []
        self._ok()
        return list(response.memories)

    async def recall_relevant(self, query: str, top_k: int = 5, min_score: float = 0.05,
                              min_semantic: float = PROMPT_MIN_SEMANTIC) -> list[pb.RecalledMemory]:
        """The recalled memories that are about `query` (rerank.relevant): what a prompt gets.

        The ranking always has a best `top_k`, related or not; without the floor
        "how are you?" brought four unrelated memories into every prompt.
        """
        return relevant(await self.recall(query, top_k, min_score), min_semantic)

    async def recall_context(self, session_id: str, query: str, top_k: int = 5, min_score: float = 0.05,
                             min_semantic: float = PROMPT_MIN_SEMANTIC) -> list[str]:
        """Lines for the LLM's context, e.g. "[2026-11-20] 我女儿的生日是三月五号"; none when
        no memory is about the query (`recall_relevant`).

        Memories of the current session that are still in the visible history
        are of little use, but harmless; the session id is accepted so the core
        can later exclude them without an API change.
        """
        lines: list[str] = []
        for item in await self.recall_relevant(query, top_k, min_score, min_semantic):
            when = item.memory.occurred_at.ToDatetime().strftime("%Y-%m-%d")
            lines.append(f"[{when}] {item.memory.text}")
        return lines

    async def ingest_turn(self, session_id: str, turn_id: str, user_text: str, assistant_text: str,
                          occurred_at: datetime | None = None) -> int | None:
        """Record a finished turn; the new memory's id, or None (nothing memorable, or server down)."""
        request = pb.IngestTurnRequest(session_id=session_id, turn_id=turn_id, user_text=user_text[:8000],
                                       assistant_text=assistant_text[:32000])
        if occurred_at is not None:
            request.occurred_at.FromDatetime(occurred_at)
        try:
            response = await self._stub.IngestTurn(request, timeout=self.ingest_timeout_s,
                                                   metadata=self._call_metadata())
        except grpc.aio.AioRpcError as exc:
            self._failed("ingest", exc)
            return None
        self._ok()
        return response.memory.id if response.HasField("memory") else None

    async def close(self) -> None:
        if self._owns_channel:
            await self._channel.close()
