//! Decoder kernel at training size: B = 64 patches of 48 x 48 pixels, n = 2,
//! H = 128 (forward; forward + backward), and for comparison one
//! `general_mat_mul` of (147456 x 128) x (128 x 128) alone.

#![allow(clippy::unwrap_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::Array2;
use ndarray::linalg::general_mat_mul;
use phyvae_model::decoder::{
    DEFAULT_CONTENT_LATENTS, DEFAULT_HIDDEN, DEFAULT_TRANSLATION_PRIOR, DecoderGrads,
    DecoderParams, DecoderWorkspace,
};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;

const BATCH: usize = 64;
const WINDOW: usize = 48;

fn bench_decoder(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let n = DEFAULT_CONTENT_LATENTS;
    let h = DEFAULT_HIDDEN;
    let params = DecoderParams::init(n, h, &mut rng).unwrap();
    let z = Array2::from_shape_simple_fn((BATCH, n), || rng.random_range(-2.0f32..2.0));
    let s = Array2::from_shape_simple_fn((BATCH, 2), || rng.random_range(-2.0f32..2.0));
    let dl =
        Array2::from_shape_simple_fn((BATCH, WINDOW * WINDOW), || rng.random_range(-1.0f32..1.0));
    let mut ws = DecoderWorkspace::new(BATCH, WINDOW, n, h, DEFAULT_TRANSLATION_PRIOR).unwrap();
    let mut grads = DecoderGrads::zeros_like(&params);

    let mut group = c.benchmark_group("decoder_b64_w48_h128");
    group.sample_size(10);
    group.bench_function("forward", |b| {
        b.iter(|| {
            let out = ws.forward(&params, z.view(), s.view()).unwrap();
            black_box(out[[0, 0]]);
        });
    });
    group.bench_function("forward_backward", |b| {
        b.iter(|| {
            ws.forward(&params, z.view(), s.view()).unwrap();
            ws.backward(&params, dl.view(), &mut grads).unwrap();
            black_box(grads.b3);
        });
    });
    let rows = BATCH * WINDOW * WINDOW;
    let a = Array2::from_shape_simple_fn((rows, h), || rng.random_range(-1.0f32..1.0));
    let mut out = Array2::<f32>::zeros((rows, h));
    group.bench_function("gemm_147456x128x128", |b| {
        b.iter(|| {
            general_mat_mul(1.0, &a, &params.w1.t(), 0.0, &mut out);
            black_box(out[[0, 0]]);
        });
    });
    group.finish();
}

criterion_group!(benches, bench_decoder);
criterion_main!(benches);
