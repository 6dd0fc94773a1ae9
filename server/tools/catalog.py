"""The LLM's tool list for a turn: built-in tools plus the capabilities of the nodes online now.

Built-ins are add_reminder and add_task (always, when their services run) and
recall_memory (when a memory server is configured). Node capabilities are
named "<node kind>.<capability>" ("mobile.location.get"), appear when their
node registers them and disappear when it leaves; dangerous ones the core does
not allow are left out (the model cannot use them anyway). The list is rebuilt
only when the grid's revision changes, so asking for it every turn is cheap.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from peromesh.gateway.v1 import envelope_pb2 as gw
from server.hub.capabilities import NAME_RE, CapabilityGrid, node_kind, parameters_of, tool_name
from server.reminders.service import ADD_REMINDER_TOOL
from server.tasks.service import ADD_TASK_TOOL

Source = Literal["builtin", "node"]

RECALL_MEMORY_TOOL: dict[str, Any] = {
    "name": "recall_memory",
    "description": "Look up what you remember about the user (long-term memory). Returns matching memories.",
    "parameters": {"type": "object", "additionalProperties": False, "required": ["query"],
                   "properties": {"query": {"type": "string", "minLength": 1, "maxLength": 2000},
                                  "top_k": {"type": "integer", "minimum": 1, "maximum": 20}}},
}


@dataclass(frozen=True)
class ToolSpec:
    """One tool as the model sees it."""

    name: str
    description: str
    parameters: dict[str, Any]
    source: Source
    node_ids: tuple[str, ...] = ()  # the nodes offering it (node tools)
    capability: str = ""  # the capability name on those nodes (node tools)

    def as_function(self) -> dict[str, Any]:
        """The OpenAI/Qwen `tools=` entry."""
        return {"type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}

    def signature(self) -> str:
        """`name(arg, other?)  # description` — a one-line form for prompts and help texts."""
        props = self.parameters.get("properties") or {}
        required = set(self.parameters.get("required") or ())
        args = ", ".join(p if p in required else f"{p}?" for p in props)
        return f"{self.name}({args})" + (f"  # {self.description}" if self.description else "")


def builtin_specs(reminders: bool, tasks: bool, memory: bool) -> list[ToolSpec]:
    chosen = [(reminders, ADD_REMINDER_TOOL), (tasks, ADD_TASK_TOOL), (memory, RECALL_MEMORY_TOOL)]
    return [ToolSpec(t["name"], t["description"], t["parameters"], "builtin") for on, t in chosen if on]


@dataclass
class ToolCatalog:
    """Built-ins plus the grid's offers, cached per grid revision."""

    builtins: list[ToolSpec]
    grid: CapabilityGrid | None = None
    _cached: tuple[int, list[ToolSpec]] | None = field(default=None, repr=False)
    _per_node: dict[str, _NodeEntry] = field(default_factory=dict, repr=False)

    def tools(self) -> list[ToolSpec]:
        """The tool list for a turn (built-ins first, then node tools by name)."""
        revision = self.grid.revision if self.grid is not None else 0
        if self._cached is None or self._cached[0] != revision:
            self._cached = (revision, [*self.builtins, *self._node_tools()])
        return self._cached[1]

    def find(self, name: str) -> ToolSpec | None:
        """A tool by its name, or a node tool by its bare capability name."""
        tools = self.tools()
        for spec in tools:
            if spec.name == name:
                return spec
        for spec in tools:
            if spec.source == "node" and spec.capability == name:
                return spec
        return None

    def functions_json(self) -> str:
        return json.dumps([t.as_function() for t in self.tools()], ensure_ascii=False)

    def _node_tools(self) -> list[ToolSpec]:
        """One tool per tool name, however many nodes offer it (routed at call time).

        Per-node entries are reused while a node's capability set is the same
        object (a register replaces it), so a rebuild after one node changed
        costs a pass over the nodes, not a re-read of every capability.
        """
        grid = self.grid
        if grid is None:
            return []
        groups: dict[str, tuple[gw.Capability, list[str]]] = {}
        seen: dict[str, _NodeEntry] = {}
        for node in grid.nodes():  # this core's and, in a cluster, the other cores'
            entry = self._per_node.get(node.node_id)
            if entry is None or entry.capabilities is not node.capabilities or entry.platform != node.platform:
                kind = node_kind(node)
                named = [(tool_name(kind, c.name), c) for c in node.capabilities.values() if NAME_RE.fullmatch(c.name)]
                entry = _NodeEntry(node.capabilities, node.platform,
                                   [(name, c) for name, c in named if grid.permits(c, name)])
            seen[node.node_id] = entry
            for name, capability in entry.tools:
                group = groups.get(name)
                if group is None:
                    groups[name] = (capability, [node.node_id])
                else:
                    group[1].append(node.node_id)
        self._per_node = seen
        return [ToolSpec(name, capability.description, _parameters(capability.params_schema_json, capability),
                         "node", tuple(node_ids), capability.name)
                for name, (capability, node_ids) in sorted(groups.items())]


@dataclass
class _NodeEntry:
    capabilities: dict[str, gw.Capability]  # the node's set this entry was built from (identity-compared)
    platform: str
    tools: list[tuple[str, gw.Capability]]  # (tool name, capability), dangerous-and-refused left out


def _parameters(schema_text: str, capability: gw.Capability) -> dict[str, Any]:
    if schema_text:
        return _parsed_schema(schema_text)
    return parameters_of(capability)


@functools.lru_cache(maxsize=1024)
def _parsed_schema(text: str) -> dict[str, Any]:
    value = json.loads(text)
    return value if isinstance(value, dict) else {"type": "object"}
