"""Resume state cluster-wide (two hubs on real Redis, in one process): a device that comes back
through another core gets its session again, also when the core it left died without a word,
and a new one once the grace window has passed."""

from __future__ import annotations

import asyncio

import grpc

from tests.cluster.hubs import join, joined_hub, until


async def test_a_device_resumes_its_session_on_another_core(cluster_url: str) -> None:
    (h1, c1), (h2, c2) = await joined_hub(cluster_url, 0.6), await joined_hub(cluster_url, 0.6)
    try:
        first = join(h1, "dev")
        session = first.info.session_id
        await until(lambda: c2.sessions.lookup("dev") == session)  # h1's record reached h2
        h1.leave(first, grpc.StatusCode.OK, "bye")

        again = join(h2, "dev")  # another bridge and core, inside the grace window
        welcome = (await again.outbox.get()).envelope.welcome  # type: ignore[union-attr]
        assert (welcome.session_id, welcome.resumed) == (session, True)

        # h1 learns that h2 holds it now; its own leave did not cut h2's record short
        await asyncio.sleep(0.8)  # longer than the grace: only a record h2 keeps alive is left
        assert c1.sessions.lookup("dev") == session
        h2.leave(again, grpc.StatusCode.OK, "bye")
        await asyncio.sleep(0.9)  # the grace window passes with the device attached nowhere
        fresh = join(h1, "dev")
        assert fresh.info.session_id != session
        welcome = (await fresh.outbox.get()).envelope.welcome  # type: ignore[union-attr]
        assert not welcome.resumed
    finally:
        for hub, link in ((h1, c1), (h2, c2)):
            await link.close()
            await hub.close()


async def test_a_session_survives_the_death_of_its_core(cluster_url: str) -> None:
    """The core holding the device stops without a goodbye (what kill -9 leaves): the device,
    back through the other core, continues its session."""
    (h1, c1), (h2, c2) = await joined_hub(cluster_url), await joined_hub(cluster_url)
    try:
        session = join(h2, "dev").info.session_id
        await until(lambda: c1.sessions.lookup("dev") == session)
        await c2._tasks.close()  # no refreshes, no release: the record only ages
        await c2._bus.close()
        await asyncio.sleep(h1.config.heartbeat_timeout_s)  # the dead core's node record is gone by now
        await until(lambda: not h1.remote_nodes())
        again = join(h1, "dev")
        assert again.info.session_id == session
    finally:
        await c1.close()
        await h1.close()
        await c2._client.aclose()
        await h2.close()
