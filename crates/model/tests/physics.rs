//! The physics loss `Psi` in its two modes:
//! - faithful mode against the values returned by the authors' own
//!   `CustomTrace_ELBO.add_loss` / `add_loss2` (`testdata/golden/lat*`, see its
//!   README);
//! - gradient mode against the imaging crate (the scikit-image-exact reference)
//!   on random maps, and its gradient against central finite differences of the
//!   `f64` forward (bilateral weights held fixed in both);
//! - the latent maps of a batch against `phyvae_imaging::physics::latent_map`.

#![allow(clippy::unwrap_used, clippy::panic)]

use candle_core::{DType, Device, Tensor, Var};
use ndarray::{Array2, ArrayD, IxDyn};
use phyvae_imaging::ImagingError;
use phyvae_imaging::fft::log_magnitude_spectrum;
use phyvae_imaging::physics::{latent_map, sl1_map};
use phyvae_model::ModelError;
use phyvae_model::physics::{PsiGraph, batch_maps, psi_faithful};
use phyvae_run::config::PhysicsKind;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::PathBuf;

/// The authors' columns: z1 and z2 after the two shift latents.
const COLUMNS: [usize; 2] = [2, 3];

/// Agreement promised for `f32` results against the golden values (as the
/// imaging crate's golden tests).
const TOL_GOLDEN: f64 = 1e-4;

/// Agreement of the gradient-mode value with the faithful value on the same
/// `f32` maps: the two differ only by `f32` rounding of different summation
/// orders (matmuls instead of loops, a DFT by matrices instead of an FFT) and
/// by the `1e-12` guards under the square roots (at most `1e-6` per pixel,
/// only where a magnitude is 0).
const TOL_F32: f64 = 1e-5;

fn golden(stem: &str) -> ArrayD<f64> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/golden")
        .join(format!("{stem}.npy"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let data: Vec<f64> = match npy.header().dtype().descr().trim_matches('\'') {
        "<f8" => npy.into_vec::<f64>().unwrap(),
        "<f4" => npy
            .into_vec::<f32>()
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect(),
        other => panic!("{}: unexpected dtype {other}", path.display()),
    };
    ArrayD::from_shape_vec(IxDyn(&shape), data).unwrap()
}

fn golden_scalar(stem: &str) -> f64 {
    let a = golden(stem);
    assert_eq!(a.len(), 1, "{stem}");
    a.iter().copied().next().unwrap()
}

fn rel(got: f64, want: f64) -> f64 {
    (got - want).abs() / want.abs().max(f64::MIN_POSITIVE)
}

fn random_z(rng: &mut ChaCha8Rng, batch: usize, latents: usize) -> Array2<f32> {
    Array2::from_shape_simple_fn((batch, latents), || rng.random_range(-2.0f32..2.0))
}

fn tensor_f32(z: &Array2<f32>) -> Tensor {
    Tensor::from_vec(z.iter().copied().collect::<Vec<_>>(), z.dim(), &Device::Cpu).unwrap()
}

fn scalar(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
}

#[test]
fn faithful_mode_matches_authors() {
    for lat in ["lat8x8", "lat10x10"] {
        let z = golden(&format!("{lat}__z_mean"))
            .into_dimensionality::<ndarray::Ix2>()
            .unwrap()
            .mapv(|v| v as f32);
        let d = z.nrows().isqrt();
        for (kind, name) in [
            (PhysicsKind::Sl1, "SL1"),
            (PhysicsKind::Sl2 { alpha: 1 }, "SL2"),
        ] {
            let want = golden_scalar(&format!("{lat}__{name}_authors"));
            let faithful = f64::from(psi_faithful(kind, z.view(), &COLUMNS).unwrap());
            assert!(
                rel(faithful, want) <= TOL_GOLDEN,
                "{lat} {name}: faithful {faithful} vs authors {want}"
            );
            // The differentiable graph gives the authors' value too.
            let maps = batch_maps(&tensor_f32(&z), &COLUMNS, d).unwrap();
            let graph = PsiGraph::new(kind, d, 2, &Device::Cpu, DType::F32).unwrap();
            let gradient = scalar(&graph.psi(&maps).unwrap());
            assert!(
                rel(gradient, want) <= TOL_GOLDEN,
                "{lat} {name}: gradient mode {gradient} vs authors {want}"
            );
        }
    }
}

#[test]
fn faithful_mode_rejects_non_square_batch() {
    // The authors returned 0 for B = 50 (golden lat_B50__SL1_authors); we refuse it.
    assert_eq!(golden_scalar("lat_B50__SL1_authors"), 0.0);
    let z = Array2::from_shape_fn((50, 4), |(b, k)| (b * 4 + k) as f32 * 0.01);
    for kind in [PhysicsKind::Sl1, PhysicsKind::Sl2 { alpha: 1 }] {
        assert!(matches!(
            psi_faithful(kind, z.view(), &COLUMNS),
            Err(ModelError::Imaging(ImagingError::NotSquareBatch {
                batch: 50
            }))
        ));
    }
}

#[test]
fn batch_maps_match_latent_map() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let z = random_z(&mut rng, 100, 5);
    let columns = [4, 0, 2];
    let maps = batch_maps(&tensor_f32(&z), &columns, 10).unwrap();
    assert_eq!(maps.dims(), [3, 10, 10]);
    let maps = maps.to_vec3::<f32>().unwrap();
    for (k, &column) in columns.iter().enumerate() {
        let want = latent_map(z.view(), column).unwrap();
        for ((i, j), &v) in want.indexed_iter() {
            assert_eq!(maps[k][i][j], v, "map {k} ({i}, {j})");
        }
    }
    let t = tensor_f32(&z);
    assert!(matches!(
        batch_maps(&t, &[1], 9),
        Err(ModelError::ShapeMismatch { .. })
    ));
    for bad in [&[][..], &[5][..]] {
        assert!(matches!(
            batch_maps(&t, bad, 10),
            Err(ModelError::InvalidParameter {
                name: "columns",
                ..
            })
        ));
    }
}

