//! The spatial (coordinate) decoder of the shift-invariant VAE as a fused CPU
//! kernel in `f32` with an explicit backward pass.
//!
//! Model (docs/METHOD.md section 2; pyroVED `sDecoderNet` with `coord_latent`):
//! for every patch `b` with content latents `z_b` (length `n`) and shift latents
//! `s_b = (dx, dy)`, and every pixel `i` with grid coordinate `G[i]`
//! (see [`coord_grid`]):
//!
//! ```text
//! g'    = G[i] + k s_b                      (k: translation prior, pyroVED dx_prior)
//! a0    = Wc g' + bc + Wz z_b               (Wc: H x 2, bc: H, Wz: H x n, no bias)
//! h0    = tanh(a0)
//! h1    = tanh(W1 h0 + b1)                  (W1: H x H, PyTorch (out, in) layout)
//! h2    = tanh(W2 h1 + b2)                  (W2: H x H)
//! logit = w3 . h2 + b3                      (w3: H, b3 scalar)
//! ```
//!
//! The sigmoid of pyroVED's output layer is left out: the Bernoulli likelihood is
//! evaluated from logits ([`bce_with_logits`]), which is the stable form.
//!
//! Layout: the activations of all pixels of all patches form `(B*N) x H`
//! row-major matrices (row `b*N + i`), so layers 1 and 2 are single GEMMs
//! (`ndarray::linalg::general_mat_mul`, threaded by `matrixmultiply`).
//! `bc + Wz z_b` is one `H`-vector per patch and `Wc g'` two FMAs per unit, so
//! layer 0 is an elementwise pass, not a GEMM.
//!
//! FLOP count per forward/backward, with `R = B*N` rows (B = 64, N = 48^2 = 2304
//! gives R = 147 456, H = 128):
//! - forward: layer 0 `5H` per row (2 FMAs + bias), layers 1–2 `2 * 2 R H^2`
//!   (GEMMs) `+ 2 R H` (bias), output `2 R H`: total `4 R H^2 + 9 R H`
//!   = 9.664e9 + 0.170e9 ≈ **9.83 GFLOP** (plus `3 R H` = 56.6 M tanh);
//! - backward: four GEMMs (`dW2 = D2ᵀ h1`, `D1' = D2 W2`, `dW1 = D1ᵀ h0`,
//!   `D0' = D1 W1`) `4 * 2 R H^2` = 19.33e9, plus elementwise passes
//!   (`tanh' = 1 - h^2` products, column sums, layer-0 reductions) about `16 R H`
//!   = 0.30e9: total ≈ **19.6 GFLOP**;
//! - forward + backward ≈ **29.5 GFLOP** per batch of 64 patches.
//!
//! No allocation: [`DecoderWorkspace::new`] allocates every buffer for a given
//! `(B, window, n, H)` once; [`DecoderWorkspace::forward`] and
//! [`DecoderWorkspace::backward`] only create views into those buffers (views are
//! not allocations) and write into them, and into a caller-owned
//! [`DecoderGrads`]. (`general_mat_mul` from `matrixmultiply` packs into its own
//! thread-local scratch; that is the only memory traffic outside the workspace.)

mod loss;
mod tanh;

pub use loss::{bce_with_logits, bce_with_logits_grad, sigmoid};
pub use tanh::{tanh_f32, tanh_slice};

use ndarray::linalg::general_mat_mul;
use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2};
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

