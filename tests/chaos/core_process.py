"""The core (`peromesh serve --only core`) as a real child process, armed with failpoints.

A chaos campaign kills the process at a named point (server/failpoints.py)
and starts it again on the same data dir; this class is the part that
starts, watches and ends one life of it. With `bridge_port` the bridge runs
in the same process (the embedded default: nodes attach to the hub
in-process), on that port, so a failpoint in the bridge kills the core too.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from server.rpc.channels import open_channel
from tests.served import ServedProcess

TOKEN = "chaos-token"


def free_port() -> int:
    """A port nothing listens on now (the bridge binds it with SO_REUSEADDR, so every life can reuse it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class CoreProcess(ServedProcess):
    """One life of the core on `data_dir`; `failpoints` is the PEROMESH_FAILPOINTS value ("" = none)."""

    def __init__(self, data_dir: Path, failpoints: str = "", *flags: str, bridge_port: int = 0) -> None:
        with_bridge = ("--only", "core,bridge", "--bridge-port", str(bridge_port)) if bridge_port else ()
        super().__init__("core", data_dir, TOKEN, "--llm", "scripted", "--scripted-delay-ms", "1",
                         "--asr-model", "none", *flags, *with_bridge, env={"PEROMESH_FAILPOINTS": failpoints})
        self.failpoints = failpoints
        self.ws_url = f"ws://127.0.0.1:{bridge_port}/ws" if bridge_port else ""

    async def start(self, timeout_s: float = 120.0) -> str:
        address = await super().start(timeout_s)
        async with open_channel(address, TOKEN) as channel:
            await asyncio.wait_for(channel.channel_ready(), 10)
        return address
