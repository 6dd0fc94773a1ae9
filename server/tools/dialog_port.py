"""The dialog's `ToolPort`: explicit commands through the grid, model replies with tools.

Composed from parts that are built independently, so nothing is patched in
after construction: `GridToolPort` runs commands and tool calls, `NitFollower`
(optional, `--nit`) runs the <nit> scripts of a reply through that port, and
`follow` puts the tool note on the prompt (`--tool-prompt on`) and wraps the
model's stream with the follower.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from server.dialog.tool_port import IntentReply, Report, TurnRequest
from server.llm.base import LlmProvider, LlmRequest
from server.tools.nit_step import NitFollower
from server.tools.port import GridToolPort
from server.tools.prompt import with_tool_note


class DialogToolPort:
    def __init__(self, grid: GridToolPort, llm: LlmProvider, nit: NitFollower | None = None, *,
                 tool_prompt: bool = False) -> None:
        self.grid = grid
        self.llm = llm
        self.nit = nit
        self.tool_prompt = tool_prompt

    async def intent(self, request: TurnRequest) -> IntentReply | None:
        return await self.grid.intent(request)

    def follow(self, request: TurnRequest, llm_request: LlmRequest, report: Report) -> AsyncIterator[str]:
        """The model's reply to `llm_request`, with any <nit> script in it run and reported."""
        if self.tool_prompt:
            llm_request = with_tool_note(llm_request, self.grid.tools())
        stream = self.llm.stream(llm_request)
        return self.nit(request, stream, report) if self.nit is not None else stream
