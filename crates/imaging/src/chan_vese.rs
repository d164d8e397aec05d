//! Chan-Vese segmentation ("active contours without edges") as scikit-image 0.26
//! `skimage.segmentation.chan_vese` computes it.
//!
//! The level set `phi` evolves by the semi-implicit scheme of Getreuer's IPOL description
//! that scikit-image implements: with edge-replicated neighbours, forward/backward/central
//! differences, curvature weights `C1..C4 = 1 / sqrt(1e-16 + dx^2 + dy^2)`, the region
//! term computed from the hard partition `phi > 0`, and
//! `phi <- (phi + dt * delta(phi) * (mu * K + lambda2 * (f - c2)^2 - lambda1 * (f - c1)^2))
//!   / (1 + mu * dt * delta(phi) * (C1 + C2 + C3 + C4))`, `delta(x) = 1 / (1 + x^2)`.
//! The iteration stops when the root-mean-square change of `phi` is `<= tol` or after
//! `max_num_iter` updates. The segmentation is `phi > 0`.
//!
//! Every intermediate is computed in the element type `T` in scikit-image's order of
//! operations, and whole-image sums use NumPy's pairwise summation. On the golden inputs
//! the `f64` level set and segmentation are bit-identical to scikit-image's; the energies
//! agree to 1e-14 (their arc tangent is a vectorisable polynomial within two ulp of the C
//! library's). In `f32` the level set stays within 1e-6 of scikit-image's: NumPy's
//! vectorised `float32` `sin` (used for the checkerboard start) is not correctly rounded
//! and differs from the C library's by one ulp for about one argument in eight, depending
//! on the CPU, so the two runs start a few ulp apart. On larger `f32` maps a pixel whose
//! level set ends within a few ulp of zero can therefore land on the other side: measured
//! on random 180-260 px maps, 0 or 1 label in about 45 000 differs from scikit-image's.
//!
//! References: T. F. Chan, L. A. Vese, "Active contours without edges", IEEE Trans. Image
//! Process. 10 (2001) 266-277; P. Getreuer, "Chan-Vese Segmentation", Image Processing On
//! Line 2 (2012) 214-224.

use crate::error::check_finite;
use crate::numeric::{numpy_mean, pairwise_sum};
use crate::{ImagingError, Real, Result};
use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

/// Default weight of the edge-length term (scikit-image `mu`).
pub const DEFAULT_MU: f64 = 0.25;
/// Default weight of the inside and outside region terms (scikit-image `lambda1`,
/// `lambda2`).
pub const DEFAULT_LAMBDA: f64 = 1.0;
/// Default stopping tolerance on the RMS change of `phi` (scikit-image `tol`).
pub const DEFAULT_TOL: f64 = 1e-3;
/// Default maximum number of updates (scikit-image `max_num_iter`).
pub const DEFAULT_MAX_NUM_ITER: usize = 500;
/// Default time step (scikit-image `dt`).
pub const DEFAULT_DT: f64 = 0.5;
/// Side of the squares of the checkerboard initial level set (scikit-image uses 5).
pub const CHECKERBOARD_SQUARE: f64 = 5.0;
/// Regulariser under the square roots of the curvature weights (scikit-image `eta`).
const ETA: f64 = 1e-16;

/// Parameters of [`chan_vese`]; build them with [`ChanVeseParams::new`] (validated)
/// or take [`ChanVeseParams::default`] (scikit-image's defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct ChanVeseParams {
    mu: f64,
    lambda1: f64,
    lambda2: f64,
    tol: f64,
    max_num_iter: usize,
    dt: f64,
    record_energies: bool,
}

impl Default for ChanVeseParams {
    /// scikit-image's defaults: `mu = 0.25`, `lambda1 = lambda2 = 1`, `tol = 1e-3`,
    /// `max_num_iter = 500`, `dt = 0.5`; energies recorded.
    fn default() -> Self {
        Self {
            mu: DEFAULT_MU,
            lambda1: DEFAULT_LAMBDA,
            lambda2: DEFAULT_LAMBDA,
            tol: DEFAULT_TOL,
            max_num_iter: DEFAULT_MAX_NUM_ITER,
            dt: DEFAULT_DT,
            record_energies: true,
        }
    }
}

