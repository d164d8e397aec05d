//! The phy-VAE physics loss `Psi` on latent maps (Biswas et al. 2023,
//! *Mach. Learn.: Sci. Technol.* 4 045004, eqs. 3–5; docs/METHOD.md sections 3
//! and 5), in two modes.
//!
//! **Latent maps.** The encoder means `z_mean` of one mini-batch (`B x L`,
//! `B = d^2`) give one `d x d` map per chosen latent column, by a row-major
//! reshape (`map[i, j] = z_mean[i d + j, column]`, the authors'
//! `z_mean[:, column].reshape(d, d)`; [`batch_maps`]).
//!
//! **Faithful mode**
//! ([`PhysicsMode::Faithful`](phyvae_run::config::PhysicsMode::Faithful),
//! [`psi_faithful`]): the authors'
//! computation, a plain number from NumPy/scikit-image-exact code
//! ([`phyvae_imaging::physics::sl1_batch`] / [`sl2_batch`]) in `f32`. It
//! carries no gradient: the loss `L_sh (w + Psi)` then has the gradient of
//! `L_sh` scaled by `w + Psi`, a per-batch step-size modulation (METHOD.md
//! section 3).
//!
//! **Gradient mode**
//! ([`PhysicsMode::Gradient`](phyvae_run::config::PhysicsMode::Gradient),
//! [`PsiGraph`]): the same quantity
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
//! - [`RANGE_EPS`](phyvae_run::config::RANGE_EPS): the range `max - min` is clamped below by `1e-6`, so that
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
//! **Cost**: what `Psi` costs per training step, in both modes, is measured in
//! BENCHMARKS.md ("Training hot path: the physics loss Psi").
//!
//! [`sl2_batch`]: phyvae_imaging::physics::sl2_batch
//!
//! ```
//! use candle_core::{DType, Device, Tensor, Var};
//! use phyvae_model::physics::{PsiGraph, batch_maps};
//! use phyvae_run::config::PhysicsKind;
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

mod graph;
mod operators;

pub use graph::{FrozenWeights, PsiGraph};

use candle_core::Tensor;
use ndarray::ArrayView2;
use phyvae_imaging::physics::{sl1_batch, sl2_batch};
use phyvae_run::config::{Combine, PhysicsKind};

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
/// use phyvae_model::physics::psi_faithful;
/// use phyvae_run::config::PhysicsKind;
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

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
