//! The phy-VAE physics loss `Psi` on latent maps (Biswas et al. 2023,
//! *Mach. Learn.: Sci. Technol.* 4 045004, eqs. 3–5; docs/METHOD.md sections 3
//! and 5), in two modes.
//!
//! **Latent maps.** The encoder means `z_mean` of one mini-batch (`B x L`,
//! `B = d^2`) give one `d x d` map per chosen latent column, by a row-major
//! reshape (`map[i, j] = z_mean[i d + j, column]`, the authors'
//! `z_mean[:, column].reshape(d, d)`; [`batch_maps`]).
//!
//! [`PhysicsMode`]: phyvae_run::config::PhysicsMode
//!
//! **Faithful mode** ([`PhysicsMode::Faithful`], [`psi_faithful`]): the authors'
//! computation, a plain number from NumPy/scikit-image-exact code
//! ([`phyvae_imaging::physics::sl1_batch`] / [`sl2_batch`]) in `f32`. It
//! carries no gradient: the loss `L_sh (w + Psi)` then has the gradient of
//! `L_sh` scaled by `w + Psi`, a per-batch step-size modulation (METHOD.md
//! section 3).
//!
//! **Gradient mode** ([`PhysicsMode::Gradient`], [`PsiGraph`]): the same quantity
//! written as candle operations, so that it is differentiable with respect to the
//! latent maps and runs on any candle device, in `f32` or `f64`. Its value
//! equals the faithful one to rounding (plus the tiny guards below):
//! - **SL1** per map `v` (`n = d^2` pixels, as a row vector): min-max
//!   normalise `x = (v - min v) / max(max v - min v, RANGE_EPS)` through
//!   candle's `min`/`max` (their gradient flows to the extreme pixels);
//!   bilateral filter `u = W x`; Scharr derivatives `gx = Sx u`, `gy = Sy u`
//!   (constant `n x n` matrices, border mode `reflect`, as
//!   `skimage.filters.scharr`); magnitude `sqrt((gx^2 + gy^2) / 2 + MAGNITUDE_EPS)`;
//!   sum over pixels; mean over maps.
//! - **SL2** per map `Z`: the 2-D DFT `F = A Z A` with `A = C - i S`
//!   (`C[k, m] = cos(2 pi k m / d)`, `S[k, m] = sin(2 pi k m / d)`), i.e.
//!   `Re F = C Z C - S Z S`, `Im F = -(C Z S + S Z C)`, as real matmuls
//!   (computed as one `(C, n) x (n, 2n)` matmul of the flattened maps with
//!   the constant Kronecker forms `C (x) C - S (x) S` and `C (x) S + S (x) C`
//!   of the same products: one kernel call instead of eight small ones);
//!   `L = log(sqrt(Re^2 + Im^2 + SPECTRUM_EPS) + 1)`; the central window of
//!   the shifted spectrum (rows and columns `d/2 - alpha .. d/2 + alpha`,
//!   half-open, after `fftshift`) is the constant 0/1 mask of the unshifted
//!   frequencies `-alpha .. alpha - 1` (mod `d`) of each axis;
//!   `Psi = (sum L - sum_window L) / sum L` summed over all maps (the ratio of
//!   the means over maps, as the authors' `add_loss2`).
//!
//! **Scale of a tile** ([`PsiGraph::psi_scaled`], used by the trainer): the
//! trainer's maps are `d x d` tiles of the full latent map, and a tile inside
//! one phase holds only noise. The trainer therefore divides each tile by the
//! range of its latent over the shuffled batch (detached: an estimate of the
//! full map's range, held constant for the step) instead of the tile's own
//! range, clamped below by the range floor. A differentiable own-range or
//! batch-range scaling was exploited in training: one outlier latent flattens
//! everything else after min-max, and the encoder's means ran away.
//!
//! **Weights held constant per step.** The bilateral filter is not linear: its
//! weights depend on the map. In gradient mode they are computed once per call
//! from the *detached* normalised map (on the host, by
//! [`phyvae_imaging::filters::bilateral_operator`], exactly scikit-image's
//! weights, zero padding included) and then used as a constant matrix `W`.
//! The gradient therefore flows through `x` (the normalisation), `W x` and the
//! Scharr magnitude, but not through the weights themselves, as if the filter
//! were a fixed linear smoother chosen for this step. The next step recomputes
//! `W` from the new maps. [`PsiGraph::freeze`] and [`PsiGraph::psi_frozen`]
//! expose the two halves (for finite-difference checks with `W` fixed).
//!
//! **Guards** (gradient mode only; both change the value negligibly):
//! - [`RANGE_EPS`]: the range `max - min` is clamped below by `1e-6`, so that
//!   a constant map normalises to 0 (as the faithful mode) instead of `0 / 0`.
//!   For ranges above `1e-6` the value is the exact min-max; note that SL1 is
//!   scale-free, so its gradient grows like `1 / range`.
//!
//! **Range floor** ([`PsiGraph::with_range_floor`], gradient mode only, an
//! addition to the authors' SL1): the clamp `RANGE_EPS` can be raised to a
//! floor `r0` in latent units. A map whose range is below `r0` is then divided
//! by `r0` instead of its own range, so its SL1 measures its absolute
//! variation (and falls to 0 as the map flattens) instead of its shape
//! stretched to `[0, 1]`. Without it, a `d x d` tile lying inside one phase
//! (most tiles of a segmentation) has only noise, which min-max stretches to
//! full contrast; its SL1 is then large, cannot be lowered by smoothing, and
//! its gradient grows like `1 / range` without bound. Maps with a range above
//! `r0` are normalised exactly as the authors did. `r0 = 1` is the prior's
//! standard deviation.
//! - [`MAGNITUDE_EPS`], [`SPECTRUM_EPS`] (`1e-12`, inside the square roots):
//!   the derivative of `sqrt` is infinite at 0, so a flat region (zero Scharr
//!   gradient) or a zero Fourier coefficient would give NaN gradients; with the
//!   guard the derivative there is 0. Each guarded pixel adds at most
//!   `sqrt(1e-12) = 1e-6` to a sum.
//!
//! **Cost** (`cargo bench -p phyvae-model --bench physics`: `d = 8`, `C = 2`,
//! `f32`, CPU, from `z_mean` through [`batch_maps`] and [`PsiGraph::psi`] to
//! the gradient with respect to `z_mean`; medians on a 2-core VM shared with
//! other jobs, 2026-11-27):
//!
//! | | SL1 | SL2 |
//! |---|---|---|
//! | gradient mode, forward + backward | 0.31 ms | 0.11 ms |
//! | the same with `RAYON_NUM_THREADS=2` set | 0.13 ms | 0.04 ms |
//! | faithful mode (value only) | 0.35 ms | 0.002 ms |
//!
//! candle 0.11.1 asks for the number of physical cores (reading
//! `/proc/cpuinfo`) at every CPU matmul unless `RAYON_NUM_THREADS` is set,
//! about 30 µs per call; that is the difference between the first two rows.
//! Of the rest, most of SL1 is building the two operators `W` on the host.
//! A spatial-decoder forward + backward at `B = 64` takes 266 ms on this
//! machine unloaded (BENCHMARKS.md; 690 ms in the loaded run above), so `Psi`
//! costs at most about 0.15 % of a training step.
//!
//! [`sl2_batch`]: phyvae_imaging::physics::sl2_batch
//!
//! ```
//! use candle_core::{DType, Device, Tensor, Var};
//! use phyvae_model::physics::{PsiGraph, PhysicsKind, batch_maps};
//!
//! let device = Device::Cpu;
//! // A batch of 16 latent vectors (d = 4) with 4 latents each.
//! let data: Vec<f32> = (0..64).map(|i| ((i * 7) % 11) as f32 / 10.0).collect();
//! let z_mean = Var::from_tensor(&Tensor::from_vec(data, (16, 4), &device)?)?;
//! let maps = batch_maps(z_mean.as_tensor(), &[2, 3], 4)?; // (2, 4, 4)
//! let graph = PsiGraph::new(PhysicsKind::Sl1, 4, 2, &device, DType::F32)?;
//! let psi = graph.psi(&maps)?; // scalar
//! let grads = psi.backward()?;
//! assert!(psi.to_scalar::<f32>()? > 0.0);
//! assert!(grads.get(&z_mean).is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use candle_core::{DType, Device, Tensor, WithDType};
use ndarray::{Array2, ArrayView2};
use phyvae_imaging::Real;
use phyvae_imaging::filters::{BilateralParams, SCHARR_SMOOTH, bilateral_operator};
use phyvae_imaging::physics::{sl1_batch, sl2_batch};
use phyvae_run::config::{Combine, PhysicsKind, RANGE_EPS, check_range_floor};

