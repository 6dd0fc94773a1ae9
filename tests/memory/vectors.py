"""Deterministic test vectors and a fake "SQL truth" for the vector index tests."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from server.memory.vector_index import VectorSource

DIM = 32


def vector(key: int) -> np.ndarray:
    v = np.random.default_rng(key).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def vectors(keys: np.ndarray) -> np.ndarray:
    return np.stack([vector(int(k)) for k in keys]) if len(keys) else np.zeros((0, DIM), np.float32)


def truth_source(keys: list[int]) -> VectorSource:
    """What SQL would answer if exactly `keys` were the active rows."""
    ids = np.asarray(sorted(keys), dtype=np.int64)

    def chunks(wanted: np.ndarray | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        sel = ids if wanted is None else np.intersect1d(ids, wanted)
        for i in range(0, len(sel), 1000):
            part = sel[i : i + 1000]
            yield part, vectors(part)

    return VectorSource(active_ids=lambda: ids, vectors=chunks, all_vectors=lambda: chunks(None))