#[test]
fn gradient_flows_back_to_the_chosen_latents() {
    // d(Psi)/d(z_mean[b, columns[k]]) = d(Psi)/d(maps[k, b / d, b % d]); other
    // columns get 0.
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let z = Var::from_tensor(&tensor_f32(&random_z(&mut rng, 64, 4))).unwrap();
    let maps = Var::from_tensor(&batch_maps(z.as_tensor(), &COLUMNS, 8).unwrap()).unwrap();
    let graph = PsiGraph::new(
        PhysicsKind::Sl2 { alpha: 1 },
        8,
        2,
        &Device::Cpu,
        DType::F32,
    )
    .unwrap();
    let via_z = graph
        .psi(&batch_maps(z.as_tensor(), &COLUMNS, 8).unwrap())
        .unwrap()
        .backward()
        .unwrap();
    let via_maps = graph.psi(maps.as_tensor()).unwrap().backward().unwrap();
    let gz = via_z.get(&z).unwrap().to_vec2::<f32>().unwrap();
    let gm = via_maps.get(&maps).unwrap().to_vec3::<f32>().unwrap();
    for (b, row) in gz.iter().enumerate() {
        assert_eq!(row[0], 0.0);
        assert_eq!(row[1], 0.0);
        for k in 0..2 {
            assert_eq!(row[COLUMNS[k]], gm[k][b / 8][b % 8], "row {b}, map {k}");
        }
    }
}