use crate::error::FrameworkContext;
use crate::{ModelError, Result};

/// Added under the square root of the SL1 Scharr magnitude in gradient mode,
/// `sqrt((gx^2 + gy^2) / 2 + eps)`: keeps the gradient finite (0) where the
/// edge magnitude is 0. Adds at most `1e-6` per pixel to the value.
pub const MAGNITUDE_EPS: f64 = 1e-12;

/// Added under the square root of the SL2 Fourier modulus in gradient mode,
/// `sqrt(Re^2 + Im^2 + eps)`: keeps the gradient finite (0) at a zero Fourier
/// coefficient. Adds at most about `1e-6` per coefficient to `sum L`.
pub const SPECTRUM_EPS: f64 = 1e-12;

/// Combines the scalar loss `loss` with the scalar `psi`: `loss * (slack +
/// psi)` ([`Combine::Multiply`]) or `loss + lambda * psi`
/// ([`Combine::Add`]). Pass a detached `psi` (or [`Tensor::new`] of the
/// faithful value) for the authors' semantics.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use phyvae_model::physics::combine;
/// use phyvae_run::config::Combine;
///
/// let (loss, psi) = (Tensor::new(10.0_f32, &Device::Cpu)?, Tensor::new(0.5_f32, &Device::Cpu)?);
/// let m = combine(Combine::Multiply, &loss, &psi, 0.25)?.to_scalar::<f32>()?;
/// assert_eq!(m, 7.5); // 10 * (0.25 + 0.5)
/// let a = combine(Combine::Add { lambda: 2.0 }, &loss, &psi, 0.25)?.to_scalar::<f32>()?;
/// assert_eq!(a, 11.0); // 10 + 2 * 0.5
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`ModelError::Framework`] if the tensors are not compatible scalars.
pub fn combine(how: Combine, loss: &Tensor, psi: &Tensor, slack: f64) -> Result<Tensor> {
    match how {
        Combine::Multiply => loss
            .mul(&psi.affine(1.0, slack).ctx("Psi + slack")?)
            .ctx("loss * (slack + Psi)"),
        Combine::Add { lambda } => loss
            .add(&psi.affine(f64::from(lambda), 0.0).ctx("lambda * Psi")?)
            .ctx("loss + lambda * Psi"),
    }
}

/// `Psi` of a mini-batch exactly as the authors computed it
/// (`CustomTrace_ELBO.add_loss` / `add_loss2`; Biswas et al. 2023, eqs. 4 and
/// 5): the mean SL1 of the `d x d` latent maps of `columns`, or the ratio of
/// their mean SL2 sums, from [`phyvae_imaging::physics::sl1_batch`] /
/// [`sl2_batch`] in `f32`. [`PhysicsKind::None`] gives 0. A plain number: it
/// carries no gradient.
///
/// [`sl2_batch`]: phyvae_imaging::physics::sl2_batch
///
/// ```
/// use ndarray::Array2;
/// use phyvae_model::physics::{PhysicsKind, psi_faithful};
///
/// // One column, a 2 x 2 map with a single step: min-max gives [[0, 1], [0, 1]].
/// let z = Array2::from_shape_vec((4, 1), vec![0.0_f32, 1.0, 0.0, 1.0])?;
/// assert!(psi_faithful(PhysicsKind::Sl1, z.view(), &[0])? > 0.0);
/// assert_eq!(psi_faithful(PhysicsKind::None, z.view(), &[0])?, 0.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`ModelError::Imaging`] wrapping `NotSquareBatch` if `B` is not a perfect
/// square (the authors silently returned 0), `NoSuchColumn`,
/// `InvalidParameter` (empty `columns`, or `alpha` not in `1 <= alpha`,
/// `2 alpha < d`), `NonFinite` / `EmptyImage` for `z_mean`.
pub fn psi_faithful(
    kind: PhysicsKind,
    z_mean: ArrayView2<'_, f32>,
    columns: &[usize],
) -> Result<f32> {
    Ok(match kind {
        PhysicsKind::None => 0.0,
        PhysicsKind::Sl1 => sl1_batch(z_mean, columns)?,
        PhysicsKind::Sl2 { alpha } => sl2_batch(z_mean, columns, alpha)?,
    })
}

