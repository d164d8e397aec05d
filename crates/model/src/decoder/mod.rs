//! The spatial (coordinate) decoder of the invariant VAEs: a fused CPU kernel
//! in `f32` with an explicit backward pass ([`DecoderWorkspace`]), the same
//! kernel as a candle custom op ([`FusedDecoder`]), and a plain candle
//! implementation that runs on any device ([`SpatialDecoder`]).
//!
//! Model (docs/METHOD.md section 2; pyroVED `sDecoderNet` with `coord_latent`):
//! for every patch `b` with content latents `z_b` (length `n`) and every pixel
//! `i` with coordinate `c = coords[b*N + i] = (x, y)`:
//!
//! ```text
//! a0    = Wc c + bc + Wz z_b                (Wc: H x 2, bc: H, Wz: H x n, no bias)
//! h0    = tanh(a0)
//! h1    = tanh(W1 h0 + b1)                  (W1: H x H, PyTorch (out, in) layout)
//! h2    = tanh(W2 h1 + b2)                  (W2: H x H)
//! logit = w3 . h2 + b3                      (w3: H, b3 scalar)
//! ```
//!
//! The coordinates are the grid of [`coord_grid`] after the invariance
//! transforms of pyroVED `transform_coordinates` (shift `g + k s`, rotation,
//! scale); the caller applies them (in candle, so that they are differentiated
//! there) and the kernel returns `dL/dcoords` for that purpose.
//!
//! The sigmoid of pyroVED's output layer is left out: the Bernoulli likelihood is
//! evaluated from logits ([`bce_with_logits`]), which is the stable form.
//!
//! Layout: the activations of all pixels of all patches form `(b*N) x H`
//! row-major matrices (row `b*N + i`), so layers 1 and 2 are single GEMMs
//! (`ndarray::linalg::general_mat_mul`, threaded by `matrixmultiply`).
//! `bc + Wz z_b` is one `H`-vector per patch and `Wc c` two FMAs per unit, so
//! layer 0 is an elementwise pass, not a GEMM.
//!
//! FLOP count per forward/backward, with `R = b*N` rows (b = 64, N = 48^2 = 2304
//! gives R = 147 456, H = 128):
//! - forward: layer 0 `5H` per row (2 FMAs + the per-patch vector), layers 1–2
//!   `2 * 2 R H^2` (GEMMs) `+ 2 R H` (bias), output `2 R H`: total
//!   `4 R H^2 + 9 R H` = 9.664e9 + 0.170e9 ≈ **9.83 GFLOP** (plus `3 R H` =
//!   56.6 M tanh);
//! - backward: four GEMMs (`dW2 = D2ᵀ h1`, `D1' = D2 W2`, `dW1 = D1ᵀ h0`,
//!   `D0' = D1 W1`) `4 * 2 R H^2` = 19.33e9, plus elementwise passes per row:
//!   delta2 with the `db2`, `dw3` sums `7H`, delta1 with the `db1` sum `4H`,
//!   delta0 with the `bc`, `Wc` sums `8H`, `dL/dcoords = delta0 Wc` `4H`
//!   (two FMAs per unit): `23 R H` = 0.43e9; total ≈ **19.8 GFLOP**;
//! - forward + backward ≈ **29.6 GFLOP** per batch of 64 patches.
//!
//! No allocation: [`DecoderWorkspace::new`] allocates every buffer for a
//! capacity `(B, window, n, H)` once; [`DecoderWorkspace::forward`] and
//! [`DecoderWorkspace::backward`] take any batch `b <= B`, use the first `b`
//! patches' worth of each buffer, only create views into those buffers (views
//! are not allocations) and write into them, and into a caller-owned
//! [`DecoderGrads`]. (`general_mat_mul` from `matrixmultiply` packs into its own
//! thread-local scratch; that is the only memory traffic outside the workspace.)

mod fused;
mod loss;
mod spatial;
mod tanh;

pub use fused::FusedDecoder;
pub use loss::{bce_with_logits, bce_with_logits_grad, sigmoid};
pub use spatial::SpatialDecoder;
pub use tanh::{tanh_f32, tanh_slice};

use multiversion::multiversion;
use ndarray::linalg::general_mat_mul;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut2, Axis, Slice};
use rand::{Rng, RngExt};
use rayon::prelude::*;

use crate::{ModelError, Result};

/// Default hidden width `H` (pyroVED `hidden_dim`).
pub const DEFAULT_HIDDEN: usize = 128;
/// Default number of content latents `n` (the paper's choice).
pub const DEFAULT_CONTENT_LATENTS: usize = 2;
/// Default translation prior `k` (pyroVED `dx_prior`).
pub const DEFAULT_TRANSLATION_PRIOR: f32 = 0.1;

fn shape_err(what: &'static str, expected: &[usize], found: &[usize]) -> ModelError {
    ModelError::ShapeMismatch {
        what,
        expected: expected.to_vec(),
        found: found.to_vec(),
    }
}

fn check_shape(what: &'static str, expected: &[usize], found: &[usize]) -> Result<()> {
    if expected == found {
        Ok(())
    } else {
        Err(shape_err(what, expected, found))
    }
}

/// The coordinate grid of pyroVED `imcoordgrid((window, window))`, shape
/// `(window^2, 2)`.
///
/// pyroVED builds `xx = linspace(-1, 1, window)`, `yy = linspace(1, -1, window)`,
/// `x0, x1 = torch.meshgrid(xx, yy)` (default `indexing='ij'`) and stacks the two
/// flattened grids as columns. Hence, for pixel `(row r, column c)` of a
/// row-major flattened patch (index `r * window + c`):
/// - column 0 = `xx[r]` = `-1 + 2 r / (window - 1)`: it increases DOWN the rows;
/// - column 1 = `yy[c]` = `1 - 2 c / (window - 1)`: it decreases ALONG a row.
///
/// So pyroVED's "x" coordinate runs along the image rows and "y" along the
/// columns (reversed); the shift latent `dx` moves the decoded image vertically.
/// This is reproduced exactly here so that trained latents mean the same as in
/// pyroVED. Values are computed in `f64` and rounded once. `window = 1` gives the
/// single point `(-1, 1)` (torch `linspace(a, b, 1) = [a]`).
///
/// # Errors
/// [`ModelError::InvalidParameter`] when `window == 0`.
///
/// ```
/// use phyvae_model::decoder::coord_grid;
/// let g = coord_grid(3).unwrap();
/// // pixel (row 0, column 2): (xx[0], yy[2]) = (-1, -1)
/// assert_eq!((g[[2, 0]], g[[2, 1]]), (-1.0, -1.0));
/// // pixel (row 2, column 0): (xx[2], yy[0]) = (1, 1)
/// assert_eq!((g[[6, 0]], g[[6, 1]]), (1.0, 1.0));
/// ```
pub fn coord_grid(window: usize) -> Result<Array2<f32>> {
    if window == 0 {
        return Err(ModelError::InvalidParameter {
            name: "window",
            value: "0".into(),
            rule: "must be at least 1",
        });
    }
    let lin = |i: usize, start: f64, end: f64| -> f32 {
        if window == 1 {
            start as f32
        } else {
            (start + (end - start) * i as f64 / (window - 1) as f64) as f32
        }
    };
    // grid: (N, 2), N = window^2
    let mut grid = Array2::zeros((window * window, 2));
    for r in 0..window {
        for c in 0..window {
            grid[[r * window + c, 0]] = lin(r, -1.0, 1.0);
            grid[[r * window + c, 1]] = lin(c, 1.0, -1.0);
        }
    }
    Ok(grid)
}

