"""What HubService.WatchNodes streams: every node of the mesh, then each change once, with a reason.

Without a cluster that is this hub's registry: the hub's listener hands every join, update and
leave over synchronously. In a cluster (`--cluster-url`) the other cores' nodes come from the
cluster link (server/cluster/hub_link.py), which hands over every presence read (`remote`) with
the reasons the other cores announced for their nodes leaving. Presence is the one truth for
other cores' nodes (the same one ListNodes reads), so a change seen here is a difference between
two reads, never a message that may race the record it describes:

- a record that appears: JOINED; one whose capabilities or details changed: UPDATED; one whose
  attachment changed (a new connection: its core, session or connect time differ): LEFT, then
  JOINED.
- a record that vanishes: LEFT with its core's announced reason. A record that vanishes with no
  reason yet is held `grace_s` (the reason travels over pub/sub, a moment behind the record),
  then reported as EXPIRED_REASON: its core stopped renewing it, so the core died or lost Redis.

A node attached here and also listed by another core (it moved, and one core has not noticed yet)
is shown once, as this core's. A watcher subscribes and takes the snapshot in one synchronous
step, so no change falls between them. Each watcher's queue is bounded (Fanout): one that falls
behind is marked `overflowed`, and the servicer ends its stream with RESOURCE_EXHAUSTED, since a
change stream with a gap would leave the watcher's view wrong without telling it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from peromesh.hub.v1 import hub_service_pb2 as pb
from server.fanout import Fanout, Subscription
from server.hub.nodes import NodeChange, NodeInfo

WATCH_BACKLOG = 10_000  # changes queued for one watcher before it is dropped as too slow
EXPIRED_REASON = "its presence record expired: its core stopped renewing it (the core died or lost Redis)"
MOVED_HERE_REASON = "attached to this core now"
REATTACHED_REASON = "attached again through a new connection"

Remote = tuple[str, pb.Node]  # (the core holding the node, its presence record)
ReasonOf = Callable[[str, str], str | None]  # (node id, core id) → why that core said the node left


class NodeWatch:
    """The hub's node changes, this core's and (fed by a cluster link) the other cores'."""

    def __init__(self, local_nodes: Callable[[], list[NodeInfo]], is_local: Callable[[str], bool],
                 backlog: int = WATCH_BACKLOG) -> None:
        self._local_nodes = local_nodes
        self._is_local = is_local
        self._fanout: Fanout[pb.WatchNodesResponse] = Fanout("node-watch", backlog)
        self._remote: dict[str, Remote] = {}  # what watchers were told of the other cores' nodes
        self._vanished: dict[str, float] = {}  # node id → when its record was first missing

    def watch(self, backlog: int | None = None) -> tuple[list[pb.Node], Subscription[pb.WatchNodesResponse]]:
        """The nodes online now and every change after them (close the subscription when done)."""
        changes = self._fanout.subscribe(backlog)
        nodes = [info.to_proto() for info in self._local_nodes()]
        nodes += [node for node_id, (_, node) in self._remote.items() if not self._is_local(node_id)]
        return sorted(nodes, key=lambda n: n.node_id), changes

    @property
    def pending(self) -> bool:
        """Whether a vanished record waits for its reason (the link re-reads after `grace_s` then)."""
        return bool(self._vanished)

    def local_changed(self, change: NodeChange, info: NodeInfo, reason: str) -> None:
        """The hub's listener: a node of this core joined, updated or left."""
        elsewhere = self._remote.get(info.node_id)
        if change is NodeChange.JOINED and elsewhere is not None:
            self._publish(NodeChange.LEFT, elsewhere[1], MOVED_HERE_REASON)  # it was shown as another core's
        self._publish(change, info.to_proto() if self._fanout.subscribers else None, reason)
        if change is NodeChange.LEFT and elsewhere is not None and not self._is_local(info.node_id):
            self._publish(NodeChange.JOINED, elsewhere[1], "")  # another core still lists it

    def remote(self, nodes: Mapping[str, Remote], reason_of: ReasonOf, grace_s: float) -> None:
        """One presence read of the other cores' nodes: tell watchers how it differs from the last."""
        now = time.monotonic()
        for node_id in sorted(self._remote.keys() - nodes.keys()):
            core_id, node = self._remote[node_id]
            reason = reason_of(node_id, core_id)
            waited = now - self._vanished.setdefault(node_id, now)
            if reason is None and not self._is_local(node_id) and waited < grace_s:
                continue  # its reason may be on its way
            del self._remote[node_id]
            self._vanished.pop(node_id, None)
            if not self._is_local(node_id):
                self._publish(NodeChange.LEFT, node, reason or EXPIRED_REASON)
        for node_id, (core_id, node) in sorted(nodes.items()):
            self._vanished.pop(node_id, None)
            self._update(node_id, core_id, node, reason_of)

    def _update(self, node_id: str, core_id: str, node: pb.Node, reason_of: ReasonOf) -> None:
        old = self._remote.get(node_id)
        if old is not None and node.connected_at_ms < old[1].connected_at_ms:
            return  # an older connection's record, rewritten by a core that has not noticed the newer one
        self._remote[node_id] = (core_id, node)
        if self._is_local(node_id):
            return
        if old is None:
            self._publish(NodeChange.JOINED, node, "")
        elif old[0] != core_id or _attachment(old[1]) != _attachment(node):
            self._publish(NodeChange.LEFT, old[1], reason_of(node_id, old[0]) or REATTACHED_REASON)
            self._publish(NodeChange.JOINED, node, "")
        elif _details(old[1]) != _details(node):
            self._publish(NodeChange.UPDATED, node, "")

    def _publish(self, change: NodeChange, node: pb.Node | None, reason: str) -> None:
        if node is not None and self._fanout.subscribers:
            self._fanout.publish(pb.WatchNodesResponse(change=change.value, node=node, reason=reason))


def _attachment(node: pb.Node) -> tuple[str, int]:
    return node.session_id, node.connected_at_ms


def _details(node: pb.Node) -> bytes:
    """The record without its liveness (last_seen moves with every heartbeat, which is no change)."""
    plain = pb.Node()
    plain.CopyFrom(node)
    plain.ClearField("last_seen_at_ms")
    return plain.SerializeToString(deterministic=True)
