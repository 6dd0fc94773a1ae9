"""The core, built in dependency order: storage, model, speech, memory, events, the hub and
its peers, the tool grid, the dialog, then the one gRPC server that hosts them all.

Every object gets what it needs as constructor arguments; each one's shutdown is pushed
on the caller's exit stack right after it starts, so the stack stops everything in
reverse order (the server first, the database last) and a failed start unwinds exactly
what had started.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from datetime import timedelta

from peromesh.tts.v1 import tts_service_pb2_grpc as tts_grpc
from server.app.settings import MeshSettings
from server.asr.speech_input import SpeechSettings, speech_loader, warm_up
from server.asr.streaming import EndpointConfig
from server.cluster.hub_link import HubClusterLink
from server.dialog import wiring as dialog_wiring
from server.dialog.barge_in import BargeInSettings
from server.dialog.deps import DialogDeps
from server.dialog.echo import EchoSettings
from server.dialog.history import HistoryStore, upgrade_schema
from server.dialog.live_sessions import LiveSessions
from server.dialog.servicer import DialogServicer
from server.events.config import EventsConfig
from server.events.pipeline import EventPipeline, start_pipeline
from server.hub import wiring as hub_wiring
from server.hub.capabilities import CapabilityGrid, DangerPolicy
from server.hub.hub import Hub, HubConfig
from server.llm import factory
from server.llm.base import LlmProvider
from server.memory.client import MemoryClient
from server.monitor import wiring as monitor_wiring
from server.monitor.service import MonitorService
from server.reminders import wiring as reminder_wiring
from server.reminders.service import ReminderService, local_timezone
from server.rpc.auth import bearer_metadata
from server.rpc.channels import PeerChannels
from server.rpc.serving import GrpcServer, start_server
from server.storage.db import Database
from server.tasks import wiring as task_wiring
from server.tasks.service import TaskService
from server.tools import actions
from server.tools.broadcasts import Broadcaster
from server.tools.dialog_port import DialogToolPort
from server.tools.nit_step import NitFollower
from server.tools.port import GridToolPort
from server.tools.reminder_delivery import ReminderDelivery

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Core:
    """The running core: what tests, benchmarks and the bridge (in-process hub) may use."""

    server: GrpcServer
    llm: LlmProvider
    deps: DialogDeps
    dialog: DialogServicer
    sessions: LiveSessions
    events: EventPipeline
    hub: Hub
    grid: CapabilityGrid
    cluster: HubClusterLink | None
    reminders: ReminderService
    tasks: TaskService
    monitor: MonitorService
    tools: GridToolPort
    nit: NitFollower | None
    broadcaster: Broadcaster
    delivery: ReminderDelivery

    @property
    def address(self) -> str:
        return self.server.address


def speech_settings(settings: MeshSettings) -> SpeechSettings:
    """The ASR/VAD/end-of-turn settings from the core's speech flags."""
    flags = settings.core.speech
    endpoint = EndpointConfig(end_silence_ms=flags.end_silence_ms, complete_silence_ms=flags.complete_silence_ms,
                              incomplete_silence_ms=flags.incomplete_silence_ms,
                              judge_after_ms=flags.judge_after_ms)
    return SpeechSettings(flags.asr_model, flags.asr_language or None, flags.turn_model, endpoint)


def events_config(settings: MeshSettings) -> EventsConfig:
    return EventsConfig(outbox_retention=timedelta(hours=settings.core.events.outbox_retention_hours))


