"""Where a cluster lives in Redis: the client for `--cluster-url` and every key and channel name.

Pub/sub channels are shared by all databases of a Redis server, so every name carries the
database number and a prefix (`?prefix=NAME` in the URL, default "peromesh"): two clusters
(or two tests) on one Redis never hear each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis

DEFAULT_PREFIX = "peromesh"


@dataclass(frozen=True)
class ClusterKeys:
    prefix: str  # "<prefix>:<db>"

    @property
    def presence(self) -> str:
        """Sorted set: node id → the time (ms) its record expires."""
        return f"{self.prefix}:presence"

    def node(self, node_id: str) -> str:
        """String with expiry: "<core id>:" + the node's hub.v1.Node record."""
        return f"{self.prefix}:node:{node_id}"

    @property
    def sessions(self) -> str:
        """Sorted set: device id → the time (ms) its resume record expires."""
        return f"{self.prefix}:sessions"

    def session(self, device_id: str) -> str:
        """String with expiry: "<core id>:" + the device's dialog session id (server/cluster/sessions.py)."""
        return f"{self.prefix}:session:{device_id}"

    def inbox(self, core_id: str) -> str:
        """Channel of envelopes for the nodes (and the master) of one core."""
        return f"{self.prefix}:core:{core_id}"

    @property
    def broadcast(self) -> str:
        return f"{self.prefix}:broadcast"

    @property
    def changes(self) -> str:
        """Channel: some core's node set changed (re-read presence)."""
        return f"{self.prefix}:nodes"


def connect(url: str) -> tuple[aioredis.Redis, ClusterKeys]:
    """The client for a `redis://host:port/db[?prefix=NAME]` URL, and the cluster's names in it."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    prefix = query.pop("prefix", DEFAULT_PREFIX)
    db = parts.path.strip("/") or "0"
    client = aioredis.Redis.from_url(urlunsplit(parts._replace(query=urlencode(query))), socket_connect_timeout=2)
    return client, ClusterKeys(f"{prefix}:{db}")