#[test]
fn gradient_mode_value_equals_faithful_value() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for d in [8, 10, 7, 5] {
        for _ in 0..3 {
            let z = random_z(&mut rng, d * d, 4);
            let maps = batch_maps(&tensor_f32(&z), &COLUMNS, d).unwrap();
            let mut kinds = vec![PhysicsKind::Sl1, PhysicsKind::Sl2 { alpha: 1 }];
            if d >= 5 {
                kinds.push(PhysicsKind::Sl2 { alpha: 2 });
            }
            for kind in kinds {
                let graph = PsiGraph::new(kind, d, 2, &Device::Cpu, DType::F32).unwrap();
                let got = scalar(&graph.psi(&maps).unwrap());
                let want = f64::from(psi_faithful(kind, z.view(), &COLUMNS).unwrap());
                assert!(
                    rel(got, want) <= TOL_F32,
                    "d = {d} {kind:?}: gradient mode {got} vs faithful {want}"
                );
            }
        }
    }
}

/// SL1 and SL2 in `f64` from the imaging crate (scikit-image-exact filters,
/// rustfft spectrum), for the `f64` graph.
fn reference_f64(kind: PhysicsKind, maps: &[Array2<f64>]) -> f64 {
    match kind {
        PhysicsKind::Sl1 => {
            maps.iter().map(|m| sl1_map(m.view()).unwrap()).sum::<f64>() / maps.len() as f64
        }
        PhysicsKind::Sl2 { alpha } => {
            let (mut outside, mut total) = (0.0, 0.0);
            for m in maps {
                let l = log_magnitude_spectrum(m.view()).unwrap();
                let d = m.nrows();
                let inside = d / 2 - alpha..d / 2 + alpha;
                let window: f64 = l
                    .indexed_iter()
                    .filter(|((r, c), _)| inside.contains(r) && inside.contains(c))
                    .map(|(_, v)| v)
                    .sum();
                total += l.sum();
                outside += l.sum() - window;
            }
            outside / total
        }
        PhysicsKind::None => 0.0,
    }
}

fn random_maps_f64(rng: &mut ChaCha8Rng, c: usize, d: usize) -> (Vec<Array2<f64>>, Tensor) {
    let maps: Vec<Array2<f64>> = (0..c)
        .map(|_| Array2::from_shape_simple_fn((d, d), || rng.random_range(-2.0..2.0)))
        .collect();
    let flat: Vec<f64> = maps.iter().flat_map(|m| m.iter().copied()).collect();
    let t = Tensor::from_vec(flat, (c, d, d), &Device::Cpu).unwrap();
    (maps, t)
}

#[test]
fn f64_graph_equals_f64_reference() {
    // In f64 the only differences are rounding (about 1e-15 relative) and the
    // 1e-12 guards, which add about 1e-24 / |g| per pixel where |g| is not tiny.
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    for (d, alpha) in [(8, 1), (7, 2), (6, 2)] {
        let (maps, t) = random_maps_f64(&mut rng, 2, d);
        for kind in [PhysicsKind::Sl1, PhysicsKind::Sl2 { alpha }] {
            let graph = PsiGraph::new(kind, d, 2, &Device::Cpu, DType::F64).unwrap();
            let got = scalar(&graph.psi(&t).unwrap());
            let want = reference_f64(kind, &maps);
            assert!(rel(got, want) <= 1e-10, "d = {d} {kind:?}: {got} vs {want}");
        }
    }
}

