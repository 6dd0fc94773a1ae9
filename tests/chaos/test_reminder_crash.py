"""kill -9 at reminder failpoints with a device offline part of the time: every device gets every occurrence once."""

from __future__ import annotations

from pathlib import Path

from chaos.reminder_campaign import run_campaign


async def test_reminders_survive_kills_at_fire_and_ack_exactly_once_per_device(data_dir: Path) -> None:
    report = await run_campaign(data_dir, kills=("reminder.after_fire=2", "reminder.before_ack=3"),
                                reminders=6, spacing_s=1.0)
    assert report.kills == 2, report  # both lives ended at their failpoint, not by the outside SIGKILL
    for name, device in report.devices.items():
        assert (device.lost, device.duplicates) == (0, 0), (name, report)
        assert device.shown == 6, (name, report)
