"""Every device gets every reminder, exactly once, also after a disconnect or a restart.

The trigger log (server/reminders) is the truth; this module gives each hub
node the guarantee a WatchReminders relay has. While a node is attached (a
bridge's WebSocket client or a native HubService.Attach node) one pump per
node sends it the log after its acknowledged cursor (the backlog, at attach),
then live triggers, in cursor order, only those meant for it (targets).

Delivery state is the device's cursor in the database (`device_cursor`,
`acknowledge`), so it survives restarts of the core:
- a node whose hello set `reminder_acks` sends `reminder_ack {cursor}` to
  master; what it has not acknowledged is sent again at its next attach (on
  the wire at least once; the client drops a cursor it has already seen, so it
  shows each trigger once);
- any other node (PeroLink v1 clients) counts as acknowledging once the
  envelope was written to its transport: the link's delivery receipt
  (NodeLink.send `on_written`, fired by the Attach servicer after the
  stream write), never when it is merely queued, so a core killed between the
  two sends it again at the next attach (at least once, never lost). The
  bridge's WebSocket clients never reach that branch: the bridge attaches
  them with `reminder_acks` and sends `reminder_ack` itself after it wrote the
  frame to a client that does not ack (bridge/reminder_acks.py).

A node of another core is delivered to by that core's own ReminderDelivery
(pumps run for local nodes only), so receipts never cross the cluster.

A trigger fired longer ago than the replay window (default 24 h) is delivered
with status `missed`; backlog envelopes carry `replayed: true`. Each delivered
trigger is spoken on the device's own dialog session; the bridge opens that
session when a reminder arrives for a device that has not talked yet, so the
text waits for it briefly (SPEAK_WAIT_S). Sessions of devices that are not
hub nodes (plain gRPC Converse clients) are spoken to by the broadcaster.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import logging
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import Protocol

import grpc

from peromesh.gateway.v1 import envelope_pb2 as gw
from server.aio import TaskOwner, cancel_and_wait
from server.failpoints import failpoint
from server.hub.hub import Hub
from server.hub.nodes import NodeChange, NodeInfo
from server.reminders.service import ReminderService
from server.reminders.store import CaughtUp, Trigger
from server.rpc.errors import StatusError
from server.text.language import has_han
from server.wire import envelopes as env

log = logging.getLogger(__name__)

REMINDER_TRIGGER = "reminder_trigger"
REMINDER_ACK = "reminder_ack"
DEFAULT_WINDOW_S = 24 * 3600.0
MAX_BACKLOG = 500  # triggers replayed per attach at most (the newest; a year-long absence is not a flood)
DEVICE_POLL_S = 60.0  # a pump's own re-read of the log: a safety net (the service's tailer feeds it)
SPEAK_WAIT_S = 5.0  # how long a reminder waits for the device's dialog session to open
MAX_UNSPOKEN = 32  # per device; older ones are dropped (the trigger itself was delivered)


class SessionAnnouncer(Protocol):
    async def announce(self, text: str, device_ids: Sequence[str] = (), exclude: Collection[str] = ()) -> int: ...


def spoken(trigger: Trigger) -> str:
    """What the companion says when a reminder fires (or was missed while the mesh was down)."""
    zh = has_han(trigger.content)
    if trigger.status == "missed":
        return f"你错过了一个提醒：{trigger.content}" if zh else f"You missed a reminder: {trigger.content}"
    return f"提醒你：{trigger.content}" if zh else f"Reminder: {trigger.content}"


class ReminderDelivery:
    """One delivery pump per attached node; acknowledgements through the `reminder_ack` action."""

    def __init__(self, hub: Hub, reminders: ReminderService, *, window_s: float = DEFAULT_WINDOW_S,
                 announcer: SessionAnnouncer | None = None,
                 poll_s: float = DEVICE_POLL_S) -> None:
        self.hub = hub
        self.reminders = reminders
        self.window = timedelta(seconds=window_s)
        self.announcer = announcer
        self.poll_s = poll_s
        self._owner = TaskOwner("reminder-delivery")
        self._pumps: dict[str, asyncio.Task[None]] = {}
        self._remove_listener: Callable[[], None] | None = None

    def start(self) -> None:
        self.hub.on_action(REMINDER_ACK, self._on_ack)
        self._remove_listener = self.hub.add_listener(self._on_nodes)
        for node in self.hub.nodes():
            self._restart(node)

    async def close(self) -> None:
        if self._remove_listener is not None:
            self._remove_listener()
        await self._owner.close()

    def _on_nodes(self, change: NodeChange, node: NodeInfo, reason: str) -> None:
        if change is NodeChange.JOINED:
            self._restart(node)
        elif change is NodeChange.LEFT and self.hub.node(node.node_id) is None:
            pump = self._pumps.pop(node.node_id, None)
            if pump is not None:
                pump.cancel()

    def _restart(self, node: NodeInfo) -> None:
        old = self._pumps.pop(node.node_id, None)
        self._pumps[node.node_id] = self._owner.spawn(self._pump(node, old), f"pump:{node.node_id}")

    async def _on_ack(self, node: NodeInfo, envelope: gw.Envelope) -> str:
        raw = envelope.request.params.get("cursor", "")
        if not raw.isdigit():
            raise StatusError(grpc.StatusCode.INVALID_ARGUMENT,
                              f"reminder_ack needs params.cursor, a trigger's cursor (got {raw!r})")
        failpoint("reminder.before_ack")  # the device has it; the mesh has not recorded that
        cursor = await self.reminders.acknowledge(node.node_id, int(raw))
        return str(cursor)

    async def _pump(self, node: NodeInfo, previous: asyncio.Task[None] | None) -> None:
        """The node's backlog, then its live triggers, until it leaves (this task is cancelled)."""
        await cancel_and_wait(previous)  # a replaced connection's pump ends before this one sends
        node_id = node.node_id
        cursor = await self.reminders.device_cursor(node_id)
        speaker = _Speaker(node_id, self.announcer)
        self._owner.spawn(speaker.run(), f"speak:{node_id}")
        try:
            caught_up = False
            backlog = await self._backlog_start(cursor)
            async for event in self.reminders.watch(backlog, device_id=node_id, poll_s=self.poll_s):
                if isinstance(event, CaughtUp):
                    caught_up = True
                    continue
                if not self._send(node, event, replayed=not caught_up):
                    return  # the node left; its next attach starts from its cursor
                speaker.say(spoken(self._as_delivered(event)))
        finally:
            speaker.stop()

    async def _backlog_start(self, cursor: int) -> int:
        """Where replay starts: the device's cursor, or MAX_BACKLOG triggers before the end."""
        last = await self.reminders.last_cursor()
        return max(cursor, last - MAX_BACKLOG)

    def _as_delivered(self, trigger: Trigger) -> Trigger:
        if trigger.status == "fired" and datetime.now(UTC) - trigger.fired_time > self.window:
            return dataclasses.replace(trigger, status="missed")
        return trigger

    def _send(self, node: NodeInfo, trigger: Trigger, replayed: bool) -> bool:
        payload = self._as_delivered(trigger).as_action()
        if replayed:
            payload["replayed"] = True
        params = {k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for k, v in payload.items()}
        if node.reminder_acks:
            return self.hub.send_action(node.node_id, REMINDER_TRIGGER, params)
        node_id, cursor = node.node_id, trigger.cursor  # PeroLink v1: written counts as acknowledged
        link = self.hub.local_link(node_id)

        def written() -> None:
            self._owner.spawn(self._auto_ack(node_id, cursor), f"ack:{node_id}")

        return link is not None and link.send(env.action(node_id, REMINDER_TRIGGER, params), on_written=written)

    async def _auto_ack(self, node_id: str, cursor: int) -> None:
        failpoint("reminder.before_ack")  # written to the device; its cursor not yet moved
        await self.reminders.acknowledge(node_id, cursor)


