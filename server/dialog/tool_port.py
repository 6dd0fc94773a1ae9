"""How the dialog reaches tools: the seam between the turn loop and the capability grid.

The turn asks the port first: an explicit command ("提醒我12点吃饭", "add a
task ...") is handled deterministically and its confirmation becomes the
reply, so commands work even with models that cannot call tools. Everything
else goes to the model through the port's `follow`, which can put the tool
list on the prompt and run the tool scripts in the reply.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Protocol

from server.llm.base import LlmRequest


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


Report = Callable[[list[ToolCallRecord]], None]  # the turn's sink for calls made while it streams


class ToolPort(Protocol):
    async def intent(self, request: TurnRequest) -> IntentReply | None:
        """Handle an explicit command, or return None to let the model answer."""
        ...

    def follow(self, request: TurnRequest, llm_request: LlmRequest, report: Report) -> AsyncIterator[str]:
        """The model's reply to `llm_request`, with the tools it calls run and handed to `report`."""
        ...
