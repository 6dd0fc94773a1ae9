"""The HNSW vector index (usearch), kept consistent with the SQL rows.

* Lazy: nothing is read from disk until the first search or add.
* Concurrency: searches share a read lock; add/remove take the write lock;
  a save holds the read lock (it only reads the graph), so recall keeps
  serving while the file is written.
* Atomic save: the index goes to `vectors-<gen>.usearch.tmp`, is fsynced and
  renamed to `vectors-<gen>.usearch`; only then `vectors.json` (generation,
  size, count, model, dimension) is replaced the same way, and older
  generations are deleted. A kill -9 at any point leaves `vectors.json`
  naming a complete file: the old one or the new one.
* Truth is SQL: on load the index is reconciled with the active rows (missing
  ids added from the embeddings stored in SQL, stale ids removed); if the file
  is missing, unreadable, or for another model or dimension, it is rebuilt
  from SQL.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from server.failpoints import failpoint
from server.memory.rwlock import RWLock
from server.memory.usearch_loader import Index

log = logging.getLogger(__name__)
META = "vectors.json"


@dataclass(frozen=True)
class VectorSource:
    """How to read the truth from SQL (blocking callables, run in the caller's thread)."""

    active_ids: Callable[[], np.ndarray]  # int64 ids of active rows with this model's embeddings
    vectors: Callable[[np.ndarray | None], Iterator[tuple[np.ndarray, np.ndarray]]]  # (ids, vecs) chunks
    all_vectors: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class VectorIndex:
    """A usearch HNSW index of unit vectors keyed by memory id (cosine metric)."""

    def __init__(self, directory: Path, ndim: int, model: str, dtype: str = "f16",
                 source: VectorSource | None = None) -> None:
        self.directory = directory
        self.ndim = ndim
        self.model = model
        self.dtype = dtype
        self.source = source
        self._lock = RWLock()
        self._save_lock = threading.Lock()  # one save at a time (they share the directory)
        self._index: Index | None = None
        self._dirty = False
        self.saved_at: float | None = None
        self.rebuilt = False  # the last load had to rebuild from SQL (for logs and tests)

    # -- loading -----------------------------------------------------------------------------------

    def _new(self) -> Index:
        return Index(ndim=self.ndim, metric="cos", dtype=self.dtype, connectivity=16,
                     expansion_add=64, expansion_search=64)

    def ensure_loaded(self) -> None:
        """Load (or rebuild) the index if that has not happened yet. Blocking."""
        if self._index is not None:
            return
        with self._lock.write():
            if self._index is None:
                self._index = self._load()

    @property
    def loaded(self) -> bool:
        return self._index is not None

    def _load(self) -> Index:
        index = self._read_file()
        self.rebuilt = index is None
        if index is None:
            index = self._rebuild()
            self._dirty = True
        elif self.source is not None:
            self._dirty = self._reconcile(index) or self._dirty
        return index

    def _read_file(self) -> Index | None:
        meta_path = self.directory / META
        try:
            meta = json.loads(meta_path.read_text())
            path = self.directory / str(meta["file"])
            if meta.get("model") != self.model or int(meta.get("ndim", -1)) != self.ndim \
                    or meta.get("dtype") != self.dtype:
                log.warning("memory index %s is for another model/dimension; rebuilding", path)
                return None
            if path.stat().st_size != int(meta["size"]):
                log.warning("memory index %s has the wrong size; rebuilding", path)
                return None
            index = self._new()
            index.load(str(path))
            if index.ndim != self.ndim or len(index) != int(meta["count"]):
                log.warning("memory index %s does not match its metadata; rebuilding", path)
                return None
            self.saved_at = float(meta.get("saved_at", 0.0)) or None
            return index
        except FileNotFoundError:
            log.info("no memory index in %s; building it from SQL", self.directory)
        except Exception:
            log.exception("memory index in %s is unreadable; rebuilding from SQL", self.directory)
        return None

    def _rebuild(self) -> Index:
        index = self._new()
        if self.source is None:
            return index
        started = time.perf_counter()
        for ids, vecs in self.source.all_vectors():
            if len(ids):
                index.add(ids, vecs)
        log.info("memory index rebuilt from SQL: %d vectors in %.1fs", len(index),
                 time.perf_counter() - started)
        return index

    def _reconcile(self, index: Index) -> bool:
        assert self.source is not None
        truth = np.asarray(self.source.active_ids(), dtype=np.int64)
        have = np.asarray(index.keys, dtype=np.int64) if len(index) else np.zeros(0, np.int64)
        stale = np.setdiff1d(have, truth, assume_unique=True)
        missing = np.setdiff1d(truth, have, assume_unique=True)
        if len(stale):
            index.remove(stale)
        for ids, vecs in self.source.vectors(missing) if len(missing) else ():
            index.add(ids, vecs)
        if len(stale) or len(missing):
            log.info("memory index reconciled with SQL: +%d -%d", len(missing), len(stale))
        return bool(len(stale) or len(missing))

    # -- reads -------------------------------------------------------------------------------------

    def search(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, cosine similarities) of the `k` nearest, best first."""
        self.ensure_loaded()
        with self._lock.read():
            assert self._index is not None
            if len(self._index) == 0 or k <= 0:
                return np.zeros(0, np.int64), np.zeros(0, np.float32)
            found = self._index.search(vector.astype(np.float32), k, threads=1)
            return (np.asarray(found.keys, dtype=np.int64),
                    1.0 - np.asarray(found.distances, dtype=np.float32))

    def similarities(self, vector: np.ndarray, ids: list[int]) -> dict[int, float]:
        """Cosine of `vector` with each stored id (ids not in the index are left out)."""
        if not ids:
            return {}
        self.ensure_loaded()
        with self._lock.read():
            assert self._index is not None
            keys = np.asarray(ids, dtype=np.int64)
            present = np.asarray([self._index.contains(int(k)) for k in keys], dtype=bool)
            keys = keys[present]
            if not len(keys):
                return {}
            vecs = np.asarray(self._index.get(keys), dtype=np.float32).reshape(len(keys), self.ndim)
        norms = np.linalg.norm(vecs, axis=1) * float(np.linalg.norm(vector)) + 1e-12
        sims = vecs @ vector.astype(np.float32) / norms
        return {int(k): float(s) for k, s in zip(keys, sims, strict=True)}

    def __len__(self) -> int:
        index = self._index
        return 0 if index is None else len(index)

    def contains(self, key: int) -> bool:
        self.ensure_loaded()
        with self._lock.read():
            assert self._index is not None
            return bool(self._index.contains(key))

    # -- writes ------------------------------------------------------------------------------------

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.ensure_loaded()
        with self._lock.write():
            assert self._index is not None
            ids = np.asarray(ids, dtype=np.int64)
            present = [int(k) for k in ids if self._index.contains(int(k))]
            if present:
                self._index.remove(np.asarray(present, dtype=np.int64))
            self._index.add(ids, np.asarray(vectors, dtype=np.float32).reshape(len(ids), self.ndim))
            self._dirty = True

    def remove(self, ids: list[int]) -> None:
        self.ensure_loaded()
        with self._lock.write():
            assert self._index is not None
            present = [k for k in ids if self._index.contains(k)]
            if present:
                self._index.remove(np.asarray(present, dtype=np.int64))
                self._dirty = True

    @property
    def dirty(self) -> bool:
        return self._dirty

    def save(self, force: bool = False) -> bool:
        """Write the index atomically if it changed (or `force`). Returns True if written."""
        if self._index is None or not (self._dirty or force):
            return False
        with self._save_lock:
            try:
                self._save()
            except BaseException:
                self._dirty = True
                raise
        return True

    def _save(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._lock.read():
            assert self._index is not None
            self._dirty = False  # changes from here on make it dirty again
            gen = time.time_ns()
            final = self.directory / f"vectors-{gen}.usearch"
            tmp = final.with_name(final.name + ".tmp")
            self._index.save(str(tmp))
            count = len(self._index)
        _fsync_file(tmp)
        failpoint("memory.save.before_replace")  # the new file written, not yet in place
        os.replace(tmp, final)
        _fsync_dir(self.directory)
        failpoint("memory.save.before_meta")  # the new file in place, vectors.json still names the old
        now = time.time()
        meta = {"file": final.name, "size": final.stat().st_size, "count": count, "model": self.model,
                "ndim": self.ndim, "dtype": self.dtype, "saved_at": now}
        meta_tmp = self.directory / (META + ".tmp")
        with open(meta_tmp, "w") as fh:
            json.dump(meta, fh)
            fh.flush()
            os.fsync(fh.fileno())
        failpoint("memory.save.before_meta_replace")  # the new vectors.json written, not yet in place
        os.replace(meta_tmp, self.directory / META)
        _fsync_dir(self.directory)
        failpoint("memory.save.before_cleanup")  # vectors.json names the new file, the old still there
        self.saved_at = now
        for old in self.directory.glob("vectors-*.usearch*"):
            if old.name != final.name:
                with contextlib.suppress(FileNotFoundError):
                    old.unlink()

    def reset(self) -> None:
        """Forget the in-memory index (the next use loads it again from disk)."""
        with self._lock.write():
            self._index = None
