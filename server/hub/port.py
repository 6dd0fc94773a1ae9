"""The hub as the in-process port its clients type against (`server.wire.attach.EmbeddedHub`).

The bridge may not import the hub domain, so it names only the plumbing Protocol; nothing
at runtime ties `Hub` to it. This module is where mypy checks that `Hub` and `NodeLink`
still satisfy the port structurally: a changed `join`/`route`/`leave` signature fails here,
not in an embedded bridge at run time.
"""

from __future__ import annotations

from server.hub.hub import Hub
from server.hub.nodes import NodeLink
from server.wire.attach import EmbeddedHub


def embedded_port(hub: Hub) -> EmbeddedHub[NodeLink]:
    """`hub` as the port an in-process bridge attaches nodes through."""
    return hub
