//! The fused decoder kernel against a naive `f64` reference (plain loops, libm
//! `tanh`), against central finite differences of that reference, and
//! invariants (batches below the workspace capacity, workspace reuse).

#![allow(clippy::unwrap_used, clippy::panic)]

use ndarray::{Array2, Axis, ShapeBuilder, Slice};
use phyvae_model::decoder::{DecoderGrads, DecoderParams, DecoderWorkspace, ROW_BLOCK};
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

// Tensor indices of the flat f64 representation.
const WC: usize = 0;
const BC: usize = 1;
const WZ: usize = 2;
const W1: usize = 3;
const B1: usize = 4;
const W2: usize = 5;
const B2: usize = 6;
const W3: usize = 7;
const B3: usize = 8;
const Z: usize = 9;
const C: usize = 10;
const NAMES: [&str; 11] = [
    "Wc", "bc", "Wz", "W1", "b1", "W2", "b2", "w3", "b3", "z", "coords",
];

/// Parameters and inputs in f64, every tensor flattened row-major.
#[derive(Clone)]
struct Flat {
    t: Vec<Vec<f64>>,
    h: usize,
    n: usize,
    batch: usize,
    window: usize,
}

fn to_f64(a: impl IntoIterator<Item = f32>) -> Vec<f64> {
    a.into_iter().map(f64::from).collect()
}

impl Flat {
    fn new(p: &DecoderParams, z: &Array2<f32>, coords: &Array2<f32>, window: usize) -> Self {
        let t = vec![
            to_f64(p.wc.iter().copied()),
            to_f64(p.bc.iter().copied()),
            to_f64(p.wz.iter().copied()),
            to_f64(p.w1.iter().copied()),
            to_f64(p.b1.iter().copied()),
            to_f64(p.w2.iter().copied()),
            to_f64(p.b2.iter().copied()),
            to_f64(p.w3.iter().copied()),
            vec![f64::from(p.b3)],
            to_f64(z.iter().copied()),
            to_f64(coords.iter().copied()),
        ];
        Self {
            t,
            h: p.hidden(),
            n: p.n_latent(),
            batch: z.nrows(),
            window,
        }
    }

    fn npix(&self) -> usize {
        self.window * self.window
    }

    /// Coordinate of pixel i of patch b.
    fn coord(&self, b: usize, i: usize) -> (f64, f64) {
        let row = (b * self.npix() + i) * 2;
        (self.t[C][row], self.t[C][row + 1])
    }

    /// Activations (h0, h1, h2) and logit for patch b, pixel i.
    fn pixel(&self, b: usize, i: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>, f64) {
        let (h, n, t) = (self.h, self.n, &self.t);
        let (gx, gy) = self.coord(b, i);
        let mut h0 = vec![0.0; h];
        for j in 0..h {
            let mut a = t[WC][j * 2] * gx + t[WC][j * 2 + 1] * gy + t[BC][j];
            for l in 0..n {
                a += t[WZ][j * n + l] * t[Z][b * n + l];
            }
            h0[j] = a.tanh();
        }
        let layer = |w: usize, bias: usize, x: &[f64]| -> Vec<f64> {
            (0..h)
                .map(|o| {
                    let mut a = t[bias][o];
                    for q in 0..h {
                        a += t[w][o * h + q] * x[q];
                    }
                    a.tanh()
                })
                .collect()
        };
        let h1 = layer(W1, B1, &h0);
        let h2 = layer(W2, B2, &h1);
        let mut logit = t[B3][0];
        for j in 0..h {
            logit += t[W3][j] * h2[j];
        }
        (h0, h1, h2, logit)
    }

    fn forward(&self) -> Array2<f64> {
        Array2::from_shape_fn((self.batch, self.npix()), |(b, i)| self.pixel(b, i).3)
    }

    fn loss(&self, r: &Array2<f64>) -> f64 {
        (self.forward() * r).sum()
    }

