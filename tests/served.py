"""`peromesh serve --only <part>` as a real child process: start, wait for ready, kill -9, stop.

Tests about processes (chaos kills, the cluster) start servers this way, each on
its own data dir and ephemeral port, the mesh token on the command line.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


class ChildProcess:
    """A server child process: its end, gentle or kill -9 (the start is the subclass's)."""

    proc: asyncio.subprocess.Process | None = None

    async def exited(self, timeout_s: float = 30.0) -> int:
        """The exit code once the process has ended (137: a failpoint fired, or SIGKILL)."""
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), timeout_s)

    async def kill(self) -> None:
        """kill -9: no shutdown code runs, no goodbye to peers."""
        if self.proc is not None and self.proc.returncode is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            await self.proc.wait()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                await self.kill()


class ServedProcess(ChildProcess):
    """One life of `peromesh serve --only <part>`; `start()` returns the address it listens on."""

    def __init__(self, part: str, data_dir: Path, token: str, *flags: str, env: dict[str, str] | None = None,
                 quiet: bool = True) -> None:
        self.part, self.data_dir, self.token, self.flags = part, data_dir, token, flags
        self.env = env or {}
        self.quiet = quiet
        self.proc: asyncio.subprocess.Process | None = None
        self.address = ""

    async def start(self, timeout_s: float = 60.0) -> str:
        self.proc = await asyncio.create_subprocess_exec(
            str(BIN / "peromesh"), "serve", "--only", self.part, f"--{self.part}-port", "0",
            "--data-dir", str(self.data_dir), "--token", self.token, "--log-level", "WARNING", *self.flags,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL if self.quiet else None,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env})
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout_s):
            while True:
                line = (await self.proc.stdout.readline()).decode()
                if not line:
                    raise RuntimeError(f"{self.part} exited before it was ready (rc {await self.proc.wait()})")
                if line.startswith(f"peromesh: {self.part} listening on "):
                    self.address = line.split()[-1]
                if line.startswith("peromesh: ready"):
                    return self.address
