"""NodeLink's bounded outbox and the session directory, without a server."""

from __future__ import annotations

import time

import grpc

from peromesh.gateway.v1 import envelope_pb2 as gw
from server.hub.nodes import Closing, NodeInfo, NodeLink
from server.hub.sessions import SessionDirectory


async def test_full_outbox_closes_the_link_and_drops_the_backlog() -> None:
    link = NodeLink(NodeInfo("slow", "s1"), capacity=3)
    assert all(link.send(gw.Envelope(id=str(i))) for i in range(3))
    assert not link.send(gw.Envelope(id="overflow"))
    closing = link.outbox.get_nowait()
    assert isinstance(closing, Closing) and closing.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "slow consumer" in closing.reason and link.outbox.empty()
    assert not link.send(gw.Envelope(id="after"))


def test_session_survives_inside_grace_only() -> None:
    sessions = SessionDirectory(grace_s=0.05)
    first, resumed = sessions.claim("d")
    assert not resumed
    sessions.release("d")
    assert sessions.claim("d") == (first, True)
    sessions.release("d")
    time.sleep(0.08)
    second, resumed = sessions.claim("d")
    assert second != first and not resumed


async def test_sink_gets_the_backlog_then_deliveries_then_the_closing() -> None:
    link = NodeLink(NodeInfo("local", "s1"), capacity=3)
    link.send(gw.Envelope(id="queued"))
    got: list[object] = []
    link.attach_sink(got.append)
    assert link.send(gw.Envelope(id="direct")) and link.outbox.empty()
    link.close(grpc.StatusCode.ABORTED, "replaced")
    assert not link.send(gw.Envelope(id="after"))
    ids = [g.envelope.id for g in got if not isinstance(g, Closing)]  # type: ignore[attr-defined]
    assert ids == ["queued", "direct"] and got[-1] == Closing(grpc.StatusCode.ABORTED, "replaced")
