"""`peromesh`: the command line (serve the mesh, prepare models).

Every flag has an environment twin: --core-port ⇔ PEROMESH_CORE_PORT.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from pathlib import Path

from server import telemetry
from server.mesh.component import Component, MeshContext, load_or_create_token
from server.mesh.registry import components
from server.mesh.runner import start_mesh

log = logging.getLogger("peromesh")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(corr)s] %(message)s"


def build_parser(parts: list[Component]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="peromesh", description="PeroMesh realtime companion mesh")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the mesh (default: everything embedded in one process)")
    names = ", ".join(p.name for p in parts)
    serve.add_argument("--only", default="", help=f"comma-separated components to run here ({names})")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    serve.add_argument("--data-dir", default=str(Path.home() / ".peromesh"), help="models, databases, token")
    serve.add_argument("--db-url", default=None, help="SQLAlchemy URL for all tables (default SQLite files)")
    serve.add_argument("--cluster-url", default=None, metavar="redis://HOST:PORT/DB[?prefix=NAME]",
                       help="join the cores on this Redis into one mesh (node presence, routing, broadcasts); "
                            "default: this process alone")
    serve.add_argument("--token", default=None,
                       help="the mesh token every gRPC call and gateway hello must carry (default: created "
                            "once into <data-dir>/token)")
    serve.add_argument("--allow-unauthenticated-loopback", action="store_true",
                       help="serve gRPC on loopback without a token unless --token is given (any local "
                            "process may then call every RPC); health checks are always open")
    serve.add_argument("--telemetry", default="none", choices=["none", "console", "otlp"])
    serve.add_argument("--log-level", default="INFO")
    for part in parts:
        group = serve.add_argument_group(part.name, part.description)
        group.add_argument(f"--{part.name}-port", type=int, default=part.default_port,
                           help=f"{part.name} port (0: any free port)")
        group.add_argument(f"--{part.name}-addr", default=None,
                           help=f"use a {part.name} server running elsewhere (host:port)")
        part.add_arguments(group)
    prepare = sub.add_parser("prepare-model", help="assemble and convert a local chat model, then exit")
    prepare.add_argument("--model", default="qwen", choices=["qwen", "smollm2"])
    prepare.add_argument("--data-dir", default=str(Path.home() / ".peromesh"))
    _apply_env_defaults(parser)
    return parser


def _apply_env_defaults(parser: argparse.ArgumentParser) -> None:
    """PEROMESH_<FLAG> overrides a flag's default (flags given on the command line win)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _apply_env_defaults(child)
            continue
        for opt in action.option_strings:
            if opt.startswith("--"):
                value = os.environ.get("PEROMESH_" + opt[2:].upper().replace("-", "_"))
                if value is None:
                    continue
                if isinstance(action, argparse._StoreTrueAction):
                    action.default = value.strip().lower() in ("1", "true", "yes", "on")
                else:
                    action.default = action.type(value) if callable(action.type) else value


def selected(parts: list[Component], only: str, addresses_given: set[str]) -> list[Component]:
    if not only:
        return [p for p in parts if p.name not in addresses_given]
    wanted = {n.strip() for n in only.split(",") if n.strip()}
    unknown = wanted - {p.name for p in parts}
    if unknown:
        raise SystemExit(f"--only: unknown component(s) {sorted(unknown)}; known: {[p.name for p in parts]}")
    return [p for p in parts if p.name in wanted]


async def serve(args: argparse.Namespace, parts: list[Component], data_dir: Path) -> None:
    token, created = load_or_create_token(data_dir, args.token)
    if created:
        print(f"peromesh: created access token {token} (saved in {data_dir / 'token'})", flush=True)
    telemetry.configure(args.telemetry)
    given = {p.name for p in parts if getattr(args, f"{p.name}_addr", None)}
    grpc_token = args.token if args.allow_unauthenticated_loopback else token
    ctx = MeshContext(settings=args, data_dir=data_dir, token=grpc_token)
    ctx.shared["gateway_token"] = token
    started = time.perf_counter()
    mesh = await start_mesh(ctx, selected(parts, args.only, given))  # returns when every model is warm
    for name, address in mesh.addresses.items():
        print(f"peromesh: {name} listening on {address}", flush=True)
    print(f"peromesh: ready, every model warm, in {time.perf_counter() - started:.1f}s (Ctrl-C to stop)",
          flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    print("peromesh: shutting down …", flush=True)
    await mesh.stop()


def main(argv: list[str] | None = None) -> None:
    parts = components()
    args = build_parser(parts).parse_args(argv)
    logging.basicConfig(level=getattr(args, "log_level", "INFO"), format=LOG_FORMAT, stream=sys.stderr)
    for handler in logging.getLogger().handlers:
        handler.addFilter(telemetry.CorrelationFilter())
    if args.command == "prepare-model":
        from server.llm.model_store import prepare_model

        print(prepare_model(args.model, Path(args.data_dir).expanduser()))
        return
    asyncio.run(serve(args, parts, Path(args.data_dir).expanduser()))
