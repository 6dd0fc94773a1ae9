//! Compact relation graph: CSR adjacency built once from edge triples.
//!
//! Semantics (mirrored by `server.native.reference.graph`):
//! - node ids are `0..num_nodes` (`num_nodes <= u32::MAX`);
//! - undirected graphs store both arcs of an edge; self-loops are ignored;
//! - weights must be finite and >= 0, are stored as f32, parallel edges keep the
//!   largest weight and zero-weight arcs are dropped;
//! - each node's arcs are sorted by (weight desc, neighbour asc), so a fan-out
//!   cap of k is simply "the first k arcs".

use std::collections::HashMap;
use std::sync::{Arc as Shared, Mutex};

use crate::spread::Workspace;
use crate::Error;

/// One stored arc: 8 bytes, so a node's adjacency usually fits one cache line.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct Arc {
    pub node: u32,
    pub weight: f32,
}

/// CSR adjacency of nodes `0..offsets.len() - 1`.
struct Csr {
    offsets: Vec<usize>,
    arcs: Vec<Arc>,
}

impl Csr {
    #[inline]
    fn slice(&self, u: usize) -> &[Arc] {
        if u + 1 < self.offsets.len() {
            &self.arcs[self.offsets[u]..self.offsets[u + 1]]
        } else {
            &[]
        }
    }
}

/// Adjacency lists that replace the base CSR's for a few nodes: what makes
/// `with_updates` cost the size of the change instead of the size of the graph.
#[derive(Clone, Default)]
struct Overlay {
    /// One bit per node (set: the node's arcs are in `lists`); empty when `lists` is.
    flagged: Vec<u64>,
    lists: HashMap<u32, Shared<[Arc]>>,
    arcs: usize,
}

/// Immutable graph (a shared base CSR plus a small overlay of patched nodes) and
/// a pool of scratch workspaces for `spread` (no allocation per call once warm;
/// safe to call from many threads at once; shared by patched versions of the same size).
pub struct Graph {
    pub(crate) num_nodes: usize,
    pub(crate) directed: bool,
    base: Shared<Csr>,
    overlay: Overlay,
    num_arcs: usize,
    pub(crate) pool: Shared<Mutex<Vec<Workspace>>>,
}

/// An arc before it is placed: source, target, weight, position in its batch.
#[derive(Clone, Copy)]
struct Raw {
    u: u32,
    v: u32,
    w: f32,
    pos: usize,
}

pub const MAX_NODES: i64 = u32::MAX as i64;

fn check_num_nodes(num_nodes: i64) -> Result<usize, Error> {
    if !(0..=MAX_NODES).contains(&num_nodes) {
        return Err(Error::invalid(format!(
            "num_nodes must be in [0, {}], got {}",
            MAX_NODES, num_nodes
        )));
    }
    Ok(num_nodes as usize)
}

/// Validate a batch of edges and turn it into arcs (mirrored unless directed).
fn raw_arcs(
    src: &[i64],
    dst: &[i64],
    weight: &[f64],
    num_nodes: usize,
    directed: bool,
) -> Result<Vec<Raw>, Error> {
    if src.len() != dst.len() || src.len() != weight.len() {
        return Err(Error::invalid(format!(
            "src, dst and weight differ in length: {}, {}, {}",
            src.len(),
            dst.len(),
            weight.len()
        )));
    }
    let n = num_nodes as i64;
    for (name, ids) in [("src", src), ("dst", dst)] {
        if ids.iter().any(|&x| x < 0 || x >= n) {
            return Err(Error::invalid(format!(
                "{} holds a node id outside [0, {})",
                name, num_nodes
            )));
        }
    }
    if weight.iter().any(|w| !(w.is_finite() && *w >= 0.0)) {
        return Err(Error::invalid("weights must be finite and >= 0".into()));
    }
    if weight.iter().any(|&w| !(w as f32).is_finite()) {
        return Err(Error::invalid("a weight overflows float32".into()));
    }
    let mut out = Vec::with_capacity(if directed { src.len() } else { 2 * src.len() });
    for (pos, ((&a, &b), &w)) in src.iter().zip(dst).zip(weight).enumerate() {
        if a == b {
            continue;
        }
        let (u, v, w) = (a as u32, b as u32, w as f32);
        out.push(Raw { u, v, w, pos });
        if !directed {
            out.push(Raw { u: v, v: u, w, pos });
        }
    }
    Ok(out)
}