async def start_core(settings: MeshSettings, stack: AsyncExitStack, *, peers: PeerChannels, token: str | None,
                     gateway_token: str, tts_address: str | None, memory_address: str | None) -> Core:
    """Build and serve the core; its shutdown goes on `stack`."""
    s = settings.core
    db = Database(settings.db_url("core"))
    stack.callback(db.dispose)
    await asyncio.to_thread(db.create_all)
    await asyncio.to_thread(upgrade_schema, db.engine)

    llm = await factory.build_provider(s.llm, settings.data_dir)
    stack.push_async_callback(llm.aclose)
    tts = tts_grpc.TtsServiceStub(peers.get(tts_address)) if tts_address else None
    if tts is None:
        log.warning("no TTS server (--tts-addr): the companion answers in text only")
    asr = speech_loader(speech_settings(settings), settings.data_dir / "models")
    if asr is not None:
        await warm_up(asr)  # Whisper, VAD and turn detector loaded and run once before SERVING
    memory = MemoryClient(peers.get(memory_address), token, address=memory_address) if memory_address else None

    events = await start_pipeline(db, s.events.redis_url, peers.get(memory_address) if memory_address else None,
                                  bearer_metadata(token), events_config(settings))
    stack.push_async_callback(events.stop)

    hub = Hub(gateway_token, HubConfig(heartbeat_interval_s=s.hub.heartbeat_interval,
                                       heartbeat_timeout_s=s.hub.heartbeat_timeout,
                                       resume_grace_s=s.hub.resume_grace),
              DangerPolicy.of(s.hub.allow_dangerous.split(",")))
    await hub.start()
    stack.push_async_callback(hub.close)
    grid = CapabilityGrid(hub)  # capabilities of the attached nodes, and invoking them
    stack.callback(grid.close)
    cluster = None
    if settings.common.cluster_url:  # joined before the server listens, so no node attaches unjoined
        cluster = HubClusterLink(hub, settings.common.cluster_url)
        await cluster.start()
        stack.push_async_callback(cluster.close)

    reminders = ReminderService()
    await reminders.open(settings.db_url("reminders"), timezone=s.reminders.timezone or local_timezone(),
                         misfire_grace_s=s.reminders.misfire_grace, lease_s=s.reminders.lease)
    stack.push_async_callback(reminders.stop)
    tasks = TaskService()
    await tasks.open(settings.db_url("tasks"))
    stack.push_async_callback(tasks.stop)
    monitor = MonitorService()
    await monitor.open(s.monitor_interval)
    stack.push_async_callback(monitor.stop)

    sessions = LiveSessions()  # the dialog's live streams: where announcements are spoken
    names = actions.register(hub, tasks, reminders)
    log.info("gateway actions on master: %s", ", ".join(names) or "none")
    broadcaster = Broadcaster(hub, reminders=reminders, tasks=tasks, monitor=monitor, announcer=sessions)
    broadcaster.start()
    stack.push_async_callback(broadcaster.close)
    delivery = ReminderDelivery(hub, reminders, window_s=s.reminders.replay_window, announcer=sessions)
    delivery.start()
    stack.push_async_callback(delivery.close)
    tools = GridToolPort(reminders=reminders, tasks=tasks, grid=grid, memory=memory, timeout_s=s.tools.timeout)
    nit = NitFollower(tools, llm, announcer=sessions) if s.tools.nit == "on" else None
    if nit is not None:
        stack.push_async_callback(nit.close)
    dialog_tools = DialogToolPort(tools, llm, nit, tool_prompt=s.tools.prompt == "on")

    async def recall(session_id: str, text: str) -> list[str]:
        if memory is None:
            return []
        return await memory.recall_context(session_id, text, s.recall_top_k, min_semantic=s.recall_min_semantic)

    # several cores on one database (a cluster): turn numbers come from the database
    history = HistoryStore(db, s.history_turns, shared=bool(settings.common.cluster_url))
    deps = DialogDeps(llm=llm, history=history, tts=tts, tts_metadata=bearer_metadata(token),
                      max_new_tokens=s.llm.max_new_tokens, outbound_capacity=s.outbound_queue_events,
                      recall=recall, events_committed=events.relay.notify, tools=dialog_tools, asr=asr,
                      barge_in=replace(BargeInSettings(), max_backchannel_s=s.turn_taking.max_backchannel),
                      echo=replace(EchoSettings(), threshold=s.turn_taking.echo_threshold,
                                   guard_s=s.turn_taking.echo_guard))
    dialog = DialogServicer(deps, sessions)
    stack.push_async_callback(dialog.drain)  # after the server stopped: stream teardowns still running
    bindings = [hub_wiring.binding(hub, grid), reminder_wiring.binding(reminders), task_wiring.binding(tasks),
                monitor_wiring.binding(monitor), dialog_wiring.binding(dialog)]
    server = await start_server("core", bindings, settings.common.host, s.port, token,
                                allow_unauthenticated_loopback=settings.common.allow_unauthenticated_loopback)
    stack.push_async_callback(server.stop)
    return Core(server, llm, deps, dialog, sessions, events, hub, grid, cluster, reminders, tasks, monitor, tools,
                nit, broadcaster, delivery)