impl ChanVeseParams {
    /// A builder starting from the defaults ([`ChanVeseParams::default`]).
    #[must_use]
    #[allow(
        clippy::new_ret_no_self,
        reason = "parameters are only obtained validated, through the builder"
    )]
    pub fn new() -> ChanVeseParamsBuilder {
        ChanVeseParamsBuilder {
            params: Self::default(),
        }
    }

    /// Weight of the edge-length term.
    #[must_use]
    pub fn mu(&self) -> f64 {
        self.mu
    }

    /// Weight of the region term inside the contour (`phi > 0`).
    #[must_use]
    pub fn lambda1(&self) -> f64 {
        self.lambda1
    }

    /// Weight of the region term outside the contour.
    #[must_use]
    pub fn lambda2(&self) -> f64 {
        self.lambda2
    }

    /// Stopping tolerance on the RMS change of `phi` between two iterations.
    #[must_use]
    pub fn tol(&self) -> f64 {
        self.tol
    }

    /// Maximum number of updates of `phi`.
    #[must_use]
    pub fn max_num_iter(&self) -> usize {
        self.max_num_iter
    }

    /// Time step.
    #[must_use]
    pub fn dt(&self) -> f64 {
        self.dt
    }

    /// Whether [`ChanVeseResult::energies`] is filled.
    #[must_use]
    pub fn record_energies(&self) -> bool {
        self.record_energies
    }

    /// The same parameters with energy recording switched off (there is no rule to
    /// check: the segmentation and level set do not depend on it).
    #[must_use]
    pub fn without_energies(mut self) -> Self {
        self.record_energies = false;
        self
    }
}

/// Builder of [`ChanVeseParams`]; [`ChanVeseParamsBuilder::build`] checks every rule.
#[derive(Debug, Clone, PartialEq)]
pub struct ChanVeseParamsBuilder {
    params: ChanVeseParams,
}

impl ChanVeseParamsBuilder {
    /// Weight of the edge-length term; finite, `>= 0`.
    #[must_use]
    pub fn mu(mut self, mu: f64) -> Self {
        self.params.mu = mu;
        self
    }

    /// Weight of the inside region term; finite, `> 0`.
    #[must_use]
    pub fn lambda1(mut self, lambda1: f64) -> Self {
        self.params.lambda1 = lambda1;
        self
    }

    /// Weight of the outside region term; finite, `> 0`.
    #[must_use]
    pub fn lambda2(mut self, lambda2: f64) -> Self {
        self.params.lambda2 = lambda2;
        self
    }

    /// Stopping tolerance on the RMS change of `phi`; finite, `>= 0` (0: run all
    /// `max_num_iter` updates unless `phi` stops changing exactly).
    #[must_use]
    pub fn tol(mut self, tol: f64) -> Self {
        self.params.tol = tol;
        self
    }

    /// Maximum number of updates; `>= 1`.
    #[must_use]
    pub fn max_num_iter(mut self, max_num_iter: usize) -> Self {
        self.params.max_num_iter = max_num_iter;
        self
    }

    /// Time step; finite, `> 0`.
    #[must_use]
    pub fn dt(mut self, dt: f64) -> Self {
        self.params.dt = dt;
        self
    }

    /// Whether to compute the energy of every iterate (scikit-image's
    /// `extended_output`); on by default. Turning it off roughly halves the run time and
    /// leaves [`ChanVeseResult::energies`] empty; the segmentation and `phi` are the same.
    #[must_use]
    pub fn record_energies(mut self, record: bool) -> Self {
        self.params.record_energies = record;
        self
    }

    /// Checks the rules and returns the parameters.
    ///
    /// # Errors
    /// [`ImagingError::InvalidParameter`] naming the first parameter that breaks its rule.
    pub fn build(self) -> Result<ChanVeseParams> {
        let p = self.params;
        let invalid = |name: &'static str, value: f64, rule: &'static str| {
            Err(ImagingError::InvalidParameter {
                name,
                value: value.to_string(),
                rule,
            })
        };
        if !(p.mu.is_finite() && p.mu >= 0.0) {
            return invalid("mu", p.mu, "must be finite and >= 0");
        }
        if !(p.lambda1.is_finite() && p.lambda1 > 0.0) {
            return invalid("lambda1", p.lambda1, "must be finite and > 0");
        }
        if !(p.lambda2.is_finite() && p.lambda2 > 0.0) {
            return invalid("lambda2", p.lambda2, "must be finite and > 0");
        }
        if !(p.tol.is_finite() && p.tol >= 0.0) {
            return invalid("tol", p.tol, "must be finite and >= 0");
        }
        if p.max_num_iter < 1 {
            return Err(ImagingError::InvalidParameter {
                name: "max_num_iter",
                value: p.max_num_iter.to_string(),
                rule: "must be >= 1",
            });
        }
        if !(p.dt.is_finite() && p.dt > 0.0) {
            return invalid("dt", p.dt, "must be finite and > 0");
        }
        Ok(p)
    }
}

/// Output of [`chan_vese`].
#[derive(Debug, Clone, PartialEq)]
pub struct ChanVeseResult<T> {
    /// `phi > 0` for the final level set (scikit-image's returned segmentation).
    pub segmentation: Array2<bool>,
    /// The final level set.
    pub phi: Array2<T>,
    /// Energy of the level set before each update: `energies[k]` is the energy of the
    /// k-th iterate (`energies[0]` that of the initial checkerboard), one per update, as
    /// scikit-image's `extended_output` (the energy of the final level set is not
    /// included). Empty when energies are not recorded.
    pub energies: Vec<T>,
    /// Number of updates performed.
    pub iterations: usize,
    /// Whether the RMS change of the last update was `<= tol` (otherwise the run stopped
    /// at `max_num_iter`).
    pub converged: bool,
}

