"""A bare grpc.aio bidi server with no PeroMesh code: the floor any Python gRPC mesh pays.

Run as `python benchmarks/_grpc_floor.py PORT DELAY_MS`: per request it answers
one event at once and one after DELAY_MS (timed like the scripted provider's
first token), the same message shapes as a Converse turn's first events, then a
`metrics` event whose `t_first_delta_ms` is its own time from taking the request to
the delta (the twin of the mesh's TurnMetrics field, so the client subtracts the
same thing from each engine).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator

import grpc

from peromesh.dialog.v1 import dialog_service_pb2 as pb
from peromesh.dialog.v1 import dialog_service_pb2_grpc as pb_grpc
from server.llm.scripted import _sleep_precisely


class Echo(pb_grpc.DialogServiceServicer):
    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    async def Converse(self, request_iterator: AsyncIterator[pb.ConverseRequest],
                       context: grpc.aio.ServicerContext) -> AsyncIterator[pb.ConverseResponse]:
        async for _request in request_iterator:
            started = time.perf_counter()
            yield pb.ConverseResponse(turn_id="floor#1", state_update=pb.StateUpdate(state=pb.STATE_THINKING))
            await _sleep_precisely(self.delay_s)
            first_ms = (time.perf_counter() - started) * 1000
            yield pb.ConverseResponse(turn_id="floor#1", assistant_delta=pb.AssistantDelta(text_delta="Hi"))
            yield pb.ConverseResponse(turn_id="floor#1", metrics=pb.TurnMetrics(t_first_delta_ms=first_ms, tokens=1))


async def main(port: int, delay_ms: float) -> None:
    server = grpc.aio.server()
    pb_grpc.add_DialogServiceServicer_to_server(Echo(delay_ms / 1000), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2])))
