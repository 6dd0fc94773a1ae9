//! Frontier-based spreading activation over a [`Graph`].
//!
//! The algorithm is specified in `server.native.graph` (Python module
//! docstring) and mirrored operation for operation by the NumPy reference, so the
//! f64 results are bit-identical:
//!
//! 1. seed energies of repeated ids are summed in input order, then capped;
//!    in-graph seeds with energy > 0 and >= threshold form the first frontier
//!    (top-A by (energy desc, id asc)); ids >= num_nodes are isolated nodes;
//! 2. per step, each frontier node u (in ascending id order) sends
//!    `(pulse_u * decay) * w` along its first `fanout` arcs; a node whose summed
//!    incoming energy is > 0 and >= threshold gets pulse `min(in, cap)` and
//!    activation `min(act + pulse, cap)`; the next frontier is top-A of those by pulse;
//! 3. result: nodes with activation > 0 (seeds only if `include_seeds`), sorted by
//!    (activation desc, id asc), first `top_k`.
//!
//! Performance: dense per-node state lives in a reusable [`Workspace`] whose
//! validity is tracked by epoch marks, so a call touches only the nodes it
//! reaches and allocates nothing once the graph's workspace pool is warm.

use std::cmp::Ordering;

use crate::graph::Graph;
use crate::Error;

/// Spreading parameters; `None` means "no limit".
#[derive(Clone, Debug)]
pub struct SpreadParams {
    pub steps: i64,
    pub decay: f64,
    pub threshold: f64,
    pub max_active_per_step: Option<i64>,
    pub max_fanout_per_node: Option<i64>,
    pub energy_cap: Option<f64>,
    pub top_k: i64,
    pub include_seeds: bool,
}

impl Default for SpreadParams {
    fn default() -> Self {
        SpreadParams {
            steps: 2,
            decay: 0.7,
            threshold: 0.01,
            max_active_per_step: Some(10_000),
            max_fanout_per_node: None,
            energy_cap: None,
            top_k: 50,
            include_seeds: false,
        }
    }
}

struct Checked {
    steps: usize,
    decay: f64,
    threshold: f64,
    limit: usize,
    fanout: usize,
    cap: f64,
    top_k: usize,
    include_seeds: bool,
}

impl SpreadParams {
    fn check(&self) -> Result<Checked, Error> {
        let bad = |m: String| Err(Error::invalid(m));
        if self.steps < 0 {
            return bad(format!("steps must be >= 0, got {}", self.steps));
        }
        if !(self.decay.is_finite() && self.decay >= 0.0) {
            return bad(format!("decay must be finite and >= 0, got {}", self.decay));
        }
        if !(self.threshold.is_finite() && self.threshold >= 0.0) {
            return bad(format!(
                "threshold must be finite and >= 0, got {}",
                self.threshold
            ));
        }
        if matches!(self.max_active_per_step, Some(a) if a < 1) {
            return bad(format!(
                "max_active_per_step must be >= 1 or None, got {:?}",
                self.max_active_per_step
            ));
        }
        if matches!(self.max_fanout_per_node, Some(f) if f < 1) {
            return bad(format!(
                "max_fanout_per_node must be >= 1 or None, got {:?}",
                self.max_fanout_per_node
            ));
        }
        if matches!(self.energy_cap, Some(c) if c.is_nan() || c <= 0.0) {
            return bad(format!(
                "energy_cap must be > 0 or None, got {:?}",
                self.energy_cap
            ));
        }
        if self.top_k < 0 {
            return bad(format!("top_k must be >= 0, got {}", self.top_k));
        }
        let clamp = |v: Option<i64>| v.map_or(usize::MAX, |x| usize::try_from(x).unwrap_or(usize::MAX));
        Ok(Checked {
            steps: usize::try_from(self.steps).unwrap_or(usize::MAX),
            decay: self.decay,
            threshold: self.threshold,
            limit: clamp(self.max_active_per_step),
            fanout: clamp(self.max_fanout_per_node),
            cap: self.energy_cap.unwrap_or(f64::INFINITY),
            top_k: usize::try_from(self.top_k).unwrap_or(usize::MAX),
            include_seeds: self.include_seeds,
        })
    }
}

