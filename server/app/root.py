"""The composition root: every server this process runs, built in order and stopped in reverse.

`peromesh serve` (server/cli.py), the test kit (tests/meshkit.py), benchmarks and the
standalone runners all call `start_mesh` (or `run_until_signalled`) instead of wiring
servers themselves. Start order is TTS, memory, core, bridge: each may need the
addresses of the ones before it, which it reaches over gRPC exactly as across machines
(one channel per peer address, `PeerChannels`). Shutdown is one `AsyncExitStack`:
whatever started is stopped in reverse, also when a later start fails.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

from bridge.limits import Limits
from bridge.origins import OriginPolicy
from bridge.server import BridgeServer, start_bridge
from server.app.core import Core, start_core
from server.app.settings import MeshSettings
from server.memory.config import MemoryConfig
from server.memory.server import MemoryServer, start_memory_server
from server.rpc.channels import PeerChannels
from server.tts.wiring import RunningTts, start_tts_server
from server.warmup import progress


@dataclass
class Mesh:
    """The running servers of this process (None: not run here)."""

    settings: MeshSettings
    token: str | None  # what every gRPC server here demands and every client sends (None: open loopback)
    gateway_token: str  # what a device's hello must carry
    stack: AsyncExitStack
    addresses: dict[str, str] = field(default_factory=dict)
    tts: RunningTts | None = None
    memory: MemoryServer | None = None
    core: Core | None = None
    bridge: BridgeServer | None = None

    def address_of(self, server: str) -> str | None:
        """Where `server` listens: started here, or given by --<server>-addr."""
        return self.addresses.get(server) or self.settings.address_given(server)

    async def stop(self) -> None:
        await self.stack.aclose()


def memory_config(settings: MeshSettings) -> MemoryConfig:
    m = settings.memory
    words = tuple(w.strip() for w in m.sensitive_words.split(",") if w.strip())
    return MemoryConfig(data_dir=settings.data_dir, db_url=settings.db_url("memory"), embedder=m.embedder,
                        sensitive_words=words, secretary_interval_s=m.secretary_interval,
                        index_save_interval_s=m.save_interval)


def bridge_limits(settings: MeshSettings) -> Limits:
    b = settings.bridge
    return Limits(max_frame_bytes=b.max_frame_bytes, hard_frame_bytes=max(4 * b.max_frame_bytes, 1024 * 1024),
                  rate_per_s=b.rate, burst=int(2 * b.rate), max_queue_frames=b.queue_frames)


def grpc_token(settings: MeshSettings, gateway_token: str) -> str | None:
    """What gRPC servers demand: the mesh token, unless --allow-unauthenticated-loopback and no
    --token (then None: loopback servers answer anyone local)."""
    if settings.common.allow_unauthenticated_loopback:
        return settings.common.token or None
    return gateway_token


async def start_mesh(settings: MeshSettings, *, gateway_token: str) -> Mesh:
    """Start the selected servers in order; returns once every one listens with its models warm.

    `gateway_token`: the mesh token (--token, or the one in the data dir), which device hellos carry
    and, unless loopback was opened explicitly, every gRPC call."""
    token = grpc_token(settings, gateway_token)
    mesh = Mesh(settings, token, gateway_token, AsyncExitStack())
    common = settings.common
    try:
        peers = PeerChannels()
        mesh.stack.push_async_callback(peers.close)  # pushed first: closed after every client of a peer stopped
        selected = settings.selected()
        if "tts" in selected:
            progress("starting tts …")
            mesh.tts = await start_tts_server(settings.tts.engines, common.host, settings.tts.port, token,
                                              allow_unauthenticated_loopback=common.allow_unauthenticated_loopback)
            mesh.stack.push_async_callback(mesh.tts.stop)
            mesh.addresses["tts"] = mesh.tts.address
        if "memory" in selected:
            progress("starting memory …")
            mesh.memory = await start_memory_server(
                memory_config(settings), common.host, settings.memory.port, token,
                allow_unauthenticated_loopback=common.allow_unauthenticated_loopback)
            mesh.stack.push_async_callback(mesh.memory.stop)
            mesh.addresses["memory"] = mesh.memory.address
        if "core" in selected:
            progress("starting core …")
            mesh.core = await start_core(settings, mesh.stack, peers=peers, token=token, gateway_token=gateway_token,
                                         tts_address=mesh.address_of("tts"), memory_address=mesh.address_of("memory"))
            mesh.addresses["core"] = mesh.core.address
        if "bridge" in selected:
            progress("starting bridge …")
            core = mesh.address_of("core")
            if not core:
                raise ValueError("the bridge needs the core: run it here or pass --core-addr host:port[,host:port]")
            local_hub = mesh.core.hub if mesh.core is not None and settings.bridge.hub == "auto" else None
            origins = OriginPolicy.of(settings.bridge.allowed_origins.split(","))
            mesh.bridge = await start_bridge(core, common.host, settings.bridge.port, token, bridge_limits(settings),
                                             local_hub=local_hub, origins=origins, tts_address=mesh.address_of("tts"))
            mesh.stack.push_async_callback(mesh.bridge.stop)
            mesh.addresses["bridge"] = mesh.bridge.address
    except BaseException:
        await mesh.stop()
        raise
    await asyncio.to_thread(write_endpoints, settings.data_dir, mesh.addresses)
    return mesh


def write_endpoints(data_dir: Path, addresses: dict[str, str]) -> None:
    """Record where everything listens, for scripts and tests (ports may be 0)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = data_dir / "endpoints.json.tmp"
    tmp.write_text(json.dumps(addresses, indent=2))
    tmp.replace(data_dir / "endpoints.json")


async def run_until_signalled(start: Callable[[AsyncExitStack], Awaitable[None]],
                              stopping: Callable[[], None] = lambda: None) -> None:
    """Run what `start` puts on the stack until SIGINT or SIGTERM, then unwind it (one signal loop
    for `peromesh serve` and every standalone runner)."""
    async with AsyncExitStack() as stack:
        await start(stack)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        stopping()