/// Largest violation of `|analytic - fd| <= TOL_FD (1 + |analytic|)` over all
/// map entries, with the bilateral weights frozen at the unperturbed maps.
///
/// Step `h = 1e-5` on maps of size O(1) in `f64`: the rounding error of one
/// forward value (sums of at most 128 terms of size O(1..10)) is about 1e-14,
/// so the central difference carries about 1e-14 / (2h) = 5e-10 of rounding
/// noise, and its truncation error `h^2 f''' / 6` is about 1e-10 for third
/// derivatives of size O(10). `TOL_FD = 1e-6` leaves a wide margin over both,
/// and is still far below any real error (a wrong sign, factor or missing term
/// changes entries by O(|gradient|)).
fn fd_check(kind: PhysicsKind, d: usize, seed: u64) {
    const H: f64 = 1e-5;
    const TOL_FD: f64 = 1e-6;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let c = 2;
    let (_, maps) = random_maps_f64(&mut rng, c, d);
    let graph = PsiGraph::new(kind, d, c, &Device::Cpu, DType::F64).unwrap();
    let var = Var::from_tensor(&maps).unwrap();
    let psi = graph.psi(var.as_tensor()).unwrap();
    let analytic: Vec<f64> = psi
        .backward()
        .unwrap()
        .get(&var)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let frozen = graph.freeze(&maps).unwrap();
    let base: Vec<f64> = maps.flatten_all().unwrap().to_vec1().unwrap();
    let at = |values: Vec<f64>| {
        let t = Tensor::from_vec(values, (c, d, d), &Device::Cpu).unwrap();
        scalar(&graph.psi_frozen(&t, &frozen).unwrap())
    };
    let mut gradient_norm = 0.0_f64;
    for (i, &g) in analytic.iter().enumerate() {
        let (mut plus, mut minus) = (base.clone(), base.clone());
        plus[i] += H;
        minus[i] -= H;
        let fd = (at(plus) - at(minus)) / (2.0 * H);
        assert!(
            (g - fd).abs() <= TOL_FD * (1.0 + g.abs()),
            "{kind:?} d = {d}, entry {i}: analytic {g} vs finite difference {fd}"
        );
        gradient_norm += g * g;
    }
    // The check is not vacuous: the gradient is far from 0.
    assert!(
        gradient_norm.sqrt() > 1e-3,
        "{kind:?}: |gradient| = {gradient_norm}"
    );
}

#[test]
fn sl1_gradient_matches_finite_differences() {
    fd_check(PhysicsKind::Sl1, 8, 5);
    fd_check(PhysicsKind::Sl1, 5, 6);
}

#[test]
fn sl2_gradient_matches_finite_differences() {
    fd_check(PhysicsKind::Sl2 { alpha: 1 }, 8, 7);
    fd_check(PhysicsKind::Sl2 { alpha: 2 }, 7, 8);
}

#[test]
fn gradient_is_finite_on_constant_maps() {
    let cpu = Device::Cpu;
    for dtype in [DType::F32, DType::F64] {
        // Two constant maps, and a constant map next to a random one.
        let constant = Tensor::full(0.3_f32, (2, 8, 8), &cpu).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mixed = Tensor::cat(
            &[
                Tensor::full(-1.5_f32, (1, 8, 8), &cpu).unwrap(),
                tensor_f32(&random_z(&mut rng, 8, 8))
                    .reshape((1, 8, 8))
                    .unwrap(),
            ],
            0,
        )
        .unwrap();
        for maps in [constant, mixed] {
            let var = Var::from_tensor(&maps.to_dtype(dtype).unwrap()).unwrap();
            for kind in [PhysicsKind::Sl1, PhysicsKind::Sl2 { alpha: 1 }] {
                let graph = PsiGraph::new(kind, 8, 2, &cpu, dtype).unwrap();
                let psi = graph.psi(var.as_tensor()).unwrap();
                assert!(scalar(&psi).is_finite());
                let grad = psi.backward().unwrap();
                let g: Vec<f64> = grad
                    .get(&var)
                    .unwrap()
                    .to_dtype(DType::F64)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                assert!(g.iter().all(|v| v.is_finite()), "{kind:?} {dtype:?}");
            }
        }
    }
    // A constant map has SL1 0 in the faithful mode; the guards leave at most
    // 64 pixels x 1e-6 in the gradient mode.
    let graph = PsiGraph::new(PhysicsKind::Sl1, 8, 2, &cpu, DType::F64).unwrap();
    let v = scalar(
        &graph
            .psi(&Tensor::full(0.3_f64, (2, 8, 8), &cpu).unwrap())
            .unwrap(),
    );
    assert!((0.0..=64e-6 + 1e-12).contains(&v), "{v}");
}
