"""Task and reminder-set changes reach every device of the cluster once: a desktop on bridge 1 /
core 1 and a phone on bridge 2 / core 2 (separate processes, one PostgreSQL, one Redis) each see
every `task:update` and `schedule_update`, whichever core made the change, and none twice."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from peromesh.gateway.v1 import envelope_pb2 as gw
from server.tools.broadcasts import SCHEDULE_UPDATE, TASK_UPDATE
from tests.bridge.gateway_client import GatewayClient
from tests.cluster.hubs import until
from tests.cluster.processes import Served, device

pytestmark = pytest.mark.timeout(90)  # four processes start (tens of seconds on a loaded machine)
QUIET_S = 0.5  # after the last expected update: long enough for a duplicate from either core to show

Update = tuple[str, str, str]  # (action, operation, task or reminder id)


class Inbox:
    """Everything one device receives, read by a background task (requests are answered from it)."""

    def __init__(self, client: GatewayClient) -> None:
        self.client = client
        self.received: list[gw.Envelope] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            self.received.append(await self.client.recv(60))

    async def ask(self, action: str, **params: str) -> dict[str, str]:
        """Send an action to the master; its answer's JSON data."""
        rid = await self.client.request(action, **params)
        await until(lambda: self._answer(rid) is not None, 10)
        answer = self._answer(rid)
        assert answer is not None and answer.status == 0, answer
        data: dict[str, str] = json.loads(answer.data)
        return data

    def _answer(self, rid: str) -> gw.ActionResponse | None:
        return next((e.response for e in self.received if e.HasField("response") and e.response.request_id == rid),
                    None)

    def updates(self) -> Counter[Update]:
        """How often each task or reminder-set change arrived."""
        seen: Counter[Update] = Counter()
        for e in self.received:
            if not e.HasField("request"):
                continue
            params = e.request.params
            if e.request.action_name == TASK_UPDATE:
                seen[(TASK_UPDATE, params["operation"], json.loads(params["task"])["id"])] += 1
            elif e.request.action_name == SCHEDULE_UPDATE:
                seen[(SCHEDULE_UPDATE, params["operation"], json.loads(params["data"])["id"])] += 1
        return seen

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader
        await self.client.close()


async def test_task_and_reminder_changes_reach_every_core_once(cluster: list[Served]) -> None:
    _, _, bridge1, bridge2 = cluster
    desk = Inbox(await device(bridge1, "desk"))  # attached to core 1
    phone = Inbox(await device(bridge2, "phone"))  # attached to core 2
    try:
        # made on core 1
        task = (await desk.ask("task:add", title="buy milk"))["id"]
        later = (await desk.ask("reminder:add", time="in 2 hours", content="call mum"))["id"]
        # made on core 2
        await phone.ask("task:complete", id=task)
        await phone.ask("reminder:cancel", id=later)
        # made on core 1, finished by whichever core holds the scheduler lease
        soon_at = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
        soon = (await desk.ask("reminder:add", time=soon_at, content="stretch"))["id"]

        expected = Counter({(TASK_UPDATE, "added", task): 1, (SCHEDULE_UPDATE, "create", later): 1,
                            (TASK_UPDATE, "completed", task): 1, (SCHEDULE_UPDATE, "cancel", later): 1,
                            (SCHEDULE_UPDATE, "create", soon): 1, (SCHEDULE_UPDATE, "done", soon): 1})
        with contextlib.suppress(TimeoutError):  # the asserts below say what is missing
            await until(lambda: all(set(i.updates()) >= set(expected) for i in (desk, phone)), 10)
        await asyncio.sleep(QUIET_S)
        assert desk.updates() == expected
        assert phone.updates() == expected
    finally:
        for inbox in (desk, phone):
            await inbox.close()
