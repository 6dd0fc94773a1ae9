"""Scale-out figures (issue 11): cores and bridges as separate processes on one PostgreSQL and one Redis.

Every subcommand starts its own cluster with the cluster tests' recipes (tests/cluster/processes.py:
`core`, `bridge`) on a fresh PostgreSQL schema and Redis prefix (_serve.cluster_urls), bridge j reaching
the cores in the order j, j+1, … as scripts/cluster.sh does, and prints JSON lines:

- throughput: N concurrent text sessions (soak.py's session loop: turns back to back, scripted LLM at
  --delay-ms per token) against 1 core process and then against 2 (sessions split over them), the
  same warm-up and seconds each: turns/s, CPU ms per turn of the core processes (psutil), first-delta
  p50/p99, then the 2-core/1-core ratios (goal: about 2× the turns/s at the same p99).
- broadcast: C light WebSocket clients (bridge_broadcast.py's) split over two bridges, each on its own
  core, the cores joined by Redis; a device on bridge 1 broadcasts; per-client receive latency p50/p99
  over R rounds (all clients, same bridge, other bridge) and the servers' CPU per broadcast.
- failover: D devices chatting through two bridges; K times kill -9 of the core bridge 1 is attached
  to, restarted on its port after each kill: time from the kill until every device it served has a
  reply again (p50 over kills; goal ≤ 10 s).
- reminders: R one-shot reminders due at one moment, created through both of 2 cores: fired per
  second, fire delay p50/p99, and a WatchReminders relay on each core that must see every occurrence
  exactly once, in cursor order (duplicates, missing and out-of-order counted).

Full sizes (a quiet machine; about 6 min in all):
    .venv/bin/python benchmarks/cluster_scale.py throughput            # 200 sessions, 60 s per run
    .venv/bin/python benchmarks/cluster_scale.py broadcast             # 1,000 clients, 10 rounds
    .venv/bin/python benchmarks/cluster_scale.py failover              # 10 kills, 10 devices
    .venv/bin/python benchmarks/cluster_scale.py reminders             # 1,000 reminders
Smoke sizes (each under a minute; `--server-logs` before the subcommand shows the servers' warnings):
    .venv/bin/python benchmarks/cluster_scale.py throughput --sessions 10 --seconds 10 --warmup-s 2
    .venv/bin/python benchmarks/cluster_scale.py broadcast --clients 50 --rounds 3
    .venv/bin/python benchmarks/cluster_scale.py failover --kills 2 --devices 4
    .venv/bin/python benchmarks/cluster_scale.py reminders --reminders 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import resource
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import psutil
from google.protobuf.timestamp_pb2 import Timestamp
from websockets.exceptions import WebSocketException

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _serve import cluster_urls, percentile
from bridge_broadcast import cpu_ms, open_clients
from bridge_report import report
from soak import Stats, session_loop

from peromesh.reminder.v1 import reminder_service_pb2 as rpb
from peromesh.reminder.v1 import reminder_service_pb2_grpc as rpb_grpc
from server.rpc.channels import open_channel
from tests.bridge.gateway_client import GatewayClient, action_is
from tests.cluster.processes import TOKEN, Served, bridge, core


def _core(data_dir: Path, db_url: str, cluster_url: str, *more: str) -> Served:
    """The cluster tests' core with `more` flags after theirs (a later flag wins: --scripted-delay-ms 20)."""
    part = core(data_dir, db_url, cluster_url)
    part.flags = (*part.flags, *more)
    return part


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


