"""Attached nodes: what the hub knows about each (NodeInfo) and its link (NodeLink).

NodeInfo is the registry record the capability grid builds on: id, kind
(platform, transport), capabilities and liveness. NodeLink is the node's
bounded outbox; a node that does not drain it is closed, never waited for.

A delivery may carry a receipt (`deliver(..., on_written=...)`): called once
the envelope was written to the node's transport, never earlier, so a sender
that must not count "queued" as "received" (reminders for PeroLink v1 nodes,
which send no ack) learns when it really left. The consumer that writes says
so with `written(item)` (the Attach servicer, after its stream write). A
receipt never fires for an envelope dropped or left unwritten when the link
ends: the sender treats that as not delivered.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

import grpc

from peromesh.gateway.v1 import envelope_pb2 as gw
from peromesh.hub.v1 import hub_service_pb2 as pb
from server.wire.attach import Closing as Closing  # re-exported: the hub's own importers name it here
from server.wire.attach import Sink
from server.wire.envelopes import now_ms

DEFAULT_OUTBOX = 4096
Receipt = Callable[[], None]  # "written to the node's transport"


class NodeChange(Enum):
    JOINED = pb.NODE_CHANGE_JOINED
    UPDATED = pb.NODE_CHANGE_UPDATED
    LEFT = pb.NODE_CHANGE_LEFT


@dataclass
class NodeInfo:
    """One attached node, as the registry (and the capability grid) sees it."""

    node_id: str
    session_id: str
    transport: int = pb.TRANSPORT_GRPC
    device_name: str = ""
    platform: str = ""
    client_version: str = ""
    peer: str = ""
    capabilities: dict[str, gw.Capability] = field(default_factory=dict)
    connected_at_ms: int = field(default_factory=now_ms)
    last_seen_at_ms: int = field(default_factory=now_ms)
    last_seen: float = field(default_factory=time.monotonic)
    reminder_acks: bool = False  # acknowledges reminder_trigger with reminder_ack (hello.reminder_acks)

    @classmethod
    def from_hello(cls, envelope: gw.Envelope, session_id: str, transport: int, peer: str) -> NodeInfo:
        hello = envelope.hello
        caps = {name: gw.Capability(name=name) for name in hello.capabilities if name}
        return cls(envelope.source_id, session_id, transport, hello.device_name, hello.platform,
                   hello.client_version, peer, caps, reminder_acks=hello.reminder_acks)

    @classmethod
    def from_proto(cls, node: pb.Node) -> NodeInfo:
        """A node of another core, from its presence record (`last_seen` mapped onto this clock)."""
        age_s = max(0.0, (now_ms() - node.last_seen_at_ms) / 1000)
        caps = {c.name: c for c in node.capabilities if c.name}
        return cls(node.node_id, node.session_id, node.transport, node.device_name, node.platform,
                   node.client_version, node.peer, caps, node.connected_at_ms, node.last_seen_at_ms,
                   time.monotonic() - age_s)

    def touch(self) -> None:
        self.last_seen, self.last_seen_at_ms = time.monotonic(), now_ms()

    def register(self, capabilities: list[gw.Capability]) -> None:
        """Replace the capability list (PeroLink `register` semantics)."""
        self.capabilities = {c.name: c for c in capabilities if c.name}

    def to_proto(self) -> pb.Node:
        return pb.Node(node_id=self.node_id, device_name=self.device_name, platform=self.platform,
                       client_version=self.client_version, transport=self.transport,  # type: ignore[arg-type]
                       session_id=self.session_id, capabilities=list(self.capabilities.values()),
                       connected_at_ms=self.connected_at_ms, last_seen_at_ms=self.last_seen_at_ms, peer=self.peer)


class NodeLink:
    """An attached node's connection: a bounded outbox of Attach responses.

    An in-process consumer (the bridge in the core's process) may install a
    `sink` instead: deliveries are then handed to it synchronously, with no
    task switch per envelope; the sink applies its own bound. A sink's consumer
    writes where the hub cannot see, so receipts are for outbox consumers only:
    one given for a sink link never fires (the sender counts it undelivered and
    sends it again later). The bridge, the sink consumer, acknowledges what it
    wrote itself (it attaches its nodes with hello.reminder_acks).
    """

    def __init__(self, info: NodeInfo, capacity: int = DEFAULT_OUTBOX) -> None:
        self.info = info
        self.capacity = capacity
        self.outbox: asyncio.Queue[pb.AttachResponse | Closing] = asyncio.Queue()
        self.closing: Closing | None = None
        self._sink: Sink | None = None
        self._receipts: collections.deque[tuple[pb.AttachResponse, Receipt]] = collections.deque()

    def attach_sink(self, sink: Sink) -> None:
        """Hand what is queued, then every later delivery (and the closing), to `sink`."""
        while not self.outbox.empty():
            sink(self.outbox.get_nowait())
        self._receipts.clear()  # the sink's consumer writes them: no receipt can come (see above)
        self._sink = sink

    @property
    def node_id(self) -> str:
        return self.info.node_id

    def deliver(self, response: pb.AttachResponse, on_written: Receipt | None = None) -> bool:
        """Queue `response`; a node whose outbox is full is closed (slow consumer).

        `on_written` is called when the consumer has written it (see `written`).
        """
        if self.closing is not None:
            return False
        if self._sink is not None:
            self._sink(response)
            return True
        if self.outbox.qsize() >= self.capacity:
            self.close(grpc.StatusCode.RESOURCE_EXHAUSTED,
                       f"slow consumer: {self.capacity} envelopes queued for node {self.node_id!r}", discard=True)
            return False
        self.outbox.put_nowait(response)
        if on_written is not None:  # bounded with the outbox: one entry per queued envelope at most
            self._receipts.append((response, on_written))
        return True

    def send(self, envelope: gw.Envelope, on_written: Receipt | None = None) -> bool:
        return self.deliver(pb.AttachResponse(envelope=envelope), on_written)

    def awaits_receipt(self, item: pb.AttachResponse) -> bool:
        """Whether a sender waits to hear that `item` (just taken from the outbox) was written."""
        return bool(self._receipts) and self._receipts[0][0] is item

    def written(self, item: pb.AttachResponse) -> None:
        """The consumer wrote `item` (taken from the outbox, in order) to the node's transport."""
        if self.awaits_receipt(item):
            self._receipts.popleft()[1]()

    def close(self, code: grpc.StatusCode, reason: str, discard: bool = False) -> None:
        """End the link after what is queued (or at once, dropping it, with `discard`).

        Idempotent; the first reason wins.
        """
        if self.closing is not None:
            return
        self.closing = Closing(code, reason)
        if self._sink is not None:
            self._sink(self.closing)
            return
        while discard and not self.outbox.empty():
            self.outbox.get_nowait()
        if discard:
            self._receipts.clear()
        self.outbox.put_nowait(self.closing)
