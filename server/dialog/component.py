"""The core server as a `peromesh serve` component: DialogService plus core-hosted services."""

from __future__ import annotations

import argparse
import asyncio
import logging
from dataclasses import dataclass, field

import grpc

from peromesh.dialog.v1 import dialog_service_pb2_grpc as pb_grpc
from peromesh.tts.v1 import tts_service_pb2_grpc as tts_grpc
from server.asr.speech_input import add_speech_arguments, speech_loader, speech_settings, warm_up
from server.dialog.deps import DialogDeps
from server.dialog.history import HistoryStore, upgrade_schema
from server.dialog.servicer import DialogServicer
from server.events.config import EventsConfig
from server.events.pipeline import EventPipeline, start_pipeline
from server.llm import factory
from server.llm.base import LlmProvider
from server.memory.client import MemoryClient
from server.mesh.component import MeshContext
from server.mesh.core_services import CoreService, core_services
from server.rpc.auth import bearer_metadata
from server.rpc.channels import open_channel
from server.rpc.serving import GrpcServer, ServiceBinding, start_server
from server.storage.db import Database

log = logging.getLogger(__name__)


@dataclass
class RunningCore:
    server: GrpcServer
    servicer: DialogServicer
    llm: LlmProvider
    db: Database
    events: EventPipeline
    channels: list[grpc.aio.Channel] = field(default_factory=list)
    services: list[CoreService] = field(default_factory=list)
    clients: list[MemoryClient] = field(default_factory=list)

    @property
    def address(self) -> str:
        return self.server.address

    async def stop(self) -> None:
        await self.server.stop()
        await self.servicer.drain()
        for service in reversed(self.services):
            await service.stop()
        await self.events.stop()
        for client in self.clients:
            await client.close()
        for channel in self.channels:
            await channel.close()
        await self.llm.aclose()
        self.db.dispose()


class CoreComponent:
    name = "core"
    default_port = 50051
    description = "dialog core (DialogService) and core-hosted services"

    def add_arguments(self, group: argparse._ArgumentGroup) -> None:
        factory.add_arguments(group)
        group.add_argument("--history-turns", type=int, default=12, help="past turns fed to the model")
        EventsConfig.add_arguments(group)
        group.add_argument("--events-redis-url", default=None,
                           help="relay outbox events to Redis Streams (e.g. redis://127.0.0.1:6379/0); "
                                "default: in-process consumers")
        group.add_argument("--outbound-queue-events", type=int, default=256,
                           help="events queued per Converse stream before the turn waits for a slow reader")
        group.add_argument("--recall-top-k", type=int, default=4, help="memories recalled into each turn")
        add_speech_arguments(group)
        for service in core_services():
            service.add_arguments(group)

    async def start(self, ctx: MeshContext) -> RunningCore:
        db = Database(ctx.db_url("core"))
        await asyncio.to_thread(db.create_all)
        await asyncio.to_thread(upgrade_schema, db.engine)
        llm = await factory.build_provider(ctx.settings, ctx.data_dir)
        channels: list[grpc.aio.Channel] = []
        tts_stub = None
        if tts_address := ctx.address_of("tts"):
            channels.append(open_channel(tts_address))
            tts_stub = tts_grpc.TtsServiceStub(channels[-1])
        else:
            log.warning("no TTS server (--tts-addr): the companion answers in text only")
        deps = DialogDeps(llm=llm, history=HistoryStore(db, ctx.settings.history_turns), tts=tts_stub,
                          tts_metadata=bearer_metadata(ctx.token), max_new_tokens=ctx.settings.max_new_tokens,
                          outbound_capacity=ctx.settings.outbound_queue_events)
        deps.asr = speech_loader(speech_settings(ctx.settings), ctx.data_dir / "models")
        if deps.asr is not None:
            await warm_up(deps.asr)  # Whisper, VAD and turn detector loaded and run once before SERVING
        memory_address = ctx.address_of("memory")
        if memory_address:
            memory = MemoryClient(memory_address, ctx.token)
            top_k = ctx.settings.recall_top_k
            deps.recall = lambda session_id, text: memory.recall_context(session_id, text, top_k)
        events = await start_pipeline(db, ctx.settings.events_redis_url, memory_address, bearer_metadata(ctx.token),
                                      EventsConfig.from_settings(ctx.settings))
        deps.events_committed = events.relay.notify
        ctx.shared["dialog_deps"] = deps
        ctx.shared["events"] = events
        started: list[CoreService] = []
        bindings: list[ServiceBinding] = []
        try:
            for service in core_services():
                bindings += await service.start(ctx)
                started.append(service)
                ctx.shared[service.name] = service
            servicer = DialogServicer(deps)
            ctx.shared["dialog"] = servicer  # announcements (reminders) reach live sessions through it
            bindings.append(ServiceBinding("peromesh.dialog.v1.DialogService",
                                           pb_grpc.add_DialogServiceServicer_to_server, servicer))
            server = await start_server("core", bindings, ctx.settings.host, ctx.port("core"), ctx.token,
                                        allow_unauthenticated_loopback=ctx.allow_unauthenticated_loopback)
        except BaseException:
            for service in reversed(started):
                await service.stop()
            await events.stop()
            raise
        return RunningCore(server, servicer, llm, db, events, channels, started,
                           [memory] if memory_address else [])

