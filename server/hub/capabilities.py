"""The capability grid: what attached nodes can do, and calling it on them.

A node declares capabilities (gateway `hello` names, or `register` with a
description, a JSON Schema for the parameters and a `dangerous` flag). The
hub keeps them on the node's record, so they vanish with the node (closed,
replaced, or silent past the heartbeat timeout). This module:

- screens declared capabilities (`screen`): a bad name or an invalid JSON
  Schema rejects that capability with a precise reason for the node;
- names them for the LLM (`tool_name`): "<node kind>.<capability>", the kind
  being the node's platform, e.g. "mobile.location.get";
- routes an invocation (`CapabilityGrid.invoke`) to an owning node — the
  requesting device first when several offer it — with the arguments checked
  against the schema, the answer correlated by id (Hub.request), a timeout
  with a clear DEADLINE_EXCEEDED, and dangerous capabilities refused unless
  allowed by name.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
import jsonschema
from jsonschema.exceptions import best_match

from peromesh.gateway.v1 import envelope_pb2 as gw
from server.hub.nodes import NodeChange, NodeInfo
from server.rpc.errors import StatusError


class GridHub(Protocol):
    """What the grid needs of the hub that owns it (`server.hub.hub.Hub` is one): named here so the
    grid does not import the hub module, which imports this one (no cycle, also not for types)."""

    danger: DangerPolicy

    def nodes(self) -> list[NodeInfo]: ...

    def remote_nodes(self) -> list[NodeInfo]: ...

    def add_listener(self, listener: Callable[[NodeChange, NodeInfo, str], None]) -> Callable[[], None]: ...

    def add_remote_listener(self, listener: Callable[[], None]) -> Callable[[], None]: ...

    async def request(self, node_id: str, action: str, params: Mapping[str, str] | None = None,
                      timeout_s: float = 10.0) -> gw.ActionResponse: ...

log = logging.getLogger(__name__)

# Capability names: identifiers joined by '.' or ':' (location.get, task:add) — also NIT tool names.
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(?:[.:][A-Za-z_][A-Za-z0-9_-]*)*")
MAX_NAME = 96
MAX_DESCRIPTION = 2000
MAX_SCHEMA_BYTES = 32 * 1024
MAX_CAPABILITIES = 256
DEFAULT_KIND = "node"
DEFAULT_TIMEOUT_S = 10.0
MAX_TIMEOUT_S = 120.0
ARGS_PARAM = "args_json"  # the whole argument object, next to one param per top-level argument
SCHEMA_DIALECT = jsonschema.Draft202012Validator  # schemas without "$schema" are read as 2020-12


# ---------------------------------------------------------------- screening


def check_capability(capability: gw.Capability) -> str | None:
    """Why `capability` cannot be registered, or None when it is fine."""
    name = capability.name
    if not name:
        return "name is empty"
    if len(name) > MAX_NAME or not NAME_RE.fullmatch(name):
        return (f"name {name[:MAX_NAME]!r} is not a capability name: identifiers joined by '.' or ':' "
                f"(e.g. 'location.get'), at most {MAX_NAME} characters")
    if len(capability.description) > MAX_DESCRIPTION:
        return f"description has {len(capability.description)} characters (at most {MAX_DESCRIPTION})"
    if capability.params_schema_json:
        return check_schema(capability.params_schema_json)
    return None


def check_schema(text: str) -> str | None:
    """Why `text` is not a usable parameter schema (a JSON Schema for an object), or None."""
    if len(text.encode()) > MAX_SCHEMA_BYTES:
        return f"params_schema_json is {len(text.encode())} bytes (at most {MAX_SCHEMA_BYTES})"
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"params_schema_json is not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
    if not isinstance(schema, dict):
        return f"params_schema_json must be a JSON object (a schema), got {type(schema).__name__}"
    validator = jsonschema.validators.validator_for(schema, default=SCHEMA_DIALECT)
    try:
        validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = _pointer(exc.path)
        return f"params_schema_json is not a valid JSON Schema: at {where}: {exc.message}"
    kind = schema.get("type")
    if kind is not None and kind != "object":
        return f"params_schema_json must describe an object (\"type\": \"object\"), got \"type\": {json.dumps(kind)}"
    return None


@dataclass(frozen=True)
class Rejected:
    name: str
    reason: str


def screen(capabilities: Iterable[gw.Capability]) -> tuple[list[gw.Capability], list[Rejected]]:
    """Split a declared list into the registrable capabilities and the rejected ones (with reasons)."""
    accepted: dict[str, gw.Capability] = {}
    rejected: list[Rejected] = []
    for capability in capabilities:
        reason = check_capability(capability)
        if reason is None and capability.name in accepted:
            reason = "declared twice in the same list"
        if reason is None and len(accepted) >= MAX_CAPABILITIES:
            reason = f"too many capabilities (at most {MAX_CAPABILITIES} per node)"
        if reason is None:
            accepted[capability.name] = capability
        else:
            rejected.append(Rejected(capability.name, reason))
    return list(accepted.values()), rejected


def rejection_text(rejected: list[Rejected], accepted: int) -> str:
    """The error a node gets for a register with rejected capabilities."""
    lines = "; ".join(f"capability {r.name!r} rejected: {r.reason}" for r in rejected)
    return f"{lines} ({accepted} other capabilit{'y' if accepted == 1 else 'ies'} registered)"


# ---------------------------------------------------------------- naming


def node_kind(node: NodeInfo) -> str:
    """The namespace of a node's tools: its platform, lower-case, or "node"."""
    kind = re.sub(r"[^a-z0-9_-]+", "_", node.platform.strip().lower()).strip("_")
    return kind or DEFAULT_KIND