/// Parameters of the spatial decoder, PyTorch `nn.Linear` layout `(out, in)`.
///
/// Fields are public for optimisers; every kernel re-checks the shapes against
/// its workspace before use.
#[derive(Debug, Clone, PartialEq)]
pub struct DecoderParams {
    /// Coordinate weights `Wc`, `H x 2` (pyroVED `coord_latent.fc_coord.weight`).
    pub wc: Array2<f32>,
    /// Coordinate bias `bc`, `H` (pyroVED `coord_latent.fc_coord.bias`).
    pub bc: Array1<f32>,
    /// Latent weights `Wz`, `H x n`, no bias (pyroVED `coord_latent.fc_latent`).
    pub wz: Array2<f32>,
    /// Hidden layer 1 weights `W1`, `H x H`.
    pub w1: Array2<f32>,
    /// Hidden layer 1 bias `b1`, `H`.
    pub b1: Array1<f32>,
    /// Hidden layer 2 weights `W2`, `H x H`.
    pub w2: Array2<f32>,
    /// Hidden layer 2 bias `b2`, `H`.
    pub b2: Array1<f32>,
    /// Output weights `w3`, `H` (the single row of `Linear(H, 1).weight`).
    pub w3: Array1<f32>,
    /// Output bias `b3`.
    pub b3: f32,
}

/// Shapes of the arrays of a [`DecoderParams`] with `n` latents and width `h`.
fn check_param_shapes(
    wc: &Array2<f32>,
    bc: &Array1<f32>,
    wz: &Array2<f32>,
    w1: &Array2<f32>,
    layers: [&Array1<f32>; 3],
    w2: &Array2<f32>,
) -> Result<(usize, usize)> {
    let h = wc.nrows();
    let n = wz.ncols();
    if h == 0 || n == 0 {
        return Err(shape_err(
            "decoder Wc/Wz (H and n must be >= 1)",
            &[h, n],
            &[0],
        ));
    }
    check_shape("decoder Wc", &[h, 2], wc.shape())?;
    check_shape("decoder bc", &[h], bc.shape())?;
    check_shape("decoder Wz", &[h, n], wz.shape())?;
    check_shape("decoder W1", &[h, h], w1.shape())?;
    check_shape("decoder b1", &[h], layers[0].shape())?;
    check_shape("decoder W2", &[h, h], w2.shape())?;
    check_shape("decoder b2", &[h], layers[1].shape())?;
    check_shape("decoder w3", &[h], layers[2].shape())?;
    Ok((h, n))
}

impl DecoderParams {
    /// Builds parameters from arrays, checking that all shapes agree with
    /// `H = wc.nrows()` and `n = wz.ncols()`.
    ///
    /// # Errors
    /// [`ModelError::ShapeMismatch`] naming the first array with a wrong shape.
    #[allow(clippy::too_many_arguments)] // one argument per tensor of the layer stack
    pub fn new(
        wc: Array2<f32>,
        bc: Array1<f32>,
        wz: Array2<f32>,
        w1: Array2<f32>,
        b1: Array1<f32>,
        w2: Array2<f32>,
        b2: Array1<f32>,
        w3: Array1<f32>,
        b3: f32,
    ) -> Result<Self> {
        check_param_shapes(&wc, &bc, &wz, &w1, [&b1, &b2, &w3], &w2)?;
        Ok(Self {
            wc,
            bc,
            wz,
            w1,
            b1,
            w2,
            b2,
            w3,
            b3,
        })
    }

    /// PyTorch default `nn.Linear` initialisation: every weight and bias of a
    /// layer with `fan_in` inputs drawn from `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`
    /// (`kaiming_uniform_(a = sqrt(5))` gives exactly this bound for weights).
    /// Fan-ins: 2 for `Wc`, `bc`; `n` for `Wz`; `H` for the rest. Draw order:
    /// `Wc, bc, Wz, W1, b1, W2, b2, w3, b3`, each row-major.
    ///
    /// # Errors
    /// [`ModelError::InvalidParameter`] when `n_latent` or `hidden` is 0.
    ///
    /// ```
    /// use phyvae_model::decoder::DecoderParams;
    /// use rand::SeedableRng;
    /// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    /// let p = DecoderParams::init(2, 128, &mut rng).unwrap();
    /// assert_eq!(p.w1.dim(), (128, 128));
    /// assert!(p.wc.iter().all(|w| w.abs() <= 1.0 / 2f32.sqrt()));
    /// ```
    pub fn init<R: Rng + ?Sized>(n_latent: usize, hidden: usize, rng: &mut R) -> Result<Self> {
        if n_latent == 0 {
            return Err(ModelError::InvalidParameter {
                name: "n_latent",
                value: "0".into(),
                rule: "must be at least 1",
            });
        }
        if hidden == 0 {
            return Err(ModelError::InvalidParameter {
                name: "hidden",
                value: "0".into(),
                rule: "must be at least 1",
            });
        }
        let mut uni = |fan_in: usize| {
            let a = 1.0 / (fan_in as f32).sqrt();
            rng.random_range(-a..a)
        };
        let wc = Array2::from_shape_simple_fn((hidden, 2), || uni(2));
        let bc = Array1::from_shape_simple_fn(hidden, || uni(2));
        let wz = Array2::from_shape_simple_fn((hidden, n_latent), || uni(n_latent));
        let w1 = Array2::from_shape_simple_fn((hidden, hidden), || uni(hidden));
        let b1 = Array1::from_shape_simple_fn(hidden, || uni(hidden));
        let w2 = Array2::from_shape_simple_fn((hidden, hidden), || uni(hidden));
        let b2 = Array1::from_shape_simple_fn(hidden, || uni(hidden));
        let w3 = Array1::from_shape_simple_fn(hidden, || uni(hidden));
        let b3 = uni(hidden);
        Ok(Self {
            wc,
            bc,
            wz,
            w1,
            b1,
            w2,
            b2,
            w3,
            b3,
        })
    }

