"""How the dialog reaches tools: the seam between the turn loop and the capability grid.

The turn asks the port first: an explicit command ("提醒我12点吃饭", "add a
task ...") is handled deterministically and its confirmation becomes the
reply, so commands work even with models that cannot call tools. Everything
else goes to the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class ToolCallRecord:
    """One executed tool call, reported to the client as tool_call + tool_result."""

    call_id: str
    name: str
    arguments_json: str
    result_json: str = ""
    error: str = ""


@dataclass(frozen=True)
class IntentReply:
    """A turn answered without the model: the reply to speak and the calls made."""

    reply: str
    calls: list[ToolCallRecord] = field(default_factory=list)


@dataclass(frozen=True)
class TurnRequest:
    session_id: str
    device_id: str
    text: str


class ToolPort(Protocol):
    async def intent(self, request: TurnRequest) -> IntentReply | None:
        """Handle an explicit command, or return None to let the model answer."""
        ...
