"""kill -9 during index saves never leaves an index that fails to load (50 random kills)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from server.memory.vector_index import META, VectorIndex
from tests.memory.vectors import DIM, truth_source, vector

ROOT = Path(__file__).resolve().parents[2]
KILLS = 50
START = 3000


def test_kill_during_save_leaves_a_loadable_index(tmp_path: Path) -> None:
    rng = random.Random(1234)
    directory = tmp_path / "index"
    loaded_from_file = 0
    mid_save = 0  # kills that caught a save half-written (a temp file was left behind)
    for round_no in range(KILLS):
        child = subprocess.Popen([sys.executable, "-m", "tests.memory.crash_saver", str(directory), str(START)],
                                 cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert child.stdout is not None
            line = child.stdout.readline()
            assert line.strip() == "ready", child.stderr.read() if child.stderr else line
            time.sleep(rng.uniform(0.0, 0.25))  # somewhere inside the add/save loop
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
            if child.stdout:
                child.stdout.close()
            if child.stderr:
                child.stderr.close()

        # The file that vectors.json names always loads on its own (no rebuild, right count)...
        meta = json.loads((directory / META).read_text())
        bare = VectorIndex(directory, DIM, "test-model", "f32", None)
        bare.ensure_loaded()
        assert not bare.rebuilt, f"round {round_no}: the saved index failed to load"
        assert len(bare) == meta["count"] >= START
        loaded_from_file += 1
        # ...and, reconciled with SQL (here: the first START keys), it answers correctly.
        synced = VectorIndex(directory, DIM, "test-model", "f32", truth_source(list(range(1, START + 1))))
        assert synced.search(vector(17), 1)[0][0] == 17
        assert len(synced) == START
        leftovers = [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]
        mid_save += bool(leftovers)  # the next save removes them
        for name in leftovers:
            assert name.startswith(("vectors-", META))
    assert loaded_from_file == KILLS
    assert mid_save >= 1, "no kill landed inside a save: the test did not exercise the window"
    print(f"{mid_save}/{KILLS} kills interrupted a save")


SAVE_STEPS = ("memory.save.before_replace", "memory.save.before_meta", "memory.save.before_meta_replace",
              "memory.save.before_cleanup")


def test_a_kill_at_each_step_of_a_save_loses_nothing(tmp_path: Path) -> None:
    """Deterministic: the child dies (exit 137) at a named step of its 3rd save; restarted on the same
    directory, the index vectors.json names loads whole, and reconciled with the rows it has every one."""
    for step in SAVE_STEPS:
        directory = tmp_path / step
        child = subprocess.run([sys.executable, "-m", "tests.memory.crash_saver", str(directory), str(START)],
                               cwd=ROOT, capture_output=True, text=True, timeout=120,
                               env={**os.environ, "PEROMESH_FAILPOINTS": f"{step}=3"})
        assert child.returncode == 137 and f"failpoint {step} hit 3" in child.stderr, (step, child.stderr[-500:])
        meta = json.loads((directory / META).read_text())
        bare = VectorIndex(directory, DIM, "test-model", "f32", None)
        bare.ensure_loaded()
        assert not bare.rebuilt and len(bare) == meta["count"] >= START, step
        # The rows the saver had added by then (START, then 200 per round; the 3rd save is round 2's):
        rows = list(range(1, START + 2 * 200 + 1))
        synced = VectorIndex(directory, DIM, "test-model", "f32", truth_source(rows))
        synced.ensure_loaded()
        assert not synced.rebuilt and len(synced) == len(rows), step
        assert synced.search(vector(rows[-1]), 1)[0][0] == rows[-1], step
