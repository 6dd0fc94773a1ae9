//! Quick in-Rust timing of `Graph::spread` on the random workload
//! (200k nodes, 1M edges, 20 seeds): `cargo run --release --example spread_bench`.
//! The reported benchmark is benchmarks/spread.py (from Python, conversions included).

use std::time::Instant;

use peromesh_core::{Graph, SpreadParams};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn main() {
    let (n, m) = (200_000i64, 1_000_000usize);
    let mut rng = Rng(42);
    let src: Vec<i64> = (0..m).map(|_| rng.below(n as u64) as i64).collect();
    let dst: Vec<i64> = (0..m).map(|_| rng.below(n as u64) as i64).collect();
    let weight: Vec<f64> = (0..m).map(|_| rng.unit()).collect();
    let t = Instant::now();
    let graph = Graph::from_edges(&src, &dst, &weight, n, false).unwrap();
    println!(
        "build {:.1} ms, {} arcs",
        t.elapsed().as_secs_f64() * 1e3,
        graph.num_arcs()
    );
    let seeds: Vec<(i64, f64)> = (0..20).map(|_| (rng.below(n as u64) as i64, 1.0)).collect();
    for steps in [1, 2, 3, 11] {
        let params = SpreadParams {
            steps,
            ..SpreadParams::default()
        };
        graph.spread(&seeds, &params).unwrap();
        let mut samples: Vec<f64> = (0..200)
            .map(|_| {
                let t = Instant::now();
                graph.spread(&seeds, &params).unwrap();
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        samples.sort_by(|a, b| a.total_cmp(b));
        println!(
            "steps {:2}: median {:.3} ms  min {:.3} ms  p99 {:.3} ms",
            steps,
            samples[samples.len() / 2],
            samples[0],
            samples[samples.len() * 99 / 100]
        );
    }
}
