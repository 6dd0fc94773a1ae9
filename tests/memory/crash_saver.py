"""Child process for the crash test: grows an index and saves it in a loop until killed.

Usage: python -m tests.memory.crash_saver DIR START  — prints "ready" once the first save is done.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from server.memory.vector_index import VectorIndex
from tests.memory.vectors import DIM, truth_source, vectors


def main() -> None:
    directory, start = Path(sys.argv[1]), int(sys.argv[2])
    index = VectorIndex(directory, DIM, "test-model", "f32", truth_source(list(range(1, start + 1))))
    index.ensure_loaded()
    index.save(force=True)
    print("ready", flush=True)
    key = start
    while True:
        batch = np.arange(key + 1, key + 201, dtype=np.int64)
        index.add(batch, vectors(batch))
        key += 200
        index.save()


if __name__ == "__main__":
    main()