/// The constants of one run, converted to `T` as NumPy converts Python floats.
#[derive(Clone, Copy)]
struct Consts<T> {
    mu: T,
    neg_lambda1: T,
    lambda1: T,
    lambda2: T,
    dt: T,
    mu_dt: T,
    eta: T,
    half: T,
    one: T,
    two: T,
    two_over_pi: T,
}

impl<T: Real> Consts<T> {
    fn new(p: &ChanVeseParams) -> Self {
        Self {
            mu: T::c(p.mu),
            neg_lambda1: T::c(-p.lambda1),
            lambda1: T::c(p.lambda1),
            lambda2: T::c(p.lambda2),
            dt: T::c(p.dt),
            // `mu * dt` is a product of two Python floats, rounded once to `T`.
            mu_dt: T::c(p.mu * p.dt),
            eta: T::c(ETA),
            half: T::c(0.5),
            one: T::one(),
            two: T::c(2.0),
            two_over_pi: T::c(2.0 / std::f64::consts::PI),
        }
    }
}

/// Row offsets of the edge-replicated neighbours above and below row `i`.
#[inline]
fn row_neighbours(i: usize, rows: usize, cols: usize) -> (usize, usize) {
    let up = i.saturating_sub(1);
    let down = if i + 1 < rows { i + 1 } else { i };
    (up * cols, down * cols)
}

/// One semi-implicit update (scikit-image `_cv_calculate_variation`) of the pixel with
/// value `c`, left/right/up/down neighbours `l, r, u, d`, image value `f` and region
/// term `diff`.
#[inline(always)]
fn update_pixel<T: Real>(k: &Consts<T>, c: T, l: T, r: T, u: T, d: T, diff: T) -> T {
    let phixp = r - c;
    let phixn = c - l;
    let phix0 = (r - l) / k.two;
    let phiyp = d - c;
    let phiyn = c - u;
    let phiy0 = (d - u) / k.two;
    let c1 = k.one / (k.eta + phixp * phixp + phiy0 * phiy0).sqrt();
    let c2 = k.one / (k.eta + phixn * phixn + phiy0 * phiy0).sqrt();
    let c3 = k.one / (k.eta + phix0 * phix0 + phiyp * phiyp).sqrt();
    let c4 = k.one / (k.eta + phix0 * phix0 + phiyn * phiyn).sqrt();
    let curv = r * c1 + l * c2 + d * c3 + u * c4;
    let delta = k.one / (k.one + c * c);
    let new_phi = c + (k.dt * delta) * (k.mu * curv + diff);
    new_phi / (k.one + k.mu_dt * delta * (c1 + c2 + c3 + c4))
}

/// Region term `-lambda1 (f - c1)^2 + lambda2 (f - c2)^2`.
#[inline(always)]
fn region_term<T: Real>(k: &Consts<T>, f: T, avg_in: T, avg_out: T) -> T {
    let a = f - avg_in;
    let b = f - avg_out;
    k.neg_lambda1 * (a * a) + k.lambda2 * (b * b)
}

/// Edge-length energy density `mu delta(phi) sqrt(fx^2 + fy^2)` of one pixel
/// (scikit-image `_cv_edge_length_term`), central differences.
#[inline(always)]
fn edge_length<T: Real>(k: &Consts<T>, c: T, l: T, r: T, u: T, d: T) -> T {
    let fy = (d - u) / k.two;
    let fx = (r - l) / k.two;
    let delta = k.one / (k.one + c * c);
    k.mu * delta * (fx * fx + fy * fy).sqrt()
}

/// `tan(pi / 8)`: above it, [`atan_f64`] reduces its argument by `pi / 4`.
const TAN_PI_8: f64 = 0.414_213_562_373_095_03;

/// `pi/4 - FRAC_PI_4`: the part of `pi/4` that `f64` rounds away (twice it for `pi/2`).
const FRAC_PI_4_LO: f64 = 3.061_616_997_868_383e-17;

/// Coefficients (ascending powers of `z = u^2`) of `g(z) = (atan(u) - u) / u^3` on
/// `0 <= z <= tan(pi/8)^2`: a degree-10 interpolant at the Chebyshev points of that
/// interval of the Taylor series `sum_k (-1)^k z^(k-1) / (2k + 1)`, converted to
/// powers of `z`. Maximum error 2.2e-16, below half an ulp of the result.
const ATAN_COEFFS: [f64; 11] = [
    -0.333_333_333_333_333_15,
    0.199_999_999_999_944_75,
    -0.142_857_142_845_556_26,
    0.111_111_110_094_653_15,
    -0.090_909_043_960_091_04,
    0.076_921_796_026_926_52,
    -0.066_644_665_644_646_58,
    0.058_577_936_833_089_46,
    -0.050_837_287_839_216_795,
    0.039_185_127_285_189_89,
    -0.019_123_132_465_447_678,
];

