"""The tool list as the model reads it: a note on the system prompt (opt-in: --tool-prompt on).

Small local models cannot call tools natively, but they can write a NIT
script; the note lists the tools online now in NIT form. It is appended to
the system message only, so the prompt stays a stable prefix (the local
provider's KV cache survives) until a node joins or leaves. Off by default:
every token of it lengthens the prefill of each turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from server.llm.base import ChatMessage, LlmRequest
from server.tools.catalog import ToolSpec

HEADER = ("\n\nYou can act through tools. When the user asks for something a tool does, answer with one short "
          "sentence, then the call in a <nit> block, for example:\n"
          "OK, I'll set it.\n<nit>\nadd_reminder(time=\"21:00\", content=\"call Bob\")\n</nit>\n"
          "Use $name = tool(...) to keep a result for a later call. Never write a tool call for ordinary chat.\n"
          "Tools (arguments by name, ? = optional):")


def tool_note(tools: Sequence[ToolSpec]) -> str:
    if not tools:
        return ""
    return HEADER + "".join(f"\n- {t.signature()}" for t in tools)


def with_tool_note(request: LlmRequest, tools: Sequence[ToolSpec]) -> LlmRequest:
    """`request` with the tool note on its system message (unchanged when there are no tools)."""
    note = tool_note(tools)
    if not note or not request.messages or request.messages[0].role != "system":
        return request
    first = request.messages[0]
    return replace(request, messages=[ChatMessage("system", first.content + note), *request.messages[1:]])
