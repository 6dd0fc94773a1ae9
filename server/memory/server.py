"""Assemble and run the memory server: database, embedder, engine, secretary, gRPC."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from peromesh.memory.v1 import memory_service_pb2_grpc as pb_grpc
from server.memory.config import MemoryConfig
from server.memory.embedder import Embedder
from server.memory.engine import MemoryEngine
from server.memory.secretary import Secretary
from server.memory.servicer import MemoryServicer
from server.rpc.serving import GrpcServer, ServiceBinding, start_server
from server.storage.db import Database

log = logging.getLogger(__name__)
SERVICE = "peromesh.memory.v1.MemoryService"


@dataclass
class MemoryServer:
    """A running memory server; `stop()` drains gRPC, stops the secretary and saves the index."""

    grpc_server: GrpcServer
    engine: MemoryEngine
    secretary: Secretary
    db: Database

    @property
    def address(self) -> str:
        return self.grpc_server.address

    async def stop(self) -> None:
        await self.grpc_server.stop()
        await self.secretary.close()
        await self.engine.close()
        self.db.dispose()


async def open_engine(config: MemoryConfig, embedders: dict[str, Embedder] | None = None
                      ) -> tuple[MemoryEngine, Database]:
    """A started engine (schema migrated, caches loaded) without a gRPC server.

    `embedders` may hand in already loaded models by kind ("minilm", "use-m3"), as tests do.
    """
    db = Database(config.db_url)
    engine = MemoryEngine(config, db, embedders)
    await engine.start()
    return engine, db


async def start_memory_server(config: MemoryConfig, host: str = "127.0.0.1", port: int = 0,
                              token: str | None = None, embedders: dict[str, Embedder] | None = None,
                              *, allow_unauthenticated_loopback: bool = False) -> MemoryServer:
    """Open the engine, load and exercise its models, then listen: a memory server that answers
    health checks is warm (its first recall does not wait seconds for an embedder to load)."""
    engine, db = await open_engine(config, embedders)
    secretary = Secretary(engine)
    try:
        await engine.warm_up()
        binding = ServiceBinding(SERVICE, pb_grpc.add_MemoryServiceServicer_to_server,
                                 MemoryServicer(engine, secretary))
        grpc_server = await start_server("memory", [binding], host, port, token,
                                         allow_unauthenticated_loopback=allow_unauthenticated_loopback)
    except BaseException:
        await engine.close()
        db.dispose()
        raise
    secretary.start()
    return MemoryServer(grpc_server, engine, secretary, db)
