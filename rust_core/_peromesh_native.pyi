"""Type stub for the Rust extension built from rust_core/python (PyO3 0.17).

Raw interface: callers use the facades in `server.native`, which
convert inputs (C-contiguous int64 / float64 NumPy arrays) and document the
semantics. Every method that does real work releases the GIL.
"""

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__version__: str

class Graph:
    """Immutable CSR relation graph; arcs per node sorted by (weight desc, neighbour asc)."""

    @staticmethod
    def from_edges(
        src: npt.NDArray[np.int64],
        dst: npt.NDArray[np.int64],
        weight: npt.NDArray[np.float64],
        num_nodes: int,
        directed: bool,
    ) -> Graph: ...
    def with_updates(
        self,
        src: npt.NDArray[np.int64],
        dst: npt.NDArray[np.int64],
        weight: npt.NDArray[np.float64],
        num_nodes: int,
    ) -> Graph: ...
    @property
    def num_nodes(self) -> int: ...
    @property
    def num_arcs(self) -> int: ...
    @property
    def directed(self) -> bool: ...
    def arcs_into(
        self,
        src: npt.NDArray[np.int64],
        dst: npt.NDArray[np.int64],
        weight: npt.NDArray[np.float64],
    ) -> None:
        """Fill three writable arrays of length num_arcs with all arcs."""
    def neighbors_of(self, node: int) -> list[tuple[int, float]]: ...

def spread(
    graph: Graph,
    seeds: Sequence[tuple[int, float]],
    steps: int,
    decay: float,
    threshold: float,
    max_active_per_step: int | None,
    max_fanout_per_node: int | None,
    energy_cap: float | None,
    top_k: int,
    include_seeds: bool,
) -> list[tuple[int, float]]: ...

class TextCleaner:
    def __init__(self, sensitive_words: Sequence[str], mask: str, min_base64_len: int, keep_newlines: bool) -> None: ...
    def clean(self, text: str) -> str: ...
