"""The native kernels release the GIL: another Python thread keeps running during a long call."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from server.native import Graph, TextCleaner, spread


def longest_stall(call: Callable[[], object]) -> tuple[float, float]:
    """Run `call` in a thread while this thread spins; return (call duration, longest gap between spins).

    If `call` held the GIL, this thread could not run at all until it returned: the gap
    would be about the whole call.
    """
    duration: list[float] = []
    done = threading.Event()

    def worker() -> None:
        start = time.perf_counter()
        call()
        duration.append(time.perf_counter() - start)
        done.set()

    thread = threading.Thread(target=worker)
    last = time.perf_counter()
    gap = 0.0
    thread.start()
    while not done.is_set():
        now = time.perf_counter()
        gap = max(gap, now - last)
        last = now
    thread.join()
    return duration[0], gap


def test_clean_releases_the_gil() -> None:
    text = ("记忆系统 memory text, password hunter2; " * 4 + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB1x== \n") * 30_000
    cleaner = TextCleaner(["hunter2", "记忆"], backend="native")
    duration, gap = longest_stall(lambda: cleaner.clean(text))
    assert duration > 0.05, "workload too small to tell"
    assert gap < duration / 2, (duration, gap)


def test_spread_releases_the_gil() -> None:
    rng = np.random.default_rng(1)
    n, m = 200_000, 1_000_000
    graph = Graph.from_edges(rng.integers(0, n, m), rng.integers(0, n, m), rng.random(m), n, backend="native")
    seeds = [(int(s), 1.0) for s in rng.integers(0, n, 20)]
    duration, gap = longest_stall(lambda: spread(graph, seeds, steps=11, max_active_per_step=None))
    assert duration > 0.05, "workload too small to tell"
    assert gap < duration / 2, (duration, gap)