/// The latent maps of a mini-batch as a tensor: column `columns[k]` of
/// `z_mean` (`B x L`, `B = d^2`) reshaped row-major into map `k`
/// (`maps[k, i, j] = z_mean[i d + j, columns[k]]`, as
/// [`phyvae_imaging::physics::latent_map`] and the authors'
/// `z_mean[:, column].reshape(d, d)`). Differentiable (an index-select and a
/// reshape); stays on `z_mean`'s device and dtype.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use phyvae_model::physics::batch_maps;
///
/// let z = Tensor::arange(0_f32, 8.0, &Device::Cpu)?.reshape((4, 2))?; // rows (0,1), (2,3), ..
/// let maps = batch_maps(&z, &[1], 2)?;
/// assert_eq!(maps.to_vec3::<f32>()?, vec![vec![vec![1.0, 3.0], vec![5.0, 7.0]]]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`ModelError::ShapeMismatch`] if `z_mean` is not `(d^2, L)`;
/// [`ModelError::InvalidParameter`] on `columns` if it is empty or names a
/// column `>= L`, or on `d` if it is 0.
pub fn batch_maps(z_mean: &Tensor, columns: &[usize], d: usize) -> Result<Tensor> {
    if d == 0 {
        return Err(ModelError::InvalidParameter {
            name: "d",
            value: d.to_string(),
            rule: "must be >= 1",
        });
    }
    let dims = z_mean.dims();
    let n_latents = match *dims {
        [b, l] if b == d * d => l,
        _ => {
            return Err(ModelError::ShapeMismatch {
                what: "z_mean (d^2 x L)",
                expected: vec![d * d, dims.get(1).copied().unwrap_or(0)],
                found: dims.to_vec(),
            });
        }
    };
    check_columns(columns, n_latents)?;
    let index: Vec<u32> = columns
        .iter()
        .map(|&c| u32::try_from(c))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| ModelError::InvalidParameter {
            name: "columns",
            value: format!("{columns:?}"),
            rule: "column indices must fit in u32",
        })?;
    let index = Tensor::new(index.as_slice(), z_mean.device()).ctx("latent column index")?; // (C,)
    z_mean
        .index_select(&index, 1) // (B, C)
        .and_then(|t| t.t()) // (C, B)
        .and_then(|t| t.contiguous())
        .and_then(|t| t.reshape((columns.len(), d, d))) // (C, d, d)
        .ctx("latent maps from z_mean")
}

fn check_columns(columns: &[usize], n_latents: usize) -> Result<()> {
    if columns.is_empty() || columns.iter().any(|&c| c >= n_latents) {
        return Err(ModelError::InvalidParameter {
            name: "columns",
            value: format!("{columns:?}"),
            rule: "must be non-empty and name existing latent columns",
        });
    }
    Ok(())
}

/// The bilateral weights of one call of an SL1 [`PsiGraph`], computed from the
/// detached normalised maps ([`PsiGraph::freeze`]); `None` for the other kinds.
#[derive(Debug, Clone)]
pub struct FrozenWeights(Option<Tensor>);

impl FrozenWeights {
    /// The `(C, d^2, d^2)` operators `W` (row = output pixel, row-major), if
    /// the graph is SL1.
    #[must_use]
    pub fn operators(&self) -> Option<&Tensor> {
        self.0.as_ref()
    }
}

/// The constant tensors of each kind of graph.
#[derive(Debug, Clone)]
enum Constants {
    None,
    Sl1 {
        /// `[Sx^T | Sy^T]`, `(n, 2n)`: `u (C, n) -> [gx | gy] (C, 2n)`.
        scharr_t: Tensor,
        /// The paper's bilateral settings.
        bilateral: BilateralParams,
    },
    Sl2 {
        /// `[(C (x) C - S (x) S)^T | (C (x) S + S (x) C)^T]`, `(n, 2n)`:
        /// `vec Z (C, n) -> [Re F | -Im F] (C, 2n)`.
        dft_t: Tensor,
        /// 1 on the central window (unshifted frequencies), else 0, `(1, n)`.
        window: Tensor,
    },
}

/// The gradient-mode `Psi` (see the module documentation) for a fixed kind, map
/// side `d` and number of maps `C`, holding its constant matrices on one device
/// in one dtype (`f32` or `f64`).
#[derive(Debug, Clone)]
pub struct PsiGraph {
    kind: PhysicsKind,
    range_floor: f64,
    d: usize,
    n_maps: usize,
    device: Device,
    dtype: DType,
    constants: Constants,
}

impl PsiGraph {
    /// Builds the constants: for SL1 the two Scharr operators, for SL2 the
    /// DFT operator (both `d^2 x 2 d^2`; `4 d^4` numbers, 32 KiB in `f32` for
    /// `d = 8`, 8 MiB for `d = 32`) and the window mask (`d^2`).
    ///
    /// # Errors
    /// [`ModelError::InvalidParameter`] on `d` (>= 1), `n_maps` (>= 1), `dtype`
    /// (`F32` or `F64`), `alpha` (`1 <= alpha`, `2 alpha < d`);
    /// [`ModelError::Framework`] if the device cannot hold the constants.
    pub fn new(
        kind: PhysicsKind,
        d: usize,
        n_maps: usize,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let invalid =
            |name, value: String, rule| ModelError::InvalidParameter { name, value, rule };
        if d == 0 {
            return Err(invalid("d", d.to_string(), "must be >= 1"));
        }
        if n_maps == 0 {
            return Err(invalid("n_maps", n_maps.to_string(), "must be >= 1"));
        }
        if !matches!(dtype, DType::F32 | DType::F64) {
            return Err(invalid("dtype", format!("{dtype:?}"), "must be F32 or F64"));
        }
        let constants = match kind {
            PhysicsKind::None => Constants::None,
            PhysicsKind::Sl1 => {
                let n = d * d;
                let (sx, sy) = scharr_operators(d);
                // [Sx^T | Sy^T]: entry (q, p) = Sx[p, q], (q, n + p) = Sy[p, q].
                let mut data = vec![0.0_f64; n * 2 * n];
                for p in 0..n {
                    for q in 0..n {
                        data[q * 2 * n + p] = sx[[p, q]];
                        data[q * 2 * n + n + p] = sy[[p, q]];
                    }
                }
                Constants::Sl1 {
                    scharr_t: constant(data, (n, 2 * n), device, dtype)?,
                    bilateral: BilateralParams::paper(),
                }
            }
            PhysicsKind::Sl2 { alpha } => {
                if alpha == 0 || alpha.saturating_mul(2) >= d {
                    return Err(invalid(
                        "alpha",
                        alpha.to_string(),
                        "must satisfy 1 <= alpha and 2 * alpha < d",
                    ));
                }
                let n = d * d;
                Constants::Sl2 {
                    dft_t: constant(dft_operator_t(d), (n, 2 * n), device, dtype)?,
                    window: constant(window_mask(d, alpha), (1, n), device, dtype)?,
                }
            }
        };
        Ok(Self {
            kind,
            range_floor: RANGE_EPS,
            d,
            n_maps,
            device: device.clone(),
            dtype,
            constants,
        })
    }