    /// Hand-derived backward of sum(logit * r), plain loops; same layout as `t`.
    fn backward(&self, r: &Array2<f64>) -> Vec<Vec<f64>> {
        let (h, n, t) = (self.h, self.n, &self.t);
        let mut g: Vec<Vec<f64>> = t.iter().map(|v| vec![0.0; v.len()]).collect();
        for b in 0..self.batch {
            for i in 0..self.npix() {
                let (h0, h1, h2, _) = self.pixel(b, i);
                let gl = r[[b, i]];
                g[B3][0] += gl;
                let mut d2 = vec![0.0; h];
                for j in 0..h {
                    g[W3][j] += gl * h2[j];
                    d2[j] = gl * t[W3][j] * (1.0 - h2[j] * h2[j]);
                }
                let back = |g: &mut Vec<Vec<f64>>, w: usize, bias: usize, d: &[f64], x: &[f64]| {
                    let mut dx = vec![0.0; h];
                    for o in 0..h {
                        g[bias][o] += d[o];
                        for q in 0..h {
                            g[w][o * h + q] += d[o] * x[q];
                            dx[q] += d[o] * t[w][o * h + q];
                        }
                    }
                    dx
                };
                let dh1 = back(&mut g, W2, B2, &d2, &h1);
                let d1: Vec<f64> = (0..h).map(|q| dh1[q] * (1.0 - h1[q] * h1[q])).collect();
                let dh0 = back(&mut g, W1, B1, &d1, &h0);
                let d0: Vec<f64> = (0..h).map(|q| dh0[q] * (1.0 - h0[q] * h0[q])).collect();
                let (gx, gy) = self.coord(b, i);
                let row = (b * self.npix() + i) * 2;
                for j in 0..h {
                    g[WC][j * 2] += d0[j] * gx;
                    g[WC][j * 2 + 1] += d0[j] * gy;
                    g[BC][j] += d0[j];
                    for l in 0..n {
                        g[WZ][j * n + l] += d0[j] * t[Z][b * n + l];
                        g[Z][b * n + l] += d0[j] * t[WZ][j * n + l];
                    }
                    g[C][row] += d0[j] * t[WC][j * 2];
                    g[C][row + 1] += d0[j] * t[WC][j * 2 + 1];
                }
            }
        }
        g
    }
}

struct Case {
    params: DecoderParams,
    z: Array2<f32>,
    coords: Array2<f32>,
    r: Array2<f32>,
    window: usize,
    capacity: usize,
}

/// pyroVED imcoordgrid: pixel (r, c) -> (linspace(-1,1)[r], linspace(1,-1)[c]).
fn grid(window: usize, i: usize) -> (f32, f32) {
    let (r, c) = (i / window, i % window);
    let d = (window - 1) as f32;
    (-1.0 + 2.0 * r as f32 / d, 1.0 - 2.0 * c as f32 / d)
}

/// Random decoder and inputs: coordinates = grid + k s_b (s_b ~ N(0, 1)) plus a
/// per-pixel jitter of +-0.05, so that no two pixels or patches share an input.
fn case(seed: u64, batch: usize, window: usize, n: usize, h: usize, k: f32) -> Case {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let params = DecoderParams::init(n, h, &mut rng).unwrap();
    let z = Array2::from_shape_simple_fn((batch, n), || rng.sample::<f32, _>(StandardNormal));
    let npix = window * window;
    let mut coords = Array2::zeros((batch * npix, 2));
    for b in 0..batch {
        let sx: f32 = rng.sample(StandardNormal);
        let sy: f32 = rng.sample(StandardNormal);
        for i in 0..npix {
            let (gx, gy) = grid(window, i);
            coords[[b * npix + i, 0]] = gx + k * sx + rng.random_range(-0.05f32..0.05);
            coords[[b * npix + i, 1]] = gy + k * sy + rng.random_range(-0.05f32..0.05);
        }
    }
    let r = Array2::from_shape_simple_fn((batch, npix), || rng.random_range(-1.0f32..1.0));
    Case {
        params,
        z,
        coords,
        r,
        window,
        capacity: batch,
    }
}

/// Runs the kernel: logits, parameter gradients (flat, same order as `Flat::t`,
/// with dz and dcoords appended) for loss sum(logit * r).
fn kernel(c: &Case, ws: &mut DecoderWorkspace) -> (Array2<f32>, Vec<Vec<f64>>) {
    let logits = ws
        .forward(&c.params, c.z.view(), c.coords.view())
        .unwrap()
        .to_owned();
    let mut g = DecoderGrads::zeros_like(&c.params);
    ws.backward(&c.params, c.r.view(), &mut g).unwrap();
    let flat = vec![
        to_f64(g.wc.iter().copied()),
        to_f64(g.bc.iter().copied()),
        to_f64(g.wz.iter().copied()),
        to_f64(g.w1.iter().copied()),
        to_f64(g.b1.iter().copied()),
        to_f64(g.w2.iter().copied()),
        to_f64(g.b2.iter().copied()),
        to_f64(g.w3.iter().copied()),
        vec![f64::from(g.b3)],
        to_f64(ws.grad_z().iter().copied()),
        to_f64(ws.grad_coords().iter().copied()),
    ];
    (logits, flat)
}

fn workspace(c: &Case) -> DecoderWorkspace {
    DecoderWorkspace::new(c.capacity, c.window, c.params.n_latent(), c.params.hidden()).unwrap()
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0f64, |m, x| m.max(x.abs()))
}

