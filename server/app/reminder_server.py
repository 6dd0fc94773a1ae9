"""The ReminderService alone: `python -m server.app.reminder_server --db-url URL`.

For relays under test and for deployments that keep the clock in its own process.
Same settings types and the same signal loop as `peromesh serve` (server/app/root.py).
Prints `listening on HOST:PORT` once serving; SIGTERM/SIGINT stop it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

from server.app.root import run_until_signalled
from server.app.settings import CommonSettings, ReminderSettings
from server.config import flags
from server.config.flags import flag
from server.reminders import wiring
from server.reminders.service import ReminderService, local_timezone
from server.rpc.serving import start_server


@dataclass(frozen=True)
class ReminderServerSettings:
    db_url: str = flag("", "db-url", "SQLAlchemy URL of the reminder tables (required)")
    host: str = flag(CommonSettings.host, "host", "address to bind")
    port: int = flag(0, "port", "port (0: any free port)")
    token: str | None = flag(None, "token", "the token every call must carry")
    allow_unauthenticated_loopback: bool = flag(False, "allow-unauthenticated-loopback",
                                                "serve loopback without --token (any local process may call)")
    log_level: str = flag(CommonSettings.log_level, "log-level", "logging level")
    reminders: ReminderSettings = field(default_factory=ReminderSettings)


async def serve(settings: ReminderServerSettings) -> None:
    async def start(stack: AsyncExitStack) -> None:
        r = settings.reminders
        service = ReminderService()
        await service.open(settings.db_url, timezone=r.timezone or local_timezone(), misfire_grace_s=r.misfire_grace,
                           lease_s=r.lease)
        stack.push_async_callback(service.stop)
        server = await start_server("reminders", [wiring.binding(service)], settings.host, settings.port,
                                    settings.token,
                                    allow_unauthenticated_loopback=settings.allow_unauthenticated_loopback)
        stack.push_async_callback(server.stop)
        print(f"listening on {server.address}", flush=True)

    await run_until_signalled(start)


def parse(argv: Sequence[str] | None = None) -> ReminderServerSettings:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    flags.add_flags(parser, ReminderServerSettings)
    flags.apply_environment(parser)
    settings = flags.read(ReminderServerSettings, parser.parse_args(argv))
    if not settings.db_url:
        parser.error("--db-url is required")
    return settings


def main() -> None:
    settings = parse()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
