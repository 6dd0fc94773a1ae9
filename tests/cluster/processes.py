"""`peromesh serve` children for cluster tests: cores and bridges as separate processes."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

BIN = Path(sys.executable).parent
TOKEN = "cluster-token"


class Served:
    """One `peromesh serve --only <part>` child; `start()` returns the address it listens on."""

    def __init__(self, part: str, data_dir: Path, *flags: str) -> None:
        self.part, self.data_dir, self.flags = part, data_dir, flags
        self.proc: asyncio.subprocess.Process | None = None
        self.address = ""

    async def start(self, timeout_s: float = 40.0) -> str:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = await asyncio.create_subprocess_exec(
            str(BIN / "peromesh"), "serve", "--only", self.part, f"--{self.part}-port", "0",
            "--data-dir", str(self.data_dir), "--token", TOKEN, "--log-level", "WARNING", *self.flags,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env=env)
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

    async def kill(self) -> None:
        """kill -9: no goodbye to Redis, the bridges or the devices."""
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


def core(data_dir: Path, db_url: str, cluster_url: str) -> Served:
    return Served("core", data_dir, "--db-url", db_url, "--cluster-url", cluster_url, "--llm", "scripted",
                  "--scripted-delay-ms", "1", "--asr-model", "none", "--hub-heartbeat-interval", "1",
                  "--hub-heartbeat-timeout", "4")


def bridge(data_dir: Path, core_addresses: list[str]) -> Served:
    return Served("bridge", data_dir, "--core-addr", ",".join(core_addresses))
