"""The core service that wires the grid, reminders, tasks and monitor into devices and the dialog.

Registered last in core_services (it uses what the others shared):
- gateway actions to "master": task:add/complete/reopen/delete/list and
  reminder:add/list/cancel (actions.py);
- reminder triggers to every device, per device and replayed after a
  disconnect, spoken on its dialog session (reminder_delivery.py);
- broadcasts of schedule_update, task:update and system_stats, and reminder
  triggers spoken on dialog sessions of devices outside the hub (broadcasts.py);
- the dialog's tool port (`ctx.shared["dialog_deps"].tools`): deterministic
  commands, the per-turn tool list, NIT scripts in model replies (port.py).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from server.hub.capabilities import CapabilityGrid
from server.hub.hub import Hub
from server.mesh.component import MeshContext
from server.rpc.serving import ServiceBinding
from server.tools import actions
from server.tools.broadcasts import Broadcaster
from server.tools.nit_step import NitFollower, wire
from server.tools.port import GridToolPort
from server.tools.reminder_delivery import DEFAULT_WINDOW_S, ReminderDelivery, SessionAnnouncer

log = logging.getLogger(__name__)


class ToolGridService:
    name = "tool_grid"

    def __init__(self) -> None:
        self.port: GridToolPort | None = None
        self.broadcaster: Broadcaster | None = None
        self.delivery: ReminderDelivery | None = None
        self._memory: Any = None
        self.nit: NitFollower | None = None

    def add_arguments(self, group: argparse._ArgumentGroup) -> None:
        group.add_argument("--tool-timeout", type=float, default=10.0,
                           help="seconds a node capability called by the dialog (or a NIT script) may take")
        group.add_argument("--nit", choices=["on", "off"], default="on",
                           help="run <nit> tool scripts that the model writes in its replies")
        group.add_argument("--tool-prompt", choices=["on", "off"], default="off",
                           help="list the tools online now (built-ins and node capabilities) on the model's system "
                                "prompt, so it can write <nit> scripts (longer prompts: slower first token on CPU)")

    async def start(self, ctx: MeshContext) -> list[ServiceBinding]:
        shared = ctx.shared
        hub: Hub | None = shared.get("hub")
        grid: CapabilityGrid | None = shared.get("grid")
        reminders, tasks, monitor = shared.get("reminders"), shared.get("tasks"), shared.get("monitor")

        def announcer() -> SessionAnnouncer | None:
            dialog: SessionAnnouncer | None = shared.get("dialog")  # exists once the core has started
            return dialog

        if hub is not None:
            names = actions.register(hub, tasks, reminders)
            log.info("gateway actions on master: %s", ", ".join(names) or "none")
            self.broadcaster = Broadcaster(hub, reminders=reminders, tasks=tasks, monitor=monitor,
                                           announcer=announcer)
            self.broadcaster.start()
            if reminders is not None:
                window_s = float(getattr(ctx.settings, "reminder_replay_window", DEFAULT_WINDOW_S))
                self.delivery = ReminderDelivery(hub, reminders, window_s=window_s, announcer=announcer)
                self.delivery.start()
        if address := ctx.address_of("memory"):
            from server.memory.client import MemoryClient

            self._memory = MemoryClient(address, ctx.token)
        deps = shared.get("dialog_deps")  # the core builds the dialog's deps before its core services
        settings = ctx.settings
        self.port = GridToolPort(reminders=reminders, tasks=tasks, grid=grid, memory=self._memory,
                                 llm=deps.llm if deps is not None else None,
                                 timeout_s=float(getattr(settings, "tool_timeout", 10.0)),
                                 tool_prompt=getattr(settings, "tool_prompt", "off") == "on")
        shared["tools"] = self.port
        if deps is not None:
            deps.tools = self.port
            if getattr(settings, "nit", "on") == "on":
                self.nit = wire(self.port, deps.llm, announcer)
        return []

    async def stop(self) -> None:
        if self.nit is not None:
            await self.nit.close()
        if self.delivery is not None:
            await self.delivery.close()
        if self.broadcaster is not None:
            await self.broadcaster.close()
        if self._memory is not None:
            await self._memory.close()
