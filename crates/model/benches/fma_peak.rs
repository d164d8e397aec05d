//! The machine's f32 arithmetic ceiling: fused multiply-adds per second on
//! one core and on all cores, with enough independent chains (12 x 16 lanes)
//! to hide the FMA latency, compiled for AVX-512 or AVX2+FMA and chosen at run
//! time as the decoder's elementwise loops are. A step's FLOP count (module
//! docs of `phyvae_model::decoder`) divided by this rate is the shortest step
//! this CPU can run in f32.
//!
//! `cargo bench -p phyvae-model --bench fma_peak`

use std::hint::black_box;
use std::time::Instant;

use multiversion::multiversion;

/// Independent accumulator rows, and lanes per row.
const CHAINS: usize = 12;
/// Lanes per accumulator row (one AVX-512 register of f32).
const LANES: usize = 16;
/// Outer rounds in one timed call ([`INNER`] multiply-adds per lane each).
const ITERS: usize = 20_000_000;
/// Timed calls per setting (the best is kept).
const ROUNDS: usize = 3;

/// Multiply-adds per lane between two points where the accumulators must be
/// in memory (see [`fma_chains`]).
const INNER: usize = 4;

/// Runs `iters * INNER` rounds of `v = v * b + c` on every lane of every
/// chain and returns the sum (so nothing is optimised away). The
/// `black_box` every `INNER` rounds keeps the compiler from interchanging
/// the loops (which it otherwise does, turning the chains into gathers).
#[multiversion(targets("x86_64+avx512f+avx512vl+fma", "x86_64+avx2+fma"))]
fn fma_chains(iters: usize, b: f32, c: f32) -> f32 {
    let mut acc = [0.0_f32; CHAINS * LANES];
    for (i, v) in acc.iter_mut().enumerate() {
        *v = i as f32 * 1e-3;
    }
    for _ in 0..iters {
        for _ in 0..INNER {
            for v in &mut acc {
                *v = v.mul_add(b, c);
            }
        }
        black_box(&mut acc);
    }
    acc.iter().sum()
}

/// Best GFLOP/s over [`ROUNDS`] with `threads` threads running at once.
fn rate(threads: usize) -> f64 {
    let flops = (2 * ITERS * INNER * CHAINS * LANES * threads) as f64;
    let mut best = 0.0_f64;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| black_box(fma_chains(ITERS, black_box(0.999_999), black_box(1e-7))));
            }
        });
        best = best.max(flops / t.elapsed().as_secs_f64() / 1e9);
    }
    best
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!("f32 FMA peak, {CHAINS} x {LANES} independent chains, best of {ROUNDS}:");
    println!("  1 thread:  {:7.1} GFLOP/s", rate(1));
    println!("  {cores} threads: {:7.1} GFLOP/s", rate(cores));
}
