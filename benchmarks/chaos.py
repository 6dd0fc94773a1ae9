"""Chaos campaigns, the long versions of tests/chaos: kill -9 at named failpoints, restart, count losses.

    .venv/bin/python benchmarks/chaos.py                       # every campaign, full size
    .venv/bin/python benchmarks/chaos.py turns --kills 10 --turns 300

Each campaign is one function `(args, data_dir) -> figures`, registered in CAMPAIGNS; each prints one
JSON line. `turns`: the core is killed at `turn.after_final` / `turn.before_store` / `turn.after_store`
(in turn), at a seeded-random turn of each life (up to --turns), then restarted on the same data dir;
the figures are kills survived, answers the client received that history lost, duplicates, questions
recovered as abandoned, and wrong `history_turns`. `reminders`: 7 kills while 40 occurrences fall due
(see `reminders` below and tests/chaos/reminder_campaign.py); lost, duplicated and redelivered per device.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the campaigns live with the tests that run them short

from tests.chaos.reminder_campaign import run_campaign as run_reminder_campaign  # noqa: E402
from tests.chaos.turn_campaign import run_turn_campaign  # noqa: E402

Campaign = Callable[[argparse.Namespace, Path], Awaitable[dict[str, object]]]


async def turns(args: argparse.Namespace, data_dir: Path) -> dict[str, object]:
    report = await run_turn_campaign(data_dir, args.kills, args.turns, seed=args.seed)
    return {**report.figures(), "exit_codes": sorted(set(report.exit_codes)), "lost_ids": report.lost[:20],
            "duplicate_ids": report.duplicates[:20]}


REMINDER_POINTS = ("reminder.after_fire", "attach.before_receipted_write", "reminder.before_ack",
                   "bridge.before_reminder_write")


async def reminders(args: argparse.Namespace, data_dir: Path) -> dict[str, object]:
    """Kill at reminder.after_fire / attach.before_receipted_write / reminder.before_ack /
    bridge.before_reminder_write (in turn, at a seeded hit 1-3) while --reminders occurrences fall due;
    "desk" (PeroLink v1 on Attach) and "console" (PeroLink v1 on the bridge's WebSocket) every life,
    "phone" (acks itself) every other life; lost/duplicated per device."""
    rng = random.Random(args.seed)
    points = REMINDER_POINTS
    kills = tuple(f"{points[i % len(points)]}={rng.randint(1, 3)}" for i in range(args.reminder_kills))
    report = await run_reminder_campaign(data_dir, kills, reminders=args.reminders, spacing_s=args.reminder_spacing)
    return {"kill_points": list(kills), "kills": report.kills, "sigkills": report.sigkills,
            "occurrences": report.occurrences,
            "lost": report.lost(), "duplicates": report.duplicates(),
            "devices": {name: vars(d) for name, d in report.devices.items()}}


CAMPAIGNS: dict[str, Campaign] = {"turns": turns, "reminders": reminders}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("campaigns", nargs="*", help=f"which to run (default: all of {', '.join(CAMPAIGNS)})")
    parser.add_argument("--kills", type=int, default=10, help="process deaths per campaign")
    parser.add_argument("--turns", type=int, default=300, help="turns per life, at most (the kill comes before)")
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--reminder-kills", type=int, default=7, help="process deaths in the reminders campaign")
    parser.add_argument("--reminders", type=int, default=40, help="occurrences scheduled in the reminders campaign")
    parser.add_argument("--reminder-spacing", type=float, default=1.5, help="seconds between their due times")
    args = parser.parse_args()
    unknown = set(args.campaigns) - set(CAMPAIGNS)
    if unknown:
        parser.error(f"unknown campaign(s) {sorted(unknown)}; known: {list(CAMPAIGNS)}")
    for name in args.campaigns or list(CAMPAIGNS):
        with tempfile.TemporaryDirectory(prefix=f"chaos-{name}-") as tmp:
            started = time.perf_counter()
            figures = asyncio.run(CAMPAIGNS[name](args, Path(tmp)))
            print(json.dumps({"campaign": name, **figures, "wall_s": round(time.perf_counter() - started, 1)}),
                  flush=True)


if __name__ == "__main__":
    main()
