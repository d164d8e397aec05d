//! Criterion benchmarks of the data crate: reading the bundled images,
//! generating synthetic images, and cutting patches.
#![allow(clippy::expect_used, missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::Array2;
use phyvae_data::io::read_image;
use phyvae_data::patches::{Levelling, PatchGrid, PatchSet, Scaling};
use phyvae_data::synth::{DomainsParams, TwoPhaseParams, domains, two_phase};
use std::hint::black_box;
use std::path::Path;

fn benches(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
    let mut g = c.benchmark_group("read");
    for (name, file) in [
        (
            "png_512",
            "au_grain_boundary_png/Grain_boundry_gold_512px.png",
        ),
        ("tiff_u16_915", "rgo_cafm_graphene_lattice/GO_cafm.tif"),
        (
            "spiepy_dat_512",
            "stm_spiepy_step_edge_atoms/image_with_step_edge_and_atoms.dat",
        ),
        ("npy_f32_915", "rgo_cafm_graphene_lattice/image.npy"),
    ] {
        let path = root.join(file);
        g.bench_function(name, |b| {
            b.iter(|| read_image(black_box(&path), None).expect("read"))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("synth");
    g.sample_size(10);
    let tp = TwoPhaseParams::default();
    g.bench_function("two_phase_512", |b| {
        b.iter(|| two_phase(black_box(&tp)).expect("synth"))
    });
    let dp = DomainsParams::default();
    g.bench_function("domains_512", |b| {
        b.iter(|| domains(black_box(&dp)).expect("synth"))
    });
    g.finish();

    let mut g = c.benchmark_group("patches");
    g.sample_size(10);
    // BiFeO3 scale: 3904 x 3904 px, 233 289 patches of 48 x 48.
    let big = Array2::from_shape_fn((3904, 3904), |(r, c)| ((r * 31 + c * 17) % 256) as f32);
    let grid = PatchGrid::new(3904, 3904, 48, 8).expect("grid");
    g.bench_function("patchset_new_3904", |b| {
        b.iter(|| {
            PatchSet::new(
                black_box(big.view()),
                grid,
                Scaling::GlobalMinMax,
                Levelling::None,
            )
            .expect("patches")
        })
    });
    let set =
        PatchSet::new(big.view(), grid, Scaling::GlobalMinMax, Levelling::None).expect("patches");
    let mut buf = vec![0.0f32; 48 * 48];
    g.bench_function("copy_batch_64", |b| {
        b.iter(|| {
            for i in 0..64 {
                set.copy_patch_into(black_box(i * 3001), &mut buf)
                    .expect("copy");
            }
        })
    });
    g.finish();
}

criterion_group!(data, benches);
criterion_main!(data);