    /// The same graph with the SL1 min-max range clamped below by `floor`
    /// (latent units; see the module documentation, "Range floor") instead of
    /// [`RANGE_EPS`]. No effect on SL2.
    ///
    /// # Errors
    /// [`ModelError::InvalidParameter`] (`range_floor`) unless
    /// `RANGE_EPS <= floor` and `floor` is finite.
    ///
    /// ```
    /// use candle_core::{DType, Device, Tensor};
    /// use phyvae_model::physics::{PsiGraph, PhysicsKind};
    ///
    /// // A 2 x 2 map with a step of 0.01: min-max stretches it to a full step,
    /// // the floor of 1 keeps it a step of 0.01.
    /// let map = Tensor::new(&[[[0.0f32, 0.01], [0.0, 0.01]]], &Device::Cpu)?;
    /// let plain = PsiGraph::new(PhysicsKind::Sl1, 2, 1, &Device::Cpu, DType::F32)?;
    /// let floored = plain.clone().with_range_floor(1.0)?;
    /// let a: f32 = plain.psi(&map)?.to_scalar()?;
    /// let b: f32 = floored.psi(&map)?.to_scalar()?;
    /// assert!(b < a / 50.0 && b > 0.0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_range_floor(mut self, floor: f64) -> Result<Self> {
        check_range_floor(floor).map_err(ModelError::from)?;
        self.range_floor = floor;
        Ok(self)
    }

    /// The lower bound of the SL1 min-max range ([`RANGE_EPS`] unless set by
    /// [`PsiGraph::with_range_floor`]).
    #[must_use]
    pub fn range_floor(&self) -> f64 {
        self.range_floor
    }

    /// The kind of loss.
    #[must_use]
    pub fn kind(&self) -> PhysicsKind {
        self.kind
    }

    /// The map side `d`.
    #[must_use]
    pub fn side(&self) -> usize {
        self.d
    }

    /// The number of maps `C`.
    #[must_use]
    pub fn n_maps(&self) -> usize {
        self.n_maps
    }

    /// `Psi` of `maps` (`(C, d, d)`, this graph's dtype and device) as a
    /// differentiable scalar: `psi_frozen(maps, freeze(maps))`. For
    /// [`PhysicsKind::None`] a constant 0.
    ///
    /// # Errors
    /// As [`PsiGraph::freeze`] and [`PsiGraph::psi_frozen`].
    pub fn psi(&self, maps: &Tensor) -> Result<Tensor> {
        self.check_maps(maps)?;
        match &self.constants {
            Constants::Sl1 { bilateral, .. } => {
                let x = self.normalise(maps)?; // (C, n)
                let w = self.operators(&x.detach(), bilateral)?; // (C, n, n)
                self.sl1(&x, &w)
            }
            _ => self.psi_frozen(maps, &FrozenWeights(None)),
        }
    }

    /// `Psi` of `maps` (`(C, d, d)`) as [`PsiGraph::psi`], except that SL1
    /// divides each map by `range` (`(C, 1)`, clamped below by the range
    /// floor) instead of its own range: `x = (v - min v) / max(range, r0)`.
    /// The trainer passes the range of each latent over the shuffled batch, an
    /// estimate of the range of the full latent map, so that a `d x d` tile is
    /// measured in the full map's contrast (the authors' maps are the whole
    /// batch, so for them the two ranges coincide). `range` may carry a
    /// gradient: `Psi` is then invariant to a common scale of tile and range.
    /// SL2 does not normalise and ignores `range`.
    ///
    /// # Errors
    /// As [`PsiGraph::psi`]; [`ModelError::ShapeMismatch`] if `range` is not
    /// `(C, 1)`.
    ///
    /// ```
    /// use candle_core::{DType, Device, Tensor};
    /// use phyvae_model::physics::{PsiGraph, PhysicsKind};
    ///
    /// let map = Tensor::new(&[[[0.0f32, 0.5], [0.0, 0.5]]], &Device::Cpu)?;
    /// let g = PsiGraph::new(PhysicsKind::Sl1, 2, 1, &Device::Cpu, DType::F32)?;
    /// let own: f32 = g.psi(&map)?.to_scalar()?;
    /// // Measured against a range of 1 the step of 0.5 is half a full step.
    /// let half: f32 = g.psi_scaled(&map, &Tensor::new(&[[1.0f32]], &Device::Cpu)?)?.to_scalar()?;
    /// assert!((half - own / 2.0).abs() < 1e-5 * own);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn psi_scaled(&self, maps: &Tensor, range: &Tensor) -> Result<Tensor> {
        self.check_maps(maps)?;
        if range.dims() != [self.n_maps, 1] {
            return Err(ModelError::ShapeMismatch {
                what: "latent ranges",
                expected: vec![self.n_maps, 1],
                found: range.dims().to_vec(),
            });
        }
        match &self.constants {
            Constants::Sl1 { bilateral, .. } => {
                let x = self.normalise_by(maps, Some(range))?; // (C, n)
                let w = self.operators(&x.detach(), bilateral)?; // (C, n, n)
                self.sl1(&x, &w)
            }
            _ => self.psi_frozen(maps, &FrozenWeights(None)),
        }
    }

    /// The bilateral weights of SL1 at `maps` (`(C, d, d)`): each map is
    /// min-max normalised (detached, the same operations as
    /// [`PsiGraph::psi_frozen`]), copied to the host and turned into its
    /// operator `W` by [`bilateral_operator`] with [`BilateralParams::paper`],
    /// in this graph's dtype. Empty for the other kinds.
    ///
    /// # Errors
    /// [`ModelError::ShapeMismatch`] / [`ModelError::InvalidParameter`] (dtype)
    /// for `maps`; [`ModelError::Imaging`] if a map is not finite.
    pub fn freeze(&self, maps: &Tensor) -> Result<FrozenWeights> {
        self.check_maps(maps)?;
        let Constants::Sl1 { bilateral, .. } = &self.constants else {
            return Ok(FrozenWeights(None));
        };
        let normalised = self.normalise(&maps.detach())?; // (C, n)
        Ok(FrozenWeights(Some(self.operators(&normalised, bilateral)?)))
    }

    /// `Psi` of `maps` (`(C, d, d)`) with the bilateral weights `frozen` held
    /// constant (from [`PsiGraph::freeze`], possibly of other maps), as a
    /// differentiable scalar.
    ///
    /// # Errors
    /// [`ModelError::ShapeMismatch`] if `maps` is not `(C, d, d)` or `frozen`
    /// does not hold `(C, d^2, d^2)` operators for SL1;
    /// [`ModelError::InvalidParameter`] on `dtype` if `maps` is not in this
    /// graph's dtype; [`ModelError::Framework`] on a device mismatch.
    pub fn psi_frozen(&self, maps: &Tensor, frozen: &FrozenWeights) -> Result<Tensor> {
        self.check_maps(maps)?;
        let (c, n) = (self.n_maps, self.d * self.d);
        match &self.constants {
            Constants::None => Tensor::zeros((), self.dtype, &self.device).ctx("Psi = 0"),
            Constants::Sl1 { .. } => {
                let w = frozen.0.as_ref().ok_or(ModelError::InvalidParameter {
                    name: "frozen",
                    value: "none".to_owned(),
                    rule: "SL1 needs the bilateral operators of PsiGraph::freeze",
                })?;
                if w.dims() != [c, n, n] {
                    return Err(ModelError::ShapeMismatch {
                        what: "frozen bilateral operators",
                        expected: vec![c, n, n],
                        found: w.dims().to_vec(),
                    });
                }
                self.sl1(&self.normalise(maps)?, w)
            }
            Constants::Sl2 { dft_t, window } => {
                let z = maps.reshape((c, n)).ctx("flatten maps")?; // (C, n)
                let f = z.matmul(dft_t).ctx("SL2 DFT")?; // (C, 2n): [Re F | -Im F]
                let l = f
                    .sqr() // (C, 2n)
                    .and_then(|t| t.reshape((c, 2, n))) // (C, 2, n)
                    .and_then(|t| t.sum(1)) // (C, n): Re^2 + Im^2
                    .and_then(|t| t.affine(1.0, SPECTRUM_EPS)) // (C, n)
                    .and_then(|t| t.sqrt()) // (C, n): |F|
                    .and_then(|t| t.affine(1.0, 1.0)) // (C, n)
                    .and_then(|t| t.log()) // (C, n): L = log(|F| + 1)
                    .ctx("SL2 log-magnitude spectrum")?;
                let total = l.sum_all().ctx("SL2 total")?; // ()
                let inside = l
                    .broadcast_mul(window) // (C, n)
                    .and_then(|t| t.sum_all()) // ()
                    .ctx("SL2 window sum")?;
                (total.clone() - inside)
                    .and_then(|outside| outside.div(&total)) // ()
                    .ctx("SL2 ratio")
            }
        }
    }

    /// SL1 of the normalised maps `x` (`(C, n)`) with the bilateral operators
    /// `w` (`(C, n, n)`): mean over maps of the summed Scharr magnitude of `W x`.
    fn sl1(&self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        let Constants::Sl1 { scharr_t, .. } = &self.constants else {
            return Err(ModelError::InvalidParameter {
                name: "kind",
                value: format!("{:?}", self.kind),
                rule: "the edge length is computed by an SL1 graph only",
            });
        };
        let (c, n) = (self.n_maps, self.d * self.d);
        let u = w
            .matmul(&x.unsqueeze(2).ctx("SL1 column")?) // (C, n, 1)
            .and_then(|t| t.squeeze(2)) // (C, n)
            .ctx("SL1 bilateral W x")?;
        let g = u.matmul(scharr_t).ctx("SL1 Scharr")?; // (C, 2n): [gx | gy]
        let g2 = g
            .sqr() // (C, 2n)
            .and_then(|t| t.reshape((c, 2, n))) // (C, 2, n)
            .and_then(|t| t.sum(1)) // (C, n): gx^2 + gy^2
            .ctx("SL1 squared gradient")?;
        #[allow(clippy::cast_precision_loss)]
        let per_map = 1.0 / c as f64;
        g2.affine(0.5, MAGNITUDE_EPS) // (C, n)
            .and_then(|t| t.sqrt()) // (C, n): edge magnitude
            .and_then(|t| t.sum_all()) // ()
            .and_then(|t| t.affine(per_map, 0.0)) // (): mean over maps
            .ctx("SL1 edge length")
    }

    /// Checks that `maps` is `(C, d, d)` in this graph's dtype.
    fn check_maps(&self, maps: &Tensor) -> Result<()> {
        let expected = [self.n_maps, self.d, self.d];
        if maps.dims() != expected {
            return Err(ModelError::ShapeMismatch {
                what: "latent maps (C, d, d)",
                expected: expected.to_vec(),
                found: maps.dims().to_vec(),
            });
        }
        if maps.dtype() != self.dtype {
            return Err(ModelError::InvalidParameter {
                name: "dtype",
                value: format!("{:?}", maps.dtype()),
                rule: "latent maps must have the dtype of the PsiGraph",
            });
        }
        Ok(())
    }

    /// `(v - min) / max(max - min, range_floor)` per map, `(C, d, d) -> (C, n)`.
    fn normalise(&self, maps: &Tensor) -> Result<Tensor> {
        self.normalise_by(maps, None)
    }

    /// `(v - min) / max(range, range_floor)` per map with `range` given
    /// (`(C, 1)`) or the map's own `max - min`, `(C, d, d) -> (C, n)`.
    fn normalise_by(&self, maps: &Tensor, range: Option<&Tensor>) -> Result<Tensor> {
        let v = maps
            .reshape((self.n_maps, self.d * self.d))
            .ctx("flatten maps")?; // (C, n)
        let lo = v.min_keepdim(1).ctx("map minimum")?; // (C, 1)
        let range = match range {
            Some(r) => r.clone(), // (C, 1)
            None => v
                .max_keepdim(1) // (C, 1)
                .and_then(|hi| hi - &lo) // (C, 1)
                .ctx("map range")?,
        }
        .maximum(self.range_floor) // (C, 1)
        .ctx("map range")?;
        v.broadcast_sub(&lo) // (C, n)
            .and_then(|t| t.broadcast_div(&range)) // (C, n)
            .ctx("min-max normalisation")
    }

    /// The `(C, n, n)` bilateral operators of the detached normalised maps
    /// `(C, n)`, computed on the host in this graph's dtype.
    fn operators(&self, normalised: &Tensor, params: &BilateralParams) -> Result<Tensor> {
        match self.dtype {
            DType::F64 => self.operators_in::<f64>(normalised, params),
            _ => self.operators_in::<f32>(normalised, params),
        }
    }

    /// [`Self::operators`] in `T`.
    fn operators_in<T: Real + WithDType>(
        &self,
        normalised: &Tensor,
        params: &BilateralParams,
    ) -> Result<Tensor> {
        let rows: Vec<Vec<T>> = normalised.to_vec2::<T>().ctx("maps to host")?;
        let (d, n) = (self.d, self.d * self.d);
        let mut data = Vec::with_capacity(self.n_maps * n * n);
        for row in rows {
            let map =
                Array2::from_shape_vec((d, d), row).map_err(|_| ModelError::ShapeMismatch {
                    what: "normalised map",
                    expected: vec![d, d],
                    found: vec![n],
                })?;
            let w = bilateral_operator(map.view(), params)?; // (n, n)
            data.extend(w.iter().copied());
        }
        Tensor::from_vec(data, (self.n_maps, n, n), &self.device).ctx("bilateral operators")
    }
}

