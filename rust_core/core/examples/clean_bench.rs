//! Quick in-Rust timing of `TextCleaner::clean` on mixed Chinese/English text with
//! base64 blobs: `cargo run --release --example clean_bench`.

use std::time::Instant;

use peromesh_core::TextCleaner;

fn main() {
    let blob: String = (0..4000u32)
        .map(|i| {
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[(i * 7919 % 64) as usize]
                as char
        })
        .collect();
    let para = "今天我们讨论了记忆系统的设计，密码是 hunter2。 The quick brown fox jumps over the lazy dog.\n"
        .repeat(20) + &format!(" img data:image/png;base64,{} end {}\n", blob, blob);
    let text = para.repeat(200);
    let words: Vec<String> = ["密码", "hunter2", "fox"].iter().map(|s| s.to_string()).collect();
    let cleaner = TextCleaner::new(&words, "*", 64, true).unwrap();
    let mut best = f64::MAX;
    let mut out_len = 0;
    for _ in 0..10 {
        let t = Instant::now();
        out_len = cleaner.clean(&text).len();
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "{:.1} MB in, {} bytes out: best {:.2} ms = {:.0} MB/s",
        text.len() as f64 / 1e6,
        out_len,
        best * 1e3,
        text.len() as f64 / best / 1e6
    );
}
