"""`--core-addr A,B`: one gRPC channel over an ordered list of cores, failing over in order.

gRPC's own `pick_first` policy does the failover: the channel connects to the first
address that answers, and when that connection breaks (the core died) the next call
tries the list again in order, so the bridge lands on the next live core. Streams open
on the dead core end with UNAVAILABLE; the bridge closes those sockets with 1013 and the
devices reconnect (the SDK and PeroCore clients do so with backoff), attaching through
the channel to the survivor. Host names are resolved once, at start (gRPC's `ipv4:` /
`ipv6:` address lists take literal addresses only).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket


def split(addresses: str) -> list[str]:
    """The ordered `host:port` list of a `--core-addr` value."""
    return [a.strip() for a in addresses.split(",") if a.strip()]


async def channel_target(addresses: str) -> str:
    """A gRPC target for the cores in order: the address itself when there is one, else an
    `ipv4:`/`ipv6:` list of resolved addresses (pick_first walks it in order)."""
    cores = split(addresses)
    if len(cores) <= 1:
        return cores[0] if cores else addresses
    resolved = [await _resolve(core) for core in cores]
    family = "ipv6" if any(":" in host for host, _ in resolved) else "ipv4"
    return family + ":" + ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in resolved)


async def _resolve(address: str) -> tuple[str, str]:
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
        return host, port
    except ValueError:
        infos = await asyncio.get_running_loop().getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
        return str(infos[0][4][0]), port
