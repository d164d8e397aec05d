//! Decoder at training size: B = 64 patches of 48 x 48 pixels, n = 2, H = 128.
//! - The kernel alone (forward; forward + backward) and, for comparison, one
//!   product (147456 x 128) x (128 x 128) with the `gemm` crate: done as the
//!   kernel does it (one rayon task per patch of 2304 rows, single-threaded
//!   GEMMs on blocks of `ROW_BLOCK` rows) and as one multithreaded GEMM.
//! - Through candle: forward + backward + reading every gradient, for the plain
//!   candle decoder (`forward_reference`, candle's autograd) and the fused op
//!   (`forward_fused`, the kernel's explicit backward).

#![allow(clippy::unwrap_used)]
// The `gemm` crate's entry point takes raw pointers; see `gemm_rows` below.
#![allow(unsafe_code)]

use candle_core::{Device, Tensor, Var};
use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::Array2;
use phyvae_model::decoder::{
    DEFAULT_CONTENT_LATENTS, DEFAULT_HIDDEN, DEFAULT_TRANSLATION_PRIOR, DecoderGrads,
    DecoderParams, DecoderWorkspace, FusedDecoder, ROW_BLOCK, SpatialDecoder, coord_grid,
};
use phyvae_model::params::ParamStore;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::hint::black_box;

const BATCH: usize = 64;
const WINDOW: usize = 48;