class Cluster:
    """`cores` core processes and `bridges` bridge processes on one database and one Redis prefix."""

    def __init__(self, root: Path, db_url: str, cluster_url: str, cores: int, bridges: int,
                 core_flags: Sequence[str] = (), quiet: bool = True) -> None:
        self.root, self.db_url, self.cluster_url, self.quiet = root, db_url, cluster_url, quiet
        self.n_cores, self.n_bridges, self.core_flags = cores, bridges, tuple(core_flags)
        self.cores: list[Served] = []
        self.bridges: list[Served] = []

    async def __aenter__(self) -> Cluster:
        try:
            for i in range(self.n_cores):  # one after the other: both create the same tables in the fresh schema
                part = _core(self.root / f"core{i + 1}", self.db_url, self.cluster_url, *self.core_flags)
                part.quiet = self.quiet
                self.cores.append(part)
                await part.start()
            addresses = [c.address for c in self.cores]
            for j in range(self.n_bridges):
                first = j % len(addresses)  # bridge j reaches cores j, j+1, … (as scripts/cluster.sh)
                part = bridge(self.root / f"bridge{j + 1}", addresses[first:] + addresses[:first])
                part.quiet = self.quiet
                self.bridges.append(part)
                await part.start()
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *_exc: object) -> None:
        for part in [*reversed(self.bridges), *reversed(self.cores)]:
            await part.stop()

    def pids(self) -> list[int]:
        return [p.proc.pid for p in [*self.cores, *self.bridges] if p.proc is not None]

    async def restart_core(self, i: int) -> None:
        """Core i again, on its data dir and its port (the bridges' --core-addr lists name that port)."""
        old = self.cores[i]
        part = _core(old.data_dir, self.db_url, self.cluster_url, *self.core_flags, "--core-port",
                     str(_port(old.address)))
        part.quiet = self.quiet
        self.cores[i] = part
        await part.start()

    def core_of_bridge(self, j: int) -> int | None:
        """Which core bridge j's channel is connected to now (its established TCP connection), if any."""
        bridge_proc = self.bridges[j].proc
        assert bridge_proc is not None
        ports = {_port(c.address): i for i, c in enumerate(self.cores)}
        for conn in psutil.Process(bridge_proc.pid).net_connections(kind="tcp"):
            if conn.status == psutil.CONN_ESTABLISHED and conn.raddr and conn.raddr.port in ports:
                return ports[conn.raddr.port]
        return None


@contextlib.asynccontextmanager
async def cluster(args: argparse.Namespace, cores: int, bridges: int,
                  core_flags: Sequence[str] = ()) -> AsyncIterator[Cluster]:
    """A cluster on a fresh schema and prefix (--server-logs: the servers' stderr shows here)."""
    with cluster_urls() as (db_url, cluster_url), tempfile.TemporaryDirectory() as tmp:
        async with Cluster(Path(tmp), db_url, cluster_url, cores, bridges, core_flags,
                           quiet=not args.server_logs) as running:
            yield running