/// A constant `f64` matrix on `device` in `dtype`.
fn constant(
    data: Vec<f64>,
    shape: (usize, usize),
    device: &Device,
    dtype: DType,
) -> Result<Tensor> {
    Tensor::from_vec(data, shape, &Device::Cpu)
        .and_then(|t| t.to_dtype(dtype))
        .and_then(|t| t.to_device(device))
        .ctx("Psi constant matrix")
}

/// The Scharr derivative operators `(Sx, Sy)` on a `d x d` map (row-major
/// vectors of length `n = d^2`), border mode `reflect` (a radius-1 kernel
/// repeats the edge pixel), as scikit-image's `scharr_h` / `scharr_v`:
/// `(Sx v)[r, c] = sum_j SMOOTH[j] (v[r+1, c+j-1] - v[r-1, c+j-1])` and
/// `(Sy v)[r, c] = sum_i SMOOTH[i] (v[r+i-1, c+1] - v[r+i-1, c-1])`, indices
/// clamped to `0 .. d - 1`.
fn scharr_operators(d: usize) -> (Array2<f64>, Array2<f64>) {
    let n = d * d;
    let clamp = |i: usize, offset: isize| i.saturating_add_signed(offset).min(d - 1);
    let (mut sx, mut sy) = (Array2::zeros((n, n)), Array2::zeros((n, n)));
    for r in 0..d {
        for c in 0..d {
            let p = r * d + c;
            for (j, &s) in SCHARR_SMOOTH.iter().enumerate() {
                #[allow(clippy::cast_possible_wrap)]
                let off = j as isize - 1;
                let cc = clamp(c, off);
                sx[[p, clamp(r, 1) * d + cc]] += s;
                sx[[p, clamp(r, -1) * d + cc]] -= s;
                let rr = clamp(r, off);
                sy[[p, rr * d + clamp(c, 1)]] += s;
                sy[[p, rr * d + clamp(c, -1)]] -= s;
            }
        }
    }
    (sx, sy)
}