    /// All-zero tensors shaped like `params` (e.g. gradients to accumulate into).
    #[must_use]
    pub fn zeros_like(params: &DecoderParams) -> Self {
        let h = params.hidden();
        let n = params.n_latent();
        Self {
            wc: Array2::zeros((h, 2)),
            bc: Array1::zeros(h),
            wz: Array2::zeros((h, n)),
            w1: Array2::zeros((h, h)),
            b1: Array1::zeros(h),
            w2: Array2::zeros((h, h)),
            b2: Array1::zeros(h),
            w3: Array1::zeros(h),
            b3: 0.0,
        }
    }

    /// Hidden width `H`.
    #[must_use]
    pub fn hidden(&self) -> usize {
        self.wc.nrows()
    }

    /// Number of content latents `n`.
    #[must_use]
    pub fn n_latent(&self) -> usize {
        self.wz.ncols()
    }

    fn check(&self) -> Result<(usize, usize)> {
        check_param_shapes(
            &self.wc,
            &self.bc,
            &self.wz,
            &self.w1,
            [&self.b1, &self.b2, &self.w3],
            &self.w2,
        )
    }
}

/// Gradients of a scalar loss with respect to every [`DecoderParams`] tensor:
/// the same tensors, shapes and field names (`grads.w1` is `dL/dW1`, ...).
/// Make one with [`DecoderParams::zeros_like`].
pub type DecoderGrads = DecoderParams;

/// Every buffer the forward and backward passes need for batches of up to
/// `B` (the capacity) patches of a fixed `(window, n, H)`, allocated once by
/// [`DecoderWorkspace::new`].
///
/// [`forward`](Self::forward) and [`backward`](Self::backward) never allocate:
/// they only make views of the first `b` patches' worth of these buffers. One
/// workspace is reused across batches of any size `b <= B`; results do not
/// depend on what an earlier call left in it.
#[derive(Debug, Clone)]
pub struct DecoderWorkspace {
    capacity: usize,
    window: usize,
    n_latent: usize,
    hidden: usize,
    /// Patches `b` of the last forward pass (0: no valid forward pass).
    batch: usize,
    /// Number of forward passes started on this workspace.
    generation: u64,
    /// Copy of the content latents of the last forward, `B x n` (first `b` rows used).
    z: Array2<f32>,
    /// Copy of the coordinates of the last forward, `(B*N) x 2`.
    coords: Array2<f32>,
    /// Layer activations, each `(B*N) x H` row-major.
    h0: Vec<f32>,
    h1: Vec<f32>,
    h2: Vec<f32>,
    /// Delta buffers, each `(B*N) x H` row-major (ping-pong in backward).
    da: Vec<f32>,
    db: Vec<f32>,
    /// Logits, `B x N`.
    logits: Array2<f32>,
    /// Per-patch `H`-vectors (`bc + Wz z_b` in forward; partial sums in backward), `B x H`.
    patch_a: Vec<f32>,
    /// Second per-patch partial-sum buffer, `B x H`.
    patch_b: Vec<f32>,
    /// Per-patch layer-0 coordinate sums, `B x 2H` (`[sum_i d0 x_i, sum_i d0 y_i]`).
    patch_g: Vec<f32>,
    /// Per-patch scalar partial sums, `B`.
    patch_s: Vec<f32>,
    /// Columns of `Wc`, each `H`.
    wcx: Vec<f32>,
    wcy: Vec<f32>,
    /// `dL/dz`, `B x n`.
    dz: Array2<f32>,
    /// `dL/dcoords`, `(B*N) x 2`.
    dcoords: Array2<f32>,
}

fn mat(buf: &[f32], rows: usize, cols: usize) -> Result<ArrayView2<'_, f32>> {
    ArrayView2::from_shape((rows, cols), buf)
        .map_err(|_| shape_err("workspace buffer", &[rows, cols], &[buf.len()]))
}

fn mat_mut(buf: &mut [f32], rows: usize, cols: usize) -> Result<ArrayViewMut2<'_, f32>> {
    let len = buf.len();
    ArrayViewMut2::from_shape((rows, cols), buf)
        .map_err(|_| shape_err("workspace buffer", &[rows, cols], &[len]))
}

/// `out[j] = sum over the rows of v[j]` for a row-major buffer of rows of length `len`.
fn sum_rows(buf: &[f32], len: usize, out: &mut [f32]) {
    out.iter_mut().for_each(|o| *o = 0.0);
    for row in buf.chunks_exact(len) {
        for (o, &v) in out.iter_mut().zip(row) {
            *o += v;
        }
    }
}

/// Number of independent partial sums in [`dot`] (one SIMD register of f32 lanes
/// on AVX; lets the compiler vectorise a reduction it may not reassociate).
const DOT_LANES: usize = 8;

/// `sum_j a[j] b[j]` with [`DOT_LANES`] interleaved partial sums.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; DOT_LANES];
    let (ac, bc) = (a.chunks_exact(DOT_LANES), b.chunks_exact(DOT_LANES));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(&x, &y)| x * y)
        .sum();
    for (ca, cb) in ac.zip(bc) {
        for ((s, &x), &y) in acc.iter_mut().zip(ca).zip(cb) {
            *s += x * y;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// One hidden layer over all rows: `out = tanh(input . w^T + b)`, both
/// `(rows x H)` row-major, the bias and tanh applied per patch of `n_pix` rows
/// in parallel.
fn dense_tanh(
    input: &[f32],
    out: &mut [f32],
    w: &Array2<f32>,
    b: &Array1<f32>,
    n_pix: usize,
) -> Result<()> {
    let h = w.nrows();
    let rows = input.len() / h;
    general_mat_mul(
        1.0,
        &mat(input, rows, h)?,
        &w.t(),
        0.0,
        &mut mat_mut(out, rows, h)?,
    );
    let b = b
        .as_slice()
        .ok_or_else(|| shape_err("hidden bias (contiguous)", &[h], b.shape()))?;
    out.par_chunks_mut(n_pix * h).for_each(|c| bias_tanh(c, b));
    Ok(())
}

// The elementwise passes below are compiled for the baseline target and, via
// `multiversion`, for AVX2+FMA and AVX-512, chosen once at run time. They use
// no fused multiply-add and no reassociation, so every version gives
// bit-identical results; only the vector width changes.

/// Layer 0 for one patch: `row[j] = tanh(wcx[j] x + wcy[j] y + c[j])` for every
/// `H`-row of `chunk`, with `(x, y)` the row's coordinates in `xy`.
#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512dq+avx512vl+avx2+fma",
    "x86_64+avx2+fma"
))]
fn layer0_tanh(chunk: &mut [f32], c: &[f32], xy: &[f32], wcx: &[f32], wcy: &[f32]) {
    for (row, p) in chunk.chunks_exact_mut(c.len()).zip(xy.chunks_exact(2)) {
        let (x, y) = (p[0], p[1]);
        for (((v, &ax), &ay), &cj) in row.iter_mut().zip(wcx).zip(wcy).zip(c) {
            *v = tanh_f32(ax * x + ay * y + cj);
        }
    }
}

