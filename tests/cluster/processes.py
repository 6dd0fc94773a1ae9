"""`peromesh serve` children for cluster tests: cores and bridges as separate processes."""

from __future__ import annotations

from pathlib import Path

from peromesh.gateway.v1 import envelope_pb2 as gw
from tests.bridge.gateway_client import GatewayClient
from tests.served import ServedProcess

TOKEN = "cluster-token"


class Served(ServedProcess):
    """One `peromesh serve --only <part>` child of the cluster tests (their token)."""

    def __init__(self, part: str, data_dir: Path, *flags: str) -> None:
        super().__init__(part, data_dir, TOKEN, *flags)


def core(data_dir: Path, db_url: str, cluster_url: str) -> Served:
    return Served("core", data_dir, "--db-url", db_url, "--cluster-url", cluster_url, "--llm", "scripted",
                  "--scripted-delay-ms", "1", "--asr-model", "none", "--hub-heartbeat-interval", "1",
                  "--hub-heartbeat-timeout", "4")


def bridge(data_dir: Path, core_addresses: list[str]) -> Served:
    return Served("bridge", data_dir, "--core-addr", ",".join(core_addresses))


async def device(bridge_part: Served, name: str, *capabilities: str) -> GatewayClient:
    """A device on a bridge, with its capabilities registered."""
    client = await GatewayClient.open(f"ws://{bridge_part.address}/ws", name, token=TOKEN)
    if capabilities:
        register = gw.CapabilityRegister(capabilities=[gw.Capability(name=c, description=c) for c in capabilities])
        await client.send(gw.Envelope(id=f"{name}-reg", source_id=name, target_id="master", register=register))
        await client.recv_until(lambda e: e.HasField("response") and e.response.request_id == f"{name}-reg")
    return client