/// Arc tangent in `f64` without branches (so that loops over it vectorise), within two
/// ulp of the correctly rounded value: `|x| > 1` uses `pi/2 - atan(1/|x|)`, `t > tan(pi/8)` uses
/// `pi/4 + atan((t - 1)/(t + 1))`, and the reduced argument goes through
/// [`ATAN_COEFFS`] (the classical three-range scheme, e.g. Cody & Waite, *Software
/// Manual for the Elementary Functions*, 1980).
#[inline(always)]
fn atan_f64(x: f64) -> f64 {
    use std::f64::consts::{FRAC_PI_2, FRAC_PI_4};
    // Every branch is computed and then selected, so the compiler emits no jumps.
    let a = x.abs();
    let inv = a > 1.0;
    // min(a, 1/a): 1/a above 1, a below (a = 0 gives min(0, inf) = 0).
    let t = a.min(1.0 / a);
    let mid = t > TAN_PI_8;
    let reduced = (t - 1.0) / (t + 1.0);
    let u = if mid { reduced } else { t };
    let z = u * u;
    let mut g = ATAN_COEFFS[10];
    for &c in ATAN_COEFFS[..10].iter().rev() {
        g = g * z + c;
    }
    let r = u + u * (z * g);
    let r_mid = FRAC_PI_4 + (r + FRAC_PI_4_LO);
    let r = if mid { r_mid } else { r };
    let r_inv = FRAC_PI_2 - (r - 2.0 * FRAC_PI_4_LO);
    let r = if inv { r_inv } else { r };
    r.copysign(x)
}

/// Coefficients (ascending powers of `z`) of the `f32` counterpart of [`ATAN_COEFFS`]:
/// the degree-4 Chebyshev interpolant of the same `g(z)`, rounded to `f32`. Together with
/// the `f32` evaluation the arc tangent is within about two ulp (NumPy's `float32`
/// `arctan` is within 1.7 ulp).
const ATAN_COEFFS_F32: [f32; 5] = [
    -0.333_333_3,
    0.199_995_4,
    -0.142_639_56,
    0.107_437_31,
    -0.064_519_28,
];

/// `f32` version of [`atan_f64`], same reduction, computed in `f32`.
#[inline(always)]
fn atan_f32(x: f32) -> f32 {
    use std::f32::consts::{FRAC_PI_2, FRAC_PI_4};
    /// The part of `pi/4` that `f32` rounds away.
    const FRAC_PI_4_LO_F32: f32 = -2.185_569_4e-8;
    let a = x.abs();
    let inv = a > 1.0;
    let t = a.min(1.0 / a);
    #[allow(clippy::cast_possible_truncation)]
    let mid = t > TAN_PI_8 as f32;
    let reduced = (t - 1.0) / (t + 1.0);
    let u = if mid { reduced } else { t };
    let z = u * u;
    let mut g = ATAN_COEFFS_F32[4];
    for &c in ATAN_COEFFS_F32[..4].iter().rev() {
        g = g * z + c;
    }
    let r = u + u * (z * g);
    let r_mid = FRAC_PI_4 + (r + FRAC_PI_4_LO_F32);
    let r = if mid { r_mid } else { r };
    let r_inv = FRAC_PI_2 - (r - 2.0 * FRAC_PI_4_LO_F32);
    let r = if inv { r_inv } else { r };
    r.copysign(x)
}

/// Arc tangent in `T`: [`atan_f32`] for `f32`, [`atan_f64`] for `f64`. Both are
/// branch-free so that the Heaviside loop of the energy vectorises; they differ from the
/// C library (and from NumPy) by at most about two ulp.
#[inline(always)]
fn atan<T: Real>(x: T) -> T {
    // `Real` is sealed to f32 and f64, so the size identifies the type; the test is
    // resolved at compile time. The conversions are exact in both cases.
    if std::mem::size_of::<T>() == std::mem::size_of::<f32>() {
        #[allow(clippy::cast_possible_truncation)]
        let x32 = x.f64() as f32;
        T::c(f64::from(atan_f32(x32)))
    } else {
        T::c(atan_f64(x.f64()))
    }
}

/// Working buffers, allocated once per run.
struct Work<T> {
    rows: usize,
    cols: usize,
    /// Normalised image, row-major.
    img: Vec<T>,
    /// Scratch arrays for the pairwise sums.
    a: Vec<T>,
    b: Vec<T>,
    c: Vec<T>,
    d: Vec<T>,
}

