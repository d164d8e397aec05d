//! The physics loss `Psi` at training size: a batch of B = 64 latent vectors
//! (d = 8) with 4 latents, C = 2 maps (columns 2 and 3), `f32` on the CPU.
//! Gradient mode: from `z_mean` (a candle `Var`) through [`batch_maps`] and
//! [`PsiGraph::psi`] to the gradient with respect to `z_mean`; faithful mode:
//! [`psi_faithful`] on the same values (no gradient).

#![allow(clippy::unwrap_used)]

use candle_core::{DType, Device, Tensor, Var};
use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::Array2;
use phyvae_model::physics::{PsiGraph, batch_maps, psi_faithful};
use phyvae_run::config::PhysicsKind;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;

const D: usize = 8;
const LATENTS: usize = 4;
const COLUMNS: [usize; 2] = [2, 3];

fn bench_psi(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let device = Device::Cpu;
    let z = Array2::from_shape_simple_fn((D * D, LATENTS), || rng.random_range(-2.0f32..2.0));
    let data: Vec<f32> = z.iter().copied().collect();
    let z_var =
        Var::from_tensor(&Tensor::from_vec(data, (D * D, LATENTS), &device).unwrap()).unwrap();

    let mut group = c.benchmark_group("psi_d8_c2");
    for (name, kind) in [
        ("sl1", PhysicsKind::Sl1),
        ("sl2", PhysicsKind::Sl2 { alpha: 1 }),
    ] {
        let graph = PsiGraph::new(kind, D, COLUMNS.len(), &device, DType::F32).unwrap();
        group.bench_function(format!("{name}_gradient_forward_backward"), |b| {
            b.iter(|| {
                let maps = batch_maps(z_var.as_tensor(), &COLUMNS, D).unwrap();
                let psi = graph.psi(&maps).unwrap();
                let grads = psi.backward().unwrap();
                black_box(grads.get(&z_var).is_some());
            });
        });
        group.bench_function(format!("{name}_faithful"), |b| {
            b.iter(|| black_box(psi_faithful(kind, z.view(), &COLUMNS).unwrap()));
        });
    }
    group.finish();
}

criterion_group!(benches, bench_psi);
criterion_main!(benches);
