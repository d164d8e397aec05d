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
//! With Fourier features (`ModelConfig::coord_frequencies`, counted by
//! [`ModelConfig::n_decoder_inputs`](phyvae_run::config::ModelConfig::n_decoder_inputs)), `c` is
//! `(x, y, sin 2 pi f_1.(x, y), ..., sin 2 pi f_m.(x, y), cos 2 pi f_1.(x, y), ...)`,
//! `d = 2 + 2m` values, and `Wc` is `H x d`; the kernel takes any `d`.
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
//! row-major matrices (row `b*N + i`). Each patch is one rayon task, which
//! runs the layers over blocks of [`ROW_BLOCK`] rows: a block's activations
//! (128 KiB at `H = 128`) are still in the core's L2 cache when the next layer,
//! its tanh and, in the backward pass, its deltas and weight-gradient products
//! use them. Layers 1 and 2 are single-threaded GEMMs on those blocks (the
//! `gemm` crate, in `matmul`); only `h0`, `h1`, `h2` and the logits go to
//! memory. Splitting by patch, with per-patch partial sums reduced in patch
//! order, makes every result independent of the number of threads.
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
//! patches' worth of each buffer and write into them, and into a caller-owned
//! [`DecoderGrads`]. The one exception is inside the `gemm` crate, which
//! allocates a buffer for its packed right operand (at most `H x H` values,
//! 64 KiB at `H = 128`) on each GEMM call, six calls per row block.

mod fused;
mod loss;
mod matmul;
mod spatial;
mod tanh;
mod workspace;

pub use fused::FusedDecoder;
pub use loss::{bce_with_logits, bce_with_logits_grad, sigmoid};
pub use matmul::ROW_BLOCK;
pub use spatial::SpatialDecoder;
pub use tanh::{tanh_f32, tanh_slice};
pub use workspace::DecoderWorkspace;

use ndarray::{Array1, Array2};
use rand::{Rng, RngExt};

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
    /// Coordinate weights `Wc`, `H x d` (pyroVED `coord_latent.fc_coord.weight`,
    /// `d = 2`); `d` is the number of coordinate inputs, `2 + 2m` with `m`
    /// Fourier features (see
    /// [`ModelConfig::n_decoder_inputs`](phyvae_run::config::ModelConfig::n_decoder_inputs)).
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
    let d = wc.ncols();
    if h == 0 || n == 0 || d == 0 {
        return Err(shape_err(
            "decoder Wc/Wz (H, d and n must be >= 1)",
            &[h, d, n],
            &[0],
        ));
    }
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
    /// `H = wc.nrows()`, `d = wc.ncols()` and `n = wz.ncols()`.
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
        Self::init_with_inputs(2, n_latent, hidden, rng)
    }

    /// [`init`](Self::init) for a coordinate layer with `inputs` columns (`d`;
    /// fan-in `d` for `Wc` and `bc`). `inputs = 2` is [`init`](Self::init).
    ///
    /// # Errors
    /// [`ModelError::InvalidParameter`] when `inputs`, `n_latent` or `hidden` is 0.
    pub fn init_with_inputs<R: Rng + ?Sized>(
        inputs: usize,
        n_latent: usize,
        hidden: usize,
        rng: &mut R,
    ) -> Result<Self> {
        if inputs == 0 {
            return Err(ModelError::InvalidParameter {
                name: "inputs",
                value: "0".into(),
                rule: "must be at least 1",
            });
        }
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
        let wc = Array2::from_shape_simple_fn((hidden, inputs), || uni(inputs));
        let bc = Array1::from_shape_simple_fn(hidden, || uni(inputs));
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
            wc: Array2::zeros((h, params.inputs())),
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

    /// Number of coordinate inputs `d` (columns of `Wc`).
    #[must_use]
    pub fn inputs(&self) -> usize {
        self.wc.ncols()
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
}
