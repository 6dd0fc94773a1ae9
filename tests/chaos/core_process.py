"""The core (`peromesh serve --only core`) as a real child process, armed with failpoints.

A chaos campaign kills the process at a named point (server/failpoints.py)
and starts it again on the same data dir; this class is the part that
starts, watches and ends one life of it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from server.rpc.channels import open_channel
from tests.served import ServedProcess

TOKEN = "chaos-token"


class CoreProcess(ServedProcess):
    """One life of the core on `data_dir`; `failpoints` is the PEROMESH_FAILPOINTS value ("" = none)."""

    def __init__(self, data_dir: Path, failpoints: str = "", *flags: str) -> None:
        super().__init__("core", data_dir, TOKEN, "--llm", "scripted", "--scripted-delay-ms", "1",
                         "--asr-model", "none", *flags, env={"PEROMESH_FAILPOINTS": failpoints})
        self.failpoints = failpoints

    async def start(self, timeout_s: float = 120.0) -> str:
        address = await super().start(timeout_s)
        async with open_channel(address, TOKEN) as channel:
            await asyncio.wait_for(channel.channel_ready(), 10)
        return address
