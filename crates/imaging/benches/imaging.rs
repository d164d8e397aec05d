#![allow(clippy::expect_used, missing_docs)]
//! Criterion benchmarks of the image processing on latent-map-sized inputs.
//!
//! Inputs: a 483 x 483 latent-map-like field (the BiFeO3 patch grid of the
//! paper is 483 x 483) and random 8 x 8 / 10 x 10 batches of latent means. The
//! same inputs are written to `target/bench-input/` as NPY so that
//! `bench/compare_skimage.py` times scikit-image on exactly the same data.

use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::Array2;
use npyz::WriterBuilder;
use phyvae_imaging::chan_vese::{ChanVeseParams, chan_vese};
use phyvae_imaging::filters::{BilateralMode, BilateralParams, SigmaColor, denoise_bilateral};
use phyvae_imaging::pipeline::{DEFAULT_SIGMA_COLOR, VisualizeParams, segment_map};
use phyvae_imaging::threshold::{multiotsu, otsu};
use phyvae_imaging::{filters, physics};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use std::hint::black_box;
use std::path::PathBuf;

/// Side of the benchmark map (the paper's BiFeO3 grid).
const SIDE: usize = 483;

fn input_dir() -> PathBuf {
    let dir = std::env::var_os("PHYVAE_BENCH_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-input"),
        PathBuf::from,
    );
    std::fs::create_dir_all(&dir).expect("bench input folder");
    dir
}

fn save_f32(path: &PathBuf, a: &Array2<f32>) {
    let mut out = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&[a.nrows() as u64, a.ncols() as u64])
        .writer(std::io::BufWriter::new(
            std::fs::File::create(path).expect("create"),
        ))
        .begin_nd()
        .expect("npy header");
    out.extend(a.iter().copied()).expect("npy data");
    out.finish().expect("npy finish");
}

/// Two levels (0.25 / 0.75) split by a curved boundary, plus N(0, 0.1) noise.
fn latent_like_map(seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let noise = Normal::new(0.0f32, 0.1).expect("normal");
    Array2::from_shape_fn((SIDE, SIDE), |(r, c)| {
        let xb = SIDE as f32
            * (0.5 + 0.1 * (2.0 * std::f32::consts::PI * r as f32 / SIDE as f32 + 0.3).sin());
        let base = if (c as f32) > xb { 0.75 } else { 0.25 };
        base + noise.sample(&mut rng)
    })
}

fn z_mean(d: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = Normal::new(0.0f32, 1.0).expect("normal");
    Array2::from_shape_fn((d * d, 4), |_| n.sample(&mut rng))
}

fn benches(c: &mut Criterion) {
    let dir = input_dir();
    let map = latent_like_map(7);
    save_f32(&dir.join("map483.npy"), &map);
    let (lo, hi) = map
        .iter()
        .fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
    let norm = map.mapv(|v| (v - lo) / (hi - lo));

    let mut g = c.benchmark_group("map483");
    g.sample_size(10);
    for (name, mode) in [
        ("bilateral_skimage", BilateralMode::Skimage),
        ("bilateral_gaussian", BilateralMode::Gaussian),
    ] {
        let p = BilateralParams::new()
            .sigma_color(SigmaColor::Value(DEFAULT_SIGMA_COLOR))
            .sigma_spatial(5.0)
            .mode(mode)
            .build()
            .expect("params");
        g.bench_function(name, |b| {
            b.iter(|| denoise_bilateral(black_box(norm.view()), &p).expect("bilateral"))
        });
    }
    let p = BilateralParams::new()
        .sigma_color(SigmaColor::Value(DEFAULT_SIGMA_COLOR))
        .sigma_spatial(5.0)
        .build()
        .expect("params");
    let den = denoise_bilateral(norm.view(), &p).expect("bilateral");
    g.bench_function("scharr", |b| {
        b.iter(|| filters::scharr(black_box(den.view())).expect("scharr"))
    });
    g.bench_function("otsu", |b| {
        b.iter(|| otsu(black_box(den.view())).expect("otsu"))
    });
    g.bench_function("multiotsu3", |b| {
        b.iter(|| multiotsu(black_box(den.view()), 3).expect("multiotsu"))
    });
    g.bench_function("multiotsu4", |b| {
        b.iter(|| multiotsu(black_box(den.view()), 4).expect("multiotsu"))
    });
    let cv = ChanVeseParams::new().build().expect("params");
    g.bench_function("chan_vese", |b| {
        b.iter(|| chan_vese(black_box(den.view()), &cv).expect("chan_vese"))
    });
    let vp = VisualizeParams::new().build().expect("params");
    g.bench_function("pipeline", |b| {
        b.iter(|| segment_map(black_box(map.view()), &vp).expect("pipeline"))
    });
    g.finish();

    let mut g = c.benchmark_group("physics");
    for d in [8usize, 10] {
        let z = z_mean(d, d as u64);
        save_f32(&dir.join(format!("zmean{d}.npy")), &z);
        g.bench_function(format!("sl1_{d}x{d}"), |b| {
            b.iter(|| physics::sl1_batch(black_box(z.view()), &[2, 3]).expect("sl1"))
        });
        g.bench_function(format!("sl2_{d}x{d}"), |b| {
            b.iter(|| physics::sl2_batch(black_box(z.view()), &[2, 3], 1).expect("sl2"))
        });
    }
    g.finish();
}

criterion_group!(imaging, benches);
criterion_main!(imaging);
