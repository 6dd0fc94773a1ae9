"""kill -9 at reminder failpoints with a device offline part of the time: every device gets every occurrence once.

Among the points: between queueing a trigger for a PeroLink v1 device (that sends no ack) and writing
it to its transport, on HubService.Attach and on the bridge's WebSocket. A device whose cursor moved
when the trigger was queued would lose exactly that one there.
"""

from __future__ import annotations

from pathlib import Path

from chaos.reminder_campaign import DEFAULT_KILLS, run_campaign


async def test_reminders_survive_kills_at_fire_ack_and_write_exactly_once_per_device(data_dir: Path) -> None:
    report = await run_campaign(data_dir, kills=DEFAULT_KILLS, reminders=8, spacing_s=1.0)
    assert report.kills == len(DEFAULT_KILLS), report  # every life ended at its failpoint, not by the outside SIGKILL
    assert set(report.devices) == {"desk", "phone", "console"}, report
    for name, device in report.devices.items():
        assert (device.lost, device.duplicates) == (0, 0), (name, report)
        assert device.shown == 8, (name, report)
