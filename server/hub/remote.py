"""The hub's view of other cores (`--cluster-url`): the port a cluster link implements.

The hub routes to its own links first; what it cannot deliver here it hands to this port,
which knows the nodes attached to other cores and carries envelopes to them, and the
sessions devices left on other cores (so one resumes wherever it reconnects). Without a
cluster the hub has no port and behaves exactly as a single process. The implementation
(Redis) lives in `server.cluster.hub_link`; the hub never imports it.
"""

from __future__ import annotations

from typing import Protocol

from peromesh.gateway.v1 import envelope_pb2 as gw
from server.hub.nodes import NodeInfo
from server.hub.sessions import SharedSessions


class ClusterPort(Protocol):
    @property
    def sessions(self) -> SharedSessions:
        """The cluster's resume state: a device that left another core comes back to its session here."""

    def remote_node(self, node_id: str) -> NodeInfo | None:
        """The node's record when it is attached to another core (and not here)."""

    def remote_nodes(self) -> list[NodeInfo]:
        """Every node attached to another core now (not those attached here)."""

    def forward(self, envelope: gw.Envelope) -> bool:
        """Carry an envelope to the core holding node `envelope.target_id`; False when no core does."""

    def broadcast(self, envelope: gw.Envelope) -> None:
        """Carry a node's broadcast to the nodes of every other core."""

    def respond(self, envelope: gw.Envelope) -> bool:
        """Carry a local node's ActionResponse to a requester on another core; False when the request
        did not come from another core."""