/// Row-major `C[k, m] = cos(2 pi k m / d)` and `S[k, m] = sin(2 pi k m / d)`
/// (`k m` reduced mod `d`, so that the argument stays in `[0, 2 pi)`).
fn dft_matrices(d: usize) -> (Array2<f64>, Array2<f64>) {
    let angle = |k: usize, m: usize| {
        #[allow(clippy::cast_precision_loss)]
        let a = std::f64::consts::TAU * ((k * m) % d) as f64 / d as f64;
        a
    };
    (
        Array2::from_shape_fn((d, d), |(k, m)| angle(k, m).cos()),
        Array2::from_shape_fn((d, d), |(k, m)| angle(k, m).sin()),
    )
}

/// The 2-D DFT of a row-major `d x d` map as one real `(n, 2n)` matrix,
/// `n = d^2`, for a row vector `vec Z`: `vec Z . M = [vec Re F | -vec Im F]`.
///
/// `Re F = C Z C - S Z S` and `-Im F = C Z S + S Z C` (`C`, `S` symmetric,
/// from [`dft_matrices`]); entry by entry, `Re F[k, l] = sum_{m, j} (C[k, m]
/// C[l, j] - S[k, m] S[l, j]) Z[m, j]`, i.e. `vec Re F = (C (x) C - S (x) S)
/// vec Z` with the Kronecker product `(x)` in row-major order, and likewise
/// `-vec Im F = (C (x) S + S (x) C) vec Z`. `M` stacks the transposes of the two
/// `n x n` operators side by side, so the whole transform is one matmul.
fn dft_operator_t(d: usize) -> Vec<f64> {
    let (c, s) = dft_matrices(d);
    let n = d * d;
    let mut m = vec![0.0_f64; n * 2 * n];
    for k in 0..d {
        for l in 0..d {
            let out = k * d + l;
            for a in 0..d {
                for b in 0..d {
                    let inp = a * d + b;
                    m[inp * 2 * n + out] = c[[k, a]] * c[[l, b]] - s[[k, a]] * s[[l, b]];
                    m[inp * 2 * n + n + out] = c[[k, a]] * s[[l, b]] + s[[k, a]] * c[[l, b]];
                }
            }
        }
    }
    m
}

