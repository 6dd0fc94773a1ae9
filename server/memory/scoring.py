"""What rerank needs of every candidate (importance, time, active), kept in memory.

Recall scores dozens of candidates but returns a few; reading their rows from
SQL just to rank them was the slowest stage. This cache holds three arrays
indexed by memory id, loaded from SQL at start and updated by the engine on
every change (add, delete, restore, recall reinforcement, secretary runs).
Rows are still fetched from SQL for the winners, and a winner that turns out
inactive there is dropped, so a stale entry can cost a slot, never a wrong result.
Reads take no lock: a grow replaces whole arrays, and readers keep the old ones.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import numpy as np


class ScoringCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()  # writers only
        self.importance = np.zeros(1024, dtype=np.float32)
        self.occurred = np.zeros(1024, dtype=np.float64)  # epoch seconds
        self.active = np.zeros(1024, dtype=bool)

    def _grow(self, top: int) -> None:
        size = len(self.active)
        if top < size:
            return
        new = max(top + 1, 2 * size)
        imp = np.zeros(new, np.float32)
        occ = np.zeros(new, np.float64)
        act = np.zeros(new, bool)
        imp[:size], occ[:size], act[:size] = self.importance, self.occurred, self.active
        self.importance, self.occurred, self.active = imp, occ, act

    def load(self, rows: Iterable[tuple[int, float, float, bool]]) -> None:
        with self._lock:
            for mid, importance, occurred, active in rows:
                self._grow(mid)
                self.importance[mid] = importance
                self.occurred[mid] = occurred
                self.active[mid] = active

    def set(self, mid: int, importance: float, occurred: float) -> None:
        self.load([(mid, importance, occurred, True)])

    def deactivate(self, ids: Iterable[int]) -> None:
        with self._lock:
            for mid in ids:
                if 0 <= mid < len(self.active):
                    self.active[mid] = False

    def reinforce(self, ids: Iterable[int], amount: float) -> None:
        """importance += amount·(1 − importance), as the SQL update does."""
        with self._lock:
            for mid in ids:
                if 0 <= mid < len(self.active):
                    self.importance[mid] += amount * (1.0 - self.importance[mid])

    def lookup(self, ids: list[int]) -> dict[int, tuple[float, float]]:
        """(importance, occurred) of the active ones among `ids`."""
        imp, occ, act = self.importance, self.occurred, self.active
        out: dict[int, tuple[float, float]] = {}
        size = len(act)
        for mid in ids:
            if 0 <= mid < size and act[mid]:
                out[mid] = (float(imp[mid]), float(occ[mid]))
        return out
