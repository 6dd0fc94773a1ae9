"""The hub: node registry, authentication, liveness and envelope routing.

Transport-free: HubServicer (gRPC Attach) and in-process callers (the core's
services, through `ctx.shared["hub"]`) use the same methods. Routing never
blocks: every node has a bounded outbox (see NodeLink) and a node that cannot
keep up is closed rather than slowing everyone else.

Routing by `target_id`: "broadcast" → every other node; "master" (or empty)
→ the core's action handlers (`on_action`; `ping` is answered here with
data "pong") and hub-originated requests (`request`); a node id → that node. ActionResponses go back to whoever sent
the request, by (responder, request_id), whatever their target_id says.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import grpc

from peromesh.gateway.v1 import envelope_pb2 as gw
from peromesh.hub.v1 import hub_service_pb2 as pb
from server.aio import TaskOwner, cancel_and_wait
from server.hub import capabilities
from server.hub.nodes import NodeChange, NodeInfo, NodeLink
from server.hub.remote import ClusterPort
from server.hub.sessions import SessionDirectory
from server.hub.watch import NodeWatch
from server.rpc.auth import token_matches
from server.rpc.errors import StatusError
from server.wire import envelopes as env

log = logging.getLogger(__name__)

ActionHandler = Callable[[NodeInfo, gw.Envelope], Awaitable[str | None]]
NodeListener = Callable[[NodeChange, NodeInfo, str], None]
MAX_NODE_ID = 128
MAX_PENDING = 10_000


@dataclass(frozen=True)
class HubConfig:
    heartbeat_interval_s: float = 10.0
    heartbeat_timeout_s: float = 30.0
    resume_grace_s: float = 60.0
    request_ttl_s: float = 60.0
    outbox_capacity: int = 4096
    max_frame_bytes: int = 256 * 1024
    server_version: str = "0.1.0"


class Hub:
    def __init__(self, token: str, config: HubConfig | None = None,
                 danger: capabilities.DangerPolicy | None = None) -> None:
        self.config = config or HubConfig()
        self.danger = danger or capabilities.DangerPolicy()  # what node-to-node requests may not carry
        self._token = token
        self._links: dict[str, NodeLink] = {}
        self._sessions = SessionDirectory(self.config.resume_grace_s)
        self._handlers: dict[str, ActionHandler] = {}
        self._listeners: list[NodeListener] = []
        self._routes: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()
        self._waiting: dict[tuple[str, str], asyncio.Future[gw.ActionResponse]] = {}
        self._tasks = TaskOwner("hub")
        self._sweeper: asyncio.Task[None] | None = None
        self.cluster: ClusterPort | None = None  # the other cores (--cluster-url); None: this process only
        self._remote_listeners: list[Callable[[], None]] = []
        # what WatchNodes streams: this core's nodes, and the other cores' once a cluster link feeds it
        self.watch = NodeWatch(self.nodes, lambda node_id: node_id in self._links)
        self.add_listener(self.watch.local_changed)

    # -- lifecycle -------------------------------------------------------
    async def start(self) -> None:
        self._sweeper = self._tasks.spawn(self._sweep_forever(), "heartbeat-sweeper")

    async def close(self) -> None:
        """Close every link (UNAVAILABLE: the mesh is stopping) and stop background work."""
        for link in list(self._links.values()):
            self.leave(link, grpc.StatusCode.UNAVAILABLE, "the mesh is shutting down")
        await cancel_and_wait(self._sweeper)
        await self._tasks.close()

    # -- nodes -----------------------------------------------------------
    def join(self, hello: gw.Envelope, transport: int = pb.TRANSPORT_GRPC, peer: str = "") -> NodeLink:
        """Authenticate a hello and attach its node; raises StatusError with the reason.

        A node id that is already attached is replaced (the old link ends
        with ABORTED). The welcome is queued as the link's first envelope.
        """
        self._authenticate(hello)
        node_id = hello.source_id
        session_id, resumed = self._sessions.claim(node_id)
        old = self._links.get(node_id)
        if old is not None:
            self.leave(old, grpc.StatusCode.ABORTED, "replaced by a new connection of the same device")
        link = NodeLink(NodeInfo.from_hello(hello, session_id, transport, peer), self.config.outbox_capacity)
        self._links[node_id] = link
        link.send(env.welcome(node_id, self._welcome(link.info, resumed)))
        self._emit(NodeChange.JOINED, link.info, "")
        log.info("node %s attached (session %s%s)", node_id, session_id, ", resumed" if resumed else "")
        return link

    def leave(self, link: NodeLink, code: grpc.StatusCode, reason: str) -> None:
        """Detach a node (idempotent); its session stays resumable for the grace window."""
        link.close(code, reason)
        if self._links.get(link.node_id) is not link:
            return
        del self._links[link.node_id]
        self._sessions.release(link.node_id)
        for key in [k for k in self._waiting if k[0] == link.node_id]:
            self._waiting.pop(key).set_exception(ConnectionError(f"node {link.node_id!r} left: {reason}"))
        self._emit(NodeChange.LEFT, link.info, reason)
        log.info("node %s detached: %s", link.node_id, reason)

    def nodes(self) -> list[NodeInfo]:
        return sorted((link.info for link in self._links.values()), key=lambda n: n.node_id)

    def node(self, node_id: str) -> NodeInfo | None:
        link = self._links.get(node_id)
        return link.info if link else None

    def add_listener(self, listener: NodeListener) -> Callable[[], None]:
        """Call `listener(change, node, reason)` on every join/update/leave; returns the remover."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    # -- the other cores (see server/hub/remote.py) ------------------------
    def attach_cluster(self, cluster: ClusterPort) -> None:
        self.cluster = cluster
        self._sessions.shared = cluster.sessions

    def remote_nodes(self) -> list[NodeInfo]:
        """Nodes attached to other cores of the cluster (empty without one)."""
        return self.cluster.remote_nodes() if self.cluster is not None else []

    def add_remote_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener()` whenever the set of remote nodes (or their capabilities) changed."""
        self._remote_listeners.append(listener)
        return lambda: self._remote_listeners.remove(listener) if listener in self._remote_listeners else None

    def remote_changed(self) -> None:
        for listener in list(self._remote_listeners):
            try:
                listener()
            except Exception:
                log.exception("remote node listener failed")

    def abandon(self, node_id: str, reason: str) -> None:
        """Fail the requests waiting for a node of another core that is gone (it left, or its core died)."""
        for key in [k for k in self._waiting if k[0] == node_id]:
            self._waiting.pop(key).set_exception(ConnectionError(f"node {node_id!r} left: {reason}"))

    def local_link(self, node_id: str) -> NodeLink | None:
        return self._links.get(node_id)

    def local_links(self) -> list[NodeLink]:
        return list(self._links.values())

    def settle(self, responder: str, response: gw.ActionResponse) -> bool:
        """Complete a `request` waiting for `responder`'s answer (one that came from another core)."""
        future = self._waiting.pop((responder, response.request_id), None)
        if future is None or future.done():
            return False
        future.set_result(response)
        return True

    # -- in-process API for the core's services ---------------------------
    def on_action(self, name: str, handler: ActionHandler) -> None:
        """Handle action `name` sent to "master"; the handler's return value is the response data."""
        self._handlers[name] = handler

    def broadcast(self, action: str, params: Mapping[str, str] | None = None, exclude: str = "",
                  everywhere: bool = False) -> int:
        """Send an action from "master" to every node (but `exclude`); returns how many here got it.

        `everywhere` also sends it to the nodes of the cluster's other cores (HubService.Broadcast,
        task and reminder-set updates); system stats stay per core (each core tells its own nodes).
        """
        response = pb.AttachResponse(envelope=env.action(env.BROADCAST, action, params))
        if everywhere and self.cluster is not None:
            self.cluster.broadcast(response.envelope)
        return sum(link.deliver(response) for link in list(self._links.values()) if link.node_id != exclude)

    def send(self, node_id: str, envelope: gw.Envelope) -> bool:
        """Queue `envelope` for one node; False when it is not attached."""
        link = self._links.get(node_id)
        return link.send(envelope) if link else False

    def send_action(self, node_id: str, action: str, params: Mapping[str, str] | None = None) -> bool:
        return self.send(node_id, env.action(node_id, action, params))

    async def request(self, node_id: str, action: str, params: Mapping[str, str] | None = None,
                      timeout_s: float = 10.0) -> gw.ActionResponse:
        """Ask one node to do something and wait for its ActionResponse.

        Raises LookupError (not attached), TimeoutError, or ConnectionError
        (the node left first). Cancelling the caller forgets the request.
        """
        envelope = env.action(node_id, action, params)
        key = (node_id, envelope.id)
        future: asyncio.Future[gw.ActionResponse] = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        try:
            if not self.send(node_id, envelope) and not (self.cluster is not None and self.cluster.forward(envelope)):
                raise LookupError(f"node {node_id!r} is not attached")
            return await asyncio.wait_for(future, timeout_s)
        finally:
            self._waiting.pop(key, None)

    # -- routing ---------------------------------------------------------
    def route(self, link: NodeLink, envelope: gw.Envelope) -> None:
        """Handle one envelope from an attached node."""
        link.info.touch()
        envelope.source_id = link.node_id  # a node speaks only for itself
        kind = envelope.WhichOneof("payload")
        if kind == "heartbeat":
            link.send(env.heartbeat(link.node_id, envelope.heartbeat.seq))
        elif kind == "register":
            accepted, rejected = capabilities.screen(envelope.register.capabilities)
            link.info.register(accepted)
            self._emit(NodeChange.UPDATED, link.info, "")
            if rejected:  # the valid ones stay registered; the node learns exactly what was refused and why
                self._reject(link, envelope, "INVALID_ARGUMENT", capabilities.rejection_text(rejected, len(accepted)))
            elif envelope.id:
                link.send(env.ok(envelope, f"{len(link.info.capabilities)} capabilities registered"))
        elif kind == "response" and self._route_response(link, envelope):
            return
        elif kind in ("request", "response", "stream"):
            self._route_by_target(link, envelope)
        else:
            what = kind or "no payload"
            self._reject(link, envelope, "INVALID_ARGUMENT", f"unexpected {what} after hello")

    def _route_by_target(self, link: NodeLink, envelope: gw.Envelope) -> None:
        target = envelope.target_id
        if envelope.HasField("request") and (refusal := self._refusal(link, target, envelope.request)):
            self._reject(link, envelope, "PERMISSION_DENIED", refusal)  # no recipient sees it
        elif target == env.BROADCAST:
            response = pb.AttachResponse(envelope=envelope)
            for peer in list(self._links.values()):
                if peer is not link and peer.deliver(response) and envelope.HasField("request"):
                    self._remember(peer.node_id, envelope.id, link.node_id)
            if self.cluster is not None:
                self.cluster.broadcast(envelope)
        elif target in (env.MASTER, ""):
            self._to_master(link, envelope)
        elif (other := self._links.get(target)) is not None:
            if other.send(envelope) and envelope.HasField("request"):
                self._remember(target, envelope.id, link.node_id)
        elif self.cluster is not None and self.cluster.forward(envelope):
            return  # attached to another core, which remembers where the answer goes
        elif not envelope.HasField("response"):
            self._reject(link, envelope, "NOT_FOUND", f"target node {target!r} is not attached")

    def _refusal(self, link: NodeLink, target: str, request: gw.ActionRequest) -> str | None:
        """Why a node's request to `target` (a node id, or every other node) is refused: a dangerous
        capability of a recipient that the policy does not allow (the same one Invoke obeys)."""
        if target == env.BROADCAST:
            recipients = [peer for peer in self._links.values() if peer is not link]
        elif target in (env.MASTER, ""):
            return None
        else:
            recipients = [peer] if (peer := self._links.get(target)) is not None else []
        infos = [peer.info for peer in recipients]
        if self.cluster is not None:  # the same policy for nodes of other cores (which check again)
            remote = self.cluster.remote_node(target)
            infos += self.cluster.remote_nodes() if target == env.BROADCAST else [remote] if remote else []
        for info in infos:
            if (refusal := self.danger.refusal(info, request.action_name)) is not None:
                return f"{refusal} (to {info.node_id!r})"
        return None

    def _to_master(self, link: NodeLink, envelope: gw.Envelope) -> None:
        if envelope.HasField("response"):
            log.debug("late or unknown response %s from %s dropped", envelope.response.request_id, link.node_id)
            return
        if not envelope.HasField("request"):
            kind = envelope.WhichOneof("payload")
            self._reject(link, envelope, "UNIMPLEMENTED", f"the hub does not accept {kind} envelopes for master")
            return
        name = envelope.request.action_name
        if name == "ping":  # PeroLink clients probe master; answered at once, like a heartbeat
            link.send(env.ok(envelope, "pong"))
            return
        handler = self._handlers.get(name)
        if handler is None:
            known = ", ".join(sorted(self._handlers)) or "none"
            self._reject(link, envelope, "UNIMPLEMENTED", f"no handler for action {name!r} on master (known: {known})")
            return
        self._tasks.spawn(self._run_handler(handler, link, envelope), f"action:{name}")

    async def _run_handler(self, handler: ActionHandler, link: NodeLink, envelope: gw.Envelope) -> None:
        try:
            data = await handler(link.info, envelope)
        except StatusError as exc:  # a refusal with its own code (e.g. NOT_FOUND, INVALID_ARGUMENT)
            self._reject(link, envelope, exc.code.name, str(exc))
            return
        except Exception as exc:  # a handler failure is the requester's error response
            log.exception("action %s failed", envelope.request.action_name)
            self._reject(link, envelope, "INTERNAL", f"action {envelope.request.action_name!r} failed: {exc}")
            return
        if envelope.id:
            link.send(env.ok(envelope, data or ""))

    def _route_response(self, link: NodeLink, envelope: gw.Envelope) -> bool:
        key = (link.node_id, envelope.response.request_id)
        future = self._waiting.pop(key, None)
        if future is not None:
            if not future.done():
                future.set_result(envelope.response)
            return True
        route = self._routes.pop(key, None)
        if route is None:  # not a request of this core's nodes: maybe one of another core's
            return self.cluster is not None and self.cluster.respond(envelope)
        requester = self._links.get(route[0])
        if requester is not None:
            envelope.target_id = requester.node_id
            requester.send(envelope)
        return True

    def _remember(self, responder: str, request_id: str, requester: str) -> None:
        if not request_id:
            return
        now = time.monotonic()
        while self._routes and (len(self._routes) >= MAX_PENDING or next(iter(self._routes.values()))[1] < now):
            self._routes.popitem(last=False)
        self._routes[(responder, request_id)] = (requester, now + self.config.request_ttl_s)

    def _reject(self, link: NodeLink, envelope: gw.Envelope, code: str, message: str) -> None:
        link.send(env.error(envelope.id, link.node_id, code, message, envelope.trace_id))

    # -- internals -------------------------------------------------------
    def _authenticate(self, hello: gw.Envelope) -> None:
        kind = hello.WhichOneof("payload")
        if kind != "hello":
            raise StatusError(grpc.StatusCode.UNAUTHENTICATED,
                           f"the first envelope must be a hello carrying the mesh token (got {kind or 'no payload'})")
        if not hello.hello.token:
            raise StatusError(grpc.StatusCode.UNAUTHENTICATED, "hello.token is missing: send the mesh access token")
        if not token_matches(self._token, hello.hello.token):
            raise StatusError(grpc.StatusCode.UNAUTHENTICATED, "hello.token is not the mesh access token")
        node_id = hello.source_id
        if node_id in env.RESERVED_IDS or len(node_id) > MAX_NODE_ID:
            raise StatusError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"source_id must be the device id: 1-{MAX_NODE_ID} characters, not 'master' or "
                           f"'broadcast' (got {node_id!r})")

    def _welcome(self, info: NodeInfo, resumed: bool) -> gw.Welcome:
        c = self.config
        return gw.Welcome(session_id=info.session_id, protocol_version=env.PROTOCOL_VERSION, resumed=resumed,
                          node_id=info.node_id, heartbeat_interval_ms=int(c.heartbeat_interval_s * 1000),
                          heartbeat_timeout_ms=int(c.heartbeat_timeout_s * 1000),
                          resume_grace_ms=int(c.resume_grace_s * 1000), max_frame_bytes=c.max_frame_bytes,
                          server_version=c.server_version)

    def _emit(self, change: NodeChange, info: NodeInfo, reason: str) -> None:
        for listener in list(self._listeners):
            try:
                listener(change, info, reason)
            except Exception:
                log.exception("node listener failed")

    async def _sweep_forever(self) -> None:
        period = min(1.0, self.config.heartbeat_timeout_s / 4)
        while True:
            await asyncio.sleep(period)
            self.sweep()

    def sweep(self) -> None:
        """Drop nodes silent for longer than the heartbeat timeout."""
        limit = self.config.heartbeat_timeout_s
        now = time.monotonic()
        for link in [lk for lk in self._links.values() if now - lk.info.last_seen > limit]:
            silent = now - link.info.last_seen
            self.leave(link, grpc.StatusCode.DEADLINE_EXCEEDED,
                       f"heartbeat timeout: nothing received for {silent:.1f}s (limit {limit:g}s)")
        self._sessions.expire()