/// `|got - want| <= rel * max(|want|, floor * max|want of tensor|)` for every
/// element: relative where the value is large, relative to the tensor's scale
/// where it is near zero (an f32 result cannot be relatively accurate near a
/// cancellation to zero).
fn assert_close(name: &str, got: &[f64], want: &[f64], rel: f64, floor: f64) {
    assert_eq!(got.len(), want.len(), "{name}");
    let scale = max_abs(want);
    assert!(scale > 0.0, "{name}: reference is identically zero");
    for (idx, (&a, &b)) in got.iter().zip(want).enumerate() {
        let tol = rel * b.abs().max(floor * scale);
        assert!(
            (a - b).abs() <= tol,
            "{name}[{idx}]: got {a}, want {b} (tol {tol})"
        );
    }
}

fn check_forward(c: &Case) {
    let mut ws = workspace(c);
    let got = ws
        .forward(&c.params, c.z.view(), c.coords.view())
        .unwrap()
        .to_owned();
    let want = Flat::new(&c.params, &c.z, &c.coords, c.window).forward();
    let got: Vec<f64> = to_f64(got.iter().copied());
    let want: Vec<f64> = want.iter().copied().collect();
    // 1e-5 relative to each logit, or to the logits' scale near zero (floor 0.1).
    assert_close("logits", &got, &want, 1e-5, 0.1);
}

#[test]
fn forward_matches_f64_reference_h8() {
    check_forward(&case(11, 3, 5, 2, 8, 0.1));
}

#[test]
fn forward_matches_f64_reference_h128() {
    check_forward(&case(12, 3, 5, 2, 128, 0.1));
}

fn check_backward_reference(c: &Case) {
    let mut ws = workspace(c);
    let (_, got) = kernel(c, &mut ws);
    let flat = Flat::new(&c.params, &c.z, &c.coords, c.window);
    let want = flat.backward(&c.r.mapv(f64::from));
    for t in 0..NAMES.len() {
        assert_close(NAMES[t], &got[t], &want[t], 1e-4, 0.05);
    }
}

/// Gradients equal the hand-derived f64 backward within 1e-4 relative (floor:
/// 5% of the tensor's largest entry).
#[test]
fn backward_matches_f64_reference_h8() {
    check_backward_reference(&case(21, 3, 5, 2, 8, 0.3));
}

#[test]
fn backward_matches_f64_reference_h128() {
    check_backward_reference(&case(22, 3, 5, 2, 128, 0.3));
}

/// Central differences of the f64 reference loss sum(logit * R), step 1e-5:
/// truncation error ~ h^2 |f'''| / 6 ~ 1e-11 and rounding ~ 1e-16 |L| / h ~ 1e-10,
/// so the difference quotient is exact to ~1e-9 and the comparison measures the
/// f32 kernel alone (tolerance 1e-3 relative, floor 5% of the tensor scale).
fn check_finite_differences(c: &Case, per_tensor: usize) {
    let mut ws = workspace(c);
    let (_, got) = kernel(c, &mut ws);
    let base = Flat::new(&c.params, &c.z, &c.coords, c.window);
    let r = c.r.mapv(f64::from);
    let step = 1e-5;
    let mut pick = ChaCha8Rng::seed_from_u64(99);
    for t in 0..NAMES.len() {
        let len = base.t[t].len();
        let idxs: Vec<usize> = if len <= per_tensor {
            (0..len).collect()
        } else {
            (0..per_tensor).map(|_| pick.random_range(0..len)).collect()
        };
        let mut fd_vals = Vec::new();
        let mut got_vals = Vec::new();
        for &idx in &idxs {
            let mut plus = base.clone();
            plus.t[t][idx] += step;
            let mut minus = base.clone();
            minus.t[t][idx] -= step;
            fd_vals.push((plus.loss(&r) - minus.loss(&r)) / (2.0 * step));
            got_vals.push(got[t][idx]);
        }
        // Scale floor from the full kernel tensor (the sample may miss the largest entry).
        let scale = max_abs(&got[t]);
        for (k, (&a, &b)) in got_vals.iter().zip(&fd_vals).enumerate() {
            let tol = 1e-3 * b.abs().max(0.05 * scale);
            assert!(
                (a - b).abs() <= tol,
                "{}[{}]: kernel {a}, finite difference {b} (tol {tol})",
                NAMES[t],
                idxs[k]
            );
        }
    }
}

#[test]
fn gradients_match_finite_differences_h8_all_entries() {
    check_finite_differences(&case(31, 3, 5, 2, 8, 0.3), usize::MAX);
}

#[test]
fn gradients_match_finite_differences_h128_sampled() {
    check_finite_differences(&case(32, 3, 5, 2, 128, 0.3), 12);
}

