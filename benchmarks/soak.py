"""Soak: many concurrent sessions against one real `peromesh serve` for a long time.

What it proves (issue 9, "Memory stays bounded over weeks"): under a steady load of
`--sessions` concurrent text sessions (scripted LLM, `--delay-ms` per token), each doing
turns back to back with fresh session ids now and then (so per-session caches must evict),
the server makes no errors and its RSS and open files stay flat. Prints JSON lines:

- sample (every --sample-s): elapsed s, turns so far, server RSS MiB, open fds, threads;
- summary: turns, turns/s, errors, first-delta p50/p99 (ms), RSS first/last/max and the
  slope of a least-squares line through the samples after the warm-up (MiB per hour),
  fds first/last.

    .venv/bin/python benchmarks/soak.py                         # 200 sessions, 10 minutes
    .venv/bin/python benchmarks/soak.py --sessions 20 --minutes 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _serve import TOKEN, percentile, serve

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from peromesh.dialog.v1 import dialog_service_pb2_grpc as pb_grpc
from server.rpc.channels import open_channel


class Stats:
    def __init__(self) -> None:
        self.turns = 0
        self.errors: list[str] = []
        self.first_delta_ms: list[float] = []


async def session_loop(channel: object, worker: int, stop_at: float, turns_per_session: int,
                       stats: Stats) -> None:
    """Turns back to back; a new session id every `turns_per_session` turns (old ones must be evicted)."""
    generation = 0
    while time.monotonic() < stop_at:
        generation += 1
        requests: asyncio.Queue[pb.ConverseRequest | None] = asyncio.Queue()

        async def outgoing(q: asyncio.Queue[pb.ConverseRequest | None] = requests):  # type: ignore[no-untyped-def]
            while (item := await q.get()) is not None:
                yield item

        call = pb_grpc.DialogServiceStub(channel).Converse(outgoing())  # type: ignore[arg-type]
        try:
            requests.put_nowait(pb.ConverseRequest(config=pb.SessionConfig(
                session_id=f"soak-{worker}-{generation}", text_only=True)))
            await _until(call, "session_started")
            for i in range(turns_per_session):
                if time.monotonic() >= stop_at:
                    break
                started = time.perf_counter()
                requests.put_nowait(pb.ConverseRequest(user_text=pb.UserText(text=f"tell me about item {i}")))
                await _until(call, "assistant_delta")
                stats.first_delta_ms.append((time.perf_counter() - started) * 1000)
                await _until(call, "assistant_final")
                stats.turns += 1
            requests.put_nowait(None)
        except Exception as exc:  # counted, and the worker goes on with a fresh session
            stats.errors.append(f"{type(exc).__name__}: {exc}"[:200])
        finally:
            call.cancel()


async def _until(call: object, kind: str) -> pb.ConverseResponse:
    while True:
        event = await call.read()  # type: ignore[attr-defined]
        if event is None or not hasattr(event, "WhichOneof"):
            raise ConnectionError(f"stream ended while waiting for {kind}")
        which = event.WhichOneof("event")
        if which == "error":
            raise RuntimeError(f"error event: {event.error.message}")
        if which == kind:
            return event  # type: ignore[no-any-return]


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    if len(points) < 2:
        return 0.0
    n = len(points)
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    var = sum((t - mx) ** 2 for t, _ in points) or 1e-9
    return sum((t - mx) * (v - my) for t, v in points) / var * 3600


async def run(args: argparse.Namespace) -> None:
    with serve("--llm", "scripted", "--scripted-delay-ms", str(args.delay_ms)) as endpoints:
        server = psutil.Process(int(endpoints["pid"]))
        stats = Stats()
        started = time.monotonic()
        stop_at = started + args.minutes * 60
        samples: list[dict[str, float]] = []
        async with open_channel(endpoints["core"], TOKEN) as channel:
            workers = [asyncio.create_task(session_loop(channel, w, stop_at, args.turns_per_session, stats))
                       for w in range(args.sessions)]
            while time.monotonic() < stop_at:
                await asyncio.sleep(min(args.sample_s, max(0.0, stop_at - time.monotonic())))
                with server.oneshot():
                    sample = {"elapsed_s": round(time.monotonic() - started, 1), "turns": stats.turns,
                              "rss_mib": round(server.memory_info().rss / 2**20, 1),
                              "fds": server.num_fds(), "threads": server.num_threads()}
                samples.append(sample)
                print(json.dumps({"sample": sample}), flush=True)
            await asyncio.gather(*workers)
        elapsed = time.monotonic() - started
        steady = [(s["elapsed_s"], s["rss_mib"]) for s in samples if s["elapsed_s"] >= args.warmup_s]
        deltas = stats.first_delta_ms
        print(json.dumps({"summary": {
            "sessions": args.sessions, "minutes": args.minutes, "turns": stats.turns,
            "turns_per_s": round(stats.turns / elapsed, 2), "errors": len(stats.errors),
            "error_examples": stats.errors[:5],
            "first_delta_ms": {"p50": round(percentile(deltas, 50), 1), "p99": round(percentile(deltas, 99), 1)}
            if deltas else None,
            "rss_mib": {"first": samples[0]["rss_mib"], "last": samples[-1]["rss_mib"],
                        "max": max(s["rss_mib"] for s in samples)} if samples else None,
            "rss_slope_mib_per_hour_after_warmup": round(slope_per_hour(steady), 1),
            "fds": {"first": samples[0]["fds"], "last": samples[-1]["fds"]} if samples else None,
            "load_avg": psutil.getloadavg(),
        }}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--delay-ms", type=float, default=20.0, help="scripted model's delay per token")
    parser.add_argument("--turns-per-session", type=int, default=20)
    parser.add_argument("--sample-s", type=float, default=15.0)
    parser.add_argument("--warmup-s", type=float, default=60.0, help="samples before this are not in the slope")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
