"""The core (`peromesh serve --only core`) as a real child process, armed with failpoints.

A chaos campaign kills the process at a named point (server/failpoints.py)
and starts it again on the same data dir; this class is the part that
starts, watches and ends one life of it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from server.rpc.channels import open_channel

BIN = Path(sys.executable).parent
TOKEN = "chaos-token"


class CoreProcess:
    """One life of the core on `data_dir`; `failpoints` is the PEROMESH_FAILPOINTS value ("" = none)."""

    def __init__(self, data_dir: Path, failpoints: str = "", *flags: str) -> None:
        self.data_dir = data_dir
        self.failpoints = failpoints
        self.flags = flags
        self.proc: asyncio.subprocess.Process | None = None
        self.address = ""

    async def start(self, timeout_s: float = 120.0) -> str:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PEROMESH_FAILPOINTS": self.failpoints}
        self.proc = await asyncio.create_subprocess_exec(
            str(BIN / "peromesh"), "serve", "--only", "core", "--core-port", "0", "--data-dir", str(self.data_dir),
            "--token", TOKEN, "--llm", "scripted", "--scripted-delay-ms", "1", "--asr-model", "none",
            "--log-level", "WARNING", *self.flags,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env=env)
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout_s):
            while True:
                line = (await self.proc.stdout.readline()).decode()
                if not line:
                    raise RuntimeError(f"core exited before it was ready (rc {await self.proc.wait()})")
                if line.startswith("peromesh: core listening on "):
                    self.address = line.split()[-1]
                if line.startswith("peromesh: ready"):
                    break
        async with open_channel(self.address, TOKEN) as channel:
            await asyncio.wait_for(channel.channel_ready(), 10)
        return self.address

    async def exited(self, timeout_s: float = 30.0) -> int:
        """The exit code once the process has ended (137: a failpoint fired, or SIGKILL)."""
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), timeout_s)

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            await self.proc.wait()