/// A window of 17 gives 289 rows per patch: one full block of
/// `ROW_BLOCK` = 256 rows and a partial one of 33, whose weight gradients
/// are accumulated across the blocks.
#[test]
fn several_row_blocks_per_patch_match_f64_reference() {
    assert_eq!(
        ROW_BLOCK, 256,
        "the window below is chosen for 256-row blocks"
    );
    let c = case(23, 2, 17, 2, 8, 0.3);
    check_forward(&c);
    check_backward_reference(&c);
}

/// The kernel's work is split by patch, never by thread: one thread and two
/// threads give bit-identical logits and gradients.
#[test]
fn results_do_not_depend_on_the_number_of_threads() {
    let c = case(24, 5, 17, 2, 16, 0.3);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| kernel(&c, &mut workspace(&c)))
    };
    let (one, two) = (run(1), run(2));
    assert_eq!(one, two);
}

/// `dL/dlogits` may be any view: a column-major copy gives the same gradients.
#[test]
fn backward_accepts_a_column_major_dlogits_view() {
    let c = case(25, 3, 5, 2, 8, 0.3);
    let mut ws = workspace(&c);
    let (_, want) = kernel(&c, &mut ws);
    let mut fortran = Array2::zeros(c.r.raw_dim().f());
    fortran.assign(&c.r);
    assert!(fortran.as_slice().is_none());
    let mut g = DecoderGrads::zeros_like(&c.params);
    ws.backward(&c.params, fortran.view(), &mut g).unwrap();
    assert_eq!(to_f64(g.w1.iter().copied()), want[W1]);
    assert_eq!(to_f64(ws.grad_z().iter().copied()), want[Z]);
}

#[test]
fn reused_workspace_equals_fresh_workspaces() {
    let a = case(41, 3, 5, 2, 16, 0.1);
    let b = case(42, 3, 5, 2, 16, 0.1);
    let mut shared = workspace(&a);
    let first = kernel(&a, &mut shared);
    let second = kernel(&b, &mut shared);
    let fresh_a = kernel(&a, &mut workspace(&a));
    let fresh_b = kernel(&b, &mut workspace(&b));
    assert_eq!(first, fresh_a);
    assert_eq!(second, fresh_b);
    assert_ne!(first.0, second.0);
}

/// A batch below the workspace capacity (after a full-capacity decode has
/// filled every buffer) still equals the f64 reference.
#[test]
fn batch_below_capacity_matches_f64_reference() {
    let full = case(51, 4, 5, 2, 16, 0.3);
    let mut c = case(52, 2, 5, 2, 16, 0.3);
    c.capacity = 4;
    let mut ws = workspace(&c);
    kernel(&full, &mut ws);
    let (logits, got) = kernel(&c, &mut ws);
    assert_eq!(logits.dim(), (2, 25));
    assert_eq!(ws.batch(), 2);
    let flat = Flat::new(&c.params, &c.z, &c.coords, c.window);
    let want = flat.backward(&c.r.mapv(f64::from));
    for t in 0..NAMES.len() {
        assert_close(NAMES[t], &got[t], &want[t], 1e-4, 0.05);
    }
    let want_logits: Vec<f64> = flat.forward().iter().copied().collect();
    assert_close(
        "logits",
        &to_f64(logits.iter().copied()),
        &want_logits,
        1e-5,
        0.1,
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// Patches are independent: decoding the first `b` patches of a batch gives
    /// the first `b` rows of the logits, dL/dz and dL/dcoords of the full batch
    /// (for loss sum(logit * r), whose per-patch terms do not interact).
    #[test]
    fn prefix_batch_equals_rows_of_full_batch(seed in 0u64..1000, b in 1usize..=4) {
        let full = case(seed, 4, 4, 2, 8, 0.3);
        let mut ws = workspace(&full);
        let (logits, grads) = kernel(&full, &mut ws);
        let npix = 16;
        let part = Case {
            params: full.params.clone(),
            z: full.z.slice_axis(Axis(0), Slice::from(..b)).to_owned(),
            coords: full.coords.slice_axis(Axis(0), Slice::from(..b * npix)).to_owned(),
            r: full.r.slice_axis(Axis(0), Slice::from(..b)).to_owned(),
            window: 4,
            capacity: 4,
        };
        let (pl, pg) = kernel(&part, &mut ws);
        let close = |a: &[f64], w: &[f64]| {
            let scale = max_abs(w).max(1e-30);
            a.iter().zip(w).all(|(x, y)| (x - y).abs() <= 1e-6 * scale)
        };
        let full_rows = to_f64(logits.slice_axis(Axis(0), Slice::from(..b)).iter().copied());
        prop_assert!(close(&to_f64(pl.iter().copied()), &full_rows));
        prop_assert!(close(&pg[Z], &grads[Z][..b * 2]));
        prop_assert!(close(&pg[C], &grads[C][..b * npix * 2]));
        prop_assert_eq!(pg[C].len(), b * npix * 2);
    }
}