/// Reusable scratch space sized to one graph. The dense arrays are all-zero
/// between calls: a call resets exactly the entries it touched (a zero means
/// "absent", which is safe because only energies > 0 are ever kept), so a call
/// costs what it reaches, not the graph size, and allocates nothing once warm.
pub struct Workspace {
    /// Energy received in the current step (1.6 MB per 200k nodes: stays in L2).
    inc: Vec<f64>,
    /// Activation accumulated in the current call.
    act: Vec<f64>,
    /// Nodes whose `inc` became non-zero this step (a node whose contributions were
    /// all exactly 0.0 may appear more than once; harmless, see the activation pass).
    touched: Vec<u32>,
    /// Nodes with `act` > 0 in this call.
    recorded: Vec<u32>,
    frontier: Vec<(u32, f64)>,
    next: Vec<(u32, f64)>,
    keys: Vec<u64>,
    ranked: Vec<(u64, f64)>,
    seeds: Vec<(u64, f64)>,
}

impl Workspace {
    fn new(num_nodes: usize) -> Workspace {
        Workspace {
            inc: vec![0.0; num_nodes],
            act: vec![0.0; num_nodes],
            touched: Vec::new(),
            recorded: Vec::new(),
            frontier: Vec::new(),
            next: Vec::new(),
            keys: Vec::new(),
            ranked: Vec::new(),
            seeds: Vec::new(),
        }
    }
}

/// Energy desc, then id asc. Energies here are never NaN and never negative, so
/// their IEEE bit patterns order like the values (cheaper than float compares).
#[inline]
fn by_energy<T: Ord + Copy>(a: &(T, f64), b: &(T, f64)) -> Ordering {
    b.1.to_bits().cmp(&a.1.to_bits()).then(a.0.cmp(&b.0))
}

/// Keep the first `limit` of `items` by `by_energy` (in no particular order).
fn keep_top<T: Ord + Copy>(items: &mut Vec<(T, f64)>, limit: usize) {
    if items.len() > limit {
        if limit == 0 {
            items.clear();
            return;
        }
        items.select_nth_unstable_by(limit - 1, by_energy);
        items.truncate(limit);
    }
}

/// Sort `items` by `by_energy` keeping only the first `limit`.
fn top<T: Ord + Copy>(items: &mut Vec<(T, f64)>, limit: usize) {
    keep_top(items, limit);
    items.sort_unstable_by(by_energy);
}

/// The next frontier: top `limit` by (energy desc, id asc), then in node id order
/// (which fixes the float summation order, and walks the CSR arrays forwards).
/// Selects on the energies' bit patterns alone (8-byte keys; energies are > 0
/// here, so bits order like values), then settles ties at the cut by id.
fn frontier_of(items: &mut Vec<(u32, f64)>, keys: &mut Vec<u64>, limit: usize) {
    if items.len() > limit {
        keys.clear();
        keys.extend(items.iter().map(|e| e.1.to_bits()));
        let cut_at = keys.len() - limit;
        let (_, &mut cut, _) = keys.select_nth_unstable(cut_at);
        // Keep everything above the cut, and of the ties at the cut the lowest ids.
        let above = keys[cut_at + 1..].iter().filter(|&&k| k > cut).count();
        items.retain(|e| e.1.to_bits() >= cut);
        items.sort_unstable_by_key(|e| e.0);
        if items.len() > limit {
            let mut ties_left = limit - above;
            items.retain(|e| {
                let bits = e.1.to_bits();
                let keep = bits > cut || ties_left > 0;
                ties_left -= (bits == cut && keep) as usize;
                keep
            });
        }
    } else {
        items.sort_unstable_by_key(|e| e.0);
    }
}

