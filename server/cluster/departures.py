"""Why nodes left, told to the other cores with the change announcement that follows their removal.

Presence records say who is attached, not why someone is no longer; a core that detaches a node
(closed, timed out, replaced) deletes its record and then announces the change on the changes
channel with `{node id: reason}` as payload (JSON; several messages for a long list). A core that
heard the reason before it read presence knows the record is gone from that read, so its
watchers (server/hub/watch.py) see the node leave with the reason its core gave. A record that
vanishes with no reason is one whose core stopped renewing it: it expired.

Bounded: a core keeps at most MAX_HEARD reasons between two presence reads (every read takes
them all); past that the oldest are forgotten, and those nodes are reported as expired.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Mapping

log = logging.getLogger(__name__)
MAX_HEARD = 10_000
PER_MESSAGE = 256


def encode(reasons: Mapping[str, str]) -> list[bytes]:
    """The announcement payloads for `reasons` (none: one empty payload, "re-read presence")."""
    items = sorted(reasons.items())
    chunks = [dict(items[i:i + PER_MESSAGE]) for i in range(0, len(items), PER_MESSAGE)]
    return [json.dumps(chunk).encode() for chunk in chunks] or [b""]


class Departures:
    """The reasons other cores announced, waiting for the next presence read."""

    def __init__(self) -> None:
        self._heard: OrderedDict[str, tuple[str, str]] = OrderedDict()  # node id → (core id, reason)

    def heard(self, origin: str, payload: bytes) -> None:
        """An announcement from core `origin` (an empty payload carries no reasons)."""
        if not payload:
            return
        try:
            reasons = json.loads(payload)
        except ValueError:
            log.warning("cluster: undecodable departure reasons from core %s dropped", origin)
            return
        for node_id, reason in reasons.items():
            self._heard.pop(node_id, None)
            self._heard[str(node_id)] = (origin, str(reason))
        while len(self._heard) > MAX_HEARD:
            self._heard.popitem(last=False)

    def take(self) -> Arrived:
        """Every reason heard so far (call right before a presence read), forgotten here."""
        arrived, self._heard = Arrived(self._heard), OrderedDict()
        return arrived


class Arrived:
    """Reasons heard before one presence read: `reason_of` is server.hub.watch.ReasonOf."""

    def __init__(self, heard: Mapping[str, tuple[str, str]]) -> None:
        self._heard = heard

    def reason_of(self, node_id: str, core_id: str) -> str | None:
        """Why core `core_id` said node `node_id` left; None when it said nothing (yet)."""
        origin, reason = self._heard.get(node_id, ("", ""))
        return reason if origin == core_id else None
