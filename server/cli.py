"""`peromesh`: the command line (serve the mesh, prepare models).

Every flag is a field of the typed settings (`server/app/settings.py`) and has an
environment twin: --core-port ⇔ PEROMESH_CORE_PORT.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path

from server import telemetry
from server.app.core import speech_settings
from server.app.root import run_until_signalled, start_mesh
from server.app.settings import (
    BridgeSettings,
    CommonSettings,
    CoreSettings,
    MemorySettings,
    MeshSettings,
    TtsSettings,
)
from server.app.token import load_or_create_token
from server.config import flags
from server.warmup import settle_heap

log = logging.getLogger("peromesh")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(corr)s] %(message)s"
_GROUPS = (("tts", "speech synthesis (TtsService)", TtsSettings),
           ("memory", "long-term memory (MemoryService)", MemorySettings),
           ("core", "dialog core (DialogService) and the core-hosted hub, reminders, tasks, monitor", CoreSettings),
           ("bridge", "Gateway protocol over WebSocket (/ws) and the web console (/)", BridgeSettings))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="peromesh", description="PeroMesh realtime companion mesh")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the mesh (default: everything embedded in one process)")
    flags.add_flags(serve, CommonSettings)
    for name, description, cls in _GROUPS:
        flags.add_flags(serve.add_argument_group(name, description), cls)
    prepare = sub.add_parser("prepare-model", help="assemble and convert a local chat model, then exit")
    prepare.add_argument("--model", default="qwen", choices=["qwen", "smollm2"])
    prepare.add_argument("--data-dir", default=CommonSettings.data_dir)
    prepare.add_argument("--log-level", default=CommonSettings.log_level)
    flags.apply_environment(parser)
    return parser


def parse_serve(argv: Sequence[str]) -> MeshSettings:
    """`serve` flags (after the word serve) as typed settings."""
    args = build_parser().parse_args(["serve", *argv])
    return flags.read(MeshSettings, args)


async def serve(settings: MeshSettings) -> None:
    data_dir = settings.data_dir
    common = settings.common
    token, created = load_or_create_token(data_dir, common.token)
    if created:
        print(f"peromesh: created access token {token} (saved in {data_dir / 'token'})", flush=True)
    telemetry.configure(common.telemetry)

    async def start(stack: AsyncExitStack) -> None:
        started = time.perf_counter()
        mesh = await start_mesh(settings, gateway_token=token)  # returns when every model is warm
        stack.push_async_callback(mesh.stop)
        settle_heap()
        for name, address in mesh.addresses.items():
            print(f"peromesh: {name} listening on {address}", flush=True)
        print(f"peromesh: ready, every model warm, in {time.perf_counter() - started:.1f}s (Ctrl-C to stop)",
              flush=True)

    await run_until_signalled(start, lambda: print("peromesh: shutting down …", flush=True))


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format=LOG_FORMAT, stream=sys.stderr)
    for handler in logging.getLogger().handlers:
        handler.addFilter(telemetry.CorrelationFilter())
    if args.command == "prepare-model":
        from server.llm.model_store import prepare_model

        print(prepare_model(args.model, Path(args.data_dir).expanduser()))
        return
    settings = flags.read(MeshSettings, args)
    try:
        settings.selected()
        speech_settings(settings)  # the turn-timing flags are checked together (EndpointConfig)
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc
    asyncio.run(serve(settings))