/// `row[j] = tanh(row[j] + bias[j])` for every `H`-row of `chunk`.
#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512dq+avx512vl+avx2+fma",
    "x86_64+avx2+fma"
))]
fn bias_tanh(chunk: &mut [f32], bias: &[f32]) {
    for row in chunk.chunks_exact_mut(bias.len()) {
        for (v, &b) in row.iter_mut().zip(bias) {
            *v = tanh_f32(*v + b);
        }
    }
}

/// Output layer and layer 2 of the backward pass for one patch: with
/// `g = dL/dlogit` of each pixel, `d[j] = g w3[j] (1 - h2[j]^2)` for every
/// `H`-row; column sums of `d` into `acc_db2`, of `g h2` into `acc_dw3`;
/// returns the sum of `g` (this patch's share of `dL/db3`).
#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512dq+avx512vl+avx2+fma",
    "x86_64+avx2+fma"
))]
fn output_backward(
    d: &mut [f32],
    act: &[f32],
    dl: ArrayView1<'_, f32>,
    w3: &[f32],
    acc_db2: &mut [f32],
    acc_dw3: &mut [f32],
) -> f32 {
    let h = w3.len();
    acc_db2.iter_mut().for_each(|a| *a = 0.0);
    acc_dw3.iter_mut().for_each(|a| *a = 0.0);
    let mut sg = 0.0f32;
    for ((drow, hrow), &g) in d
        .chunks_exact_mut(h)
        .zip(act.chunks_exact(h))
        .zip(dl.iter())
    {
        sg += g;
        for ((((dv, &hv), &w), a2), a3) in drow
            .iter_mut()
            .zip(hrow)
            .zip(w3)
            .zip(acc_db2.iter_mut())
            .zip(acc_dw3.iter_mut())
        {
            let v = g * w * (1.0 - hv * hv);
            *dv = v;
            *a2 += v;
            *a3 += g * hv;
        }
    }
    sg
}

/// Layer 0 of the backward pass for one patch: `d[j] *= 1 - h0[j]^2` for every
/// `H`-row, column sums of the result into `acc` (`dL/dbc`), of the result
/// times the row's `x` and `y` into the two halves of `accg` (`dL/dWc`), and
/// `dL/dcoords` of the row (`d . wcx`, `d . wcy`) into `dxy`.
#[allow(clippy::too_many_arguments)]
#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512dq+avx512vl+avx2+fma",
    "x86_64+avx2+fma"
))]
fn layer0_backward(
    d: &mut [f32],
    act: &[f32],
    acc: &mut [f32],
    accg: &mut [f32],
    xy: &[f32],
    dxy: &mut [f32],
    wcx: &[f32],
    wcy: &[f32],
) {
    let h = acc.len();
    acc.iter_mut().for_each(|a| *a = 0.0);
    accg.iter_mut().for_each(|a| *a = 0.0);
    let (px, py) = accg.split_at_mut(h);
    for (((drow, hrow), p), dp) in d
        .chunks_exact_mut(h)
        .zip(act.chunks_exact(h))
        .zip(xy.chunks_exact(2))
        .zip(dxy.chunks_exact_mut(2))
    {
        let (x, y) = (p[0], p[1]);
        for ((((dv, &hv), a), ax), ay) in drow
            .iter_mut()
            .zip(hrow)
            .zip(acc.iter_mut())
            .zip(px.iter_mut())
            .zip(py.iter_mut())
        {
            let v = *dv * (1.0 - hv * hv);
            *dv = v;
            *a += v;
            *ax += v * x;
            *ay += v * y;
        }
        // The row is still in L1: two vectorised dot products.
        dp[0] = dot(drow, wcx);
        dp[1] = dot(drow, wcy);
    }
}

/// `d[j] *= 1 - h[j]^2` for a chunk, accumulating column sums of the result in `acc`.
#[multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512dq+avx512vl+avx2+fma",
    "x86_64+avx2+fma"
))]
fn tanh_backward(d: &mut [f32], h: &[f32], acc: &mut [f32]) {
    acc.iter_mut().for_each(|a| *a = 0.0);
    let width = acc.len();
    for (drow, hrow) in d.chunks_exact_mut(width).zip(h.chunks_exact(width)) {
        for ((dv, &hv), a) in drow.iter_mut().zip(hrow).zip(acc.iter_mut()) {
            *dv *= 1.0 - hv * hv;
            *a += *dv;
        }
    }
}

/// The contiguous row-major data of an array created by this module.
fn flat<'a>(a: &'a Array2<f32>, what: &'static str) -> Result<&'a [f32]> {
    a.as_slice().ok_or_else(|| shape_err(what, a.shape(), &[]))
}

/// Mutable counterpart of [`flat`].
fn flat_mut<'a>(a: &'a mut Array2<f32>, what: &'static str) -> Result<&'a mut [f32]> {
    let shape = [a.nrows(), a.ncols()];
    a.as_slice_mut().ok_or_else(|| shape_err(what, &shape, &[]))
}