/// Bucket arcs by source (counting sort, stable): offsets plus arcs grouped per source.
fn bucket(raw: &[Raw], num_nodes: usize) -> (Vec<usize>, Vec<Raw>) {
    let mut offsets = vec![0usize; num_nodes + 1];
    for r in raw {
        offsets[r.u as usize + 1] += 1;
    }
    for i in 0..num_nodes {
        offsets[i + 1] += offsets[i];
    }
    let mut fill = offsets.clone();
    let mut out = vec![
        Raw {
            u: 0,
            v: 0,
            w: 0.0,
            pos: 0
        };
        raw.len()
    ];
    for r in raw {
        let slot = &mut fill[r.u as usize];
        out[*slot] = *r;
        *slot += 1;
    }
    (offsets, out)
}

#[inline]
fn spread_order(a: &Arc, b: &Arc) -> std::cmp::Ordering {
    b.weight.total_cmp(&a.weight).then(a.node.cmp(&b.node))
}

impl Graph {
    fn assemble(num_nodes: usize, directed: bool, offsets: Vec<usize>, arcs: Vec<Arc>) -> Graph {
        Graph {
            num_nodes,
            directed,
            num_arcs: arcs.len(),
            base: Shared::new(Csr { offsets, arcs }),
            overlay: Overlay::default(),
            pool: Shared::new(Mutex::new(Vec::new())),
        }
    }

    /// Arcs of node `u < num_nodes`, in spreading order.
    #[inline]
    pub(crate) fn arcs_of(&self, u: usize) -> &[Arc] {
        if !self.overlay.lists.is_empty() && (self.overlay.flagged[u >> 6] >> (u & 63)) & 1 == 1 {
            return &self.overlay.lists[&(u as u32)];
        }
        self.base.slice(u)
    }

    /// Build from parallel arrays of edges; see the module docs for the rules.
    pub fn from_edges(
        src: &[i64],
        dst: &[i64],
        weight: &[f64],
        num_nodes: i64,
        directed: bool,
    ) -> Result<Graph, Error> {
        let n = check_num_nodes(num_nodes)?;
        let raw = raw_arcs(src, dst, weight, n, directed)?;
        let (offsets, grouped) = bucket(&raw, n);
        drop(raw);
        let mut new_offsets = Vec::with_capacity(n + 1);
        new_offsets.push(0usize);
        let mut arcs: Vec<Arc> = Vec::with_capacity(grouped.len());
        let mut scratch: Vec<Arc> = Vec::new();
        for u in 0..n {
            scratch.clear();
            scratch.extend(grouped[offsets[u]..offsets[u + 1]].iter().map(|r| Arc {
                node: r.v,
                weight: r.w,
            }));
            // Parallel arcs: sort by (neighbour, weight desc) and keep the first of each run.
            scratch.sort_unstable_by(|a, b| a.node.cmp(&b.node).then(b.weight.total_cmp(&a.weight)));
            scratch.dedup_by_key(|a| a.node);
            scratch.retain(|a| a.weight > 0.0);
            scratch.sort_unstable_by(spread_order);
            arcs.extend_from_slice(&scratch);
            new_offsets.push(arcs.len());
        }
        arcs.shrink_to_fit();
        Ok(Graph::assemble(n, directed, new_offsets, arcs))
    }

