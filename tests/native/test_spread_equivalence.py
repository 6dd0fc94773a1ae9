"""Property tests: the Rust kernel equals the NumPy reference exactly on random graphs, seeds and parameters."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.native import Graph, spread

# A few repeated values make ties (equal weights, equal energies) common: tie-breaking is where
# two implementations would drift apart.
WEIGHTS = st.one_of(st.sampled_from([0.0, 0.25, 0.5, 1.0, 0.3, 2.0]), st.floats(0.0, 4.0, width=32))
ENERGIES = st.one_of(st.sampled_from([0.0, 0.5, 1.0, 1.0, 2.0]), st.floats(0.0, 5.0))


@dataclass
class Case:
    num_nodes: int
    src: list[int]
    dst: list[int]
    weight: list[float]
    directed: bool


@st.composite
def graphs(draw: st.DrawFn, max_nodes: int = 40) -> Case:
    n = draw(st.integers(0, max_nodes))
    if n == 0:
        return Case(0, [], [], [], draw(st.booleans()))
    edges = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1), WEIGHTS), max_size=4 * n))
    return Case(n, [e[0] for e in edges], [e[1] for e in edges], [e[2] for e in edges], draw(st.booleans()))


def both(case: Case) -> tuple[Graph, Graph]:
    args = (case.src, case.dst, case.weight, case.num_nodes)
    return (
        Graph.from_edges(*args, directed=case.directed, backend="native"),
        Graph.from_edges(*args, directed=case.directed, backend="python"),
    )


def assert_same_graph(a: Graph, b: Graph) -> None:
    assert (a.num_nodes, a.num_arcs, a.directed) == (b.num_nodes, b.num_arcs, b.directed)
    for x, y in zip(a.arcs(), b.arcs(), strict=True):
        np.testing.assert_array_equal(x, y)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=graphs())
def test_build_matches(case: Case) -> None:
    native, reference = both(case)
    assert_same_graph(native, reference)
    for node in range(case.num_nodes):
        assert native.neighbors(node) == reference.neighbors(node)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=graphs(), data=st.data())
def test_updates_match(case: Case, data: st.DataObject) -> None:
    """Chains of patches (the native graph keeps them in an overlay, folded in when it grows)."""
    native, reference = both(case)
    n = case.num_nodes
    # Independent model of the patch: "set these edges", in batch order, 0 deletes.
    model = {(a, b): w for a, b, w in zip(*(x.tolist() for x in native.arcs()), strict=True)}
    for _ in range(data.draw(st.integers(1, 4))):
        n += data.draw(st.integers(0, 3))
        if n == 0:
            return
        updates = data.draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1), WEIGHTS), max_size=12))
        u = ([e[0] for e in updates], [e[1] for e in updates], [e[2] for e in updates])
        native = native.with_updates(*u, num_nodes=n)
        reference = reference.with_updates(*u, num_nodes=n)
        assert_same_graph(native, reference)
        for a, b, w in updates:
            if a == b:
                continue
            w32 = float(np.float32(w))
            for arc in [(a, b)] if case.directed else [(a, b), (b, a)]:
                if w32 > 0:
                    model[arc] = w32
                else:
                    model.pop(arc, None)
        got = native.arcs()
        assert dict(zip(zip(got[0].tolist(), got[1].tolist(), strict=True), got[2].tolist(), strict=True)) == model
        seeds = [(node, 1.0) for node in range(0, n, 3)]
        kwargs = {"steps": 3, "threshold": 0.0, "max_active_per_step": 5, "top_k": 20}
        assert spread(native, seeds, **kwargs) == spread(reference, seeds, **kwargs)  # type: ignore[arg-type]


def test_big_patch_matches_reference() -> None:
    """A batch large enough that the native graph merges it into a fresh CSR in one pass."""
    rng = np.random.default_rng(5)
    n = 400
    src, dst, weight = rng.integers(0, n, 1500), rng.integers(0, n, 1500), rng.random(1500)
    native = Graph.from_edges(src, dst, weight, n, backend="native")
    reference = Graph.from_edges(src, dst, weight, n, backend="python")
    patch = (rng.integers(0, n + 50, 3000), rng.integers(0, n + 50, 3000), rng.choice([0.0, 0.3, 0.9], 3000))
    assert_same_graph(native.with_updates(*patch, num_nodes=n + 50), reference.with_updates(*patch, num_nodes=n + 50))


def test_long_patch_chain_matches_reference() -> None:
    """Hundreds of small patches on a mid-size graph: overlay growth, compaction, node growth."""
    rng = np.random.default_rng(11)
    n = 500
    src, dst, weight = rng.integers(0, n, 2000), rng.integers(0, n, 2000), rng.random(2000)
    native = Graph.from_edges(src, dst, weight, n, backend="native")
    reference = Graph.from_edges(src, dst, weight, n, backend="python")
    seeds = [(int(s), 1.0) for s in rng.integers(0, n, 10)]
    for round_ in range(300):
        if round_ % 50 == 49:
            n += 40
        k = int(rng.integers(1, 8))
        patch = (rng.integers(0, n, k), rng.integers(0, n, k), rng.choice([0.0, 0.3, 0.9], k))
        native = native.with_updates(*patch, num_nodes=n)
        reference = reference.with_updates(*patch, num_nodes=n)
        if round_ % 25 == 0:
            assert_same_graph(native, reference)
            assert spread(native, seeds, steps=3, top_k=100) == spread(reference, seeds, steps=3, top_k=100)
    assert_same_graph(native, reference)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=graphs(), data=st.data())
def test_spread_matches(case: Case, data: st.DataObject) -> None:
    native, reference = both(case)
    seeds = data.draw(st.lists(st.tuples(st.integers(0, case.num_nodes + 2), ENERGIES), max_size=8))
    params = {
        "steps": data.draw(st.integers(0, 6)),
        "decay": data.draw(st.one_of(st.sampled_from([0.0, 0.5, 0.7, 1.0]), st.floats(0.0, 1.5))),
        "threshold": data.draw(st.one_of(st.sampled_from([0.0, 0.01, 0.1]), st.floats(0.0, 0.5))),
        "max_active_per_step": data.draw(st.one_of(st.none(), st.integers(1, 8))),
        "max_fanout_per_node": data.draw(st.one_of(st.none(), st.integers(1, 5))),
        "energy_cap": data.draw(st.one_of(st.none(), st.sampled_from([0.5, 1.0]), st.floats(0.05, 3.0))),
        "top_k": data.draw(st.integers(0, 50)),
        "include_seeds": data.draw(st.booleans()),
    }
    expected = spread(reference, seeds, **params)
    assert spread(native, seeds, **params) == expected  # exact: same float operations in the same order


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_spread_matches_on_larger_random_graphs(seed: int) -> None:
    """Thousands of nodes and caps that actually bind."""
    rng = np.random.default_rng(seed)
    n, m = 3000, 15000
    src, dst = rng.integers(0, n, m), rng.integers(0, n, m)
    weight = rng.random(m)
    native = Graph.from_edges(src, dst, weight, n, backend="native")
    reference = Graph.from_edges(src, dst, weight, n, backend="python")
    seeds = [(int(s), float(e)) for s, e in zip(rng.integers(0, n, 20), rng.random(20) + 0.5, strict=True)]
    for steps in (1, 3, 6):
        kwargs = {"steps": steps, "decay": 0.8, "threshold": 0.005, "max_active_per_step": 300, "top_k": 200}
        assert spread(native, seeds, **kwargs) == spread(reference, seeds, **kwargs)
        kwargs |= {"max_fanout_per_node": 3, "energy_cap": 0.9, "include_seeds": True}
        assert spread(native, seeds, **kwargs) == spread(reference, seeds, **kwargs)
