"""The turn chaos campaign: kill the core at named points mid-turn, restart, count what was lost.

Each life of the core is armed with one failpoint (`turn.before_store`,
`turn.after_store`, `turn.after_final`) set to fire at a seeded-random hit,
and a real gRPC client drives turns until the process dies. Then the data
dir is read directly (the SQLite file the core wrote) and checked against
what the client saw:

- lost: an `assistant_final` the client received whose answer row (same
  text) or long-term-memory outbox event is missing;
- duplicates: a turn id answered twice (to the client, or in the table);
- abandoned: questions left unanswered by a death, which the next life must
  mark abandoned when the session is opened again;
- history_mismatches: `session_started.history_turns` that is not the
  number of answered turns on disk.

tests/chaos/test_turn_crash.py runs a short campaign; benchmarks/chaos.py
the long one.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from meshkit import Conversation
from sqlalchemy import select

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from server.dialog.history import DialogTurnRow
from server.events.outbox import LTM_STREAM, OutboxEvent
from server.rpc.channels import open_channel
from server.storage.db import Database, sqlite_url
from tests.chaos.core_process import TOKEN, CoreProcess

POINTS = ("turn.after_final", "turn.before_store", "turn.after_store")
SESSION = "chaos"


@dataclass
class TurnReport:
    kills: int = 0  # lives that ended by their failpoint (exit 137)
    turns_sent: int = 0
    finals_received: int = 0
    fatal_finals_received: int = 0  # the client had the final of the turn its process died in
    lost: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    abandoned: int = 0  # unanswered questions marked abandoned after restarts
    unmarked: list[str] = field(default_factory=list)  # unanswered questions a restart did not mark
    history_mismatches: list[str] = field(default_factory=list)
    exit_codes: list[int] = field(default_factory=list)

    def figures(self) -> dict[str, object]:
        return {"kills_survived": self.kills, "turns_sent": self.turns_sent, "finals_received": self.finals_received,
                "fatal_finals_received": self.fatal_finals_received, "received_answers_lost": len(self.lost),
                "duplicates": len(self.duplicates), "abandoned_recovered": self.abandoned,
                "abandoned_unmarked": len(self.unmarked), "history_turns_wrong": len(self.history_mismatches)}


@dataclass
class _Rows:
    answers: dict[int, list[str]]  # turn index → answer texts
    questions: dict[int, bool]  # turn index → abandoned
    memory_events: set[str]  # correlation ids of long-term-memory events


async def _read_rows(data_dir: Path) -> _Rows:
    db = Database(sqlite_url(data_dir, "core"))
    try:
        rows = await db.run(lambda s: list(s.scalars(select(DialogTurnRow).where(DialogTurnRow.session_id == SESSION))))
        events = await db.run(lambda s: set(s.scalars(
            select(OutboxEvent.correlation_id).where(OutboxEvent.stream == LTM_STREAM))))
    finally:
        db.dispose()
    answers: dict[int, list[str]] = {}
    questions: dict[int, bool] = {}
    for row in rows:
        if row.role == "assistant":
            answers.setdefault(row.turn_index, []).append(row.text)
        else:
            questions[row.turn_index] = row.abandoned
    return _Rows(answers, questions, events)


async def _open(core: CoreProcess, channel: grpc.aio.Channel, report: TurnReport) -> Conversation:
    """Open the session and check `history_turns` against the answered turns on disk."""
    rows = await _read_rows(core.data_dir)
    talk = Conversation(channel)
    talk.config(session_id=SESSION, text_only=True)
    started = (await talk.next(30)).session_started
    if started.history_turns != len(rows.answers):
        report.history_mismatches.append(f"history_turns {started.history_turns} != {len(rows.answers)} answered")
    return talk


async def _life(core: CoreProcess, turns: int, received: dict[str, str], report: TurnReport) -> str:
    """Drive up to `turns` turns; returns the id of the last turn sent (the one the process may die in)."""
    channel = open_channel(core.address, TOKEN)
    talk = await _open(core, channel, report)
    last = ""
    try:
        for _ in range(turns):
            talk.say(f"question {report.turns_sent + 1}")
            report.turns_sent += 1
            last = ""
            while True:
                event = await talk.next(30)
                last = last or event.turn_id
                if event.HasField("assistant_final"):
                    if event.turn_id in received:
                        report.duplicates.append(event.turn_id)
                    received[event.turn_id] = event.assistant_final.text
                    report.finals_received += 1
                if event.HasField("state_update") and event.state_update.state == pb.STATE_IDLE:
                    break
    except (EOFError, grpc.aio.AioRpcError, TimeoutError):
        pass  # the process died under the stream
    finally:
        talk.half_close()  # ends the request iterator too
        await talk.close()
        await channel.close()
    return last


def _check_after_death(rows: _Rows, received: dict[str, str], fatal: str, report: TurnReport) -> None:
    for turn_id, text in received.items():
        index = int(turn_id.rpartition("#")[2])
        if text not in rows.answers.get(index, []) or turn_id not in rows.memory_events:
            report.lost.append(turn_id)
    report.duplicates += [f"{SESSION}#{i}" for i, texts in rows.answers.items() if len(texts) > 1]
    if fatal and fatal in received:
        report.fatal_finals_received += 1


def _check_recovered(rows: _Rows, report: TurnReport) -> None:
    """After a restart opened the session: every unanswered question is marked abandoned."""
    for index, abandoned in rows.questions.items():
        if index in rows.answers:
            continue
        if abandoned:
            report.abandoned += 1
        else:
            report.unmarked.append(f"{SESSION}#{index}")


async def run_turn_campaign(data_dir: Path, kills: int, turns_per_life: int, seed: int = 9) -> TurnReport:
    """`kills` lives, each killed by a failpoint within `turns_per_life` turns, then one clean life."""
    rng = random.Random(seed)
    report = TurnReport()
    received: dict[str, str] = {}
    for life in range(kills):
        point = POINTS[life % len(POINTS)]
        core = CoreProcess(data_dir, f"{point}={rng.randint(1, turns_per_life)}")
        await core.start()
        try:
            fatal = await _life(core, turns_per_life + 1, received, report)
            code = await core.exited()
        except TimeoutError:
            code = -1  # it did not die at its failpoint
        finally:
            await core.kill()
        report.exit_codes.append(code)
        report.kills += code == 137
        _check_after_death(await _read_rows(data_dir), received, fatal, report)
    core = CoreProcess(data_dir)
    await core.start()
    try:
        async with open_channel(core.address, TOKEN) as channel:
            talk = await _open(core, channel, report)  # opening the session recovers what the deaths left
            talk.half_close()
            await talk.close()
        rows = await _read_rows(data_dir)
    finally:
        await core.kill()
    _check_recovered(rows, report)
    report.lost = sorted(set(report.lost))
    report.duplicates = sorted(Counter(report.duplicates))
    return report
