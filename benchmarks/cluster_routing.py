"""Cross-core routing through Redis: a node on hub 1 asks a node on hub 2 and waits for the answer.

Two hubs in one process joined by real Redis (`--redis`, a unique prefix, removed afterwards),
against the same exchange between two nodes of one hub (the floor). Prints JSON lines:
round-trip p50/p99 in ms for both, and the ratio.

    .venv/bin/python benchmarks/cluster_routing.py --requests 500
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid

import redis.asyncio as aioredis

from peromesh.gateway.v1 import envelope_pb2 as gw
from server.cluster.hub_link import HubClusterLink
from server.hub.hub import Hub
from server.hub.nodes import Closing, NodeLink

TOKEN = "bench"


def _join(hub: Hub, node_id: str) -> NodeLink:
    link = hub.join(gw.Envelope(id="hello", source_id=node_id, hello=gw.Hello(token=TOKEN, platform="bench")))
    link.outbox.get_nowait()  # the welcome
    return link


async def _answerer(hub: Hub, link: NodeLink) -> None:
    while True:
        item = await link.outbox.get()
        if isinstance(item, Closing):
            return
        e = item.envelope
        if e.HasField("request"):
            hub.route(link, gw.Envelope(id="a" + e.id, target_id=e.source_id,
                                        response=gw.ActionResponse(request_id=e.id, data="ok")))


async def _round_trips(asker_hub: Hub, asker: NodeLink, target: str, n: int) -> list[float]:
    out = []
    for i in range(n):
        started = time.perf_counter()
        asker_hub.route(asker, gw.Envelope(id=f"q{i}", target_id=target, request=gw.ActionRequest(action_name="x")))
        while True:
            item = await asker.outbox.get()
            assert not isinstance(item, Closing)
            if item.envelope.HasField("response") and item.envelope.response.request_id == f"q{i}":
                break
        out.append((time.perf_counter() - started) * 1000)
    return out


def _report(name: str, ms: list[float]) -> dict[str, float]:
    q = statistics.quantiles(ms, n=100)
    row = {"p50_ms": round(q[49], 3), "p99_ms": round(q[98], 3)}
    print(json.dumps({"name": name, "n": len(ms), **row}), flush=True)
    return row


async def main(redis_base: str, n: int) -> None:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    url = f"{redis_base}?prefix={prefix}"
    hubs = [Hub(TOKEN), Hub(TOKEN)]
    links = []
    for hub in hubs:
        await hub.start()
        links.append(HubClusterLink(hub, url))
        await links[-1].start()
    try:
        asker, local_peer, remote_peer = _join(hubs[0], "asker"), _join(hubs[0], "near"), _join(hubs[1], "far")
        tasks = [asyncio.create_task(_answerer(hubs[0], local_peer)),
                 asyncio.create_task(_answerer(hubs[1], remote_peer))]
        while not hubs[0].remote_nodes():  # noqa: ASYNC110 - presence arrives through Redis
            await asyncio.sleep(0.01)
        local = _report("one hub", await _round_trips(hubs[0], asker, "near", n))
        remote = _report("across cores (Redis pub/sub)", await _round_trips(hubs[0], asker, "far", n))
        print(json.dumps({"ratio_p50": round(remote["p50_ms"] / local["p50_ms"], 1)}), flush=True)
        for task in tasks:
            task.cancel()
    finally:
        for hub, link in zip(hubs, links, strict=True):
            await link.close()
            await hub.close()
        client = aioredis.Redis.from_url(redis_base)
        keys = [k async for k in client.scan_iter(f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    asyncio.run(main(args.redis, args.requests))