def tool_name(kind: str, capability: str) -> str:
    return f"{kind}.{capability}"


@dataclass(frozen=True)
class DangerPolicy:
    """Which capabilities marked dangerous may run (--allow-dangerous, by capability or tool name).

    The one decision for every path into a capability: HubService.Invoke and the model's tools
    (CapabilityGrid), and envelopes a node sends to another node's id or to "broadcast" (Hub).
    """

    allowed: frozenset[str] = frozenset()

    @classmethod
    def of(cls, names: Iterable[str]) -> DangerPolicy:
        return cls(frozenset(n.strip() for n in names if n.strip()))

    def permits(self, capability: gw.Capability, tool: str) -> bool:
        return not capability.dangerous or capability.name in self.allowed or tool in self.allowed

    def refusal(self, node: NodeInfo, action: str) -> str | None:
        """Why `action` may not reach `node` (a dangerous capability it declares), or None."""
        kind = node_kind(node)
        for capability in node.capabilities.values():
            tool = tool_name(kind, capability.name)
            if action in (capability.name, tool) and not self.permits(capability, tool):
                return dangerous_refusal(tool, capability.name)
        return None


def dangerous_refusal(tool: str, capability: str) -> str:
    return f"{tool} is marked dangerous and is refused; start the core with --allow-dangerous {capability} to allow it"


def parameters_of(capability: gw.Capability) -> dict[str, Any]:
    """The capability's parameter schema (declared, or built from PeroLink `params` names)."""
    if capability.params_schema_json:
        schema = json.loads(capability.params_schema_json)
        if isinstance(schema, dict):
            return schema
    return {"type": "object", "properties": {p: {"type": "string"} for p in capability.params}}


@dataclass(frozen=True)
class Offer:
    """One capability of one attached node."""

    tool_name: str
    node_id: str
    node_kind: str
    capability: gw.Capability
    last_seen: float

    @property
    def name(self) -> str:
        return self.capability.name

    @property
    def dangerous(self) -> bool:
        return self.capability.dangerous


# ---------------------------------------------------------------- invoking


@dataclass(frozen=True)
class Invocation:
    node_id: str
    capability: str
    result: str
    latency_ms: int


ChangeListener = Callable[[int], None]