def _cpu_s(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        t = p.cpu_times()
        total += t.user + t.system
    return total


def _emit(**line: object) -> None:
    print(json.dumps(line, ensure_ascii=False), flush=True)


# ------------------------------------------------------------------ throughput

@dataclass
class RunFigures:
    """What the 2-core/1-core ratios compare."""

    turns_per_s: float
    cpu_ms_per_turn: float | None
    p50_ms: float | None
    p99_ms: float | None


async def _throughput_once(cores: int, args: argparse.Namespace) -> RunFigures:
    async with cluster(args, cores, 0, ("--scripted-delay-ms", str(args.delay_ms))) as running:
        servers = [psutil.Process(pid) for pid in running.pids()]
        me = psutil.Process()
        channels = [open_channel(c.address, TOKEN) for c in running.cores]
        stats = Stats()
        measure_from = time.monotonic() + args.warmup_s
        stop_at = measure_from + args.seconds
        workers = [asyncio.create_task(session_loop(channels[w % cores], w, stop_at, args.turns_per_session, stats))
                   for w in range(args.sessions)]
        await asyncio.sleep(max(0.0, measure_from - time.monotonic()))
        turns0, deltas0, errors0 = stats.turns, len(stats.first_delta_ms), len(stats.errors)
        cpu0, client0, wall0 = _cpu_s(servers), _cpu_s([me]), time.monotonic()
        await asyncio.sleep(max(0.0, stop_at - time.monotonic()))
        turns1, deltas1, errors1 = stats.turns, len(stats.first_delta_ms), len(stats.errors)
        cpu1, client1, wall1 = _cpu_s(servers), _cpu_s([me]), time.monotonic()
        await asyncio.gather(*workers)  # each finishes the turn it is in
        for channel in channels:
            await channel.close()
    turns, wall = turns1 - turns0, wall1 - wall0
    deltas = stats.first_delta_ms[deltas0:deltas1]
    figures = RunFigures(turns_per_s=round(turns / wall, 2),
                         cpu_ms_per_turn=round((cpu1 - cpu0) * 1000 / turns, 1) if turns else None,
                         p50_ms=round(percentile(deltas, 50), 1) if deltas else None,
                         p99_ms=round(percentile(deltas, 99), 1) if deltas else None)
    _emit(metric="cluster_throughput", cores=cores, sessions=args.sessions, delay_ms_per_token=args.delay_ms,
          seconds=round(wall, 1), turns=turns, turns_per_s=figures.turns_per_s,
          cpu_ms_per_turn=figures.cpu_ms_per_turn, server_cpu_cores_busy=round((cpu1 - cpu0) / wall, 2),
          client_cpu_cores_busy=round((client1 - client0) / wall, 2),
          first_delta_ms={"p50": figures.p50_ms, "p99": figures.p99_ms},
          errors=errors1 - errors0, error_examples=stats.errors[errors0:errors0 + 3])
    return figures


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


async def throughput(args: argparse.Namespace) -> None:
    one = await _throughput_once(1, args)
    two = await _throughput_once(2, args)
    _emit(metric="cluster_throughput_ratio_2_over_1", turns_per_s=_ratio(two.turns_per_s, one.turns_per_s),
          first_delta_p50=_ratio(two.p50_ms, one.p50_ms), first_delta_p99=_ratio(two.p99_ms, one.p99_ms),
          cpu_ms_per_turn=_ratio(two.cpu_ms_per_turn, one.cpu_ms_per_turn),
          goal="turns/s close to 2 at a first-delta p99 ratio of about 1",
          load_avg=os.getloadavg(), cpus=os.cpu_count())


# ------------------------------------------------------------------ broadcast

async def broadcast(args: argparse.Namespace) -> None:
    # light clients never send heartbeats (bridge_broadcast.py runs its mesh the same way)
    async with cluster(args, 2, 2, ("--hub-heartbeat-timeout", "900")) as running:
        urls = [f"ws://{b.address}/ws" for b in running.bridges]
        sides = [args.clients - args.clients // 2, args.clients // 2]
        arrivals: list[dict[str, list[float]]] = [{}, {}]
        sender = await GatewayClient.open(urls[0], "sender", token=TOKEN, binary=True)
        started = time.perf_counter()
        receivers = []
        for side, count in enumerate(sides):
            receivers += await open_clients(urls[side], count, arrivals[side], prefix=f"b{side + 1}", token=TOKEN)
        connect_s = time.perf_counter() - started
        await asyncio.sleep(args.settle_s)  # the other bridge's nodes are known cluster-wide (Redis presence)
        bridge_cores = [running.core_of_bridge(j) for j in (0, 1)]
        pids = running.pids()
        same, other, lasts, server_cpu, missing = [], [], [], [], 0
        for r in range(args.rounds + 1):
            cpu0 = sum(cpu_ms(pid) for pid in pids)
            sent = time.perf_counter()
            await sender.request("bench", target="broadcast", round=str(r))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(args.wait_s):
                    while any(len(arrivals[s].get(str(r), [])) < sides[s] for s in (0, 1)):  # noqa: ASYNC110
                        await asyncio.sleep(0.005)
            got = [[(t - sent) * 1000 for t in arrivals[s].get(str(r), [])] for s in (0, 1)]
            if r:  # round 0 warms up
                same += got[0]
                other += got[1]
                lasts.append(max(got[0] + got[1], default=args.wait_s * 1000))
                missing += sum(sides) - len(got[0]) - len(got[1])
                server_cpu.append(sum(cpu_ms(pid) for pid in pids) - cpu0)
            await asyncio.sleep(0.5)
        extra = {"clients": args.clients, "rounds": args.rounds}
        report("cluster_broadcast_delivery_all", same + other, goal={"p99": 50.0}, missing=missing,
               connect_s=round(connect_s, 2), bridge_on_core=[None if i is None else i + 1 for i in bridge_cores],
               **extra)
        report("cluster_broadcast_delivery_same_bridge", same, clients_on_side=sides[0], **extra)
        report("cluster_broadcast_delivery_other_bridge", other, clients_on_side=sides[1], **extra)
        report("cluster_broadcast_last_delivery", lasts, **extra)
        _emit(metric="cluster_broadcast_server_cpu_per_broadcast", unit="ms",
              mean=round(sum(server_cpu) / max(1, len(server_cpu)), 2),
              note="2 cores + 2 bridges, schedstat", load_avg=os.getloadavg(), cpus=os.cpu_count(), **extra)
        for receiver in receivers:
            if receiver.transport is not None:
                receiver.transport.close()
        await sender.close()


# ------------------------------------------------------------------ failover

@dataclass
class Device:
    """A device chatting back to back through one bridge; after its socket closes it reconnects and goes on."""

    name: str
    url: str
    gap_s: float
    outages: list[tuple[float, float | None]] = field(default_factory=list)  # (lost at, chatting again at)
    turns: int = 0

    def back_after(self, t_kill: float) -> float | None:
        """Seconds from `t_kill` until its first reply after an outage that began after the kill."""
        for lost, back in self.outages:
            if lost >= t_kill and back is not None:
                return back - t_kill
        return None

    def lost_after(self, t_kill: float) -> bool:
        return any(lost >= t_kill for lost, _ in self.outages)

    async def run(self) -> None:
        client: GatewayClient | None = None
        while True:
            try:
                if client is None:
                    client = await GatewayClient.open(self.url, self.name, token=TOKEN)
                await client.request("chat", text=f"turn {self.turns}")
                await client.recv_until(action_is("assistant_final"), 20)
                self.turns += 1
                if self.outages and self.outages[-1][1] is None:
                    self.outages[-1] = (self.outages[-1][0], time.monotonic())
                await asyncio.sleep(self.gap_s)
            except (OSError, AssertionError, TimeoutError, WebSocketException):
                if not self.outages or self.outages[-1][1] is not None:
                    self.outages.append((time.monotonic(), None))
                if client is not None:
                    with contextlib.suppress(Exception):
                        await client.close()
                client = None
                await asyncio.sleep(0.1)


async def failover(args: argparse.Namespace) -> None:
    async with cluster(args, 2, 2) as running:
        devices = [Device(f"dev-{i:03d}", f"ws://{running.bridges[i % 2].address}/ws", args.gap_s)
                   for i in range(args.devices)]
        tasks = [asyncio.create_task(d.run()) for d in devices]
        times: list[float] = []
        per_device: list[float] = []
        try:
            await asyncio.sleep(args.settle_s)
            for k in range(args.kills):
                async with asyncio.timeout(10):
                    while (victim := running.core_of_bridge(0)) is None:  # noqa: ASYNC110 - another process's state
                        await asyncio.sleep(0.1)
                held = [j for j in range(2) if running.core_of_bridge(j) == victim]
                served = [d for i, d in enumerate(devices) if i % 2 in held]
                t_kill = time.monotonic()
                await running.cores[victim].kill()
                backs: list[float | None] = []
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(args.wait_s):
                        while None in (backs := [d.back_after(t_kill) for d in served]):  # noqa: ASYNC110
                            await asyncio.sleep(0.05)
                backs = [d.back_after(t_kill) for d in served]
                done = [b for b in backs if b is not None]
                others_lost = sum(d.lost_after(t_kill) for d in devices if d not in served)
                took = max(done) if len(done) == len(served) else None
                if took is not None:
                    times.append(took)
                per_device += done
                _emit(metric="cluster_failover_kill", kill=k + 1, core=victim + 1, bridges_on_it=[j + 1 for j in held],
                      devices_served=len(served), devices_back=len(done), all_back_s=round(took, 2) if took else None,
                      first_back_s=round(min(done), 2) if done else None, other_devices_disrupted=others_lost)
                await running.restart_core(victim)
                await asyncio.sleep(args.settle_s)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        extra = {"kills": args.kills, "devices": args.devices}
        if times:
            report("cluster_failover_all_devices_back", [t * 1000 for t in times], goal={"p50": 10_000},
                   kills_recovered=len(times), turns=sum(d.turns for d in devices), load_avg=os.getloadavg(), **extra)
            report("cluster_failover_per_device_back", [t * 1000 for t in per_device], **extra)
        else:
            _emit(metric="cluster_failover_all_devices_back", n=0, kills_recovered=0, **extra)


# ------------------------------------------------------------------ reminders

@dataclass
class Relay:
    """One WatchReminders stream from cursor 0: what it saw, in order."""

    seen: list[rpb.ReminderTrigger] = field(default_factory=list)
    caught_up: asyncio.Event = field(default_factory=asyncio.Event)

    async def watch(self, channel: grpc.aio.Channel) -> None:
        stub = rpb_grpc.ReminderServiceStub(channel)
        async for event in stub.WatchReminders(rpb.WatchRemindersRequest(after_cursor=0)):
            if event.HasField("caught_up"):
                self.caught_up.set()
            else:
                self.seen.append(event.trigger)

    def summary(self, ids: set[str]) -> dict[str, int]:
        counts = Counter(t.reminder_id for t in self.seen if t.reminder_id in ids)
        cursors = [t.cursor for t in self.seen]
        return {"triggers": len(self.seen), "distinct": len(counts),
                "duplicates": sum(n - 1 for n in counts.values()), "missing": len(ids - set(counts)),
                "out_of_order": sum(1 for a, b in itertools.pairwise(cursors) if b <= a)}


async def reminders(args: argparse.Namespace) -> None:
    async with cluster(args, 2, 0) as running:
        channels = [open_channel(c.address, TOKEN) for c in running.cores]
        relays = [Relay(), Relay()]
        watching = [asyncio.create_task(r.watch(ch)) for r, ch in zip(relays, channels, strict=True)]
        try:
            async with asyncio.timeout(30):
                for relay in relays:
                    await relay.caught_up.wait()
            lead_s = args.lead_s if args.lead_s is not None else 3 + args.reminders * 0.02
            due = datetime.now(UTC) + timedelta(seconds=lead_s)
            stamp = Timestamp()
            stamp.FromDatetime(due)
            gate = asyncio.Semaphore(16)

            async def create(i: int) -> str:
                async with gate:
                    stub = rpb_grpc.ReminderServiceStub(channels[i % 2])
                    made = await stub.CreateReminder(rpb.CreateReminderRequest(due_time=stamp, content=f"bench {i}"))
                    return str(made.reminder.id)

            creating = time.monotonic()
            ids = set(await asyncio.gather(*(create(i) for i in range(args.reminders))))
            create_s = time.monotonic() - creating
            created_late = datetime.now(UTC) > due
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(lead_s + args.wait_s):
                    while any(len({t.reminder_id for t in r.seen} & ids) < len(ids) for r in relays):  # noqa: ASYNC110
                        await asyncio.sleep(0.05)
            await asyncio.sleep(args.linger_s)  # a second firing of an occurrence would arrive by now
        finally:
            for task in watching:
                task.cancel()
            await asyncio.gather(*watching, return_exceptions=True)
            for channel in channels:
                await channel.close()
    first: dict[str, rpb.ReminderTrigger] = {}
    for t in relays[0].seen:
        first.setdefault(t.reminder_id, t)
    fired = [first[i].fired_time.ToDatetime(tzinfo=UTC) for i in ids if i in first]
    delays = [(f - due).total_seconds() * 1000 for f in fired]
    span = (max(fired) - due).total_seconds() if fired else 0.0
    _emit(metric="cluster_reminders", cores=2, reminders=args.reminders, create_s=round(create_s, 2),
          created_after_due=created_late,
          fired_per_s=round(len(fired) / span, 1) if span > 0 else None,
          last_fired_after_due_s=round(span, 3),
          missed_status=sum(1 for i in ids if i in first and first[i].status == rpb.TRIGGER_STATUS_MISSED),
          relay_core1=relays[0].summary(ids), relay_core2=relays[1].summary(ids),
          exactly_once=all(r.summary(ids)["duplicates"] + r.summary(ids)["missing"] == 0 for r in relays),
          load_avg=os.getloadavg())
    if delays:
        report("cluster_reminders_fire_delay", delays, reminders=args.reminders)


# ------------------------------------------------------------------ main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server-logs", action="store_true", help="the servers' stderr (warnings) shown here")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("throughput", help="turns/s, CPU per turn, first delta: 1 core, then 2")
    p.add_argument("--sessions", type=int, default=200)
    p.add_argument("--seconds", type=float, default=60.0, help="measured seconds per run (after the warm-up)")
    p.add_argument("--warmup-s", type=float, default=10.0)
    p.add_argument("--delay-ms", type=float, default=20.0, help="scripted model's delay per token")
    p.add_argument("--turns-per-session", type=int, default=20)
    p = sub.add_parser("broadcast", help="one broadcast to clients split over two bridges")
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--settle-s", type=float, default=3.0)
    p.add_argument("--wait-s", type=float, default=30.0, help="a round's deadline; late deliveries count as missing")
    p = sub.add_parser("failover", help="kill -9 of a core under traffic: time until its devices chat again")
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--devices", type=int, default=10)
    p.add_argument("--gap-s", type=float, default=0.5, help="pause between a device's turns")
    p.add_argument("--settle-s", type=float, default=3.0, help="traffic before each kill")
    p.add_argument("--wait-s", type=float, default=30.0, help="a kill's deadline for its devices to chat again")
    p = sub.add_parser("reminders", help="reminders fired per second with 2 cores, exactly once")
    p.add_argument("--reminders", type=int, default=1000)
    p.add_argument("--lead-s", type=float, default=None, help="creation to due time (default 3 s + 20 ms each)")
    p.add_argument("--wait-s", type=float, default=60.0, help="after the due time, for every relay to see all")
    p.add_argument("--linger-s", type=float, default=3.0, help="then how long duplicates may still arrive")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 1,000 sockets here; children inherit it
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    asyncio.run({"throughput": throughput, "broadcast": broadcast, "failover": failover,
                 "reminders": reminders}[args.command](args))


if __name__ == "__main__":
    main()
