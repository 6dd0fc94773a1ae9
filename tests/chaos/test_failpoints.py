"""Failpoints: parsed strictly, fire exactly at the chosen hit, and do nothing when unset."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from server.failpoints import ENV, parse

SCRIPT = """
from server.failpoints import failpoint
for n in range(1, 6):
    failpoint("other.point")
    failpoint("turn.after_final")
    print(n, flush=True)
"""


def run(spec: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if spec is not None:
        env[ENV] = spec
    return subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60)


def test_spec_is_parsed_and_typos_are_refused() -> None:
    assert parse("") == {}
    assert parse("turn.after_final, reminder.after_fire=3") == {"turn.after_final": 1, "reminder.after_fire": 3}
    for bad in ("x=0", "x=two", "=3"):
        with pytest.raises(ValueError, match="bad entry"):
            parse(bad)


def test_the_process_exits_137_at_the_chosen_hit() -> None:
    done = run("turn.after_final=3")
    assert done.returncode == 137
    assert done.stdout.split() == ["1", "2"]  # nothing after the third hit ran
    assert "failpoint turn.after_final hit 3: exit 137" in done.stderr


def test_unset_or_other_points_change_nothing() -> None:
    for spec in (None, "", "somewhere.else"):
        done = run(spec)
        assert done.returncode == 0 and done.stdout.split() == ["1", "2", "3", "4", "5"]
