"""Model loads, announced and counted: what "ready means warm" is checked against.

Every model a turn needs (the chat model, the memory embedders, the voices)
loads through `loading()`, which prints a progress line while `peromesh serve`
starts ("peromesh: loading <what> …", then "peromesh: <what> loaded in 1.2s")
and counts the load. The servers load and exercise their models before they
listen, so `peromesh: ready` comes after every load; a `loading` line after it
means a turn paid for a lazy load (tests/mesh/test_warm_start.py watches for
exactly that). `loading()` is a plain context manager because loads run in
worker threads, never on an event loop.
"""

from __future__ import annotations

import gc
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

PREFIX = "peromesh:"
_lock = threading.Lock()
_loads: Counter[str] = Counter()


def progress(message: str) -> None:
    """One progress line on stdout (where `peromesh serve` prints its addresses and `ready`)."""
    print(f"{PREFIX} {message}", flush=True)


@contextmanager
def loading(what: str) -> Iterator[None]:
    """Announce and count the load of `what` (a model, a voice); blocking callers, any thread."""
    with _lock:
        _loads[what] += 1
    progress(f"loading {what} …")
    started = time.perf_counter()
    yield
    progress(f"{what} loaded in {time.perf_counter() - started:.1f}s")


def loads() -> Counter[str]:
    """How often each model was loaded in this process (a copy; tests compare snapshots)."""
    with _lock:
        return Counter(_loads)


def settle_heap() -> None:
    """Collect what start-up left behind, then freeze the rest out of the collector's sight.

    A server's start-up objects (tokenizer vocabularies, BM25 postings, model graphs, the
    protobuf and gRPC modules) live as long as the process, yet every full collection walks
    them all: one took 64-68 ms on this 2-core machine once the memory server held its
    fixture, and Python runs one now and then in the middle of a recall or a turn (they were
    the recall benchmark's slowest queries). Frozen, they are never walked again, and a full
    collection of what a running server allocates takes well under a millisecond. Called
    once per process, after every model is warm and before `ready` (server/cli.py).
    """
    gc.collect()
    gc.freeze()