/// The SL2 window of the shifted spectrum, rows / columns
/// `d/2 - alpha .. d/2 + alpha` after `fftshift` (`shifted[j] =
/// F[(j - d/2) mod d]`, as [`phyvae_imaging::fft::fftshift`]), as a row-major
/// 0/1 mask on the unshifted frequencies: those `k` with `(k + d/2) mod d` in
/// the window, i.e. `k` in `-alpha .. alpha - 1` (mod `d`). Needs `2 alpha <= d`.
fn window_mask(d: usize, alpha: usize) -> Vec<f64> {
    let in_window = |k: usize| {
        let shifted = (k + d / 2) % d;
        (d / 2 - alpha..d / 2 + alpha).contains(&shifted)
    };
    let mut mask = Vec::with_capacity(d * d);
    for k in 0..d {
        for l in 0..d {
            mask.push(if in_window(k) && in_window(l) {
                1.0
            } else {
                0.0
            });
        }
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array1;
    use phyvae_imaging::filters::{scharr_h, scharr_v};

    fn map(d: usize) -> Array2<f64> {
        Array2::from_shape_fn((d, d), |(r, c)| {
            ((r * 7 + c * 3 + r * c) % 11) as f64 / 10.0
        })
    }

    #[test]
    fn scharr_operators_match_imaging_scharr() {
        for d in [1, 2, 3, 8] {
            let m = map(d);
            let (sx, sy) = scharr_operators(d);
            let v = Array1::from_iter(m.iter().copied());
            let (gx, gy) = (sx.dot(&v), sy.dot(&v));
            let (h, w) = (scharr_h(m.view()).unwrap(), scharr_v(m.view()).unwrap());
            for (a, b) in gx.iter().zip(h.iter()).chain(gy.iter().zip(w.iter())) {
                assert!((a - b).abs() < 1e-14, "d = {d}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn scharr_operator_hand_computed_row() {
        // d = 3, pixel (0, 0): rows r-1 and c-1 reflect to 0.
        // Sx: + SMOOTH . v[1, (0, 0, 1)] - SMOOTH . v[0, (0, 0, 1)]:
        //   columns of row 1: v[1,0] gets 3/16 + 10/16, v[1,1] gets 3/16; row 0 negated.
        let (sx, _) = scharr_operators(3);
        let want = [-13.0, -3.0, 0.0, 13.0, 3.0, 0.0, 0.0, 0.0, 0.0].map(|v: f64| v / 16.0);
        for (q, w) in want.iter().enumerate() {
            assert!((sx[[0, q]] - w).abs() < 1e-15, "column {q}");
        }
    }

    #[test]
    fn dft_operator_gives_the_dft() {
        // F[k, l] = sum_{m, j} x[m, j] e^{-2 pi i (k m + l j) / d}, written out.
        let d = 5;
        let n = d * d;
        let x = map(d);
        let m = Array2::from_shape_vec((n, 2 * n), dft_operator_t(d)).unwrap();
        let f = Array1::from_iter(x.iter().copied()).dot(&m); // [Re F | -Im F]
        for k in 0..d {
            for l in 0..d {
                let (mut fr, mut fi) = (0.0, 0.0);
                for a in 0..d {
                    for b in 0..d {
                        let t = -std::f64::consts::TAU * ((k * a + l * b) as f64) / d as f64;
                        fr += x[[a, b]] * t.cos();
                        fi += x[[a, b]] * t.sin();
                    }
                }
                let out = k * d + l;
                assert!((f[out] - fr).abs() < 1e-12, "Re F[{k}, {l}]");
                assert!((f[n + out] + fi).abs() < 1e-12, "Im F[{k}, {l}]");
            }
        }
        // The separable form of the module documentation gives the same numbers.
        let (c, s) = dft_matrices(d);
        let re = c.dot(&x).dot(&c) - s.dot(&x).dot(&s);
        let im = -(c.dot(&x).dot(&s) + s.dot(&x).dot(&c));
        for ((k, l), &v) in re.indexed_iter() {
            assert!((f[k * d + l] - v).abs() < 1e-12);
            assert!((f[n + k * d + l] + im[[k, l]]).abs() < 1e-12);
        }
    }

    #[test]
    fn window_mask_even_and_odd() {
        // d = 4, alpha = 1: shifted rows 1..3 = unshifted (j - 2) mod 4 = {3, 0}.
        let m = window_mask(4, 1);
        let ones: Vec<usize> = (0..16).filter(|&i| m[i] == 1.0).collect();
        assert_eq!(ones, vec![0, 3, 12, 15]);
        // d = 5, alpha = 1: shifted 1..3 = unshifted (j - 2) mod 5 = {4, 0}.
        let m = window_mask(5, 1);
        let ones: Vec<usize> = (0..25).filter(|&i| m[i] == 1.0).collect();
        assert_eq!(ones, vec![0, 4, 20, 24]);
        // d = 7, alpha = 2: shifted 1..5 = unshifted {5, 6, 0, 1}: 16 entries.
        assert_eq!(window_mask(7, 2).iter().sum::<f64>(), 16.0);
    }

    #[test]
    fn graph_rules() {
        let cpu = Device::Cpu;
        let name = |r: Result<PsiGraph>| match r {
            Err(ModelError::InvalidParameter { name, .. }) => name,
            other => panic!("expected InvalidParameter, got {other:?}"),
        };
        assert_eq!(
            name(PsiGraph::new(PhysicsKind::Sl1, 0, 2, &cpu, DType::F32)),
            "d"
        );
        assert_eq!(
            name(PsiGraph::new(PhysicsKind::Sl1, 8, 0, &cpu, DType::F32)),
            "n_maps"
        );
        assert_eq!(
            name(PsiGraph::new(PhysicsKind::Sl1, 8, 2, &cpu, DType::BF16)),
            "dtype"
        );
        for alpha in [0, 4] {
            assert_eq!(
                name(PsiGraph::new(
                    PhysicsKind::Sl2 { alpha },
                    8,
                    2,
                    &cpu,
                    DType::F32
                )),
                "alpha"
            );
        }
        assert!(PsiGraph::new(PhysicsKind::Sl2 { alpha: 3 }, 8, 2, &cpu, DType::F32).is_ok());
        let g = PsiGraph::new(PhysicsKind::Sl1, 4, 2, &cpu, DType::F32).unwrap();
        let wrong = Tensor::zeros((2, 4, 5), DType::F32, &cpu).unwrap();
        assert!(matches!(
            g.psi(&wrong),
            Err(ModelError::ShapeMismatch { .. })
        ));
        let f64_maps = Tensor::zeros((2, 4, 4), DType::F64, &cpu).unwrap();
        assert!(matches!(
            g.psi(&f64_maps),
            Err(ModelError::InvalidParameter { name: "dtype", .. })
        ));
        let maps = Tensor::zeros((2, 4, 4), DType::F32, &cpu).unwrap();
        assert!(matches!(
            g.psi_frozen(&maps, &FrozenWeights(None)),
            Err(ModelError::InvalidParameter { name: "frozen", .. })
        ));
    }

    #[test]
    fn none_kind_is_zero() {
        let cpu = Device::Cpu;
        let g = PsiGraph::new(PhysicsKind::None, 4, 1, &cpu, DType::F32).unwrap();
        let maps = Tensor::ones((1, 4, 4), DType::F32, &cpu).unwrap();
        assert_eq!(g.psi(&maps).unwrap().to_scalar::<f32>().unwrap(), 0.0);
        let z = Array2::<f32>::ones((16, 1));
        assert_eq!(
            psi_faithful(PhysicsKind::None, z.view(), &[0]).unwrap(),
            0.0
        );
    }

    #[test]
    fn sl2_impulse_hand_computed() {
        // An impulse has |F| = 1 everywhere: L = ln 2 (plus ~1e-12 from the guard);
        // d = 4, alpha = 1: 12 of 16 entries outside the window, Psi = 0.75.
        let cpu = Device::Cpu;
        let mut data = vec![0.0_f64; 16];
        data[6] = 1.0;
        let maps = Tensor::from_vec(data, (1, 4, 4), &cpu).unwrap();
        let g = PsiGraph::new(PhysicsKind::Sl2 { alpha: 1 }, 4, 1, &cpu, DType::F64).unwrap();
        let v = g.psi(&maps).unwrap().to_scalar::<f64>().unwrap();
        assert!((v - 0.75).abs() < 1e-12, "{v}");
    }

    #[test]
    fn sl1_single_pixel_hand_computed() {
        // A 1 x 1 map: Scharr of one pixel is 0, so Psi = sqrt(MAGNITUDE_EPS) = 1e-6.
        let cpu = Device::Cpu;
        let maps = Tensor::from_vec(vec![0.3_f64], (1, 1, 1), &cpu).unwrap();
        let g = PsiGraph::new(PhysicsKind::Sl1, 1, 1, &cpu, DType::F64).unwrap();
        let v = g.psi(&maps).unwrap().to_scalar::<f64>().unwrap();
        assert!((v - 1e-6).abs() < 1e-18, "{v}");
    }

    #[test]
    fn range_floor_rule() {
        let g = PsiGraph::new(PhysicsKind::Sl1, 4, 1, &Device::Cpu, DType::F64).unwrap();
        for bad in [0.0, 1e-7, f64::NAN, f64::INFINITY] {
            let e = g.clone().with_range_floor(bad).unwrap_err();
            assert!(
                matches!(
                    e,
                    ModelError::InvalidParameter {
                        name: "range_floor",
                        ..
                    }
                ),
                "{bad}: {e}"
            );
        }
        assert_eq!(g.with_range_floor(0.5).unwrap().range_floor(), 0.5);
    }

    #[test]
    fn range_floor_scales_sl1_of_a_small_map_by_range_over_floor() {
        // Bilateral (sigma_color = the map's std), Scharr and the magnitude are
        // all homogeneous of degree 1 in the map, so dividing by the floor r0
        // instead of the range r multiplies SL1 by r / r0 (up to the 1e-6 guards).
        let cpu = Device::Cpu;
        let v: Vec<f64> = (0..36)
            .map(|i| 0.02 * (f64::from(i % 6) * 0.7 + f64::from(i / 6) * f64::from(i % 5)).sin())
            .collect();
        let range =
            v.iter().copied().fold(f64::MIN, f64::max) - v.iter().copied().fold(f64::MAX, f64::min);
        let maps = Tensor::from_vec(v, (1, 6, 6), &cpu).unwrap();
        let plain = PsiGraph::new(PhysicsKind::Sl1, 6, 1, &cpu, DType::F64).unwrap();
        let floored = plain.clone().with_range_floor(2.0).unwrap();
        let a = plain.psi(&maps).unwrap().to_scalar::<f64>().unwrap();
        let b = floored.psi(&maps).unwrap().to_scalar::<f64>().unwrap();
        assert!(a > 1.0, "{a}");
        let expected = a * range / 2.0;
        assert!((b - expected).abs() < 1e-4 * expected, "{b} vs {expected}");
        // A map whose range exceeds the floor is normalised as before.
        let big = (maps * 1000.0).unwrap();
        let c = floored.psi(&big).unwrap().to_scalar::<f64>().unwrap();
        assert!((c - a).abs() < 1e-9 * a, "{c} vs {a}");
    }

    #[test]
    fn psi_scaled_by_own_range_is_psi_and_scales_inversely() {
        let cpu = Device::Cpu;
        let v: Vec<f64> = (0..32)
            .map(|i| (f64::from(i % 4) * 0.9 + f64::from(i / 4) * 0.4).cos())
            .collect();
        let maps = Tensor::from_vec(v, (2, 4, 4), &cpu).unwrap();
        let g = PsiGraph::new(PhysicsKind::Sl1, 4, 2, &cpu, DType::F64).unwrap();
        let flat = maps.reshape((2, 16)).unwrap();
        let own = (flat.max_keepdim(1).unwrap() - flat.min_keepdim(1).unwrap()).unwrap();
        let a = g.psi(&maps).unwrap().to_scalar::<f64>().unwrap();
        let b = g
            .psi_scaled(&maps, &own)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!((a - b).abs() <= 1e-12 * a, "{a} vs {b}");
        // SL1 is homogeneous of degree 1 (see range_floor_scales_...): a range
        // three times larger gives a third of Psi.
        let c = g
            .psi_scaled(&maps, &(&own * 3.0).unwrap())
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!((c - a / 3.0).abs() < 1e-5 * a, "{c} vs {}", a / 3.0);
        // dPsi/drange_k: Psi = sum_k S_k / range_k / C, so the derivative is
        // -S_k / (C range_k^2); check against central differences.
        let r = candle_core::Var::from_tensor(&own).unwrap();
        let psi = g.psi_scaled(&maps, r.as_tensor()).unwrap();
        let grad = psi
            .backward()
            .unwrap()
            .get(r.as_tensor())
            .unwrap()
            .to_vec2::<f64>()
            .unwrap();
        let own_v = own.to_vec2::<f64>().unwrap();
        for k in 0..2 {
            let h = 1e-6;
            let mut plus = own_v.clone();
            plus[k][0] += h;
            let mut minus = own_v.clone();
            minus[k][0] -= h;
            let at = |rv: Vec<Vec<f64>>| {
                let t = Tensor::new(rv, &cpu).unwrap();
                g.psi_scaled(&maps, &t).unwrap().to_scalar::<f64>().unwrap()
            };
            let fd = (at(plus) - at(minus)) / (2.0 * h);
            assert!(
                (grad[k][0] - fd).abs() < 1e-5 * fd.abs(),
                "{k}: {} vs {fd}",
                grad[k][0]
            );
            assert!(fd < 0.0);
        }
        let bad = Tensor::zeros((2,), DType::F64, &cpu).unwrap();
        assert!(matches!(
            g.psi_scaled(&maps, &bad),
            Err(ModelError::ShapeMismatch { .. })
        ));
    }

    #[test]
    fn combine_hand_computed() {
        let cpu = Device::Cpu;
        let loss = Tensor::new(4.0_f64, &cpu).unwrap();
        let psi = Tensor::new(0.5_f64, &cpu).unwrap();
        let m = combine(Combine::Multiply, &loss, &psi, 0.1).unwrap();
        assert!((m.to_scalar::<f64>().unwrap() - 2.4).abs() < 1e-15); // 4 * 0.6
        let a = combine(Combine::Add { lambda: 0.5 }, &loss, &psi, 0.1).unwrap();
        assert_eq!(a.to_scalar::<f64>().unwrap(), 4.25); // 4 + 0.5 * 0.5
    }
}
