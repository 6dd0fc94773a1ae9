"""The memory server as a `peromesh serve` component (embedded, or alone with `--only memory`)."""

from __future__ import annotations

import argparse

from server.memory.config import MemoryConfig
from server.memory.embedder import EMBEDDERS
from server.memory.server import MemoryServer, start_memory_server
from server.mesh.component import MeshContext


class MemoryComponent:
    name = "memory"
    default_port = 50053
    description = "long-term memory (MemoryService)"

    def add_arguments(self, group: argparse._ArgumentGroup) -> None:
        group.add_argument("--memory-embedder", default="auto", choices=["auto", *sorted(EMBEDDERS)],
                           help="auto: MiniLM for English + use-m3 for Chinese text (default); "
                                "minilm (English, 384-d) or use-m3 (multilingual, 512-d) for everything")
        group.add_argument("--memory-secretary-interval", type=float, default=3600.0,
                           help="seconds between consolidation runs (0: only on Consolidate)")
        group.add_argument("--memory-save-interval", type=float, default=60.0,
                           help="seconds between index saves when it changed (0: only at shutdown)")
        group.add_argument("--memory-sensitive-words", default="",
                           help="comma-separated words masked in stored text")

    async def start(self, ctx: MeshContext) -> MemoryServer:
        s = ctx.settings
        words = tuple(w.strip() for w in getattr(s, "memory_sensitive_words", "").split(",") if w.strip())
        config = MemoryConfig(
            data_dir=ctx.data_dir, db_url=ctx.db_url("memory"), embedder=s.memory_embedder,
            sensitive_words=words, secretary_interval_s=s.memory_secretary_interval,
            index_save_interval_s=s.memory_save_interval,
        )
        return await start_memory_server(config, s.host, ctx.port("memory"), ctx.token,
                                         allow_unauthenticated_loopback=ctx.allow_unauthenticated_loopback)