/// Every buffer the forward and backward passes need for a fixed
/// `(B, window, n, H)`, allocated once by [`DecoderWorkspace::new`].
///
/// [`forward`](Self::forward) and [`backward`](Self::backward) never allocate:
/// they only make views of these buffers. One workspace is reused across
/// batches; results do not depend on what an earlier call left in it.
#[derive(Debug, Clone)]
pub struct DecoderWorkspace {
    batch: usize,
    window: usize,
    n_latent: usize,
    hidden: usize,
    k: f32,
    /// Coordinate grid, `N x 2`.
    grid: Array2<f32>,
    /// Copy of the content latents of the last forward, `B x n`.
    z: Array2<f32>,
    /// Copy of the shift latents of the last forward, `B x 2`.
    s: Array2<f32>,
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
    /// Per-patch layer-0 coordinate sums, `B x 2H` (`[sum_i d0 G[i,0], sum_i d0 G[i,1]]`).
    patch_g: Vec<f32>,
    /// Per-patch scalar partial sums, `B`.
    patch_s: Vec<f32>,
    /// Columns of `Wc`, each `H`.
    wcx: Vec<f32>,
    wcy: Vec<f32>,
    /// `dL/dz`, `B x n`.
    dz: Array2<f32>,
    /// `dL/ds`, `B x 2`.
    ds: Array2<f32>,
    forward_done: bool,
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

/// `out[j] += v[j]` over the `B` rows of a `B x len` buffer, written to `out`.
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

/// `row[j] = tanh(row[j] + bias[j])` for every `H`-row of `chunk`.
fn bias_tanh(chunk: &mut [f32], bias: &[f32]) {
    for row in chunk.chunks_exact_mut(bias.len()) {
        for (v, &b) in row.iter_mut().zip(bias) {
            *v = tanh_f32(*v + b);
        }
    }
}

/// `d[j] *= 1 - h[j]^2` for a chunk, accumulating column sums of the result in `acc`.
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

impl DecoderWorkspace {
    /// Allocates every buffer for batches of `batch` patches of `window x window`
    /// pixels, `n_latent` content latents, width `hidden`, and translation prior
    /// `k` (pyroVED `dx_prior`; `k = 0` disables the shift).
    ///
    /// # Errors
    /// [`ModelError::InvalidParameter`] when a size is 0 or `k` is negative or
    /// not finite.
    pub fn new(
        batch: usize,
        window: usize,
        n_latent: usize,
        hidden: usize,
        k: f32,
    ) -> Result<Self> {
        for (name, v) in [("batch", batch), ("n_latent", n_latent), ("hidden", hidden)] {
            if v == 0 {
                return Err(ModelError::InvalidParameter {
                    name,
                    value: "0".into(),
                    rule: "must be at least 1",
                });
            }
        }
        if !(k.is_finite() && k >= 0.0) {
            return Err(ModelError::InvalidParameter {
                name: "k",
                value: k.to_string(),
                rule: "translation prior must be finite and >= 0",
            });
        }
        let grid = coord_grid(window)?;
        let n_pix = window * window;
        let act = batch * n_pix * hidden;
        Ok(Self {
            batch,
            window,
            n_latent,
            hidden,
            k,
            grid,
            z: Array2::zeros((batch, n_latent)),
            s: Array2::zeros((batch, 2)),
            h0: vec![0.0; act],
            h1: vec![0.0; act],
            h2: vec![0.0; act],
            da: vec![0.0; act],
            db: vec![0.0; act],
            logits: Array2::zeros((batch, n_pix)),
            patch_a: vec![0.0; batch * hidden],
            patch_b: vec![0.0; batch * hidden],
            patch_g: vec![0.0; batch * 2 * hidden],
            patch_s: vec![0.0; batch],
            wcx: vec![0.0; hidden],
            wcy: vec![0.0; hidden],
            dz: Array2::zeros((batch, n_latent)),
            ds: Array2::zeros((batch, 2)),
            forward_done: false,
        })
    }

    /// Batch size `B`.
    #[must_use]
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Pixels per patch `N = window^2`.
    #[must_use]
    pub fn n_pixels(&self) -> usize {
        self.window * self.window
    }

    /// The coordinate grid ([`coord_grid`]), `N x 2`.
    #[must_use]
    pub fn grid(&self) -> ArrayView2<'_, f32> {
        self.grid.view()
    }