/// `out (rows x h) = a (rows x h) . w^T` for `w` an `h x h` row-major
/// matrix, with `gemm::gemm` on the given parallelism.
fn gemm_rows(a: &[f32], w: &[f32], out: &mut [f32], h: usize, par: gemm::Parallelism) {
    let rows = a.len() / h;
    assert!(a.len() == rows * h && out.len() == rows * h && w.len() == h * h);
    // SAFETY: `a` and `out` hold `rows x h` and `w` holds `h x h` values (checked
    // above); `out` is borrowed mutably, so it aliases neither input.
    unsafe {
        gemm::gemm(
            rows,
            h,
            h,
            out.as_mut_ptr(),
            1,
            h as isize,
            false,
            a.as_ptr(),
            1,
            h as isize,
            w.as_ptr(),
            h as isize,
            1,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// Coordinates `(B*N) x 2`: the grid shifted by `k s_b`, `s_b` uniform in [-2, 2)^2.
fn shifted_coords(rng: &mut ChaCha8Rng) -> Array2<f32> {
    let grid = coord_grid(WINDOW).unwrap();
    let npix = WINDOW * WINDOW;
    let mut coords = Array2::zeros((BATCH * npix, 2));
    for b in 0..BATCH {
        let sx = DEFAULT_TRANSLATION_PRIOR * rng.random_range(-2.0f32..2.0);
        let sy = DEFAULT_TRANSLATION_PRIOR * rng.random_range(-2.0f32..2.0);
        for i in 0..npix {
            coords[[b * npix + i, 0]] = grid[[i, 0]] + sx;
            coords[[b * npix + i, 1]] = grid[[i, 1]] + sy;
        }
    }
    coords
}

fn bench_kernel(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let n = DEFAULT_CONTENT_LATENTS;
    let h = DEFAULT_HIDDEN;
    let params = DecoderParams::init(n, h, &mut rng).unwrap();
    let z = Array2::from_shape_simple_fn((BATCH, n), || rng.random_range(-2.0f32..2.0));
    let coords = shifted_coords(&mut rng);
    let dl =
        Array2::from_shape_simple_fn((BATCH, WINDOW * WINDOW), || rng.random_range(-1.0f32..1.0));
    let mut ws = DecoderWorkspace::new(BATCH, WINDOW, n, h).unwrap();
    let mut grads = DecoderGrads::zeros_like(&params);

    let mut group = c.benchmark_group("decoder_b64_w48_h128");
    group.sample_size(10);
    group.bench_function("forward", |b| {
        b.iter(|| {
            let out = ws.forward(&params, z.view(), coords.view()).unwrap();
            black_box(out[[0, 0]]);
        });
    });
    group.bench_function("forward_backward", |b| {
        b.iter(|| {
            ws.forward(&params, z.view(), coords.view()).unwrap();
            ws.backward(&params, dl.view(), &mut grads).unwrap();
            black_box(grads.b3);
        });
    });
    let rows = BATCH * WINDOW * WINDOW;
    let a = Array2::from_shape_simple_fn((rows, h), || rng.random_range(-1.0f32..1.0));
    let a = a.as_slice().unwrap();
    let w = params.w1.as_slice().unwrap();
    let mut out = vec![0.0f32; rows * h];
    let patch = WINDOW * WINDOW * h;
    group.bench_function("gemm_blocks_147456x128x128", |b| {
        b.iter(|| {
            out.par_chunks_mut(patch)
                .zip(a.par_chunks(patch))
                .for_each(|(o, x)| {
                    for (ob, xb) in o.chunks_mut(ROW_BLOCK * h).zip(x.chunks(ROW_BLOCK * h)) {
                        gemm_rows(xb, w, ob, h, gemm::Parallelism::None);
                    }
                });
            black_box(out[0]);
        });
    });
    let threads = rayon::current_num_threads();
    group.bench_function("gemm_whole_147456x128x128", |b| {
        b.iter(|| {
            gemm_rows(a, w, &mut out, h, gemm::Parallelism::Rayon(threads));
            black_box(out[0]);
        });
    });
    group.finish();
}

fn bench_candle(c: &mut Criterion) {
    let dev = Device::Cpu;
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let n = DEFAULT_CONTENT_LATENTS;
    let h = DEFAULT_HIDDEN;
    let npix = WINDOW * WINDOW;
    let mut store = ParamStore::new(&dev);
    let dec = SpatialDecoder::init(&mut store, "dec", n, h, &mut rng).unwrap();
    let z: Vec<f32> = (0..BATCH * n)
        .map(|_| rng.random_range(-2.0f32..2.0))
        .collect();
    let z = Var::from_tensor(&Tensor::from_vec(z, (BATCH, n), &dev).unwrap()).unwrap();
    let coords = shifted_coords(&mut rng).into_raw_vec_and_offset().0;
    let coords =
        Var::from_tensor(&Tensor::from_vec(coords, (BATCH, npix, 2), &dev).unwrap()).unwrap();
    let r: Vec<f32> = (0..BATCH * npix)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    let r = Tensor::from_vec(r, (BATCH, npix), &dev).unwrap();
    let op = FusedDecoder::new(BATCH, WINDOW, n, h).unwrap();
    let mut wrt: Vec<Tensor> = dec.parameters().into_iter().cloned().collect();
    wrt.push(z.as_tensor().clone());
    wrt.push(coords.as_tensor().clone());

    // logits -> loss sum(logits * r) -> backward -> sum of every gradient
    let step = |logits: Tensor| -> f32 {
        let grads = (logits * &r)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        wrt.iter()
            .map(|t| {
                let g = grads.get(t).unwrap();
                g.sum_all().unwrap().to_scalar::<f32>().unwrap()
            })
            .sum()
    };

    let mut group = c.benchmark_group("candle_fwd_bwd_b64_w48_h128");
    group.sample_size(10);
    group.bench_function("reference", |b| {
        b.iter(|| {
            let logits = dec
                .forward_reference(z.as_tensor(), coords.as_tensor())
                .unwrap();
            black_box(step(logits));
        });
    });
    group.bench_function("fused", |b| {
        b.iter(|| {
            let logits = dec
                .forward_fused(&op, z.as_tensor(), coords.as_tensor())
                .unwrap();
            black_box(step(logits));
        });
    });
    group.finish();
}

criterion_group!(benches, bench_kernel, bench_candle);
criterion_main!(benches);
