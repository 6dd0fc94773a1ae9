//! Compact relation graph: CSR adjacency built once from edge triples.
//!
//! Semantics (mirrored by `peromesh.server.native.reference.graph`):
//! - node ids are `0..num_nodes` (`num_nodes <= u32::MAX`);
//! - undirected graphs store both arcs of an edge; self-loops are ignored;
//! - weights must be finite and >= 0, are stored as f32, parallel edges keep the
//!   largest weight and zero-weight arcs are dropped;
//! - each node's arcs are sorted by (weight desc, neighbour asc), so a fan-out
//!   cap of k is simply "the first k arcs".

use std::sync::Mutex;

use crate::spread::Workspace;
use crate::Error;

/// One stored arc: 8 bytes, so a node's adjacency usually fits one cache line.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct Arc {
    pub node: u32,
    pub weight: f32,
}

/// Immutable graph plus a pool of scratch workspaces for `spread` (no allocation
/// per call once warm; safe to call from many threads at once).
pub struct Graph {
    pub(crate) num_nodes: usize,
    pub(crate) directed: bool,
    pub(crate) offsets: Vec<usize>,
    pub(crate) arcs: Vec<Arc>,
    pub(crate) pool: Mutex<Vec<Workspace>>,
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
            offsets,
            arcs,
            pool: Mutex::new(Vec::new()),
        }
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
        let raw = raw_arcs(src, dst, weight, n, self.directed)?;
        let (uoffsets, mut updates) = bucket(&raw, n);
        drop(raw);
        // Per source: by neighbour, latest batch position first; keep the first of each run.
        for u in 0..n {
            let slice = &mut updates[uoffsets[u]..uoffsets[u + 1]];
            slice.sort_unstable_by(|a, b| a.v.cmp(&b.v).then(b.pos.cmp(&a.pos)));
        }
        let mut offsets = Vec::with_capacity(n + 1);
        offsets.push(0usize);
        let mut arcs: Vec<Arc> = Vec::with_capacity(self.arcs.len() + updates.len());
        let mut scratch: Vec<Arc> = Vec::new();
        let mut latest: Vec<Raw> = Vec::new();
        for u in 0..n {
            let old: &[Arc] = if u < self.num_nodes {
                &self.arcs[self.offsets[u]..self.offsets[u + 1]]
            } else {
                &[]
            };
            let upd = &updates[uoffsets[u]..uoffsets[u + 1]];
            if upd.is_empty() {
                arcs.extend_from_slice(old);
                offsets.push(arcs.len());
                continue;
            }
            latest.clear();
            for r in upd {
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
        Ok(Graph::assemble(n, self.directed, offsets, arcs))
    }

    pub fn num_nodes(&self) -> usize {
        self.num_nodes
    }

    pub fn num_arcs(&self) -> usize {
        self.arcs.len()
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
        let u = node as usize;
        Ok(&self.arcs[self.offsets[u]..self.offsets[u + 1]])
    }

    /// Write every arc as (src, dst, weight) into slices of length `num_arcs`.
    pub fn arcs_into(&self, src: &mut [i64], dst: &mut [i64], weight: &mut [f64]) -> Result<(), Error> {
        let m = self.arcs.len();
        if src.len() != m || dst.len() != m || weight.len() != m {
            return Err(Error::invalid(format!(
                "arcs_into needs three buffers of length {}",
                m
            )));
        }
        for u in 0..self.num_nodes {
            for i in self.offsets[u]..self.offsets[u + 1] {
                src[i] = u as i64;
                dst[i] = self.arcs[i].node as i64;
                weight[i] = self.arcs[i].weight as f64;
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