impl DecoderWorkspace {
    /// Allocates every buffer for batches of up to `capacity` patches of
    /// `window x window` pixels, `n_latent` content latents and width `hidden`.
    ///
    /// # Errors
    /// [`ModelError::InvalidParameter`] when a size is 0.
    pub fn new(capacity: usize, window: usize, n_latent: usize, hidden: usize) -> Result<Self> {
        for (name, v) in [
            ("batch", capacity),
            ("window", window),
            ("n_latent", n_latent),
            ("hidden", hidden),
        ] {
            if v == 0 {
                return Err(ModelError::InvalidParameter {
                    name,
                    value: "0".into(),
                    rule: "must be at least 1",
                });
            }
        }
        let n_pix = window * window;
        let act = capacity * n_pix * hidden;
        Ok(Self {
            capacity,
            window,
            n_latent,
            hidden,
            batch: 0,
            generation: 0,
            z: Array2::zeros((capacity, n_latent)),
            coords: Array2::zeros((capacity * n_pix, 2)),
            h0: vec![0.0; act],
            h1: vec![0.0; act],
            h2: vec![0.0; act],
            da: vec![0.0; act],
            db: vec![0.0; act],
            logits: Array2::zeros((capacity, n_pix)),
            patch_a: vec![0.0; capacity * hidden],
            patch_b: vec![0.0; capacity * hidden],
            patch_g: vec![0.0; capacity * 2 * hidden],
            patch_s: vec![0.0; capacity],
            wcx: vec![0.0; hidden],
            wcy: vec![0.0; hidden],
            dz: Array2::zeros((capacity, n_latent)),
            dcoords: Array2::zeros((capacity * n_pix, 2)),
        })
    }

    /// Largest batch `B` the buffers hold.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Patches `b` of the last forward pass (0 before the first successful one).
    #[must_use]
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Patch side in pixels.
    #[must_use]
    pub fn window(&self) -> usize {
        self.window
    }

    /// Pixels per patch `N = window^2`.
    #[must_use]
    pub fn n_pixels(&self) -> usize {
        self.window * self.window
    }

    /// Number of content latents `n`.
    #[must_use]
    pub fn n_latent(&self) -> usize {
        self.n_latent
    }