impl<T: Real> Work<T> {
    /// Means of the image inside (`phi > 0`) and outside, as `_cv_calculate_averages`
    /// with the hard Heaviside: sums of `img * H` and `img * (1 - H)` over all pixels.
    fn hard_averages(&mut self, phi: &[T]) -> (T, T) {
        let cols = self.cols;
        let inside: usize = self
            .a
            .par_chunks_mut(cols)
            .zip(self.b.par_chunks_mut(cols))
            .zip(phi.par_chunks(cols).zip(self.img.par_chunks(cols)))
            .map(|((a, b), (phi, img))| {
                let mut inside = 0_usize;
                for ((a, b), (&p, &f)) in a.iter_mut().zip(b.iter_mut()).zip(phi.iter().zip(img)) {
                    let is_in = p > T::zero();
                    inside += usize::from(is_in);
                    *a = if is_in { f } else { T::zero() };
                    *b = if is_in { T::zero() } else { f };
                }
                inside
            })
            .sum();
        let mut avg_in = pairwise_sum(&self.a);
        let mut avg_out = pairwise_sum(&self.b);
        // Sums of 0/1 are exact counts.
        #[allow(clippy::cast_precision_loss)]
        let (h_sum, hinv_sum) = (T::c(inside as f64), T::c((phi.len() - inside) as f64));
        if h_sum != T::zero() {
            avg_in /= h_sum;
        }
        if hinv_sum != T::zero() {
            avg_out /= hinv_sum;
        }
        (avg_in, avg_out)
    }

    /// scikit-image `_cv_energy`: region energy with the smooth Heaviside
    /// `H = 0.5 (1 + (2/pi) atan(phi))` plus edge length `mu delta(phi) |grad phi|`.
    fn energy(&mut self, k: &Consts<T>, phi: &[T]) -> T {
        let (rows, cols) = (self.rows, self.cols);
        // a: H, b: 1 - H, c: img * H, d: img * (1 - H); rows in parallel (rayon).
        self.a
            .par_chunks_mut(cols)
            .zip(self.b.par_chunks_mut(cols))
            .zip(self.c.par_chunks_mut(cols).zip(self.d.par_chunks_mut(cols)))
            .zip(phi.par_chunks(cols).zip(self.img.par_chunks(cols)))
            .for_each(|(((a, b), (c, d)), (phi, img))| {
                for (((a, b), (c, d)), (&p, &f)) in a
                    .iter_mut()
                    .zip(b.iter_mut())
                    .zip(c.iter_mut().zip(d.iter_mut()))
                    .zip(phi.iter().zip(img))
                {
                    let h = k.half * (k.one + k.two_over_pi * atan(p));
                    let hinv = k.one - h;
                    *a = h;
                    *b = hinv;
                    *c = f * h;
                    *d = f * hinv;
                }
            });
        let h_sum = pairwise_sum(&self.a);
        let hinv_sum = pairwise_sum(&self.b);
        let mut avg_in = pairwise_sum(&self.c);
        let mut avg_out = pairwise_sum(&self.d);
        if h_sum != T::zero() {
            avg_in /= h_sum;
        }
        if hinv_sum != T::zero() {
            avg_out /= hinv_sum;
        }
        // c: region energy.
        for ((c, &f), (&h, &hinv)) in self
            .c
            .iter_mut()
            .zip(&self.img)
            .zip(self.a.iter().zip(&self.b))
        {
            let da = f - avg_in;
            let db = f - avg_out;
            *c = k.lambda1 * (da * da) * h + k.lambda2 * (db * db) * hinv;
        }
        // d: edge-length energy, central differences with replicated edges.
        self.d
            .par_chunks_mut(cols)
            .enumerate()
            .for_each(|(i, dst)| {
                let (up, down) = row_neighbours(i, rows, cols);
                let row = i * cols;
                let cur = &phi[row..row + cols];
                let above = &phi[up..up + cols];
                let below = &phi[down..down + cols];
                let edge = |j: usize| {
                    let l = cur[j.saturating_sub(1)];
                    let r = cur[if j + 1 < cols { j + 1 } else { j }];
                    edge_length(k, cur[j], l, r, above[j], below[j])
                };
                dst[0] = edge(0);
                if cols > 1 {
                    dst[cols - 1] = edge(cols - 1);
                }
                if cols > 2 {
                    let m = cols - 2;
                    let (l, c, r) = (&cur[..m], &cur[1..=m], &cur[2..]);
                    let (u, d) = (&above[1..=m], &below[1..=m]);
                    let o = &mut dst[1..=m];
                    for j in 0..m {
                        o[j] = edge_length(k, c[j], l[j], r[j], u[j], d[j]);
                    }
                }
            });
        pairwise_sum(&self.c) + pairwise_sum(&self.d)
    }

