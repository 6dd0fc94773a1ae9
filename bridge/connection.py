"""One WebSocket client of the bridge: hello → hub attachment → pumps.

The bridge only translates. Authentication, liveness, sessions and routing
live in the core's hub (one attachment per client, opened with the client's
own hello); the conversation is the client's DialogLink (one
DialogService.Converse, opened at its first dialog message).

Pumps, until the first one ends: the client reader (limits, decoding,
dispatch), the hub pump, the dialog reader (events → envelopes; an
audio_cancel purges the turn from the outbound queue first; it starts with
the Converse stream, at the device's first dialog message), and the writer.
Every frame for the client goes through `_out`, the one outbound point: it
is written at once when nothing is queued or in flight, else queued for the
writer; the barge-in check (OutboundQueue.admit) applies to both. A frame
with a receipt (a reminder the bridge acknowledges for a client that does not,
reminder_acks.py) always goes through the writer, which calls the receipt only
after `send` returned.

Every task the connection owns is a pump spawned through `_spawn_pump`, and
the first pump to end, in any way, ends the connection: the expected endings
map to their close codes, and anything else (a bug, an input nobody foresaw)
becomes `PumpFailed` — logged once with its traceback, then the socket is
closed at once with 1011 and a reason naming the pump. A failed pump never
leaves a socket open and deaf until the heartbeat timeout.

Close codes: 4400 bad first message, 4401 unauthenticated, 4408 heartbeat
timeout, 4409 replaced by a newer connection of the same device, 1008 slow
client or message-rate abuse, 1009 frame over the hard size limit, 1013 the
core is unreachable or stopping (try again later), 1011 a mesh failure or a
fault in the bridge itself, 1001 the bridge is stopping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import grpc
from websockets.asyncio.server import ServerConnection, broadcast
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from peromesh.dialog.v1 import dialog_service_pb2_grpc as dpb_grpc
from peromesh.gateway.v1 import envelope_pb2 as gw
from peromesh.hub.v1 import hub_service_pb2 as hpb
from peromesh.tts.v1 import tts_service_pb2_grpc as tpb_grpc
from server.aio import TaskOwner
from server.failpoints import failpoint
from server.wire import envelopes as env

from . import codec
from .dialog_link import VOICE_NAME, DialogClosed, DialogLink
from .frames import FrameCache
from .history_reads import HistoryReads
from .hub_port import HubClosed, HubPort
from .limits import Limits, RateLimiter
from .outbound import Outbound, OutboundQueue, SlowClientError
from .reminder_acks import REMINDER_TRIGGER, ReminderAcks
from .voice_list import VoiceList

log = logging.getLogger(__name__)
FAST_WRITE_BYTES = 64 * 1024
_HUB_CLOSE = {grpc.StatusCode.UNAUTHENTICATED: 4401, grpc.StatusCode.INVALID_ARGUMENT: 4400,
              grpc.StatusCode.DEADLINE_EXCEEDED: 4408, grpc.StatusCode.ABORTED: 4409,
              grpc.StatusCode.RESOURCE_EXHAUSTED: 1008, grpc.StatusCode.UNAVAILABLE: 1013}


@dataclass(frozen=True)
class MeshStubs:
    """How connections reach the mesh: a hub port per node, one shared dialog channel, and the
    TTS server where one is known (for the voices a device may choose)."""

    hub_port: Callable[[], HubPort]
    dialog: dpb_grpc.DialogServiceStub
    metadata: tuple[tuple[str, str], ...] = ()
    frames: FrameCache = field(default_factory=lambda: FrameCache())
    tts: tpb_grpc.TtsServiceStub | None = None


class CloseConnection(Exception):
    """End the connection with this WebSocket close code and reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class PumpFailed(Exception):
    """A task of the connection failed in an unforeseen way: close with 1011 (logged once)."""

    def __init__(self, pump: str, error: Exception) -> None:
        super().__init__(f"{pump} failed: {type(error).__name__}")
        self.pump = pump
        self.error = error


