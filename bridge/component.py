"""The bridge as a `peromesh serve` component (registered last: it needs the core)."""

from __future__ import annotations

import argparse

from server.mesh.component import MeshContext

from .limits import Limits
from .origins import OriginPolicy
from .server import BridgeServer, start_bridge


class BridgeComponent:
    name = "bridge"
    default_port = 8765
    description = "Gateway protocol over WebSocket (/ws) and the web console (/)"

    def add_arguments(self, group: argparse._ArgumentGroup) -> None:
        group.add_argument("--bridge-max-frame-bytes", type=int, default=Limits.max_frame_bytes,
                           help="largest accepted client frame; bigger ones get an error")
        group.add_argument("--bridge-rate", type=float, default=Limits.rate_per_s,
                           help="messages per second a client may send (bursts of twice that)")
        group.add_argument("--bridge-queue-frames", type=int, default=Limits.max_queue_frames,
                           help="frames queued for a client before stale audio is dropped, then it is closed")
        group.add_argument("--bridge-allowed-origins", default="", metavar="ORIGIN[,ORIGIN]",
                           help="web origins (https://app.example, or *) allowed to open /ws besides the bridge's "
                                "own pages and native clients (no Origin)")
        group.add_argument("--bridge-hub", choices=["auto", "grpc"], default="auto",
                           help="auto: attach nodes to the hub in-process when the core runs here; grpc: always "
                                "one HubService.Attach stream per node")

    async def start(self, ctx: MeshContext) -> BridgeServer:
        core = ctx.address_of("core")
        if not core:
            raise ValueError("the bridge needs the core: run it here or pass --core-addr host:port[,host:port]")
        s = ctx.settings
        frame = getattr(s, "bridge_max_frame_bytes", Limits.max_frame_bytes)
        rate = getattr(s, "bridge_rate", Limits.rate_per_s)
        queue = getattr(s, "bridge_queue_frames", Limits.max_queue_frames)
        limits = Limits(max_frame_bytes=frame, hard_frame_bytes=max(4 * frame, 1024 * 1024), rate_per_s=rate,
                        burst=int(2 * rate), max_queue_frames=queue)
        local = ctx.shared.get("hub") if getattr(s, "bridge_hub", "auto") == "auto" else None
        origins = OriginPolicy.of(str(getattr(s, "bridge_allowed_origins", "") or "").split(","))
        return await start_bridge(core, s.host, ctx.port("bridge"), ctx.token, limits, local_hub=local,
                                  origins=origins)