    /// A new graph in which every listed edge has exactly the given weight (0 removes
    /// it; the last entry for an edge in the batch wins); `num_nodes` may only grow.
    ///
    /// Costs O(k log k + touched adjacency) for k updates: the base CSR is shared
    /// and the patched nodes' lists go to an overlay, which is folded into a new
    /// base (O(arcs)) once it covers more than ~1/64 of the nodes or ~1/16 of the
    /// arcs. A batch of more than ~1/64 of the arcs is merged in one O(arcs) pass.
    pub fn with_updates(
        &self,
        src: &[i64],
        dst: &[i64],
        weight: &[f64],
        num_nodes: i64,
    ) -> Result<Graph, Error> {
        let n = check_num_nodes(num_nodes)?;
        if n < self.num_nodes {
            return Err(Error::invalid(format!(
                "num_nodes may only grow: {} < {}",
                n, self.num_nodes
            )));
        }
        let mut raw = raw_arcs(src, dst, weight, n, self.directed)?;
        if raw.len() > self.base.arcs.len() / 64 + 1024 {
            return Ok(self.merged(raw, n)); // a big batch: one O(arcs) merge beats the overlay
        }
        // By source, then neighbour, latest batch position first.
        raw.sort_unstable_by(|a, b| a.u.cmp(&b.u).then(a.v.cmp(&b.v)).then(b.pos.cmp(&a.pos)));
        let mut overlay = self.overlay.clone();
        let words = (n + 63) / 64;
        if (!raw.is_empty() || !overlay.lists.is_empty()) && overlay.flagged.len() < words {
            overlay.flagged.resize(words, 0);
        }
        let mut num_arcs = self.num_arcs;
        let mut latest: Vec<Raw> = Vec::new();
        let mut list: Vec<Arc> = Vec::new();
        let mut i = 0;
        while i < raw.len() {
            let u = raw[i].u;
            latest.clear();
            while i < raw.len() && raw[i].u == u {
                if latest.last().map_or(true, |l| l.v != raw[i].v) {
                    latest.push(raw[i]);
                }
                i += 1;
            }
            let old: &[Arc] = if (u as usize) < self.num_nodes {
                self.arcs_of(u as usize)
            } else {
                &[]
            };
            list.clear();
            list.extend(
                old.iter()
                    .filter(|a| latest.binary_search_by_key(&a.node, |r| r.v).is_err()),
            );
            list.extend(latest.iter().filter(|r| r.w > 0.0).map(|r| Arc {
                node: r.v,
                weight: r.w,
            }));
            list.sort_unstable_by(spread_order);
            num_arcs = num_arcs + list.len() - old.len();
            let previous = overlay.lists.insert(u, Shared::from(list.as_slice()));
            overlay.arcs = overlay.arcs + list.len() - previous.map_or(0, |p| p.len());
            overlay.flagged[(u as usize) >> 6] |= 1 << (u & 63);
        }
        let pool = if n == self.num_nodes {
            Shared::clone(&self.pool)
        } else {
            Shared::new(Mutex::new(Vec::new()))
        };
        let mut graph = Graph {
            num_nodes: n,
            directed: self.directed,
            base: Shared::clone(&self.base),
            overlay,
            num_arcs,
            pool,
        };
        // Keep the overlay small (each patch clones its index): fold it in past ~1/64 of the graph.
        if graph.overlay.arcs > graph.base.arcs.len() / 16 + 64 || graph.overlay.lists.len() > n / 64 + 64 {
            graph.compact();
        }
        Ok(graph)
    }

    /// A fresh CSR of this graph with `raw` applied (set semantics, last entry wins).
    fn merged(&self, raw: Vec<Raw>, n: usize) -> Graph {
        let (uoffsets, mut updates) = bucket(&raw, n);
        drop(raw);
        let mut offsets = Vec::with_capacity(n + 1);
        offsets.push(0usize);
        let mut arcs: Vec<Arc> = Vec::with_capacity(self.num_arcs + updates.len());
        let mut scratch: Vec<Arc> = Vec::new();
        let mut latest: Vec<Raw> = Vec::new();
        for u in 0..n {
            let old: &[Arc] = if u < self.num_nodes { self.arcs_of(u) } else { &[] };
            let upd = &mut updates[uoffsets[u]..uoffsets[u + 1]];
            if upd.is_empty() {
                arcs.extend_from_slice(old);
                offsets.push(arcs.len());
                continue;
            }
            // By neighbour, latest batch position first; keep the first of each run.
            upd.sort_unstable_by(|a, b| a.v.cmp(&b.v).then(b.pos.cmp(&a.pos)));
            latest.clear();
            for r in upd.iter() {
                if latest.last().map_or(true, |l| l.v != r.v) {
                    latest.push(*r);
                }
            }
            scratch.clear();
            scratch.extend(
                old.iter()
                    .filter(|a| latest.binary_search_by_key(&a.node, |r| r.v).is_err()),
            );
            scratch.extend(latest.iter().filter(|r| r.w > 0.0).map(|r| Arc {
                node: r.v,
                weight: r.w,
            }));
            scratch.sort_unstable_by(spread_order);
            arcs.extend_from_slice(&scratch);
            offsets.push(arcs.len());
        }
        arcs.shrink_to_fit();
        let mut graph = Graph::assemble(n, self.directed, offsets, arcs);
        if n == self.num_nodes {
            graph.pool = Shared::clone(&self.pool);
        }
        graph
    }

    /// Fold the overlay into a fresh base CSR.
    fn compact(&mut self) {
        let mut offsets = Vec::with_capacity(self.num_nodes + 1);
        offsets.push(0usize);
        let mut arcs: Vec<Arc> = Vec::with_capacity(self.num_arcs);
        for u in 0..self.num_nodes {
            arcs.extend_from_slice(self.arcs_of(u));
            offsets.push(arcs.len());
        }
        self.base = Shared::new(Csr { offsets, arcs });
        self.overlay = Overlay::default();
    }

    /// How many nodes' arcs live in the overlay (0 right after a build or a compaction).
    pub fn overlay_nodes(&self) -> usize {
        self.overlay.lists.len()
    }

