"""Spreading-activation rules on hand-checked graphs, for both backends (spec: server/native/graph.py)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from server.native import Backend, Graph, spread

BACKENDS: list[Backend] = ["native", "python"]
ALL = {"threshold": 0.0, "max_active_per_step": None}


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    return request.param  # type: ignore[no-any-return]


def path(backend: Backend) -> Graph:
    """0 -1.0- 1 -0.5- 2 -1.0- 3"""
    return Graph.from_edges([0, 1, 2], [1, 2, 3], [1.0, 0.5, 1.0], 4, backend=backend)


def test_energy_flows_and_decays(backend: Backend) -> None:
    d = 0.7
    e1 = (1.0 * d) * 1.0
    back0 = (e1 * d) * 1.0
    e2 = (e1 * d) * 0.5
    in1 = (back0 * d) * 1.0 + (e2 * d) * 0.5
    e3 = (e2 * d) * 1.0
    assert spread(path(backend), [(0, 1.0)], steps=3, decay=d, **ALL) == [(1, e1 + in1), (2, e2), (3, e3)]  # type: ignore[arg-type]


def test_seeds_excluded_unless_asked(backend: Backend) -> None:
    g = path(backend)
    assert spread(g, [(0, 1.0)], steps=1, **ALL) == [(1, 0.7)]  # type: ignore[arg-type]
    assert spread(g, [(0, 1.0)], steps=1, include_seeds=True, **ALL) == [(0, 1.0), (1, 0.7)]  # type: ignore[arg-type]
    # Repeated seeds sum; steps=0 returns just the seeds (when asked for).
    assert spread(g, [(2, 0.25), (2, 0.5)], steps=0, include_seeds=True) == [(2, 0.75)]
    assert spread(g, [(2, 0.25)], steps=0) == []


def test_empty_graph_and_isolated_seeds(backend: Backend) -> None:
    empty = Graph.from_edges([], [], [], 0, backend=backend)
    assert empty.num_arcs == 0
    assert spread(empty, [], steps=3) == []
    assert spread(empty, [(5, 1.0)], steps=3) == []
    assert spread(empty, [(5, 1.0)], steps=3, include_seeds=True) == [(5, 1.0)]
    lonely = Graph.from_edges([0], [1], [1.0], 10, backend=backend)
    assert spread(lonely, [(7, 1.0), (12, 2.0)], steps=3, include_seeds=True) == [(12, 2.0), (7, 1.0)]


def test_threshold_discards_weak_energy(backend: Backend) -> None:
    star = Graph.from_edges([0, 0, 0], [1, 2, 3], [0.9, 0.1, 0.01], 4, backend=backend)
    got = spread(star, [(0, 1.0)], steps=1, threshold=0.05)
    assert [node for node, _ in got] == [1, 2]
    assert spread(star, [(0, 0.04)], steps=3, threshold=0.05) == []  # seed below threshold does not spread


def test_caps(backend: Backend) -> None:
    star = Graph.from_edges([0, 0, 0, 0], [4, 3, 2, 1], [0.5, 0.5, 0.9, 0.5], 5, backend=backend)
    # Fan-out keeps the highest weight, then the lowest neighbour id.
    assert [n for n, _ in spread(star, [(0, 1.0)], steps=1, max_fanout_per_node=2, **ALL)] == [2, 1]  # type: ignore[arg-type]
    # Per-step cap: only the strongest node keeps spreading.
    chain = Graph.from_edges([0, 0, 1, 2], [1, 2, 3, 4], [0.9, 0.8, 1.0, 1.0], 5, backend=backend)
    reached = {n for n, _ in spread(chain, [(0, 1.0)], steps=2, threshold=0.0, max_active_per_step=1)}
    assert reached == {1, 2, 3}
    # Energy cap bounds every activation, hubs included.
    hub = Graph.from_edges([1, 2, 3], [0, 0, 0], [1.0, 1.0, 1.0], 4, backend=backend)
    seeds = [(1, 1.0), (2, 1.0), (3, 1.0)]
    assert spread(hub, seeds, steps=1, energy_cap=1.5, **ALL) == [(0, 1.5)]  # type: ignore[arg-type]
    assert spread(hub, seeds, steps=1, **ALL) == [(0, 2.0999999999999996)]  # type: ignore[arg-type]
    assert len(spread(hub, seeds, steps=1, top_k=0, **ALL)) == 0  # type: ignore[arg-type]


def test_zero_decay_stops(backend: Backend) -> None:
    assert spread(path(backend), [(0, 1.0)], steps=5, decay=0.0, include_seeds=True) == [(0, 1.0)]


def test_build_rules(backend: Backend) -> None:
    g = Graph.from_edges([0, 1, 2, 0], [1, 0, 2, 3], [0.5, 0.75, 3.0, 0.0], 4, backend=backend)
    assert g.neighbors(0) == [(1, 0.75)]  # parallel edges keep the max; zero weight dropped
    assert g.neighbors(2) == []  # self-loop ignored
    assert g.num_arcs == 2
    directed = Graph.from_edges([0], [1], [1.0], 2, directed=True, backend=backend)
    assert directed.neighbors(1) == [] and directed.directed
    assert repr(g).startswith("Graph(4 nodes, 2 arcs, undirected")


def test_patch_equals_rebuild(backend: Backend) -> None:
    rng = np.random.default_rng(7)
    src, dst, w = rng.integers(0, 50, 300), rng.integers(0, 50, 300), rng.random(300)
    g = Graph.from_edges(src, dst, w, 50, backend=backend)
    patched = g.with_updates([3, 60, 4], [4, 61, 3], [0.0, 0.5, 0.25], num_nodes=70)
    assert patched.num_nodes == 70 and g.num_nodes == 50
    assert (3, 0.25) in patched.neighbors(4) and (4, 0.25) in patched.neighbors(3)
    assert patched.neighbors(60) == [(61, 0.5)]
    keep = ~(((src == 3) & (dst == 4)) | ((src == 4) & (dst == 3)))
    rebuilt = Graph.from_edges(
        np.r_[src[keep], 60, 4], np.r_[dst[keep], 61, 3], np.r_[w[keep], 0.5, 0.25], 70, backend=backend
    )
    for a, b in zip(patched.arcs(), rebuilt.arcs(), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="only grow"):
        g.with_updates([], [], [], num_nodes=10)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": -1}, "steps"),
        ({"decay": -0.1}, "decay"),
        ({"decay": float("nan")}, "decay"),
        ({"threshold": float("inf")}, "threshold"),
        ({"max_active_per_step": 0}, "max_active_per_step"),
        ({"max_fanout_per_node": 0}, "max_fanout_per_node"),
        ({"energy_cap": 0.0}, "energy_cap"),
        ({"top_k": -1}, "top_k"),
    ],
)
def test_bad_parameters(backend: Backend, kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        spread(path(backend), [(0, 1.0)], **kwargs)  # type: ignore[arg-type]


def test_bad_inputs(backend: Backend) -> None:
    g = path(backend)
    with pytest.raises(ValueError, match="seed"):
        spread(g, [(-1, 1.0)])
    with pytest.raises(ValueError, match="seed"):
        spread(g, [(0, float("nan"))])
    with pytest.raises(ValueError, match="outside"):
        Graph.from_edges([0], [4], [1.0], 4, backend=backend)
    with pytest.raises(ValueError, match="weights"):
        Graph.from_edges([0], [1], [-1.0], 4, backend=backend)
    with pytest.raises(ValueError, match="float32"):
        Graph.from_edges([0], [1], [1e300], 4, backend=backend)
    with pytest.raises(ValueError, match="length"):
        Graph.from_edges([0, 1], [1], [1.0], 4, backend=backend)
    with pytest.raises(ValueError, match="num_nodes"):
        Graph.from_edges([], [], [], 2**32, backend=backend)
    with pytest.raises(TypeError, match="integers"):
        Graph.from_edges([0.5], [1], [1.0], 4, backend=backend)
    with pytest.raises(ValueError, match="outside"):
        g.neighbors(4)


def test_concurrent_calls_agree() -> None:
    """Threads share one graph (the native workspace pool hands each call its own scratch space)."""
    rng = np.random.default_rng(3)
    n = 20_000
    g = Graph.from_edges(rng.integers(0, n, 100_000), rng.integers(0, n, 100_000), rng.random(100_000), n)
    seeds = [(int(s), 1.0) for s in rng.integers(0, n, 20)]
    expected = spread(g, seeds, steps=3, top_k=100)
    results: list[list[tuple[int, float]]] = []

    def work() -> None:
        for _ in range(20):
            results.append(spread(g, seeds, steps=3, top_k=100))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 80
    assert all(r == expected for r in results)