impl Graph {
    /// Spread activation from `seeds` (node id, energy); see the module docs.
    pub fn spread(&self, seeds: &[(i64, f64)], params: &SpreadParams) -> Result<Vec<(u64, f64)>, Error> {
        let p = params.check()?;
        for &(node, energy) in seeds {
            if node < 0 {
                return Err(Error::invalid(format!(
                    "seed node ids must be >= 0, got {}",
                    node
                )));
            }
            if !(energy.is_finite() && energy >= 0.0) {
                return Err(Error::invalid(format!(
                    "seed energies must be finite and >= 0, got {}",
                    energy
                )));
            }
        }
        let mut ws = self
            .pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_else(|| Workspace::new(self.num_nodes));
        let out = self.spread_in(&mut ws, seeds, &p);
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).push(ws);
        Ok(out)
    }

    fn spread_in(&self, ws: &mut Workspace, seeds: &[(i64, f64)], p: &Checked) -> Vec<(u64, f64)> {
        let n = self.num_nodes as u64;
        ws.recorded.clear();
        ws.frontier.clear();
        ws.ranked.clear();

        // 1. Seeds: stable sort by id so repeated ids sum in input order.
        ws.seeds.clear();
        ws.seeds.extend(seeds.iter().map(|&(node, e)| (node as u64, e)));
        ws.seeds.sort_by_key(|s| s.0);
        let mut i = 0;
        let mut merged = 0;
        while i < ws.seeds.len() {
            let node = ws.seeds[i].0;
            let mut total = 0.0f64;
            while i < ws.seeds.len() && ws.seeds[i].0 == node {
                total += ws.seeds[i].1;
                i += 1;
            }
            ws.seeds[merged] = (node, total.min(p.cap));
            merged += 1;
        }
        ws.seeds.truncate(merged);
        for &(node, energy) in &ws.seeds {
            if node >= n || energy <= 0.0 {
                continue; // outside the graph (isolated), or nothing to record
            }
            ws.act[node as usize] = energy;
            ws.recorded.push(node as u32);
            if energy >= p.threshold {
                ws.frontier.push((node as u32, energy));
            }
        }
        frontier_of(&mut ws.frontier, &mut ws.keys, p.limit);

        // 2. Steps.
        for step_index in 0..p.steps {
            if ws.frontier.is_empty() || p.decay == 0.0 {
                break;
            }
            let touched = self.scatter(ws, p);
            let last = step_index + 1 == p.steps;
            let Workspace {
                inc,
                act,
                touched: touched_buf,
                recorded,
                next,
                keys,
                ..
            } = &mut *ws;
            // Branch-free activation pass (whether a node passes the threshold or is
            // new is unpredictable): always write, advance the output cursors by flags.
            let mut kept = recorded.len();
            recorded.resize(kept + touched + 1, 0);
            next.clear();
            next.resize(touched + 1, (0, 0.0));
            let mut pushed = 0usize;
            for &v in &touched_buf[..touched] {
                let x = std::mem::replace(&mut inc[v as usize], 0.0);
                let live = (x > 0.0) & (x >= p.threshold);
                let pulse = x.min(p.cap);
                let slot = &mut act[v as usize];
                let before = *slot;
                // A new node starts from 0.0, as in the reference.
                *slot = if live { (before + pulse).min(p.cap) } else { before };
                recorded[kept] = v;
                kept += (live & (before == 0.0)) as usize;
                next[pushed] = (v, pulse);
                pushed += (live & !last) as usize;
            }
            recorded.truncate(kept);
            next.truncate(pushed);
            // After the last step `next` is empty: no selection work.
            frontier_of(next, keys, p.limit);
            std::mem::swap(&mut ws.frontier, &mut ws.next);
        }

        // 3. Ranking; then return `act` to all-zero.
        let is_seed = |node: u64, seeds: &[(u64, f64)]| seeds.binary_search_by_key(&node, |s| s.0).is_ok();
        for &v in &ws.recorded {
            let act = std::mem::replace(&mut ws.act[v as usize], 0.0);
            if p.include_seeds || !is_seed(v as u64, &ws.seeds) {
                ws.ranked.push((v as u64, act));
            }
        }
        if p.include_seeds {
            ws.ranked
                .extend(ws.seeds.iter().filter(|s| s.0 >= n && s.1 > 0.0).copied());
        }
        top(&mut ws.ranked, p.top_k);
        ws.ranked.clone()
    }

    /// Send each frontier node's pulse along its first `fanout` arcs into `ws.inc`;
    /// returns how many entries of `ws.touched` list the receiving nodes.
    /// Branch-free inner loop: whether a node is new this step is data-dependent
    /// and unpredictable, so it selects values instead of jumping.
    #[inline]
    fn scatter(&self, ws: &mut Workspace, p: &Checked) -> usize {
        let arcs_this_step: usize = ws
            .frontier
            .iter()
            .map(|&(u, _)| self.arcs_of(u as usize).len().min(p.fanout))
            .sum();
        if ws.touched.len() <= arcs_this_step {
            ws.touched.resize(arcs_this_step + 1, 0);
        }
        let inc = &mut ws.inc[..];
        let touched = &mut ws.touched[..];
        let mut count = 0usize;
        for &(u, pulse) in &ws.frontier {
            let d = pulse * p.decay;
            let arcs = self.arcs_of(u as usize);
            for arc in &arcs[..arcs.len().min(p.fanout)] {
                let slot = &mut inc[arc.node as usize];
                let fresh = *slot == 0.0;
                // 0.0 + c == c for c >= 0: a fresh node's sum starts exactly at c.
                *slot += d * arc.weight as f64;
                touched[count] = arc.node;
                count += fresh as usize;
            }
        }
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(steps: i64) -> SpreadParams {
        SpreadParams {
            steps,
            threshold: 0.0,
            max_active_per_step: None,
            ..SpreadParams::default()
        }
    }

    fn path() -> Graph {
        // 0 -1.0- 1 -0.5- 2 -1.0- 3
        Graph::from_edges(&[0, 1, 2], &[1, 2, 3], &[1.0, 0.5, 1.0], 4, false).unwrap()
    }

    #[test]
    fn energy_decays_along_a_path() {
        let out = path().spread(&[(0, 1.0)], &params(3)).unwrap();
        let d = 0.7f64;
        let e1 = (1.0 * d) * 1.0; // step 1: 0 -> 1
        let back0 = (e1 * d) * 1.0; // step 2: 1 -> 0 (seed, excluded from the result)
        let e2 = (e1 * d) * 0.5; // step 2: 1 -> 2
        let in1 = (back0 * d) * 1.0 + (e2 * d) * 0.5; // step 3: 0 -> 1 then 2 -> 1
        let e3 = (e2 * d) * 1.0; // step 3: 2 -> 3
        assert_eq!(out, vec![(1, e1 + in1), (2, e2), (3, e3)]);
    }

    #[test]
    fn seeds_included_only_on_request() {
        let g = path();
        let mut p = params(1);
        assert_eq!(g.spread(&[(0, 1.0)], &p).unwrap(), vec![(1, 0.7)]);
        p.include_seeds = true;
        assert_eq!(g.spread(&[(0, 1.0)], &p).unwrap(), vec![(0, 1.0), (1, 0.7)]);
        // A seed outside the graph is an isolated node.
        assert_eq!(g.spread(&[(99, 2.0)], &p).unwrap(), vec![(99, 2.0)]);
    }

    #[test]
    fn threshold_caps_and_fanout() {
        let star = Graph::from_edges(&[0, 0, 0], &[1, 2, 3], &[0.9, 0.5, 0.5], 4, false).unwrap();
        let mut p = params(1);
        p.max_fanout_per_node = Some(2);
        assert_eq!(star.spread(&[(0, 1.0)], &p).unwrap().len(), 2);
        let mut p = params(1);
        p.threshold = 0.5;
        assert_eq!(
            star.spread(&[(0, 1.0)], &p).unwrap(),
            vec![(1, 0.7 * 0.9f32 as f64)]
        );
        let mut p = params(1);
        p.energy_cap = Some(0.1);
        p.include_seeds = true;
        let out = star.spread(&[(0, 1.0)], &p).unwrap();
        assert!(out.iter().all(|&(_, e)| e <= 0.1));
        assert_eq!(out[0], (0, 0.1));
        let mut p = params(1);
        p.top_k = 1;
        assert_eq!(star.spread(&[(0, 1.0)], &p).unwrap().len(), 1);
    }

    #[test]
    fn per_step_cap_keeps_strongest_then_lowest_id() {
        let star = Graph::from_edges(&[0, 0, 0, 2], &[1, 2, 3, 4], &[0.5, 0.5, 0.5, 1.0], 5, false).unwrap();
        let mut p = params(2);
        p.max_active_per_step = Some(1);
        // Step 1: 1, 2, 3 tie; node 1 wins the only slot, so 4 (behind 2) is never reached.
        let out = star.spread(&[(0, 1.0)], &p).unwrap();
        assert!(out.iter().all(|&(node, _)| node != 4));
    }

    #[test]
    fn empty_graph_and_bad_params() {
        let g = Graph::from_edges(&[], &[], &[], 0, false).unwrap();
        assert!(g.spread(&[], &params(3)).unwrap().is_empty());
        assert!(g.spread(&[(0, 1.0)], &params(3)).unwrap().is_empty());
        assert!(g.spread(&[(-1, 1.0)], &params(3)).is_err());
        assert!(g.spread(&[(0, f64::NAN)], &params(3)).is_err());
        let mut p = params(1);
        p.decay = -1.0;
        assert!(g.spread(&[], &p).is_err());
        let mut p = params(1);
        p.max_active_per_step = Some(0);
        assert!(g.spread(&[], &p).is_err());
    }

    #[test]
    fn repeated_calls_reuse_the_workspace_and_agree() {
        let g = path();
        let first = g.spread(&[(0, 1.0), (3, 0.5)], &params(3)).unwrap();
        for _ in 0..5 {
            assert_eq!(g.spread(&[(0, 1.0), (3, 0.5)], &params(3)).unwrap(), first);
        }
        assert_eq!(g.pool.lock().unwrap().len(), 1);
    }
}
