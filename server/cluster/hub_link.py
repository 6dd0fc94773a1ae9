"""A Hub joined to the other cores of a cluster through Redis (the hub's ClusterPort).

- Presence: this core's nodes are written to Redis on every join/update/leave and refreshed
  every `refresh_s` (records expire after `ttl_ms`; see presence.py). A mirror of the other
  cores' nodes is re-read on every change announcement and every refresh, so a node that
  leaves, or whose core dies, disappears from every core within the heartbeat timeout.
- Routing: an envelope for a node of another core goes to that core's inbox; the receiving
  core delivers it, checks the dangerous-capability policy again (every path obeys it) and
  remembers where the answer goes, as the hub does for its own nodes. Answers to a core's
  own `Hub.request` (Invoke, the model's tools) come back to that core's waiting request.
- Broadcasts of a node, and the master's broadcasts meant for everyone (HubService.Broadcast,
  task and reminder-set updates: server/tools/broadcasts.py), reach every other core's nodes.
- Watching (HubService.WatchNodes): every presence read goes to the hub's NodeWatch, which tells
  this core's watchers how the other cores' nodes changed; the change announcement carries why
  this core's nodes left (departures.py), so other cores' watchers see the same reason.
- Resume state: the session of every device attached here (or that left inside the grace
  window) is in Redis too (sessions.py), so a device that reconnects through another bridge
  and core gets its session back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable

from redis.exceptions import RedisError

from peromesh.gateway.v1 import envelope_pb2 as gw
from peromesh.hub.v1 import hub_service_pb2 as pb
from server.aio import TaskOwner
from server.cluster import bus, departures
from server.cluster.keys import connect
from server.cluster.presence import Presence, PresenceTable
from server.cluster.sessions import ClusterSessions
from server.hub.hub import MAX_PENDING, Hub
from server.hub.nodes import NodeChange, NodeInfo
from server.wire import envelopes as env

log = logging.getLogger(__name__)
SHUTDOWN_REASON = "its core shut down"


class HubClusterLink:
    """Implements server.hub.remote.ClusterPort on Redis; `start()` attaches it to the hub."""

    def __init__(self, hub: Hub, url: str) -> None:
        self.hub = hub
        self.core_id = uuid.uuid4().hex
        timeout_s = hub.config.heartbeat_timeout_s
        self.refresh_s = max(0.05, timeout_s / 4)
        # how long a vanished record waits for its core's reason before watchers hear it expired
        self.grace_s = min(self.refresh_s / 2, 0.25)
        self._client, keys = connect(url)
        # written every refresh_s, expiring after twice that: a dead core's nodes vanish within timeout_s
        ttl_ms = int(timeout_s * 500)
        self._presence = PresenceTable(self._client, keys, self.core_id, ttl_ms)
        self._sessions = ClusterSessions(self._client, keys, self.core_id, hub.config.resume_grace_s, ttl_ms)
        self._bus = bus.ClusterBus(self._client, keys, self.core_id)
        self._nodes: dict[str, Presence] = {}  # the other cores' nodes
        self._infos: dict[str, NodeInfo] = {}
        self._routes: OrderedDict[tuple[str, str], tuple[str, str, float]] = OrderedDict()
        self._left: dict[str, str] = {}  # our nodes that left since the last sync, and why
        self._departures = departures.Departures()  # why the other cores' nodes left
        self._dirty = True  # our node set changed: write it and announce
        self._wake = asyncio.Event()
        self._closing = False
        self._tasks = TaskOwner("cluster-link")
        self._remove_listener: Callable[[], None] = lambda: None

    # -- lifecycle -------------------------------------------------------
    async def start(self) -> None:
        """Subscribe, publish our nodes, read the others', then keep all of it current."""
        try:
            await self._client.ping()
        except RedisError as exc:  # fail the core's start with the reason, not a later timeout
            raise RuntimeError(f"--cluster-url: Redis is unreachable: {exc}") from exc
        await self._bus.start(self._on_message)
        self._remove_listener = self.hub.add_listener(self._on_local_change)
        await self._sync()
        self.hub.attach_cluster(self)
        self._tasks.spawn(self._keep_in_sync(), "presence")
        log.info("core %s joined the cluster (%d nodes on other cores)", self.core_id, len(self._nodes))

    async def close(self) -> None:
        self._remove_listener()
        self._closing = True
        self._wake.set()
        await self._tasks.close()
        with contextlib.suppress(RedisError):
            links = self.hub.local_links()
            for link in links:
                await self._presence.remove(link.node_id)
                await self._sessions.left(link.node_id)  # its device will come back through another core
            self._announce({link.node_id: SHUTDOWN_REASON for link in links})
        await self._bus.close()
        await self._client.aclose()

    # -- ClusterPort -----------------------------------------------------
    @property
    def sessions(self) -> ClusterSessions:
        return self._sessions

    def remote_node(self, node_id: str) -> NodeInfo | None:
        if self.hub.local_link(node_id) is not None:
            return None
        return self._infos.get(node_id)

    def remote_nodes(self) -> list[NodeInfo]:
        return [info for node_id, info in sorted(self._infos.items()) if self.hub.local_link(node_id) is None]

    def forward(self, envelope: gw.Envelope) -> bool:
        presence = self._nodes.get(envelope.target_id)
        if presence is None or self.hub.local_link(envelope.target_id) is not None:
            return False
        return self._bus.send(presence.core_id, bus.ENVELOPE, envelope.SerializeToString(), self._undelivered)

    def broadcast(self, envelope: gw.Envelope) -> None:
        self._bus.broadcast(bus.BROADCAST, envelope.SerializeToString())

    def respond(self, envelope: gw.Envelope) -> bool:
        route = self._routes.pop((envelope.source_id, envelope.response.request_id), None)
        if route is None:
            return False
        requester, core_id, _ = route
        envelope.target_id = requester
        self._bus.send(core_id, bus.ENVELOPE, envelope.SerializeToString())
        return True

    # -- from other cores ------------------------------------------------
    def _on_message(self, message: bus.Message) -> None:
        if message.kind == bus.CHANGED:
            self._departures.heard(message.origin, message.payload)
            self._wake.set()
        elif message.kind == bus.ENVELOPE:
            self._arrived(gw.Envelope.FromString(message.payload), message.origin)
        elif message.kind == bus.BROADCAST:
            self._broadcast_here(gw.Envelope.FromString(message.payload), message.origin)

    def _arrived(self, envelope: gw.Envelope, origin: str) -> None:
        target = envelope.target_id
        if envelope.HasField("response") and target in (env.MASTER, ""):
            self.hub.settle(envelope.source_id, envelope.response)
            return
        link = self.hub.local_link(target)
        if link is None:
            if envelope.HasField("request"):
                self._answer(envelope, origin, "NOT_FOUND", f"target node {target!r} is not attached")
            return
        if envelope.HasField("request"):
            refusal = self.hub.danger.refusal(link.info, envelope.request.action_name)
            if refusal is not None:
                self._answer(envelope, origin, "PERMISSION_DENIED", f"{refusal} (to {target!r})")
            elif link.send(envelope):
                self._remember(target, envelope.id, envelope.source_id, origin)
            return
        link.send(envelope)

    def _broadcast_here(self, envelope: gw.Envelope, origin: str) -> None:
        """Deliver another core's broadcast to our nodes (never onwards: one hop, no echo).

        Only a node's request gets its answers routed back: the sending core's master waits for
        no answer to a broadcast (task and reminder-set updates, HubService.Broadcast), and a
        route per device per update would push real requests' routes out of the bounded table.
        """
        response = pb.AttachResponse(envelope=envelope)
        request = envelope.HasField("request")
        answered = request and envelope.source_id != env.MASTER
        for link in self.hub.local_links():
            if link.node_id == envelope.source_id:
                continue
            if request and self.hub.danger.refusal(link.info, envelope.request.action_name) is not None:
                continue  # the sending core refused it already if it knew; a node of ours it did not know
            if link.deliver(response) and answered:
                self._remember(link.node_id, envelope.id, envelope.source_id, origin)

    def _answer(self, request: gw.Envelope, origin: str, code: str, message: str) -> None:
        """An error ActionResponse to a request that came from `origin`, as if its target answered."""
        error = env.error(request.id, request.source_id, code, message, request.trace_id)
        error.source_id = request.target_id
        self._bus.send(origin, bus.ENVELOPE, error.SerializeToString())

    def _undelivered(self, payload: bytes) -> None:
        """No core listens where the target's record pointed (it died): the requester learns at once."""
        envelope = gw.Envelope.FromString(payload)
        if not envelope.HasField("request"):
            return
        error = env.error(envelope.id, envelope.source_id, "UNAVAILABLE",
                          f"the core holding node {envelope.target_id!r} is unreachable", envelope.trace_id)
        error.source_id = envelope.target_id
        self._arrived(error, self.core_id)

    def _remember(self, responder: str, request_id: str, requester: str, core_id: str) -> None:
        if not request_id:
            return
        now = time.monotonic()
        while self._routes and (len(self._routes) >= MAX_PENDING or next(iter(self._routes.values()))[2] < now):
            self._routes.popitem(last=False)
        self._routes[(responder, request_id)] = (requester, core_id, now + self.hub.config.request_ttl_s)

    # -- presence --------------------------------------------------------
    def _on_local_change(self, change: NodeChange, node: NodeInfo, reason: str) -> None:
        if change == NodeChange.LEFT and self.hub.local_link(node.node_id) is None:
            self._left[node.node_id] = reason
        self._dirty = True
        self._wake.set()

    async def _keep_in_sync(self) -> None:
        """Until close(): a flag, not only cancellation, ends it (redis-py may swallow a cancel that
        lands inside a command, and the loop would carry on)."""
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.grace_s if self.hub.watch.pending else self.refresh_s):
                    await self._wake.wait()
            if self._closing:
                return
            try:
                await self._sync()
            except RedisError as exc:
                log.warning("cluster presence: Redis failed (%s); retrying", exc)
                await asyncio.sleep(min(self.refresh_s, 1.0))

    async def _sync(self) -> None:
        """Write our nodes (refreshing their expiry), announce a change, re-read everyone's."""
        self._wake.clear()
        changed, self._dirty = self._dirty, False
        left, self._left = self._left, {}
        for node_id in left:
            await self._presence.remove(node_id)
            await self._sessions.left(node_id)
        links = self.hub.local_links()
        await self._presence.write(link.info.to_proto() for link in links)
        await self._sessions.attached({link.node_id: link.info.session_id for link in links})
        if changed:
            self._announce(left)  # after the removals: whoever hears a reason reads presence without the node
        await self._sessions.read()
        arrived = self._departures.take()  # announced after their removals, so gone from this read
        everyone = await self._presence.read()
        others = {node_id: p for node_id, p in everyone.items() if p.core_id != self.core_id}
        if _shape(others) != _shape(self._nodes):
            for node_id in self._nodes.keys() - others.keys():
                if self.hub.local_link(node_id) is None:
                    self.hub.abandon(node_id, "it is no longer attached to any core")
            self._nodes = others
            self._infos = {node_id: NodeInfo.from_proto(p.node) for node_id, p in others.items()}
            self.hub.remote_changed()
        else:
            self._nodes = others
            for node_id, p in others.items():  # liveness only: keep the records, refresh last_seen
                self._infos[node_id].last_seen = NodeInfo.from_proto(p.node).last_seen
        self.hub.watch.remote({node_id: (p.core_id, p.node) for node_id, p in others.items()},
                              arrived.reason_of, self.grace_s)

    def _announce(self, left: dict[str, str]) -> None:
        """Tell the other cores our node set changed (re-read presence), with why nodes left."""
        for payload in departures.encode(left):
            self._bus.broadcast(bus.CHANGED, payload)


def _shape(nodes: dict[str, Presence]) -> dict[str, tuple[str, bytes]]:
    """What the capability grid depends on: who is where, with which capabilities."""
    return {node_id: (p.core_id, _capabilities_of(p.node)) for node_id, p in nodes.items()}


def _capabilities_of(node: pb.Node) -> bytes:
    return node.platform.encode() + b"".join(c.SerializeToString() for c in node.capabilities)