    /// One update of `phi` into `out`; returns scikit-image's `phivar`, the RMS change.
    fn step(&mut self, k: &Consts<T>, phi: &[T], out: &mut [T]) -> T {
        let (rows, cols) = (self.rows, self.cols);
        let (avg_in, avg_out) = self.hard_averages(phi);
        let img = &self.img;
        // Rows are independent: each is updated by one thread (rayon).
        out.par_chunks_mut(cols)
            .zip(self.a.par_chunks_mut(cols))
            .enumerate()
            .for_each(|(i, (dst, sq))| {
                let (up, down) = row_neighbours(i, rows, cols);
                let row = i * cols;
                let cur = &phi[row..row + cols];
                let above = &phi[up..up + cols];
                let below = &phi[down..down + cols];
                let img = &img[row..row + cols];
                let edge = |j: usize| {
                    let l = cur[j.saturating_sub(1)];
                    let r = cur[if j + 1 < cols { j + 1 } else { j }];
                    let diff = region_term(k, img[j], avg_in, avg_out);
                    update_pixel(k, cur[j], l, r, above[j], below[j], diff)
                };
                dst[0] = edge(0);
                if cols > 1 {
                    dst[cols - 1] = edge(cols - 1);
                }
                if cols > 2 {
                    // Interior: equal-length slices so the loop compiles without bounds checks.
                    let m = cols - 2;
                    let (l, c, r) = (&cur[..m], &cur[1..=m], &cur[2..]);
                    let (u, d, f) = (&above[1..=m], &below[1..=m], &img[1..=m]);
                    let o = &mut dst[1..=m];
                    for j in 0..m {
                        let diff = region_term(k, f[j], avg_in, avg_out);
                        o[j] = update_pixel(k, c[j], l[j], r[j], u[j], d[j], diff);
                    }
                }
                for ((s, &n), &p) in sq.iter_mut().zip(dst.iter()).zip(cur) {
                    let d = n - p;
                    *s = d * d;
                }
            });
        numpy_mean(&self.a).sqrt()
    }
}

/// The checkerboard initial level set of scikit-image (`_cv_checkerboard` with square
/// size 5): `sin(y * pi / 5) * sin(x * pi / 5)`, the products computed in `T`.
fn checkerboard<T: Real>(rows: usize, cols: usize) -> Vec<T> {
    let sf = T::c(std::f64::consts::PI / CHECKERBOARD_SQUARE);
    let sy: Vec<T> = (0..rows).map(|y| (T::c(y as f64) * sf).sin()).collect();
    let sx: Vec<T> = (0..cols).map(|x| (T::c(x as f64) * sf).sin()).collect();
    let mut phi = Vec::with_capacity(rows * cols);
    for &a in &sy {
        phi.extend(sx.iter().map(|&b| a * b));
    }
    phi
}

