//! The machine's f32 arithmetic ceiling: fused multiply-adds per second on
//! one core and on all cores, with enough independent chains (12 vector
//! registers) to hide the FMA latency, for 256-bit (AVX2+FMA) and 512-bit
//! (AVX-512) vectors. A step's FLOP count (module
//! docs of `phyvae_model::decoder`) divided by this rate is the shortest step
//! this CPU can run in f32.
//!
//! `cargo bench -p phyvae-model --bench fma_peak`

use std::hint::black_box;
use std::time::Instant;

use multiversion::multiversion;

/// Independent accumulator registers per thread (enough to hide an FMA
/// latency of 4 cycles on two FMA pipes, and few enough to stay in registers).
const CHAINS: usize = 12;
/// Outer rounds in one timed call ([`INNER`] multiply-adds per lane each).
const ITERS: usize = 1_250_000;
/// Timed calls per setting (the best is kept).
const ROUNDS: usize = 3;
/// Multiply-adds per lane between two points where the accumulators must be
/// in memory (see [`chains`]). Each such point costs a store and a reload of
/// every accumulator; 64 rounds make that negligible (4 rounds, an earlier
/// setting, let the reloads bound the loop and reported about a third of the
/// AVX-512 rate).
const INNER: usize = 64;

/// Runs `iters * INNER` rounds of `v = v * b + c` on `N = CHAINS x lanes`
/// accumulators (`CHAINS` vector registers) and returns the sum (so nothing is
/// optimised away). The `black_box` every `INNER` rounds keeps the compiler
/// from interchanging the loops (which it otherwise does, turning the chains
/// into gathers).
#[inline(always)]
fn chains<const N: usize>(iters: usize, b: f32, c: f32) -> f32 {
    let mut acc = [0.0_f32; N];
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

/// 256-bit vectors (8 lanes): the AVX2+FMA rate (what a GEMM kernel without
/// AVX-512 can reach).
#[multiversion(targets("x86_64+avx2+fma"))]
fn chains_256(iters: usize, b: f32, c: f32) -> f32 {
    chains::<{ CHAINS * 8 }>(iters, b, c)
}

/// 512-bit vectors (16 lanes): the AVX-512 rate.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx2+fma"))]
fn chains_512(iters: usize, b: f32, c: f32) -> f32 {
    chains::<{ CHAINS * 16 }>(iters, b, c)
}

/// Best GFLOP/s over [`ROUNDS`] with `threads` threads running `f` at once.
fn rate(threads: usize, lanes: usize, f: fn(usize, f32, f32) -> f32) -> f64 {
    let flops = (2 * ITERS * INNER * CHAINS * lanes * threads) as f64;
    let mut best = 0.0_f64;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| black_box(f(ITERS, black_box(0.999_999), black_box(1e-7))));
            }
        });
        best = best.max(flops / t.elapsed().as_secs_f64() / 1e9);
    }
    best
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!("f32 FMA peak, {CHAINS} independent vector chains, best of {ROUNDS}:");
    let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
    let avx512 =
        avx2 && is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vl");
    for (name, lanes, ok, f) in [
        (
            "AVX2+FMA (8 lanes)",
            8,
            avx2,
            chains_256 as fn(usize, f32, f32) -> f32,
        ),
        ("AVX-512 (16 lanes)", 16, avx512, chains_512),
    ] {
        if !ok {
            println!("  {name}: not available on this CPU");
            continue;
        }
        println!("  {name}, 1 thread:  {:7.1} GFLOP/s", rate(1, lanes, f));
        println!(
            "  {name}, {cores} threads: {:7.1} GFLOP/s",
            rate(cores, lanes, f)
        );
    }
}