    pub fn num_nodes(&self) -> usize {
        self.num_nodes
    }

    pub fn num_arcs(&self) -> usize {
        self.num_arcs
    }

    pub fn directed(&self) -> bool {
        self.directed
    }

    /// Arcs of `node` in spreading order (weight desc, neighbour asc).
    pub fn neighbors(&self, node: i64) -> Result<&[Arc], Error> {
        if node < 0 || node >= self.num_nodes as i64 {
            return Err(Error::invalid(format!(
                "node {} outside [0, {})",
                node, self.num_nodes
            )));
        }
        Ok(self.arcs_of(node as usize))
    }

    /// Write every arc as (src, dst, weight) into slices of length `num_arcs`.
    pub fn arcs_into(&self, src: &mut [i64], dst: &mut [i64], weight: &mut [f64]) -> Result<(), Error> {
        let m = self.num_arcs;
        if src.len() != m || dst.len() != m || weight.len() != m {
            return Err(Error::invalid(format!(
                "arcs_into needs three buffers of length {}",
                m
            )));
        }
        let mut i = 0;
        for u in 0..self.num_nodes {
            for arc in self.arcs_of(u) {
                src[i] = u as i64;
                dst[i] = arc.node as i64;
                weight[i] = arc.weight as f64;
                i += 1;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arcs_of(g: &Graph, u: i64) -> Vec<(u32, f32)> {
        g.neighbors(u)
            .unwrap()
            .iter()
            .map(|a| (a.node, a.weight))
            .collect()
    }

    #[test]
    fn undirected_build_mirrors_merges_and_sorts() {
        let g = Graph::from_edges(
            &[0, 1, 0, 2, 3],
            &[1, 0, 2, 2, 0],
            &[0.5, 0.75, 0.75, 9.0, 0.0],
            4,
            false,
        )
        .unwrap();
        // (0,1) and (1,0) merge to the max 0.75; the self-loop and the zero edge vanish.
        assert_eq!(arcs_of(&g, 0), vec![(1, 0.75), (2, 0.75)]);
        assert_eq!(arcs_of(&g, 1), vec![(0, 0.75)]);
        assert_eq!(arcs_of(&g, 2), vec![(0, 0.75)]);
        assert!(arcs_of(&g, 3).is_empty());
        assert_eq!(g.num_arcs(), 4);
    }

    #[test]
    fn directed_build_keeps_direction() {
        let g = Graph::from_edges(&[0, 0], &[1, 2], &[0.25, 0.5], 3, true).unwrap();
        assert_eq!(arcs_of(&g, 0), vec![(2, 0.5), (1, 0.25)]);
        assert!(arcs_of(&g, 1).is_empty());
    }

    #[test]
    fn rejects_bad_edges() {
        assert!(Graph::from_edges(&[0], &[5], &[1.0], 3, false).is_err());
        assert!(Graph::from_edges(&[-1], &[1], &[1.0], 3, false).is_err());
        assert!(Graph::from_edges(&[0], &[1], &[-0.5], 3, false).is_err());
        assert!(Graph::from_edges(&[0], &[1], &[f64::NAN], 3, false).is_err());
        assert!(Graph::from_edges(&[0], &[1], &[1e300], 3, false).is_err());
        assert!(Graph::from_edges(&[0], &[1, 2], &[1.0], 3, false).is_err());
        assert!(Graph::from_edges(&[], &[], &[], -1, false).is_err());
        assert!(Graph::from_edges(&[], &[], &[], 0, false).is_ok());
    }

    #[test]
    fn updates_set_remove_and_grow() {
        let g = Graph::from_edges(&[0, 1], &[1, 2], &[0.5, 0.5], 3, false).unwrap();
        let h = g
            .with_updates(&[0, 2, 3, 3], &[1, 1, 4, 4], &[0.9, 0.0, 0.1, 0.2], 5)
            .unwrap();
        assert_eq!(h.num_nodes(), 5);
        assert_eq!(arcs_of(&h, 1), vec![(0, 0.9)]);
        assert!(arcs_of(&h, 2).is_empty());
        assert_eq!(arcs_of(&h, 3), vec![(4, 0.2)]);
        assert_eq!(arcs_of(&h, 4), vec![(3, 0.2)]);
        assert!(g.with_updates(&[], &[], &[], 2).is_err());
        // The original is untouched.
        assert_eq!(arcs_of(&g, 1), vec![(0, 0.5), (2, 0.5)]);
    }

    fn all_arcs(g: &Graph) -> Vec<(i64, i64, f64)> {
        let m = g.num_arcs();
        let (mut s, mut d, mut w) = (vec![0; m], vec![0; m], vec![0.0; m]);
        g.arcs_into(&mut s, &mut d, &mut w).unwrap();
        s.into_iter().zip(d).zip(w).map(|((a, b), c)| (a, b, c)).collect()
    }

    #[test]
    fn chained_patches_equal_a_rebuild_with_and_without_compaction() {
        // A model of the edge set, patched alongside the graph.
        let mut model: std::collections::BTreeMap<(i64, i64), f64> = Default::default();
        let mut g = Graph::from_edges(&[], &[], &[], 10, false).unwrap();
        let mut state = 12345u64;
        let mut rand = |k: u64| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) % k
        };
        let mut n = 10i64;
        let mut compacted = false;
        for round in 0..60 {
            if round % 10 == 9 {
                n += 7; // grow while an overlay exists
            }
            let k = 1 + rand(6) as usize;
            let (mut s, mut d, mut w) = (vec![], vec![], vec![]);
            for _ in 0..k {
                let (a, b) = (rand(n as u64) as i64, rand(n as u64) as i64);
                let weight = [0.0, 0.25, 0.5, 1.0][rand(4) as usize];
                s.push(a);
                d.push(b);
                w.push(weight);
                if a != b {
                    for key in [(a, b), (b, a)] {
                        if weight > 0.0 {
                            model.insert(key, weight);
                        } else {
                            model.remove(&key);
                        }
                    }
                }
            }
            let before = g.overlay_nodes();
            g = g.with_updates(&s, &d, &w, n).unwrap();
            compacted |= before > 0 && g.overlay_nodes() == 0;
            let (ms, md, mw): (Vec<i64>, Vec<i64>, Vec<f64>) = {
                let mut a = (vec![], vec![], vec![]);
                for (&(x, y), &z) in &model {
                    a.0.push(x);
                    a.1.push(y);
                    a.2.push(z);
                }
                a
            };
            let rebuilt = Graph::from_edges(&ms, &md, &mw, n, true).unwrap();
            assert_eq!(all_arcs(&g), all_arcs(&rebuilt), "round {}", round);
            assert_eq!(g.num_arcs(), model.len());
        }
        assert!(compacted, "the overlay never folded into the base");
    }

    #[test]
    fn big_batches_merge_like_small_ones() {
        let mut state = 99u64;
        let mut rand = |k: u64| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) % k
        };
        let base: Vec<(i64, i64, f64)> = (0..300)
            .map(|_| (rand(100) as i64, rand(100) as i64, 0.5))
            .collect();
        let (s, d, w): (Vec<i64>, Vec<i64>, Vec<f64>) = (
            base.iter().map(|e| e.0).collect(),
            base.iter().map(|e| e.1).collect(),
            base.iter().map(|e| e.2).collect(),
        );
        let g = Graph::from_edges(&s, &d, &w, 100, false).unwrap();
        let weights = [0.0, 0.25, 1.0];
        let upd: Vec<(i64, i64, f64)> = (0..700)
            .map(|_| (rand(120) as i64, rand(120) as i64, weights[rand(3) as usize]))
            .collect();
        let (us, ud, uw): (Vec<i64>, Vec<i64>, Vec<f64>) = (
            upd.iter().map(|e| e.0).collect(),
            upd.iter().map(|e| e.1).collect(),
            upd.iter().map(|e| e.2).collect(),
        );
        let merged = g.with_updates(&us, &ud, &uw, 120).unwrap(); // > 1024 arcs: one merge
        assert_eq!(merged.overlay_nodes(), 0);
        let mut stepwise = g;
        for c in 0..upd.len() / 5 {
            let r = c * 5..c * 5 + 5;
            stepwise = stepwise
                .with_updates(&us[r.clone()], &ud[r.clone()], &uw[r], 120)
                .unwrap();
        }
        assert_eq!(all_arcs(&merged), all_arcs(&stepwise));
    }

    #[test]
    fn arcs_round_trip() {
        let g = Graph::from_edges(&[0, 1], &[1, 2], &[0.5, 0.25], 3, false).unwrap();
        let m = g.num_arcs();
        let (mut s, mut d, mut w) = (vec![0; m], vec![0; m], vec![0.0; m]);
        g.arcs_into(&mut s, &mut d, &mut w).unwrap();
        assert_eq!(s, vec![0, 1, 1, 2]);
        assert_eq!(d, vec![1, 0, 2, 1]);
        assert_eq!(w, vec![0.5, 0.5, 0.25, 0.25]);
    }
}