    /// Logits of the last forward pass, `B x N`.
    #[must_use]
    pub fn logits(&self) -> ArrayView2<'_, f32> {
        self.logits.view()
    }

    /// `dL/dz` of the last backward pass, `B x n`.
    #[must_use]
    pub fn grad_z(&self) -> ArrayView2<'_, f32> {
        self.dz.view()
    }

    /// `dL/ds` (shift latents `(dx, dy)`) of the last backward pass, `B x 2`.
    #[must_use]
    pub fn grad_s(&self) -> ArrayView2<'_, f32> {
        self.ds.view()
    }

    fn check_params(&self, params: &DecoderParams) -> Result<()> {
        let (h, n) = params.check()?;
        check_shape(
            "decoder params (H, n) vs workspace",
            &[self.hidden, self.n_latent],
            &[h, n],
        )
    }

    /// Forward pass: logits `B x N` for content latents `z` (`B x n`) and shift
    /// latents `s` (`B x 2`, columns `dx, dy` added to grid columns 0 and 1).
    /// Stores the activations for [`backward`](Self::backward). No allocation.
    ///
    /// # Errors
    /// [`ModelError::ShapeMismatch`] when `params`, `z` or `s` do not match the
    /// workspace.
    ///
    /// ```
    /// use phyvae_model::decoder::{DecoderParams, DecoderWorkspace};
    /// use ndarray::Array2;
    /// use rand::SeedableRng;
    /// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    /// let p = DecoderParams::init(2, 16, &mut rng).unwrap();
    /// let mut ws = DecoderWorkspace::new(4, 6, 2, 16, 0.1).unwrap();
    /// let z = Array2::<f32>::zeros((4, 2));
    /// let s = Array2::<f32>::zeros((4, 2));
    /// let logits = ws.forward(&p, z.view(), s.view()).unwrap();
    /// assert_eq!(logits.dim(), (4, 36));
    /// ```
    pub fn forward(
        &mut self,
        params: &DecoderParams,
        z: ArrayView2<'_, f32>,
        s: ArrayView2<'_, f32>,
    ) -> Result<ArrayView2<'_, f32>> {
        self.check_params(params)?;
        check_shape("content latents z", &[self.batch, self.n_latent], z.shape())?;
        check_shape("shift latents s", &[self.batch, 2], s.shape())?;
        let (bsz, h, n_pix, k) = (self.batch, self.hidden, self.n_pixels(), self.k);
        let rows = bsz * n_pix;
        self.forward_done = false;
        self.z.assign(&z);
        self.s.assign(&s);
        for j in 0..h {
            self.wcx[j] = params.wc[[j, 0]];
            self.wcy[j] = params.wc[[j, 1]];
        }
        // patch_a: B x H, c_b = bc + Wz z_b
        for (b, c) in self.patch_a.chunks_exact_mut(h).enumerate() {
            for (j, cj) in c.iter_mut().enumerate() {
                let mut acc = params.bc[j];
                for l in 0..self.n_latent {
                    acc += params.wz[[j, l]] * self.z[[b, l]];
                }
                *cj = acc;
            }
        }
        // layer 0: h0 ((B*N) x H) = tanh(Wc g' + c_b), elementwise, parallel over patches
        {
            let (grid, svals, wcx, wcy) = (&self.grid, &self.s, &self.wcx[..], &self.wcy[..]);
            self.h0
                .par_chunks_mut(n_pix * h)
                .zip(self.patch_a.par_chunks(h))
                .enumerate()
                .for_each(|(b, (chunk, c))| {
                    let (sx, sy) = (k * svals[[b, 0]], k * svals[[b, 1]]);
                    for (i, row) in chunk.chunks_exact_mut(h).enumerate() {
                        let gx = grid[[i, 0]] + sx;
                        let gy = grid[[i, 1]] + sy;
                        for (((v, &ax), &ay), &cj) in row.iter_mut().zip(wcx).zip(wcy).zip(c) {
                            *v = tanh_f32(ax * gx + ay * gy + cj);
                        }
                    }
                });
        }
        // layer 1: h1 ((B*N) x H) = h0 ((B*N) x H) . W1^T (H x H), then + b1, tanh
        {
            let a = mat(&self.h0, rows, h)?;
            let mut out = mat_mut(&mut self.h1, rows, h)?;
            general_mat_mul(1.0, &a, &params.w1.t(), 0.0, &mut out);
        }
        let b1 = params
            .b1
            .as_slice()
            .ok_or_else(|| shape_err("b1 (contiguous)", &[h], params.b1.shape()))?;
        self.h1
            .par_chunks_mut(n_pix * h)
            .for_each(|c| bias_tanh(c, b1));
        // layer 2: h2 ((B*N) x H) = h1 ((B*N) x H) . W2^T (H x H), then + b2, tanh
        {
            let a = mat(&self.h1, rows, h)?;
            let mut out = mat_mut(&mut self.h2, rows, h)?;
            general_mat_mul(1.0, &a, &params.w2.t(), 0.0, &mut out);
        }
        let b2 = params
            .b2
            .as_slice()
            .ok_or_else(|| shape_err("b2 (contiguous)", &[h], params.b2.shape()))?;
        self.h2
            .par_chunks_mut(n_pix * h)
            .for_each(|c| bias_tanh(c, b2));
        // output: logits (B x N) = h2 ((B*N) x H) . w3 (H) + b3
        let w3 = params
            .w3
            .as_slice()
            .ok_or_else(|| shape_err("w3 (contiguous)", &[h], params.w3.shape()))?;
        let b3 = params.b3;
        let logits = self
            .logits
            .as_slice_mut()
            .ok_or_else(|| shape_err("logits (contiguous)", &[bsz, n_pix], &[]))?;
        logits
            .par_chunks_mut(n_pix)
            .zip(self.h2.par_chunks(n_pix * h))
            .for_each(|(out, act)| {
                for (o, row) in out.iter_mut().zip(act.chunks_exact(h)) {
                    *o = dot(row, w3) + b3;
                }
            });
        self.forward_done = true;
        Ok(self.logits.view())
    }

    /// Backward pass for the last [`forward`](Self::forward) (which must have used
    /// the same `params`): given `dL/dlogit` (`B x N`), writes every parameter
    /// gradient into `grads` (overwriting it) and `dL/dz`, `dL/ds` into the
    /// workspace ([`grad_z`](Self::grad_z), [`grad_s`](Self::grad_s)). No
    /// allocation.
    ///
    /// # Errors
    /// [`ModelError::ShapeMismatch`] on a shape that does not match the
    /// workspace; [`ModelError::InvalidParameter`] when no forward pass preceded.
    pub fn backward(
        &mut self,
        params: &DecoderParams,
        dlogits: ArrayView2<'_, f32>,
        grads: &mut DecoderGrads,
    ) -> Result<()> {
        if !self.forward_done {
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
        let (bsz, h, n_pix, k) = (self.batch, self.hidden, self.n_pixels(), self.k);
        check_shape("dL/dlogits", &[bsz, n_pix], dlogits.shape())?;
        let rows = bsz * n_pix;
        let w3 = params
            .w3
            .as_slice()
            .ok_or_else(|| shape_err("w3 (contiguous)", &[h], params.w3.shape()))?;

        // delta2 (da, (B*N) x H) = g * w3 * (1 - h2^2); per patch: sums of delta2
        // (-> db2), of g * h2 (-> dw3) and of g (-> db3).
        let dl = &dlogits;
        self.da
            .par_chunks_mut(n_pix * h)
            .zip(self.h2.par_chunks(n_pix * h))
            .zip(self.patch_a.par_chunks_mut(h))
            .zip(self.patch_b.par_chunks_mut(h))
            .zip(self.patch_s.par_iter_mut())
            .enumerate()
            .for_each(|(b, ((((d, act), acc_db2), acc_dw3), acc_db3))| {
                acc_db2.iter_mut().for_each(|a| *a = 0.0);
                acc_dw3.iter_mut().for_each(|a| *a = 0.0);
                let mut sg = 0.0f32;
                for (i, (drow, hrow)) in d.chunks_exact_mut(h).zip(act.chunks_exact(h)).enumerate()
                {
                    let g = dl[[b, i]];
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
                *acc_db3 = sg;
            });
        self.reduce_into(&mut grads.b2, &mut grads.w3)?;
        grads.b3 = self.patch_s.iter().sum();

        // dW2 (H x H) = delta2^T (H x (B*N)) . h1 ((B*N) x H)
        // db ((B*N) x H) = delta2 ((B*N) x H) . W2 (H x H)
        {
            let d2 = mat(&self.da, rows, h)?;
            let a1 = mat(&self.h1, rows, h)?;
            general_mat_mul(1.0, &d2.t(), &a1, 0.0, &mut grads.w2);
            let mut out = mat_mut(&mut self.db, rows, h)?;
            general_mat_mul(1.0, &d2, &params.w2, 0.0, &mut out);
        }
        // delta1 = db * (1 - h1^2); per-patch column sums -> db1
        self.db
            .par_chunks_mut(n_pix * h)
            .zip(self.h1.par_chunks(n_pix * h))
            .zip(self.patch_a.par_chunks_mut(h))
            .for_each(|((d, act), acc)| tanh_backward(d, act, acc));
        let b1 = grads
            .b1
            .as_slice_mut()
            .ok_or_else(|| shape_err("grad b1 (contiguous)", &[h], &[]))?;
        sum_rows(&self.patch_a, h, b1);

        // dW1 (H x H) = delta1^T (H x (B*N)) . h0 ((B*N) x H)
        // da ((B*N) x H) = delta1 ((B*N) x H) . W1 (H x H)
        {
            let d1 = mat(&self.db, rows, h)?;
            let a0 = mat(&self.h0, rows, h)?;
            general_mat_mul(1.0, &d1.t(), &a0, 0.0, &mut grads.w1);
            let mut out = mat_mut(&mut self.da, rows, h)?;
            general_mat_mul(1.0, &d1, &params.w1, 0.0, &mut out);
        }
        // delta0 = da * (1 - h0^2); per patch: S_b = sum_i delta0 (patch_a, B x H),
        // P_b = sum_i delta0 * G[i, c] (patch_g, B x 2H)
        let grid = &self.grid;
        self.da
            .par_chunks_mut(n_pix * h)
            .zip(self.h0.par_chunks(n_pix * h))
            .zip(self.patch_a.par_chunks_mut(h))
            .zip(self.patch_g.par_chunks_mut(2 * h))
            .for_each(|(((d, act), acc), accg)| {
                acc.iter_mut().for_each(|a| *a = 0.0);
                accg.iter_mut().for_each(|a| *a = 0.0);
                let (px, py) = accg.split_at_mut(h);
                for (i, (drow, hrow)) in d.chunks_exact_mut(h).zip(act.chunks_exact(h)).enumerate()
                {
                    let (gx, gy) = (grid[[i, 0]], grid[[i, 1]]);
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
                        *ax += v * gx;
                        *ay += v * gy;
                    }
                }
            });

        // Layer-0 reductions over patches (B x H work, serial).
        grads.bc.fill(0.0);
        grads.wc.fill(0.0);
        grads.wz.fill(0.0);
        for b in 0..bsz {
            let sb = &self.patch_a[b * h..(b + 1) * h];
            let pg = &self.patch_g[b * 2 * h..(b + 1) * 2 * h];
            let (sx, sy) = (k * self.s[[b, 0]], k * self.s[[b, 1]]);
            let (mut dsx, mut dsy) = (0.0f32, 0.0f32);
            for j in 0..h {
                let v = sb[j];
                grads.bc[j] += v;
                grads.wc[[j, 0]] += pg[j] + sx * v;
                grads.wc[[j, 1]] += pg[h + j] + sy * v;
                for l in 0..self.n_latent {
                    grads.wz[[j, l]] += v * self.z[[b, l]];
                }
                dsx += params.wc[[j, 0]] * v;
                dsy += params.wc[[j, 1]] * v;
            }
            self.ds[[b, 0]] = k * dsx;
            self.ds[[b, 1]] = k * dsy;
            for l in 0..self.n_latent {
                self.dz[[b, l]] = (0..h).map(|j| params.wz[[j, l]] * sb[j]).sum();
            }
        }
        Ok(())
    }

    /// Sums the per-patch buffers `patch_a` into `first` and `patch_b` into `second`.
    fn reduce_into(&self, first: &mut Array1<f32>, second: &mut Array1<f32>) -> Result<()> {
        let h = self.hidden;
        let f = first
            .as_slice_mut()
            .ok_or_else(|| shape_err("gradient (contiguous)", &[h], &[]))?;
        sum_rows(&self.patch_a, h, f);
        let s = second
            .as_slice_mut()
            .ok_or_else(|| shape_err("gradient (contiguous)", &[h], &[]))?;
        sum_rows(&self.patch_b, h, s);
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
            DecoderWorkspace::new(0, 4, 2, 8, 0.1),
            Err(ModelError::InvalidParameter { name: "batch", .. })
        ));
        assert!(matches!(
            DecoderWorkspace::new(1, 0, 2, 8, 0.1),
            Err(ModelError::InvalidParameter { name: "window", .. })
        ));
        assert!(matches!(
            DecoderWorkspace::new(1, 4, 0, 8, 0.1),
            Err(ModelError::InvalidParameter {
                name: "n_latent",
                ..
            })
        ));
        assert!(matches!(
            DecoderWorkspace::new(1, 4, 2, 0, 0.1),
            Err(ModelError::InvalidParameter { name: "hidden", .. })
        ));
        assert!(matches!(
            DecoderWorkspace::new(1, 4, 2, 8, -0.1),
            Err(ModelError::InvalidParameter { name: "k", .. })
        ));
        assert!(matches!(
            DecoderWorkspace::new(1, 4, 2, 8, f32::NAN),
            Err(ModelError::InvalidParameter { name: "k", .. })
        ));
    }

    #[test]
    fn forward_rejects_mismatched_inputs_and_backward_needs_forward() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let p = DecoderParams::init(2, 8, &mut rng).unwrap();
        let mut ws = DecoderWorkspace::new(2, 3, 2, 8, 0.1).unwrap();
        let mut g = DecoderGrads::zeros_like(&p);
        let dl = Array2::<f32>::zeros((2, 9));
        assert!(matches!(
            ws.backward(&p, dl.view(), &mut g),
            Err(ModelError::InvalidParameter {
                name: "workspace",
                ..
            })
        ));
        let z = Array2::<f32>::zeros((2, 3));
        let s = Array2::<f32>::zeros((2, 2));
        assert!(matches!(
            ws.forward(&p, z.view(), s.view()),
            Err(ModelError::ShapeMismatch {
                what: "content latents z",
                ..
            })
        ));
        let p16 = DecoderParams::init(2, 16, &mut rng).unwrap();
        let z = Array2::<f32>::zeros((2, 2));
        assert!(matches!(
            ws.forward(&p16, z.view(), s.view()),
            Err(ModelError::ShapeMismatch { .. })
        ));
        let s3 = Array2::<f32>::zeros((3, 2));
        assert!(matches!(
            ws.forward(&p, z.view(), s3.view()),
            Err(ModelError::ShapeMismatch {
                what: "shift latents s",
                ..
            })
        ));
    }

    /// Hand-computed case: H = 1, n = 1, window = 1 (grid point (-1, 1)), all
    /// weights chosen so the chain is easy to follow.
    #[test]
    fn tiny_hand_computed_forward() {
        // Wc = [0.5, 0.25], bc = 0.1, Wz = [2], W1 = [1], b1 = 0, W2 = [1], b2 = 0, w3 = 3, b3 = -1
        // z = 0.2, s = (1, -2), k = 0.5: g' = (-1 + 0.5, 1 - 1) = (-0.5, 0)
        // a0 = 0.5 * -0.5 + 0.25 * 0 + 0.1 + 2 * 0.2 = 0.25
        // logit = 3 * tanh(tanh(tanh(0.25))) - 1
        let p = DecoderParams::new(
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
        .unwrap();
        let mut ws = DecoderWorkspace::new(1, 1, 1, 1, 0.5).unwrap();
        let out = ws
            .forward(
                &p,
                ndarray::array![[0.2f32]].view(),
                ndarray::array![[1.0f32, -2.0]].view(),
            )
            .unwrap();
        let expected = 3.0 * 0.25f64.tanh().tanh().tanh() - 1.0;
        assert!((f64::from(out[[0, 0]]) - expected).abs() < 1e-6);
    }
}
