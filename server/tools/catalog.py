"""The LLM's tool list for a turn: built-in tools plus the capabilities of the nodes online now.

Built-ins are add_reminder and add_task (always, when their services run) and
recall_memory (when a memory server is configured). Node capabilities are
named "<node kind>.<capability>" ("mobile.location.get"), appear when their
node registers them and disappear when it leaves; dangerous ones the core does
not allow are left out (the model cannot use them anyway). The list is rebuilt
only when the grid's revision changes, so asking for it every turn is cheap.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from peromesh.server.hub.capabilities import CapabilityGrid, parameters_of
from peromesh.server.reminders.service import ADD_REMINDER_TOOL
from peromesh.server.tasks.service import ADD_TASK_TOOL

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
        if self.grid is None:
            return []
        grouped: dict[str, ToolSpec] = {}
        for offer in self.grid.offers():
            if not self.grid.allowed(offer):
                continue
            known = grouped.get(offer.tool_name)
            if known is not None:  # several nodes of one kind offer it: one tool, routed at call time
                grouped[offer.tool_name] = ToolSpec(known.name, known.description, known.parameters, "node",
                                                    (*known.node_ids, offer.node_id), known.capability)
                continue
            grouped[offer.tool_name] = ToolSpec(offer.tool_name, offer.capability.description,
                                                parameters_of(offer.capability), "node", (offer.node_id,),
                                                offer.name)
        return list(grouped.values())
