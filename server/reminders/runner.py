"""Run the ReminderService alone: `python -m server.reminders.runner --db-url URL`.

For relays under test and for deployments that keep the clock in its own
process. Prints `listening on HOST:PORT` once serving; SIGTERM/SIGINT stop it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from server.reminders.service import DEFAULT_MISFIRE_GRACE_S, ReminderService, local_timezone
from server.reminders.wiring import binding
from server.rpc.serving import start_server


async def serve(args: argparse.Namespace) -> None:
    service = ReminderService()
    await service.open(args.db_url, timezone=args.timezone or local_timezone(),
                       misfire_grace_s=args.misfire_grace)
    server = await start_server("reminders", [binding(service)], args.host, args.port, args.token,
                                allow_unauthenticated_loopback=args.allow_unauthenticated_loopback)
    print(f"listening on {server.address}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()
    await service.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db-url", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default=None, help="the token every call must carry")
    parser.add_argument("--allow-unauthenticated-loopback", action="store_true",
                        help="serve loopback without --token (any local process may call)")
    parser.add_argument("--timezone", default=None)
    parser.add_argument("--misfire-grace", type=float, default=DEFAULT_MISFIRE_GRACE_S)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