class CapabilityGrid:
    """Capabilities of the nodes attached to `hub`, and invocation of them.

    `revision` grows on every node join, update and leave, so callers can
    cache what they derive from the offers (the dialog's tool list).
    """

    def __init__(self, hub: GridHub, allow_dangerous: Iterable[str] | None = None) -> None:
        """`allow_dangerous` replaces the hub's policy (tests); by default the grid and the hub's
        routing decide with the same one."""
        self.hub = hub
        self.danger = hub.danger if allow_dangerous is None else DangerPolicy.of(allow_dangerous)
        self.revision = 0
        self._listeners: list[ChangeListener] = []
        self._remove = hub.add_listener(self._on_node_change)
        self._remove_remote = hub.add_remote_listener(self._on_remote_change)

    def close(self) -> None:
        self._remove()
        self._remove_remote()

    def nodes(self) -> list[NodeInfo]:
        """The nodes whose capabilities are offered: this core's, then those of the cluster's other cores."""
        return self.hub.nodes() + self.hub.remote_nodes()

    def _on_remote_change(self) -> None:
        self.revision += 1
        self._notify()

    def add_listener(self, listener: ChangeListener) -> Callable[[], None]:
        """Call `listener(revision)` whenever the set of offers may have changed."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _on_node_change(self, change: NodeChange, node: NodeInfo, reason: str) -> None:
        self.revision += 1
        if node.capabilities:
            verb = {NodeChange.JOINED: "offers", NodeChange.UPDATED: "now offers", NodeChange.LEFT: "left; gone"}
            log.debug("node %s %s: %s", node.node_id, verb[change], ", ".join(sorted(node.capabilities)))
        self._notify()

    def _notify(self) -> None:
        for listener in list(self._listeners):
            try:
                listener(self.revision)
            except Exception:
                log.exception("capability listener failed")

    # -- reading ---------------------------------------------------------
    def offers(self) -> list[Offer]:
        """Every capability of every attached node, by tool name then node id."""
        out = []
        for node in self.nodes():
            kind = node_kind(node)
            for capability in node.capabilities.values():
                out.append(Offer(tool_name(kind, capability.name), node.node_id, kind, capability, node.last_seen))
        out.sort(key=lambda o: (o.tool_name, o.node_id))
        return out

    def allowed(self, offer: Offer) -> bool:
        """False for a dangerous capability the core does not allow by name."""
        return self.permits(offer.capability, offer.tool_name)

    def permits(self, capability: gw.Capability, tool: str) -> bool:
        return self.danger.permits(capability, tool)

    def owners(self, name: str, preferred_node_id: str = "") -> list[Offer]:
        """Offers matching a tool name (else a bare capability name): the preferred node first, then the
        node heard from most recently."""
        offers = self.offers()
        matches = [o for o in offers if o.tool_name == name] or [o for o in offers if o.name == name]
        matches.sort(key=lambda o: (o.node_id != preferred_node_id, -o.last_seen, o.node_id))
        return matches

    # -- invoking --------------------------------------------------------
    async def invoke(self, name: str, arguments: Mapping[str, Any] | str | None = None,
                     preferred_node_id: str = "", timeout_s: float = DEFAULT_TIMEOUT_S) -> Invocation:
        """Run capability `name` on its owning node; StatusError with a gRPC code when refused or failed."""
        args = _arguments(name, arguments)
        timeout_s = min(max(timeout_s, 0.001), MAX_TIMEOUT_S)
        owners = self.owners(name, preferred_node_id)
        if not owners:
            online = ", ".join(sorted({o.tool_name for o in self.offers()})) or "none"
            raise StatusError(grpc.StatusCode.NOT_FOUND,
                            f"no attached node offers {name!r} (online capabilities: {online})")
        first = owners[0]
        if not self.allowed(first):
            raise StatusError(grpc.StatusCode.PERMISSION_DENIED, dangerous_refusal(first.tool_name, first.name))
        _validate(first, args)
        params = _params(args)
        for offer in owners:  # the next owner only when the message could not even be sent
            started = time.perf_counter()
            try:
                response = await self.hub.request(offer.node_id, offer.name, params, timeout_s)
            except LookupError:
                continue
            except TimeoutError:
                raise StatusError(grpc.StatusCode.DEADLINE_EXCEEDED,
                                f"node {offer.node_id!r} did not answer {offer.tool_name} within "
                                f"{timeout_s:g} s") from None
            except ConnectionError as exc:
                raise StatusError(grpc.StatusCode.UNAVAILABLE,
                                f"node {offer.node_id!r} left before answering {offer.tool_name}: {exc}") from None
            latency_ms = int((time.perf_counter() - started) * 1000)
            if response.status != 0:
                code = getattr(grpc.StatusCode, response.code, None) if response.code else None
                if not isinstance(code, grpc.StatusCode) or code == grpc.StatusCode.OK:
                    code = grpc.StatusCode.UNKNOWN
                raise StatusError(code, f"node {offer.node_id!r} failed {offer.tool_name}: "
                                      f"{response.error_msg or 'no reason given'}")
            return Invocation(offer.node_id, offer.name, response.data, latency_ms)
        raise StatusError(grpc.StatusCode.UNAVAILABLE, f"every node offering {name!r} left before the call")


def _arguments(name: str, arguments: Mapping[str, Any] | str | None) -> dict[str, Any]:
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError as exc:
            raise StatusError(grpc.StatusCode.INVALID_ARGUMENT,
                            f"arguments for {name!r} are not JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(arguments, Mapping):
        raise StatusError(grpc.StatusCode.INVALID_ARGUMENT,
                        f"arguments for {name!r} must be a JSON object, got {type(arguments).__name__}")
    return dict(arguments)


@functools.lru_cache(maxsize=512)
def _validator(schema_text: str) -> jsonschema.protocols.Validator:
    schema = json.loads(schema_text)
    cls = jsonschema.validators.validator_for(schema, default=SCHEMA_DIALECT)
    return cls(schema)


def _validate(offer: Offer, args: dict[str, Any]) -> None:
    if not offer.capability.params_schema_json:
        return
    error = best_match(_validator(offer.capability.params_schema_json).iter_errors(args))
    if error is not None:
        raise StatusError(grpc.StatusCode.INVALID_ARGUMENT,
                        f"arguments do not match the schema of {offer.tool_name}: at {_pointer(error.path)}: "
                        f"{error.message}")


def _params(args: dict[str, Any]) -> dict[str, str]:
    """ActionRequest params: one per top-level argument (strings as-is) plus the whole object."""
    params = {k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for k, v in args.items()}
    params[ARGS_PARAM] = json.dumps(args, ensure_ascii=False)
    return params


def _pointer(path: Iterable[Any]) -> str:
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in path]
    return "/" + "/".join(parts) if parts else "the top level"