class GatewayConnection:
    def __init__(self, ws: ServerConnection, stubs: MeshStubs, limits: Limits) -> None:
        self.ws = ws
        self.stubs = stubs
        self.limits = limits
        self.node_id = ""
        self.binary = True  # control frames mirror the client's hello (binary or JSON text)
        self.queue = OutboundQueue(limits.max_queue_frames, limits.max_queue_bytes)
        self.dialog = DialogLink(stubs.dialog, stubs.metadata, self._out, self.queue.cancel_turn, self._spawn_pump)
        self.rate = RateLimiter(limits.rate_per_s, limits.burst)
        self._hub: HubPort | None = None
        self._writer_idle = False  # True while the writer waits for the queue (nothing in flight)
        self._ended: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
        self._last_rate_error = 0.0
        self._tasks = TaskOwner("bridge-conn")
        self.history = HistoryReads(stubs.dialog, stubs.metadata, self._out, self._tasks.spawn)
        self.voices = VoiceList(stubs.tts, stubs.metadata, self._out, self._tasks.spawn)
        self.reminder_acks = ReminderAcks(self._to_hub_soon)

    async def run(self) -> None:
        """Serve the client until it leaves or must be closed.

        Cancellation: cancelling run() cancels the pumps and both gRPC calls
        (the dialog stops the turn in progress; the hub detaches the node).
        """
        try:
            await self._serve()
        except CloseConnection as exc:
            await self._close(exc.code, exc.reason)
        except SlowClientError as exc:
            await self._close(1008, str(exc))
        except DialogClosed as exc:
            await self._close(1011, str(exc))
        except ConnectionClosed:
            pass
        except (grpc.aio.AioRpcError, TimeoutError) as exc:  # the mesh side failed: the client may retry
            detail = exc.details() if isinstance(exc, grpc.aio.AioRpcError) else "timed out"
            log.warning("connection %s: mesh call failed: %s", self.node_id, detail)
            await self._close(1011, f"the mesh is unavailable: {detail}")
        except Exception as exc:  # a fault of the bridge, in a pump or while setting up: never stay open
            failed = exc if isinstance(exc, PumpFailed) else PumpFailed("set-up", exc)
            log.error("connection %s: %s", self.node_id or self.ws.remote_address, failed, exc_info=failed.error)
            await self._close(1011, f"bridge fault: {failed} (logged)")
        finally:
            await self._release()

    # -- set-up ----------------------------------------------------------
    async def _serve(self) -> None:
        hello = await self._read_hello()
        if not VOICE_NAME.fullmatch(hello.hello.voice):
            await self._refuse(hello.id, "INVALID_ARGUMENT", "hello.voice must be a voice name: at most 64 "
                                                             "letters, digits and - _ + (a voices:list name)", 4400)
        welcome = await self._attach_to_hub(self.reminder_acks.attach_hello(hello))
        self.node_id = welcome.node_id
        self.dialog.configure(welcome.node_id, welcome.session_id, perocore_twins=hello.hello.protocol_version < 1,
                              voice=hello.hello.voice)
        self.history.configure(welcome.node_id, welcome.session_id)
        welcome.max_frame_bytes = self.limits.max_frame_bytes  # the bridge's limit is the one that applies
        self._out(Outbound(env.welcome(self.node_id, welcome)))
        await self._pump()

    async def _read_hello(self) -> gw.Envelope:
        try:
            frame = await asyncio.wait_for(self.ws.recv(), self.limits.hello_timeout_s)
        except TimeoutError:
            await self._refuse("", "UNAUTHENTICATED", f"no hello within {self.limits.hello_timeout_s:g}s", 4401)
        self.binary = isinstance(frame, bytes)
        try:
            return codec.decode(frame, self.limits.max_frame_bytes)
        except codec.CodecError as exc:
            await self._refuse("", "INVALID_ARGUMENT", f"the first frame is not an Envelope: {exc}", 4400)
        raise AssertionError("unreachable")

    async def _attach_to_hub(self, hello: gw.Envelope) -> gw.Welcome:
        peer = self.ws.remote_address
        self._hub = self.stubs.hub_port()
        try:
            return await self._hub.open(hello, f"{peer[0]}:{peer[1]}" if peer else "")
        except HubClosed as exc:
            answer = exc.answer or env.error(hello.id, hello.source_id, exc.code.name, exc.reason)
            await self._send_now(answer)
            raise CloseConnection(_HUB_CLOSE.get(exc.code, 4401), exc.reason) from exc

    # -- pumps -----------------------------------------------------------
    async def _pump(self) -> None:
        """Run the pumps (the dialog reader joins at the first turn) until the first one ends."""
        for coro, name in ((self._read_client(), "client-reader"), (self._read_hub(), "hub-pump"),
                           (self._write(), "writer")):
            self._spawn_pump(coro, name)
        if (ending := await self._ended) is not None:
            raise ending

    def _spawn_pump(self, pump: Coroutine[Any, Any, None], name: str) -> None:
        async def run() -> None:
            ending = await _ending(pump, name)
            if not self._ended.done():
                self._ended.set_result(ending)

        task = self._tasks.spawn(run(), name)
        # A connection closed before the task's first step cancels run() unstarted, which leaves
        # the pump coroutine never awaited (a RuntimeWarning at collection); close it then.
        task.add_done_callback(lambda _: pump.close())

    async def _read_client(self) -> None:
        async for frame in self.ws:
            await self._on_frame(frame)

    async def _read_hub(self) -> None:
        assert self._hub is not None
        try:
            await self._hub.pump(self._from_hub)
        except HubClosed as exc:
            raise CloseConnection(_HUB_CLOSE.get(exc.code, 1011), exc.reason) from exc

    def _from_hub(self, answer: hpb.AttachResponse) -> None:
        if answer.envelope.request.action_name == REMINDER_TRIGGER and not self.dialog.is_open:
            self._tasks.spawn(self.dialog.open_now(), "dialog-open")  # so the reminder can be spoken here
        self._out(Outbound(answer.envelope, shared=answer, written=self.reminder_acks.receipt(answer.envelope)))

    def _out(self, item: Outbound) -> None:
        """The one outbound point: write now when nothing is queued or being sent and the
        socket buffer is small (no task switch), else queue for the writer. Barge-in and the
        slow-client policy apply either way (OutboundQueue.admit / push)."""
        ws = self.ws
        if (self._writer_idle and not len(self.queue) and item.written is None and ws.state is State.OPEN
                and ws.transport.get_write_buffer_size() < FAST_WRITE_BYTES):
            if self.queue.admit(item):
                broadcast((ws,), self.stubs.frames.encode(item, self.binary or item.envelope.HasField("stream")))
            return
        self.queue.push(item)

    async def _write(self) -> None:
        """Sends what queued up (behind a busy socket). While the socket's buffer is small a
        frame is written at once (websockets' `broadcast` for one connection: no lock, no
        drain); above FAST_WRITE_BYTES it waits in `send` until the client reads, so a slow
        client backs up into the queue, where the slow-client policy applies. A frame with a
        receipt is always sent with `send` (which raises on a closed socket, where `broadcast`
        skips it silently), and its receipt is called once `send` returned."""
        frames, ws = self.stubs.frames, self.ws
        while True:
            self._writer_idle = True
            item = await self.queue.get()
            self._writer_idle = False
            frame = frames.encode(item, self.binary or item.envelope.HasField("stream"))
            if item.written is not None:
                failpoint("bridge.before_reminder_write")  # queued for the client, not yet written
                await ws.send(frame)
                item.written()
            elif ws.transport.get_write_buffer_size() < FAST_WRITE_BYTES:
                broadcast((ws,), frame)
            else:
                await ws.send(frame)

    # -- client → mesh ---------------------------------------------------
    async def _on_frame(self, frame: str | bytes) -> None:
        if not self.rate.allow():
            self._rate_limited()
            return
        try:
            envelope = codec.decode(frame, self.limits.max_frame_bytes)
        except codec.CodecError as exc:
            self._error("", "INVALID_ARGUMENT", str(exc))
            return
        kind = envelope.WhichOneof("payload")
        if kind in ("hello", "welcome"):
            self._error(envelope.id, "FAILED_PRECONDITION", f"unexpected {kind}: this connection is authenticated")
        elif self.history.wants(envelope):
            self.history.handle(envelope)
        elif self.voices.wants(envelope):
            self.voices.handle(envelope)
        elif self.dialog.wants(envelope):
            await self.dialog.handle(envelope)
        else:
            assert self._hub is not None
            await self._hub.send(envelope)

    def _to_hub_soon(self, envelope: gw.Envelope) -> None:
        """Route an envelope of the bridge's own (an ack for the client) without blocking the writer."""
        assert self._hub is not None
        self._tasks.spawn(self._hub.send(envelope), "to-hub")

    def _error(self, request_id: str, code: str, message: str) -> None:
        self._out(Outbound(env.error(request_id, self.node_id, code, message)))

    def _rate_limited(self) -> None:
        if self.rate.strikes >= self.limits.strikes_to_close:
            raise CloseConnection(1008, f"message rate limit: {self.rate.strikes} messages refused in 10 s")
        now = asyncio.get_running_loop().time()
        if now - self._last_rate_error >= 1.0:
            self._last_rate_error = now
            self._error("", "RESOURCE_EXHAUSTED", f"rate limit: at most {self.rate.rate_per_s:g} messages/s "
                                                  f"(bursts of {self.rate.burst}); messages are being dropped")

    # -- closing ---------------------------------------------------------
    async def _refuse(self, request_id: str, code: str, message: str, close_code: int) -> None:
        await self._send_now(env.error(request_id, self.node_id, code, message))
        raise CloseConnection(close_code, message)

    async def _send_now(self, envelope: gw.Envelope) -> None:
        """Send outside the queue (only before the pumps run)."""
        with contextlib.suppress(TimeoutError, ConnectionClosed):
            await asyncio.wait_for(self.ws.send(codec.encode(envelope, self.binary)), 2.0)

    async def _close(self, code: int, reason: str) -> None:
        """Leave the mesh first (the hub and dialog let go at once), then close the socket."""
        log.info("closing %s (%d): %s", self.node_id or self.ws.remote_address, code, reason)
        await self._release()
        await self.ws.close(code, _clip(reason))

    async def _release(self) -> None:
        await self._tasks.close()
        if self._hub is not None:
            self._hub.close()
        self.dialog.close()


async def _ending(pump: Coroutine[Any, Any, None], name: str) -> Exception | None:
    """Run a pump to its end, which is returned, never raised: the expected ways a connection
    ends as they are, any other failure as PumpFailed (so TaskOwner logs nothing twice)."""
    try:
        await pump
    except (CloseConnection, SlowClientError, ConnectionClosed, DialogClosed, grpc.aio.AioRpcError,
            TimeoutError) as exc:
        return exc
    except Exception as exc:
        return PumpFailed(name, exc)
    return None


def _clip(reason: str, limit: int = 123) -> str:
    """A close reason fits in 123 bytes of UTF-8."""
    data = reason.encode()
    return reason if len(data) <= limit else data[: limit - 3].decode(errors="ignore") + "..."
