"""Service events to every device: reminder triggers, schedule and task changes, system stats.

One pump per in-process subscription, each broadcasting through the hub with
the action names the clients know (PeroCore's where they exist):
`schedule_update`, `task:update`, `system_stats`. Reminder triggers reach hub
nodes through reminder_delivery.py (per device, replayed after a disconnect);
here a live trigger is only spoken on the dialog sessions of devices that are
not hub nodes (plain gRPC Converse clients): the dialog exists only once the
core has finished starting, so it is looked up at fire time. System stats are
sampled only while at least one node is attached (the monitor idles otherwise).

In a cluster (`--cluster-url`) tasks and reminders live in the shared database, but each change
is made on one core: the one whose API was called, or for a reminder's `done` the holder of the
scheduler lease. That core's pump is the only one that sees it, so it sends `task:update` and
`schedule_update` to every core's devices (the hub's `everywhere`, one message on the cluster
bus; a receiving core only delivers, never forwards, and the bus drops a core's own echo).
`system_stats` stays per core: each core reports the machine it runs on to its own devices.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from server.aio import TaskOwner
from server.hub.hub import Hub
from server.hub.nodes import NodeChange, NodeInfo
from server.monitor.service import MonitorService
from server.reminders.service import ReminderService
from server.tasks.service import TaskService
from server.tools.reminder_delivery import REMINDER_TRIGGER, SessionAnnouncer, spoken

log = logging.getLogger(__name__)

SCHEDULE_UPDATE = "schedule_update"
TASK_UPDATE = "task:update"
SYSTEM_STATS = "system_stats"
# changes to shared state, made on one core and wanted by every device of the cluster
CLUSTER_WIDE = frozenset({SCHEDULE_UPDATE, TASK_UPDATE})


class Announcer(Protocol):
    async def announce(self, text: str, device_ids: Sequence[str] = ()) -> int: ...


def as_params(payload: Mapping[str, Any]) -> dict[str, str]:
    """Gateway params are strings: strings stay, everything else is JSON."""
    return {k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for k, v in payload.items()}


class Broadcaster:
    def __init__(self, hub: Hub, *, reminders: ReminderService | None = None, tasks: TaskService | None = None,
                 monitor: MonitorService | None = None,
                 announcer: SessionAnnouncer | None = None) -> None:
        self.hub = hub
        self.reminders = reminders
        self.tasks = tasks
        self.monitor = monitor
        self.announcer = announcer
        self.sent: dict[str, int] = {}  # action → broadcasts (for logs and tests)
        self._owner = TaskOwner("broadcasts")
        self._nodes_present = asyncio.Event()
        self._remove_listener: Callable[[], None] | None = None

    def start(self) -> None:
        """Subscribe now (so nothing published after start is missed) and start the pumps."""
        if self.reminders is not None:
            self._owner.spawn(self._triggers(self.reminders.triggers()), REMINDER_TRIGGER)
            self._owner.spawn(self._forward(SCHEDULE_UPDATE, self.reminders.schedule_updates()), SCHEDULE_UPDATE)
        if self.tasks is not None:
            self._owner.spawn(self._forward(TASK_UPDATE, self.tasks.changes()), TASK_UPDATE)
        if self.monitor is not None:
            self._remove_listener = self.hub.add_listener(self._on_nodes)
            self._on_nodes(NodeChange.UPDATED, None, "")
            self._owner.spawn(self._stats(self.monitor), SYSTEM_STATS)

    async def close(self) -> None:
        if self._remove_listener is not None:
            self._remove_listener()
        await self._owner.close()

    def _broadcast(self, action: str, payload: Mapping[str, Any]) -> int:
        count = self.hub.broadcast(action, as_params(payload), everywhere=action in CLUSTER_WIDE)
        self.sent[action] = self.sent.get(action, 0) + 1
        return count

    async def _forward(self, action: str, subscription: Any) -> None:
        with subscription as events:
            async for event in events:
                self._broadcast(action, event.as_action())

    async def _triggers(self, subscription: Any) -> None:
        """Speak live triggers on sessions of devices that are not hub nodes (those get theirs
        from their delivery pump, once each)."""
        with subscription as triggers:
            async for trigger in triggers:
                dialog = self.announcer
                if dialog is None:
                    continue
                nodes = {n.node_id for n in self.hub.nodes()}
                try:
                    sessions = await dialog.announce(spoken(trigger), trigger.target_devices, exclude=nodes)
                except Exception:  # speaking is a courtesy: devices get the trigger through delivery
                    log.exception("announcing reminder %s failed", trigger.reminder_id)
                    continue
                self.sent[REMINDER_TRIGGER] = self.sent.get(REMINDER_TRIGGER, 0) + 1
                log.info("reminder %s spoken on %d session(s) outside the hub", trigger.reminder_id, sessions)

    def _on_nodes(self, change: NodeChange, node: NodeInfo | None, reason: str) -> None:
        if self.hub.nodes():
            self._nodes_present.set()
        else:
            self._nodes_present.clear()

    async def _stats(self, monitor: MonitorService) -> None:
        """Broadcast samples while any node is attached; unsubscribe (the monitor idles) when none is."""
        loop = asyncio.get_running_loop()
        while True:
            await self._nodes_present.wait()
            # The monitor's first sample comes ~0.2 s after subscribing (its CPU warm-up); devices get
            # the steady cadence, the first one interval after the first node attached.
            quiet_until = loop.time() + monitor.interval_s * 0.9
            with monitor.stats() as samples:
                while self._nodes_present.is_set():  # checked at least once per sample interval
                    try:
                        sample = await asyncio.wait_for(samples.get(), max(1.0, 2 * monitor.interval_s))
                    except TimeoutError:
                        continue
                    if self._nodes_present.is_set() and loop.time() >= quiet_until:
                        self._broadcast(SYSTEM_STATS, sample.as_action())
