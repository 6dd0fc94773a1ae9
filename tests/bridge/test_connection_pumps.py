"""A connection's pumps when the connection closes before they ever ran.

CI once failed at teardown with "coroutine 'DialogLink._read' was never awaited": the dialog
reader was spawned as the connection closed, its task was cancelled before its first step, and
the pump coroutine it wrapped was left unawaited. A closed connection must leave no such
coroutine behind, whatever the timing.
"""

from __future__ import annotations

import gc
import warnings
from typing import Any, cast

import grpc

from bridge.connection import GatewayConnection, MeshStubs
from bridge.limits import Limits
from peromesh.dialog.v1 import dialog_service_pb2_grpc as dpb_grpc


async def test_a_pump_cancelled_before_its_first_step_is_closed_not_left_unawaited() -> None:
    async with grpc.aio.insecure_channel("127.0.0.1:9") as channel:  # never dialled: nothing is called
        stubs = MeshStubs(hub_port=cast(Any, None), dialog=dpb_grpc.DialogServiceStub(channel))
        connection = GatewayConnection(cast(Any, None), stubs, Limits())
        started: list[str] = []

        async def pump() -> None:
            started.append("ran")

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            connection._spawn_pump(pump(), "late-reader")
            await connection._tasks.close()  # the connection ends before the task's first step
            gc.collect()
        assert started == []  # it really never ran: the case that used to warn
        assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == []


async def test_a_pump_that_ran_still_reports_how_it_ended() -> None:
    async with grpc.aio.insecure_channel("127.0.0.1:9") as channel:
        stubs = MeshStubs(hub_port=cast(Any, None), dialog=dpb_grpc.DialogServiceStub(channel))
        connection = GatewayConnection(cast(Any, None), stubs, Limits())
        failure = TimeoutError("the hub went quiet")

        async def pump() -> None:
            raise failure

        connection._spawn_pump(pump(), "hub-pump")
        assert await connection._ended is failure
        await connection._tasks.close()