/// Chan-Vese segmentation of a grey image, as `skimage.segmentation.chan_vese(img, mu,
/// lambda1, lambda2, tol, max_num_iter, dt, init_level_set='checkerboard',
/// extended_output=True)` in scikit-image 0.26.
///
/// The image is first shifted and scaled to `[0, 1]` in `T` (`(img - min) / max` of the
/// shifted image; a constant image becomes all zeros). The initial level set is
/// scikit-image's checkerboard of 5-pixel squares; borders replicate the edge pixel. At
/// most `max_num_iter` updates are made; the run stops after the first update whose RMS
/// change `sqrt(mean((phi_new - phi_old)^2))` is `<= tol`. See the module documentation
/// for the update and [`ChanVeseResult`] for the outputs.
///
/// # Errors
/// [`ImagingError::EmptyImage`] / [`ImagingError::NonFinite`] for an empty or non-finite
/// image.
///
/// # Example
/// ```
/// use ndarray::Array2;
/// use phyvae_imaging::chan_vese::{ChanVeseParams, chan_vese};
///
/// // A bright square on a dark background.
/// let img = Array2::from_shape_fn((20, 20), |(i, j)| {
///     if (5..15).contains(&i) && (5..15).contains(&j) { 1.0_f64 } else { 0.0 }
/// });
/// let res = chan_vese(img.view(), &ChanVeseParams::default())?;
/// assert_eq!(res.energies.len(), res.iterations);
/// // The square and the background end up on opposite sides of the contour.
/// assert_ne!(res.segmentation[[10, 10]], res.segmentation[[0, 0]]);
/// # Ok::<(), phyvae_imaging::ImagingError>(())
/// ```
pub fn chan_vese<T: Real>(
    img: ArrayView2<'_, T>,
    params: &ChanVeseParams,
) -> Result<ChanVeseResult<T>> {
    check_finite(img)?;
    let (rows, cols) = img.dim();
    let n = rows * cols;

    let lo = img.iter().fold(T::infinity(), |m, &v| m.min(v));
    let mut norm: Vec<T> = img.iter().map(|&v| v - lo).collect();
    let hi = norm.iter().fold(T::neg_infinity(), |m, &v| m.max(v));
    if hi != T::zero() {
        for v in &mut norm {
            *v /= hi;
        }
    }

    let k = Consts::new(params);
    let tol = T::c(params.tol);
    let mut work = Work {
        rows,
        cols,
        img: norm,
        a: vec![T::zero(); n],
        b: vec![T::zero(); n],
        c: vec![T::zero(); n],
        d: vec![T::zero(); n],
    };
    let mut phi = checkerboard::<T>(rows, cols);
    let mut next = vec![T::zero(); n];
    let mut energies = Vec::new();
    let mut iterations = 0;
    let mut phivar = tol + T::one();
    while phivar > tol && iterations < params.max_num_iter {
        if params.record_energies {
            energies.push(work.energy(&k, &phi));
        }
        phivar = work.step(&k, &phi, &mut next);
        std::mem::swap(&mut phi, &mut next);
        iterations += 1;
    }
    let phi =
        Array2::from_shape_vec((rows, cols), phi).map_err(|_| ImagingError::ShapeMismatch {
            what: "chan_vese level set",
            expected: vec![rows, cols],
            found: vec![n],
        })?;
    Ok(ChanVeseResult {
        segmentation: phi.mapv(|v| v > T::zero()),
        phi,
        energies,
        iterations,
        converged: phivar <= tol,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn invalid_name(r: Result<ChanVeseParams>) -> &'static str {
        match r {
            Err(ImagingError::InvalidParameter { name, .. }) => name,
            other => panic!("expected InvalidParameter, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_skimage_defaults() {
        let p = ChanVeseParams::default();
        assert_eq!(p, ChanVeseParams::new().build().unwrap());
        assert_eq!(
            (
                p.mu(),
                p.lambda1(),
                p.lambda2(),
                p.tol(),
                p.max_num_iter(),
                p.dt()
            ),
            (0.25, 1.0, 1.0, 1e-3, 500, 0.5)
        );
        assert!(p.record_energies());
    }

    #[test]
    fn rejects_negative_mu() {
        assert_eq!(invalid_name(ChanVeseParams::new().mu(-0.1).build()), "mu");
    }

    #[test]
    fn rejects_nonpositive_lambda1() {
        let r = ChanVeseParams::new().lambda1(0.0).build();
        assert_eq!(invalid_name(r), "lambda1");
    }

    #[test]
    fn rejects_nonpositive_lambda2() {
        let r = ChanVeseParams::new().lambda2(-1.0).build();
        assert_eq!(invalid_name(r), "lambda2");
    }

    #[test]
    fn rejects_negative_tol() {
        assert_eq!(
            invalid_name(ChanVeseParams::new().tol(-1e-3).build()),
            "tol"
        );
    }

    #[test]
    fn rejects_zero_max_num_iter() {
        let r = ChanVeseParams::new().max_num_iter(0).build();
        assert_eq!(invalid_name(r), "max_num_iter");
    }

    #[test]
    fn rejects_nonpositive_dt() {
        assert_eq!(invalid_name(ChanVeseParams::new().dt(0.0).build()), "dt");
    }

    #[test]
    fn rejects_nan_parameters() {
        assert_eq!(
            invalid_name(ChanVeseParams::new().mu(f64::NAN).build()),
            "mu"
        );
        let r = ChanVeseParams::new().tol(f64::INFINITY).build();
        assert_eq!(invalid_name(r), "tol");
    }

    #[test]
    fn checkerboard_values() {
        // sin(0) = 0 on row/column 0; sin(pi/5) * sin(2 pi/5) at (1, 2).
        let phi = checkerboard::<f64>(3, 4);
        assert_eq!(phi[..4], [0.0; 4]);
        let s = |x: f64| (x * std::f64::consts::PI / 5.0).sin();
        assert!((phi[4 + 2] - s(1.0) * s(2.0)).abs() < 1e-15);
        // Sign flips every 5 pixels: sin(6 pi / 5) < 0.
        let big = checkerboard::<f64>(7, 7);
        assert!(big[7 + 6] < 0.0 && big[7 + 1] > 0.0);
    }

    #[test]
    fn pairwise_sum_matches_numpy_grouping() {
        // 16 values [1e8, 0.75 x 15] in f32: eight accumulators r0 = 1e8 + 0.75 -> 1e8,
        // r1..r7 = 1.5; ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        // = (1e8 + 3 -> 1e8) + 6 -> 1e8 + 8 (ulp 8, 6 rounds up). Sequential: 1e8.
        let mut a = [0.75_f32; 16];
        a[0] = 1e8;
        assert_eq!(pairwise_sum(&a), 1e8 + 8.0);
        assert_eq!(pairwise_sum(&[1.0_f64, 2.0, 3.0]), 6.0);
    }

    #[test]
    fn atan_matches_the_c_library_to_two_ulp() {
        // Reference: the platform's `atan` (correctly rounded in practice); covers the
        // three ranges, their boundaries, signs, huge and tiny arguments.
        let mut worst: f64 = 0.0;
        let mut xs: Vec<f64> = (-40_000..=40_000).map(|i| f64::from(i) * 1e-4).collect();
        xs.extend([
            1e-300,
            1e-8,
            TAN_PI_8,
            1.0,
            1.0 + 1e-15,
            1e8,
            1e300,
            f64::INFINITY,
        ]);
        for x in xs {
            for x in [x, -x, 1.0 / x] {
                let (got, want) = (atan_f64(x), x.atan());
                let ulp = want.abs().next_up() - want.abs();
                worst = worst.max((got - want).abs() / ulp);
            }
        }
        assert!(worst <= 2.0, "worst error {worst} ulp");
        assert_eq!(atan_f64(0.0), 0.0);
        assert!(atan_f64(f64::NAN).is_nan());
        // f32 against the C library's correctly rounded f64 value, in f32 ulps.
        let mut worst32: f64 = 0.0;
        for i in -400_000..=400_000 {
            let x = i as f32 * 1e-4;
            for x in [x, 1.0 / x] {
                let want = f64::from(x).atan();
                let ulp = f64::from((want.abs() as f32).next_up() - want.abs() as f32);
                worst32 = worst32.max((f64::from(atan(x)) - want).abs() / ulp);
            }
        }
        assert!(worst32 <= 2.5, "f32 worst error {worst32} ulp");
        assert_eq!(atan(0.0_f32), 0.0);
        assert_eq!(atan(f32::INFINITY), std::f32::consts::FRAC_PI_2);
    }

    #[test]
    fn one_update_by_hand() {
        // 1 x 2 image [0, 1]; checkerboard phi = [0, 0] (row 0). With phi = 0 everywhere
        // all differences vanish: C_i = 1/sqrt(1e-16) = 1e8, K = 0, delta = 1.
        // Hard partition: nothing has phi > 0, so c1 = 0 (empty sum, not divided) and
        // c2 = mean = 0.5. Region term: -(f - 0)^2 + (f - 0.5)^2 = 0.25 - f, i.e. 0.25
        // for f = 0 and -0.75 for f = 1. Update: (0 + 0.5 * 1 * (0 + term)) /
        // (1 + 0.125 * 1 * 4e8) = 0.5 * term / (1 + 5e7).
        let img = array![[0.0_f64, 1.0]];
        let p = ChanVeseParams::new().max_num_iter(1).build().unwrap();
        let res = chan_vese(img.view(), &p).unwrap();
        let den = 1.0 + 0.125 * 4e8;
        assert!((res.phi[[0, 0]] - 0.5 * 0.25 / den).abs() < 1e-20);
        assert!((res.phi[[0, 1]] - 0.5 * -0.75 / den).abs() < 1e-20);
        assert_eq!(res.segmentation, array![[true, false]]);
        assert_eq!(res.iterations, 1);
        // RMS change ~ 5e-9 <= tol.
        assert!(res.converged);
        // Initial energy: phi = 0 -> H = 0.5, averages 0.5 and 0.5; region energy
        // sum 0.5 * 0.25 * 2 terms * 2 pixels = 0.5; edge term 0.
        assert_eq!(res.energies.len(), 1);
        assert!((res.energies[0] - 0.5).abs() < 1e-15);
    }

    #[test]
    fn constant_image_is_all_zero_after_scaling() {
        let img = Array2::from_elem((4, 4), 7.0_f32);
        let res = chan_vese(img.view(), &ChanVeseParams::default()).unwrap();
        assert_eq!(res.phi.dim(), (4, 4));
        assert!(res.phi.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn energies_can_be_skipped_without_changing_phi() {
        let img = Array2::from_shape_fn((12, 9), |(i, j)| ((i * 7 + j * 3) % 5) as f64);
        let with = chan_vese(img.view(), &ChanVeseParams::default()).unwrap();
        let p = ChanVeseParams::new()
            .record_energies(false)
            .build()
            .unwrap();
        let without = chan_vese(img.view(), &p).unwrap();
        assert!(without.energies.is_empty());
        assert_eq!(with.phi, without.phi);
        assert_eq!(with.iterations, without.iterations);
        assert_eq!(with.energies.len(), with.iterations);
    }

    #[test]
    fn rejects_bad_images() {
        let empty = Array2::<f64>::zeros((3, 0));
        assert!(matches!(
            chan_vese(empty.view(), &ChanVeseParams::default()),
            Err(ImagingError::EmptyImage { .. })
        ));
        let bad = array![[0.0_f64, f64::INFINITY]];
        assert!(matches!(
            chan_vese(bad.view(), &ChanVeseParams::default()),
            Err(ImagingError::NonFinite { .. })
        ));
    }
}