class _Speaker:
    """Speaks one device's reminders in order on its dialog session, waiting briefly for it to open."""

    def __init__(self, node_id: str, announcer: SessionAnnouncer | None) -> None:
        self.node_id = node_id
        self.announcer = announcer
        self._texts: collections.deque[str] = collections.deque(maxlen=MAX_UNSPOKEN)
        self._ready = asyncio.Event()
        self._stopped = False

    def say(self, text: str) -> None:
        self._texts.append(text)
        self._ready.set()

    def stop(self) -> None:
        self._stopped = True
        self._ready.set()

    async def run(self) -> None:
        while not self._stopped:
            await self._ready.wait()
            self._ready.clear()
            while self._texts and not self._stopped:
                await self._speak(self._texts.popleft())

    async def _speak(self, text: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SPEAK_WAIT_S
        while not self._stopped:
            dialog = self.announcer
            try:
                if dialog is not None and await dialog.announce(text, [self.node_id]):
                    log.info("reminder spoken on %s", self.node_id)
                    return
            except Exception:  # speaking is a courtesy: the trigger was delivered
                log.exception("speaking a reminder on %s failed", self.node_id)
                return
            if loop.time() >= deadline:
                log.info("reminder not spoken on %s: it has no dialog session", self.node_id)
                return
            await asyncio.sleep(0.1)  # the bridge is opening the session (it saw the reminder_trigger)
