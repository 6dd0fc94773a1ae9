"""Attaching a node to the hub, as the hub and its clients both see it.

Two ways in, one contract. Over gRPC (`HubService.Attach`) a client says how the node reached
it in the call's metadata (TRANSPORT_KEY, PEER_KEY). In the core's own process the bridge calls
the hub object directly through `EmbeddedHub`; `server.hub.hub.Hub` satisfies it structurally
(mypy checks that in `server/hub/port.py`), so the bridge types against this port and never
imports the hub domain. Either way a link ends with a `Closing`: the status its Attach stream
ends with, and why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import grpc

from peromesh.gateway.v1 import envelope_pb2 as gw
from peromesh.hub.v1 import hub_service_pb2 as pb

TRANSPORT_KEY = "x-peromesh-transport"  # set by the bridge: "websocket"
PEER_KEY = "x-peromesh-peer"  # set by the bridge: the WebSocket client's address


@dataclass(frozen=True)
class Closing:
    """The end of a link: the status its Attach stream ends with, and why."""

    code: grpc.StatusCode
    reason: str


Sink = Callable[[pb.AttachResponse | Closing], None]


class EmbeddedLink(Protocol):
    """One attached node's link, as an in-process consumer uses it."""

    @property
    def outbox(self) -> asyncio.Queue[pb.AttachResponse | Closing]:
        """What is queued for the node (the welcome first, right after `join`)."""

    def attach_sink(self, sink: Sink) -> None:
        """Hand what is queued, then every later delivery (and the closing), to `sink` synchronously."""


LinkT = TypeVar("LinkT", bound=EmbeddedLink)


class EmbeddedHub(Protocol[LinkT]):
    """The hub in this process: the same join, route and leave the Attach servicer calls.

    Generic in the link type because the hub's route/leave accept only the links its own join
    returned; a consumer hands back exactly what it was given.
    """

    def join(self, hello: gw.Envelope, transport: int, peer: str) -> LinkT:
        """Attach the node saying `hello`; raises server.rpc.errors.StatusError when refused."""

    def route(self, link: LinkT, envelope: gw.Envelope) -> None:
        """Route one envelope from the node."""

    def leave(self, link: LinkT, code: grpc.StatusCode, reason: str) -> None:
        """Detach the node (idempotent)."""