    /// Hidden width `H`.
    #[must_use]
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// Number of forward passes started on this workspace (valid or not). A
    /// backward pass uses the activations of the latest one; callers that may
    /// interleave decodes compare this counter to detect a stale backward.
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Logits of the last forward pass, `b x N`.
    #[must_use]
    pub fn logits(&self) -> ArrayView2<'_, f32> {
        self.logits.slice_axis(Axis(0), Slice::from(..self.batch))
    }

    /// `dL/dz` of the last backward pass, `b x n`.
    #[must_use]
    pub fn grad_z(&self) -> ArrayView2<'_, f32> {
        self.dz.slice_axis(Axis(0), Slice::from(..self.batch))
    }

    /// `dL/dcoords` of the last backward pass, `(b*N) x 2` (row `b*N + i`:
    /// `delta0 . Wc` of pixel `i` of patch `b`).
    #[must_use]
    pub fn grad_coords(&self) -> ArrayView2<'_, f32> {
        self.dcoords
            .slice_axis(Axis(0), Slice::from(..self.batch * self.n_pixels()))
    }

    fn check_params(&self, params: &DecoderParams) -> Result<()> {
        let (h, n) = params.check()?;
        check_shape(
            "decoder params (H, n) vs workspace",
            &[self.hidden, self.n_latent],
            &[h, n],
        )
    }

    /// Forward pass: logits `b x N` for content latents `z` (`b x n`, any
    /// `1 <= b <= B`) and per-pixel coordinates `coords` (`(b*N) x 2`, row
    /// `b*N + i` = the transformed coordinate of pixel `i` of patch `b`; columns
    /// as in [`coord_grid`]). Stores the activations for
    /// [`backward`](Self::backward). No allocation.
    ///
    /// # Errors
    /// [`ModelError::InvalidParameter`] (`batch`) when `b` is 0 or exceeds the
    /// capacity; [`ModelError::ShapeMismatch`] when `params`, `z` or `coords`
    /// do not match the workspace.
    ///
    /// ```
    /// use phyvae_model::decoder::{coord_grid, DecoderParams, DecoderWorkspace};
    /// use ndarray::{concatenate, Array2, Axis};
    /// use rand::SeedableRng;
    /// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    /// let p = DecoderParams::init(2, 16, &mut rng).unwrap();
    /// let mut ws = DecoderWorkspace::new(4, 6, 2, 16).unwrap();
    /// // 3 patches (below the capacity of 4), all on the untransformed grid
    /// let g = coord_grid(6).unwrap();
    /// let coords = concatenate(Axis(0), &[g.view(), g.view(), g.view()]).unwrap();
    /// let z = Array2::<f32>::zeros((3, 2));
    /// let logits = ws.forward(&p, z.view(), coords.view()).unwrap();
    /// assert_eq!(logits.dim(), (3, 36));
    /// // same latents, same coordinates: same logits
    /// assert_eq!(logits.row(0), logits.row(2));
    /// ```
    pub fn forward(
        &mut self,
        params: &DecoderParams,
        z: ArrayView2<'_, f32>,
        coords: ArrayView2<'_, f32>,
    ) -> Result<ArrayView2<'_, f32>> {
        self.check_params(params)?;
        let bsz = z.nrows();
        if bsz == 0 || bsz > self.capacity {
            return Err(ModelError::InvalidParameter {
                name: "batch",
                value: format!("{bsz} (workspace capacity {})", self.capacity),
                rule: "a decoded batch must hold between 1 and the workspace capacity patches",
            });
        }
        let (h, n_pix, n) = (self.hidden, self.n_pixels(), self.n_latent);
        let rows = bsz * n_pix;
        check_shape("content latents z", &[bsz, n], z.shape())?;
        check_shape("coordinates", &[rows, 2], coords.shape())?;
        self.generation = self.generation.wrapping_add(1);
        self.batch = 0;
        self.z
            .slice_axis_mut(Axis(0), Slice::from(..bsz))
            .assign(&z);
        self.coords
            .slice_axis_mut(Axis(0), Slice::from(..rows))
            .assign(&coords);
        for j in 0..h {
            self.wcx[j] = params.wc[[j, 0]];
            self.wcy[j] = params.wc[[j, 1]];
        }
        // patch_a: b x H, c_b = bc + Wz z_b
        for (b, c) in self.patch_a[..bsz * h].chunks_exact_mut(h).enumerate() {
            for (j, cj) in c.iter_mut().enumerate() {
                let mut acc = params.bc[j];
                for l in 0..n {
                    acc += params.wz[[j, l]] * self.z[[b, l]];
                }
                *cj = acc;
            }
        }
        // layer 0: h0 ((b*N) x H) = tanh(Wc c + c_b), elementwise, parallel over patches
        {
            let coords = &flat(&self.coords, "coordinates buffer")?[..rows * 2];
            let (wcx, wcy) = (&self.wcx[..], &self.wcy[..]);
            self.h0[..rows * h]
                .par_chunks_mut(n_pix * h)
                .zip(self.patch_a[..bsz * h].par_chunks(h))
                .zip(coords.par_chunks(n_pix * 2))
                .for_each(|((chunk, c), xy)| layer0_tanh(chunk, c, xy, wcx, wcy));
        }
        // layer 1: h1 ((b*N) x H) = tanh(h0 ((b*N) x H) . W1^T (H x H) + b1)
        dense_tanh(
            &self.h0[..rows * h],
            &mut self.h1[..rows * h],
            &params.w1,
            &params.b1,
            n_pix,
        )?;
        // layer 2: h2 ((b*N) x H) = tanh(h1 ((b*N) x H) . W2^T (H x H) + b2)
        dense_tanh(
            &self.h1[..rows * h],
            &mut self.h2[..rows * h],
            &params.w2,
            &params.b2,
            n_pix,
        )?;
        // output: logits (b x N) = h2 ((b*N) x H) . w3 (H) + b3
        let w3 = params
            .w3
            .as_slice()
            .ok_or_else(|| shape_err("w3 (contiguous)", &[h], params.w3.shape()))?;
        let b3 = params.b3;
        let logits = &mut flat_mut(&mut self.logits, "logits buffer")?[..rows];
        logits
            .par_chunks_mut(n_pix)
            .zip(self.h2[..rows * h].par_chunks(n_pix * h))
            .for_each(|(out, act)| {
                for (o, row) in out.iter_mut().zip(act.chunks_exact(h)) {
                    *o = dot(row, w3) + b3;
                }
            });
        self.batch = bsz;
        Ok(self.logits())
    }

    /// Backward pass for the last [`forward`](Self::forward) (which must have used
    /// the same `params`): given `dL/dlogit` (`b x N`, `b` of that forward),
    /// writes every parameter gradient into `grads` (overwriting it) and
    /// `dL/dz`, `dL/dcoords` into the workspace ([`grad_z`](Self::grad_z),
    /// [`grad_coords`](Self::grad_coords)). The activations are left intact, so
    /// the backward may be repeated. No allocation.
    ///
    /// # Errors
    /// [`ModelError::ShapeMismatch`] on a shape that does not match the
    /// workspace or the last forward; [`ModelError::InvalidParameter`] when no
    /// successful forward pass preceded.
    pub fn backward(
        &mut self,
        params: &DecoderParams,
        dlogits: ArrayView2<'_, f32>,
        grads: &mut DecoderGrads,
    ) -> Result<()> {
        if self.batch == 0 {
            return Err(ModelError::InvalidParameter {
                name: "workspace",
                value: "no forward pass".into(),
                rule: "backward needs a preceding forward with the same parameters",
            });
        }
        self.check_params(params)?;
        let (gh, gn) = grads.check()?;
        check_shape(
            "decoder grads (H, n) vs workspace",
            &[self.hidden, self.n_latent],
            &[gh, gn],
        )?;
        let (bsz, h, n_pix) = (self.batch, self.hidden, self.n_pixels());
        check_shape("dL/dlogits", &[bsz, n_pix], dlogits.shape())?;
        let rows = bsz * n_pix;
        let n_act = rows * h;
        let w3 = params
            .w3
            .as_slice()
            .ok_or_else(|| shape_err("w3 (contiguous)", &[h], params.w3.shape()))?;

        // delta2 (da, (b*N) x H) = g * w3 * (1 - h2^2); per patch: sums of delta2
        // (-> db2), of g * h2 (-> dw3) and of g (-> db3).
        let dl = &dlogits;
        self.da[..n_act]
            .par_chunks_mut(n_pix * h)
            .zip(self.h2[..n_act].par_chunks(n_pix * h))
            .zip(self.patch_a[..bsz * h].par_chunks_mut(h))
            .zip(self.patch_b[..bsz * h].par_chunks_mut(h))
            .zip(self.patch_s[..bsz].par_iter_mut())
            .enumerate()
            .for_each(|(b, ((((d, act), acc_db2), acc_dw3), acc_db3))| {
                *acc_db3 = output_backward(d, act, dl.row(b), w3, acc_db2, acc_dw3);
            });
        self.reduce_into(bsz, &mut grads.b2, &mut grads.w3)?;
        grads.b3 = self.patch_s[..bsz].iter().sum();

        // dW2 (H x H) = delta2^T (H x (b*N)) . h1 ((b*N) x H)
        // db ((b*N) x H) = delta2 ((b*N) x H) . W2 (H x H)
        {
            let d2 = mat(&self.da[..n_act], rows, h)?;
            let a1 = mat(&self.h1[..n_act], rows, h)?;
            general_mat_mul(1.0, &d2.t(), &a1, 0.0, &mut grads.w2);
            let mut out = mat_mut(&mut self.db[..n_act], rows, h)?;
            general_mat_mul(1.0, &d2, &params.w2, 0.0, &mut out);
        }
        // delta1 = db * (1 - h1^2); per-patch column sums -> db1
        self.db[..n_act]
            .par_chunks_mut(n_pix * h)
            .zip(self.h1[..n_act].par_chunks(n_pix * h))
            .zip(self.patch_a[..bsz * h].par_chunks_mut(h))
            .for_each(|((d, act), acc)| tanh_backward(d, act, acc));
        let b1 = grads
            .b1
            .as_slice_mut()
            .ok_or_else(|| shape_err("grad b1 (contiguous)", &[h], &[]))?;
        sum_rows(&self.patch_a[..bsz * h], h, b1);

        // dW1 (H x H) = delta1^T (H x (b*N)) . h0 ((b*N) x H)
        // da ((b*N) x H) = delta1 ((b*N) x H) . W1 (H x H)
        {
            let d1 = mat(&self.db[..n_act], rows, h)?;
            let a0 = mat(&self.h0[..n_act], rows, h)?;
            general_mat_mul(1.0, &d1.t(), &a0, 0.0, &mut grads.w1);
            let mut out = mat_mut(&mut self.da[..n_act], rows, h)?;
            general_mat_mul(1.0, &d1, &params.w1, 0.0, &mut out);
        }
        // delta0 = da * (1 - h0^2); per patch: S_b = sum_i delta0 (patch_a, b x H),
        // P_b = sum_i delta0 * (x_i, y_i) (patch_g, b x 2H); per pixel:
        // dL/dcoords = (delta0 . Wc[:, 0], delta0 . Wc[:, 1]).
        {
            let coords = &flat(&self.coords, "coordinates buffer")?[..rows * 2];
            let dcoords = &mut flat_mut(&mut self.dcoords, "dcoords buffer")?[..rows * 2];
            let (wcx, wcy) = (&self.wcx[..], &self.wcy[..]);
            self.da[..n_act]
                .par_chunks_mut(n_pix * h)
                .zip(self.h0[..n_act].par_chunks(n_pix * h))
                .zip(self.patch_a[..bsz * h].par_chunks_mut(h))
                .zip(self.patch_g[..bsz * 2 * h].par_chunks_mut(2 * h))
                .zip(coords.par_chunks(n_pix * 2))
                .zip(dcoords.par_chunks_mut(n_pix * 2))
                .for_each(|(((((d, act), acc), accg), xy), dxy)| {
                    layer0_backward(d, act, acc, accg, xy, dxy, wcx, wcy);
                });
        }

        // Layer-0 reductions over patches (b x H work, serial).
        grads.bc.fill(0.0);
        grads.wc.fill(0.0);
        grads.wz.fill(0.0);
        for b in 0..bsz {
            let sb = &self.patch_a[b * h..(b + 1) * h];
            let pg = &self.patch_g[b * 2 * h..(b + 1) * 2 * h];
            for j in 0..h {
                let v = sb[j];
                grads.bc[j] += v;
                grads.wc[[j, 0]] += pg[j];
                grads.wc[[j, 1]] += pg[h + j];
                for l in 0..self.n_latent {
                    grads.wz[[j, l]] += v * self.z[[b, l]];
                }
            }
            for l in 0..self.n_latent {
                self.dz[[b, l]] = (0..h).map(|j| params.wz[[j, l]] * sb[j]).sum();
            }
        }
        Ok(())
    }

    /// Sums the first `bsz` rows of the per-patch buffers `patch_a` into
    /// `first` and of `patch_b` into `second`.
    fn reduce_into(
        &self,
        bsz: usize,
        first: &mut Array1<f32>,
        second: &mut Array1<f32>,
    ) -> Result<()> {
        let h = self.hidden;
        let f = first
            .as_slice_mut()
            .ok_or_else(|| shape_err("gradient (contiguous)", &[h], &[]))?;
        sum_rows(&self.patch_a[..bsz * h], h, f);
        let s = second
            .as_slice_mut()
            .ok_or_else(|| shape_err("gradient (contiguous)", &[h], &[]))?;
        sum_rows(&self.patch_b[..bsz * h], h, s);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn grid_matches_pyroved_imcoordgrid() {
        // imcoordgrid((4, 4)) in pyroVED (meshgrid 'ij'):
        // [[-1, 1], [-1, 1/3], [-1, -1/3], [-1, -1], [-1/3, 1], ... [1, -1]]
        let g = coord_grid(4).unwrap();
        assert_eq!(g.dim(), (16, 2));
        let third = 1.0f32 / 3.0;
        assert_eq!(g.row(0).to_vec(), vec![-1.0, 1.0]);
        assert!((g[[1, 1]] - third).abs() < 1e-7 && g[[1, 0]] == -1.0);
        assert!((g[[2, 1]] + third).abs() < 1e-7);
        assert_eq!(g.row(3).to_vec(), vec![-1.0, -1.0]);
        assert!((g[[4, 0]] + third).abs() < 1e-7 && g[[4, 1]] == 1.0);
        assert_eq!(g.row(15).to_vec(), vec![1.0, -1.0]);
    }

    #[test]
    fn dot_with_remainder() {
        // 1*1 + 2*2 + ... + 11*11 = 11 * 12 * 23 / 6 = 506 (8 lanes + 3 tail)
        let a: Vec<f32> = (1..=11).map(|i| i as f32).collect();
        assert_eq!(dot(&a, &a), 506.0);
    }

    #[test]
    fn grid_rejects_zero_window() {
        assert!(matches!(
            coord_grid(0),
            Err(ModelError::InvalidParameter { name: "window", .. })
        ));
    }

    #[test]
    fn params_new_rejects_bad_shape() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let p = DecoderParams::init(2, 4, &mut rng).unwrap();
        let ok = DecoderParams::new(
            p.wc.clone(),
            p.bc.clone(),
            p.wz.clone(),
            p.w1.clone(),
            p.b1.clone(),
            p.w2.clone(),
            p.b2.clone(),
            p.w3.clone(),
            p.b3,
        );
        assert_eq!(ok.unwrap(), p);
        let bad = DecoderParams::new(
            p.wc.clone(),
            p.bc.clone(),
            p.wz.clone(),
            Array2::zeros((4, 3)),
            p.b1.clone(),
            p.w2.clone(),
            p.b2.clone(),
            p.w3.clone(),
            p.b3,
        );
        assert!(matches!(
            bad,
            Err(ModelError::ShapeMismatch {
                what: "decoder W1",
                ..
            })
        ));
        let bad = DecoderParams::new(
            p.wc.clone(),
            p.bc.clone(),
            p.wz.clone(),
            p.w1.clone(),
            p.b1.clone(),
            p.w2.clone(),
            p.b2.clone(),
            Array1::zeros(5),
            p.b3,
        );
        assert!(matches!(
            bad,
            Err(ModelError::ShapeMismatch {
                what: "decoder w3",
                ..
            })
        ));
    }

    #[test]
    fn init_bounds_and_determinism() {
        let mut r1 = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut r2 = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let p = DecoderParams::init(3, 16, &mut r1).unwrap();
        assert_eq!(p, DecoderParams::init(3, 16, &mut r2).unwrap());
        let bound_h = 1.0 / 4.0; // 1/sqrt(16)
        assert!(p.w1.iter().chain(p.w2.iter()).all(|w| w.abs() <= bound_h));
        assert!(p.wz.iter().all(|w| w.abs() <= 1.0 / 3f32.sqrt()));
        // Not degenerate: W1 spreads over most of its range.
        let max = p.w1.iter().fold(0.0f32, |m, w| m.max(w.abs()));
        assert!(max > 0.9 * bound_h);
        assert!(matches!(
            DecoderParams::init(0, 16, &mut r1),
            Err(ModelError::InvalidParameter {
                name: "n_latent",
                ..
            })
        ));
        assert!(matches!(
            DecoderParams::init(2, 0, &mut r1),
            Err(ModelError::InvalidParameter { name: "hidden", .. })
        ));
    }

    #[test]
    fn workspace_rejects_bad_parameters() {
        assert!(matches!(
            DecoderWorkspace::new(0, 4, 2, 8),
            Err(ModelError::InvalidParameter { name: "batch", .. })
        ));
        assert!(matches!(
            DecoderWorkspace::new(1, 0, 2, 8),
            Err(ModelError::InvalidParameter { name: "window", .. })
        ));
        assert!(matches!(
            DecoderWorkspace::new(1, 4, 0, 8),
            Err(ModelError::InvalidParameter {
                name: "n_latent",
                ..
            })
        ));
        assert!(matches!(
            DecoderWorkspace::new(1, 4, 2, 0),
            Err(ModelError::InvalidParameter { name: "hidden", .. })
        ));
    }

    #[test]
    fn forward_rejects_mismatched_inputs_and_backward_needs_forward() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let p = DecoderParams::init(2, 8, &mut rng).unwrap();
        let mut ws = DecoderWorkspace::new(2, 3, 2, 8).unwrap();
        let mut g = DecoderGrads::zeros_like(&p);
        let dl = Array2::<f32>::zeros((2, 9));
        assert!(matches!(
            ws.backward(&p, dl.view(), &mut g),
            Err(ModelError::InvalidParameter {
                name: "workspace",
                ..
            })
        ));
        let coords = Array2::<f32>::zeros((18, 2));
        let z = Array2::<f32>::zeros((2, 3));
        assert!(matches!(
            ws.forward(&p, z.view(), coords.view()),
            Err(ModelError::ShapeMismatch {
                what: "content latents z",
                ..
            })
        ));
        let p16 = DecoderParams::init(2, 16, &mut rng).unwrap();
        let z = Array2::<f32>::zeros((2, 2));
        assert!(matches!(
            ws.forward(&p16, z.view(), coords.view()),
            Err(ModelError::ShapeMismatch { .. })
        ));
        // coordinates for 1 patch with latents for 2
        let c9 = Array2::<f32>::zeros((9, 2));
        assert!(matches!(
            ws.forward(&p, z.view(), c9.view()),
            Err(ModelError::ShapeMismatch {
                what: "coordinates",
                ..
            })
        ));
        // 3 patches in a workspace of capacity 2
        let z3 = Array2::<f32>::zeros((3, 2));
        let c27 = Array2::<f32>::zeros((27, 2));
        assert!(matches!(
            ws.forward(&p, z3.view(), c27.view()),
            Err(ModelError::InvalidParameter { name: "batch", .. })
        ));
        let z0 = Array2::<f32>::zeros((0, 2));
        let c0 = Array2::<f32>::zeros((0, 2));
        assert!(matches!(
            ws.forward(&p, z0.view(), c0.view()),
            Err(ModelError::InvalidParameter { name: "batch", .. })
        ));
        // a forward for 1 patch, then dL/dlogits for 2: rejected
        let z1 = Array2::<f32>::zeros((1, 2));
        ws.forward(&p, z1.view(), c9.view()).unwrap();
        assert_eq!(ws.batch(), 1);
        assert!(matches!(
            ws.backward(&p, dl.view(), &mut g),
            Err(ModelError::ShapeMismatch {
                what: "dL/dlogits",
                ..
            })
        ));
        // a forward rejected by its checks leaves the counter and the buffers untouched
        let before = ws.generation();
        assert!(ws.forward(&p16, z1.view(), c9.view()).is_err());
        assert_eq!(ws.generation(), before);
        ws.forward(&p, z.view(), c9.view()).unwrap_err();
        assert_eq!(ws.batch(), 1);
    }

    /// H = 1, n = 1, one pixel: weights chosen so the chain is easy to follow.
    fn tiny_params() -> DecoderParams {
        // Wc = [0.5, 0.25], bc = 0.1, Wz = [2], W1 = [1], b1 = 0, W2 = [1], b2 = 0, w3 = 3, b3 = -1
        DecoderParams::new(
            ndarray::array![[0.5, 0.25]],
            ndarray::array![0.1],
            ndarray::array![[2.0]],
            ndarray::array![[1.0]],
            ndarray::array![0.0],
            ndarray::array![[1.0]],
            ndarray::array![0.0],
            ndarray::array![3.0],
            -1.0,
        )
        .unwrap()
    }

    /// Hand-computed case: coordinate (-0.5, 0), z = 0.2:
    /// a0 = 0.5 * -0.5 + 0.25 * 0 + 0.1 + 2 * 0.2 = 0.25,
    /// logit = 3 * tanh(tanh(tanh(0.25))) - 1.
    #[test]
    fn tiny_hand_computed_forward() {
        let p = tiny_params();
        let mut ws = DecoderWorkspace::new(1, 1, 1, 1).unwrap();
        let out = ws
            .forward(
                &p,
                ndarray::array![[0.2f32]].view(),
                ndarray::array![[-0.5f32, 0.0]].view(),
            )
            .unwrap();
        let expected = 3.0 * 0.25f64.tanh().tanh().tanh() - 1.0;
        assert!((f64::from(out[[0, 0]]) - expected).abs() < 1e-6);
    }

    /// Same case, loss = logit: with t0 = tanh(0.25), t1 = tanh(t0), t2 = tanh(t1),
    /// delta0 = 3 (1 - t2^2) (1 - t1^2) (1 - t0^2) (W1 = W2 = 1), and by the chain rule
    /// dL/dcoords = delta0 * (0.5, 0.25), dL/dz = 2 delta0,
    /// dL/dWc = delta0 * (-0.5, 0), dL/dbc = delta0, dL/dw3 = t2, dL/db3 = 1.
    #[test]
    fn tiny_hand_computed_backward() {
        let p = tiny_params();
        let mut ws = DecoderWorkspace::new(2, 1, 1, 1).unwrap();
        ws.forward(
            &p,
            ndarray::array![[0.2f32]].view(),
            ndarray::array![[-0.5f32, 0.0]].view(),
        )
        .unwrap();
        let mut g = DecoderGrads::zeros_like(&p);
        ws.backward(&p, ndarray::array![[1.0f32]].view(), &mut g)
            .unwrap();
        let t0 = 0.25f64.tanh();
        let t1 = t0.tanh();
        let t2 = t1.tanh();
        let d0 = 3.0 * (1.0 - t2 * t2) * (1.0 - t1 * t1) * (1.0 - t0 * t0);
        let close = |got: f32, want: f64| (f64::from(got) - want).abs() < 1e-6;
        let dc = ws.grad_coords();
        assert_eq!(dc.dim(), (1, 2));
        assert!(close(dc[[0, 0]], 0.5 * d0) && close(dc[[0, 1]], 0.25 * d0));
        assert!(close(ws.grad_z()[[0, 0]], 2.0 * d0));
        assert!(close(g.wc[[0, 0]], -0.5 * d0) && close(g.wc[[0, 1]], 0.0));
        assert!(close(g.bc[0], d0));
        assert!(close(g.w3[0], t2));
        assert!(close(g.b3, 1.0));
    }
}
