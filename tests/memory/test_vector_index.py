"""The HNSW index: lazy load, atomic save, reconcile with SQL, rebuild when broken, concurrency."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np

from server.memory.vector_index import META, VectorIndex
from tests.memory.vectors import DIM, truth_source, vector, vectors


def make(directory: Path, keys: list[int], model: str = "m", dim: int = DIM) -> VectorIndex:
    return VectorIndex(directory, dim, model, "f32", truth_source(keys))


def test_lazy_load_builds_from_sql_then_saves_and_reloads(tmp_path: Path) -> None:
    keys = list(range(1, 301))
    index = make(tmp_path, keys)
    assert not index.loaded  # nothing read until used
    ids, sims = index.search(vector(7), 3)
    assert index.loaded and index.rebuilt and ids[0] == 7 and sims[0] > 0.99
    assert index.save() and (tmp_path / META).exists()
    assert not index.save()  # unchanged: nothing written

    again = make(tmp_path, keys)
    assert again.search(vector(123), 1)[0][0] == 123
    assert not again.rebuilt and len(again) == 300
    assert len(list(tmp_path.glob("vectors-*.usearch"))) == 1  # older generations are deleted


def test_reconcile_adds_missing_and_drops_stale_rows(tmp_path: Path) -> None:
    index = make(tmp_path, list(range(1, 101)))
    index.ensure_loaded()
    index.save()
    # SQL moved on without the index: 1..10 were deleted, 101..120 added.
    later = make(tmp_path, list(range(11, 121)))
    later.ensure_loaded()
    assert not later.rebuilt and len(later) == 110
    assert later.search(vector(115), 1)[0][0] == 115
    assert not later.contains(5)


def test_corrupt_truncated_or_foreign_files_are_rebuilt_from_sql(tmp_path: Path) -> None:
    keys = list(range(1, 51))
    index = make(tmp_path, keys)
    index.ensure_loaded()
    index.save()
    meta = json.loads((tmp_path / META).read_text())
    data = tmp_path / meta["file"]

    data.write_bytes(data.read_bytes()[:100])  # truncated
    broken = make(tmp_path, keys)
    assert broken.search(vector(9), 1)[0][0] == 9 and broken.rebuilt
    broken.save()

    (tmp_path / META).write_text("{not json")  # garbage metadata
    fixed = make(tmp_path, keys)
    assert fixed.search(vector(3), 1)[0][0] == 3 and fixed.rebuilt
    fixed.save()

    other_model = make(tmp_path, keys, model="another")  # index saved for another model
    other_model.ensure_loaded()
    assert other_model.rebuilt

    meta = json.loads((tmp_path / META).read_text())
    (tmp_path / meta["file"]).write_bytes(b"\0" * meta["size"])  # right size, garbage inside
    zeroed = make(tmp_path, keys)
    assert zeroed.search(vector(33), 1)[0][0] == 33


def test_readers_run_while_one_writer_adds_and_saves(tmp_path: Path) -> None:
    index = make(tmp_path, list(range(1, 201)))
    index.ensure_loaded()
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                ids, _ = index.search(vector(50), 5)
                assert 50 in ids.tolist()
                index.similarities(vector(50), [50, 60, 999_999])
        except BaseException as exc:
            errors.append(exc)

    def writer() -> None:
        try:
            for start in range(1000, 3000, 100):
                batch = np.arange(start, start + 100, dtype=np.int64)
                index.add(batch, vectors(batch))
                index.remove([int(start)])
                index.save()
        except BaseException as exc:
            errors.append(exc)

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for t in readers:
        t.start()
    w = threading.Thread(target=writer)
    w.start()
    w.join()
    stop.set()
    for t in readers:
        t.join()
    assert not errors
    assert len(index) == 200 + 2000 - 20
    reloaded = VectorIndex(tmp_path, DIM, "m", "f32", None)
    assert len(reloaded.search(vector(1050), 1)[0]) == 1 and len(reloaded) == 2180


def test_add_replaces_an_existing_key(tmp_path: Path) -> None:
    index = make(tmp_path, [1, 2])
    index.add(np.asarray([1]), vector(500)[None, :])
    assert len(index) == 2
    assert index.similarities(vector(500), [1])[1] > 0.99
