"""kill -9 mid-turn at named points (failpoints), restart on the same data dir: no answer the client saw is lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.turn_campaign import run_turn_campaign

pytestmark = pytest.mark.slow


async def test_answers_the_client_received_survive_kills_at_every_turn_point(data_dir: Path) -> None:
    report = await run_turn_campaign(data_dir, kills=3, turns_per_life=6, seed=20261201)
    figures = report.figures()
    assert report.exit_codes == [137, 137, 137], figures  # each life died at its failpoint, not otherwise
    assert report.lost == [], figures
    assert report.duplicates == [], figures
    assert report.history_mismatches == [], report.history_mismatches
    assert report.unmarked == [], figures
    # the campaign really exercised what it claims: the client had the fatal turn's final when the
    # after_final kill came, and the before_store kill left a question that the restart marked
    assert report.fatal_finals_received >= 1 and report.abandoned >= 1, figures
