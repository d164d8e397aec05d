//! The phy-VAE physics losses on latent maps: SL1 (edge length) and SL2
//! (Fourier peak), Biswas et al. 2023, *Mach. Learn.: Sci. Technol.* 4 045004,
//! eqs. 4 and 5 (Algorithms 1 and 2).
//!
//! - **SL1** of a map: min-max normalise to `[0, 1]`, bilateral denoise exactly
//!   as scikit-image 0.26 `denoise_bilateral(sigma_color=None,
//!   sigma_spatial=5)` ([`BilateralParams::paper`]), Scharr edge magnitude as
//!   `skimage.filters.scharr`, sum over the map. A measure of total interface
//!   length.
//! - **SL2** of a map: the log-magnitude spectrum `L = log(|fftshift(fft2(z))| + 1)`
//!   of the un-normalised map; the ratio of its sum outside a central
//!   `2 alpha x 2 alpha` window to its total sum. The window covers rows
//!   `h/2 - alpha .. h/2 + alpha` and columns `w/2 - alpha .. w/2 + alpha`
//!   (half-open, integer division): the authors' `int(d/2 - 1):int(d/2 + 1)` for
//!   `alpha = 1`, which equals `d/2 - 1 .. d/2 + 1` for even and odd `d` alike.
//!   It holds the zero frequency (at `d/2` after the shift) and the frequency
//!   below it, so it is not centred on the zero frequency.
//!
//! The batch functions ([`sl1_batch`], [`sl2_batch`]) take the encoder means
//! `z_mean` (`B x C`, `f32`) of one mini-batch as the authors' loss did: each
//! chosen column is reshaped row-major into a `d x d` map, `d = sqrt(B)`, and
//! everything is computed in `f32` (the authors' torch `float32` min-max and
//! `float32` scikit-image / `scipy.fftpack` calls). Sums over a map use
//! NumPy's pairwise order.
//!
//! Deviations from the authors' code, all on inputs where it fails silently:
//! - a batch size that is not a perfect square is an error
//!   ([`ImagingError::NotSquareBatch`]); the authors returned a loss of 0;
//! - a constant map min-max normalises to all zeros (the authors divide 0 by 0
//!   and get NaN), so its SL1 is 0;
//! - a map whose spectrum is all zero (an all-zero map) has SL2 = 0 instead of
//!   0 / 0 = NaN.

use crate::error::check_finite;
use crate::fft::Fft2;
use crate::filters::{BilateralParams, denoise_bilateral, image_sum, min_max, scharr};
use crate::{ImagingError, Real, Result};
use ndarray::{Array2, ArrayView2};

/// The latent columns the authors' losses use: `z_mean[:, 2]` and
/// `z_mean[:, 3]`, the content latents z1 and z2 (columns 0 and 1 are the
/// translation latents of the shift-invariant VAE).
pub const PAPER_LATENT_COLUMNS: [usize; 2] = [2, 3];

/// Half-width of the central SL2 window used by the authors (a 2 x 2 block).
pub const PAPER_ALPHA: usize = 1;

/// Min-max normalisation to `[0, 1]`: `(x - min) / (max - min)`, each pixel
/// rounded in `T` as torch / NumPy do (`float32` for `f32`).
///
/// Deviation: a constant map (`max == min`) gives all zeros, not NaN.
///
/// # Errors
/// [`ImagingError::EmptyImage`] or [`ImagingError::NonFinite`].
#[must_use = "the normalised map is returned; the input is not modified"]
pub fn min_max_normalise<T: Real>(map: ArrayView2<'_, T>) -> Result<Array2<T>> {
    check_finite(map)?;
    let (lo, hi) = min_max(map);
    let range = hi - lo;
    if range == T::zero() {
        return Ok(Array2::zeros(map.dim()));
    }
    Ok(map.mapv(|v| (v - lo) / range))
}

/// SL1 of one map (Biswas et al. 2023, eq. 4 for a single map): the sum of
/// `scharr(denoise_bilateral(min_max_normalise(map), sigma_color=image std,
/// sigma_spatial=5))` with both filters exactly as scikit-image 0.26
/// ([`BilateralParams::paper`], [`crate::filters::scharr`]), computed in `T`;
/// the final sum in NumPy's pairwise order. A constant map gives 0.
///
/// ```
/// use ndarray::Array2;
/// use phyvae_imaging::physics::sl1_map;
///
/// let flat = Array2::<f32>::from_elem((8, 8), 0.4);
/// assert_eq!(sl1_map(flat.view())?, 0.0);
/// let step = Array2::from_shape_fn((8, 8), |(_, c)| if c < 4 { 0.0_f32 } else { 1.0 });
/// assert!(sl1_map(step.view())? > 0.0);
/// # Ok::<(), phyvae_imaging::ImagingError>(())
/// ```
///
/// # Errors
/// [`ImagingError::EmptyImage`] or [`ImagingError::NonFinite`].
pub fn sl1_map<T: Real>(map: ArrayView2<'_, T>) -> Result<T> {
    let normalised = min_max_normalise(map)?;
    let denoised = denoise_bilateral(normalised.view(), &BilateralParams::paper())?;
    Ok(image_sum(scharr(denoised.view())?.view()))
}

/// Checks the SL2 window half-width against a `h x w` map.
fn check_alpha(alpha: usize, (h, w): (usize, usize)) -> Result<()> {
    if alpha == 0 {
        return Err(ImagingError::InvalidParameter {
            name: "alpha",
            value: alpha.to_string(),
            rule: "must be >= 1",
        });
    }
    if alpha.saturating_mul(2) >= h.min(w) {
        return Err(ImagingError::InvalidParameter {
            name: "alpha",
            value: alpha.to_string(),
            rule: "2 * alpha must be smaller than both sides of the map",
        });
    }
    Ok(())
}

/// Sums of the log-magnitude spectrum of `map` outside the central window and
/// in total, in `T` (pairwise order; the outside sum with the window zeroed).
fn spectrum_sums<T: Real>(
    fft: &mut Fft2<T>,
    map: ArrayView2<'_, T>,
    alpha: usize,
) -> Result<(T, T)> {
    check_finite(map)?;
    check_alpha(alpha, map.dim())?;
    let mut spectrum = fft.log_magnitude_spectrum(map)?;
    let total = image_sum(spectrum.view());
    let (h, w) = spectrum.dim();
    for r in h / 2 - alpha..h / 2 + alpha {
        for c in w / 2 - alpha..w / 2 + alpha {
            spectrum[[r, c]] = T::zero();
        }
    }
    Ok((image_sum(spectrum.view()), total))
}

/// SL2 of one map (Biswas et al. 2023, eq. 5 for a single map): the sum of
/// `log(|fftshift(fft2(map))| + 1)` outside the central window rows
/// `h/2 - alpha .. h/2 + alpha`, columns `w/2 - alpha .. w/2 + alpha`
/// (half-open) divided by the sum over the whole spectrum, computed in `T`.
/// The map is not normalised. An all-zero map gives 0.
///
/// ```
/// use ndarray::Array2;
/// use phyvae_imaging::physics::sl2_map;
///
/// // A unit impulse has a flat spectrum: 12 of the 16 entries lie outside the 2 x 2 window.
/// let mut map = Array2::<f64>::zeros((4, 4));
/// map[[1, 2]] = 1.0;
/// assert!((sl2_map(map.view(), 1)? - 0.75).abs() < 1e-12);
/// # Ok::<(), phyvae_imaging::ImagingError>(())
/// ```
///
/// # Errors
/// [`ImagingError::EmptyImage`], [`ImagingError::NonFinite`];
/// [`ImagingError::InvalidParameter`] on `alpha` if `alpha == 0` or
/// `2 * alpha >= min(h, w)`.
pub fn sl2_map<T: Real>(map: ArrayView2<'_, T>, alpha: usize) -> Result<T> {
    sl2_map_with(&mut Fft2::new(), map, alpha)
}

/// [`sl2_map`] reusing the FFT plans of `fft`.
///
/// # Errors
/// As [`sl2_map`].
pub fn sl2_map_with<T: Real>(fft: &mut Fft2<T>, map: ArrayView2<'_, T>, alpha: usize) -> Result<T> {
    let (outside, total) = spectrum_sums(fft, map, alpha)?;
    Ok(if total == T::zero() {
        T::zero()
    } else {
        outside / total
    })
}

/// Checks a `B x C` latent array and returns the map side `d = sqrt(B)`.
fn batch_side(z_mean: ArrayView2<'_, f32>, columns: &[usize]) -> Result<usize> {
    check_finite(z_mean)?;
    let (batch, n_columns) = z_mean.dim();
    if columns.is_empty() {
        return Err(ImagingError::InvalidParameter {
            name: "columns",
            value: "[]".to_owned(),
            rule: "must name at least one latent column",
        });
    }
    if let Some(&column) = columns.iter().find(|&&c| c >= n_columns) {
        return Err(ImagingError::NoSuchColumn {
            column,
            columns: n_columns,
        });
    }
    let d = batch.isqrt();
    if d * d != batch {
        return Err(ImagingError::NotSquareBatch { batch });
    }
    Ok(d)
}

/// Column `column` of `z_mean` (`B x C`) reshaped row-major into a `d x d` map,
/// `d = sqrt(B)`: `map[i, j] = z_mean[i * d + j, column]` (the authors'
/// `z_mean[:, column].reshape(d, d)`).
///
/// # Errors
/// [`ImagingError::EmptyImage`] / [`ImagingError::NonFinite`] for `z_mean`,
/// [`ImagingError::NoSuchColumn`], [`ImagingError::NotSquareBatch`].
#[must_use = "the latent map is returned"]
pub fn latent_map(z_mean: ArrayView2<'_, f32>, column: usize) -> Result<Array2<f32>> {
    let d = batch_side(z_mean, &[column])?;
    Ok(column_map(z_mean, d, column))
}

/// `z_mean[:, column].reshape(d, d)` for a checked batch.
fn column_map(z_mean: ArrayView2<'_, f32>, d: usize, column: usize) -> Array2<f32> {
    Array2::from_shape_fn((d, d), |(i, j)| z_mean[[i * d + j, column]])
}

/// SL1 of a mini-batch as the authors computed it (`CustomTrace_ELBO.add_loss`;
/// Biswas et al. 2023, eq. 4): the mean over `columns` of [`sl1_map`] of each
/// column's `d x d` latent map, in `f32`. With [`PAPER_LATENT_COLUMNS`] this is
/// the authors' `(sum1 + sum2) / 2`.
///
/// ```
/// use ndarray::Array2;
/// use phyvae_imaging::physics::{PAPER_LATENT_COLUMNS, sl1_batch};
///
/// let z = Array2::from_shape_fn((64, 4), |(b, k)| ((b * (k + 1)) % 7) as f32);
/// let psi = sl1_batch(z.view(), &PAPER_LATENT_COLUMNS)?;
/// assert!(psi > 0.0);
/// # Ok::<(), phyvae_imaging::ImagingError>(())
/// ```
///
/// # Errors
/// [`ImagingError::NotSquareBatch`] if `B` is not a perfect square (the authors
/// silently returned 0); [`ImagingError::NoSuchColumn`];
/// [`ImagingError::InvalidParameter`] on `columns` if it is empty;
/// [`ImagingError::EmptyImage`] / [`ImagingError::NonFinite`] for `z_mean`.
pub fn sl1_batch(z_mean: ArrayView2<'_, f32>, columns: &[usize]) -> Result<f32> {
    let d = batch_side(z_mean, columns)?;
    let mut sum = 0.0_f32;
    for &column in columns {
        sum += sl1_map(column_map(z_mean, d, column).view())?;
    }
    #[allow(clippy::cast_precision_loss)]
    let n = columns.len() as f32;
    Ok(sum / n)
}

/// SL2 of a mini-batch as the authors computed it (`CustomTrace_ELBO.add_loss2`;
/// Biswas et al. 2023, eq. 5): `mean_k(outside_k) / mean_k(total_k)` over the
/// latent maps of `columns`, where `total_k` is the sum of the log-magnitude
/// spectrum of map `k` and `outside_k` its sum outside the central window (see
/// [`sl2_map`]). This is the ratio of the means, not the mean of the per-map
/// ratios. Computed in `f32`; 0 if every spectrum is zero.
///
/// # Errors
/// As [`sl1_batch`], plus [`ImagingError::InvalidParameter`] on `alpha` if
/// `alpha == 0` or `2 * alpha >= d`.
pub fn sl2_batch(z_mean: ArrayView2<'_, f32>, columns: &[usize], alpha: usize) -> Result<f32> {
    sl2_batch_with(&mut Fft2::new(), z_mean, columns, alpha)
}

/// [`sl2_batch`] reusing the FFT plans of `fft` (for evaluation at every
/// training step).
///
/// # Errors
/// As [`sl2_batch`].
pub fn sl2_batch_with(
    fft: &mut Fft2<f32>,
    z_mean: ArrayView2<'_, f32>,
    columns: &[usize],
    alpha: usize,
) -> Result<f32> {
    let d = batch_side(z_mean, columns)?;
    check_alpha(alpha, (d, d))?;
    let (mut outside, mut total) = (0.0_f32, 0.0_f32);
    for &column in columns {
        let (o, t) = spectrum_sums(fft, column_map(z_mean, d, column).view(), alpha)?;
        outside += o;
        total += t;
    }
    #[allow(clippy::cast_precision_loss)]
    let n = columns.len() as f32;
    Ok(if total == 0.0 {
        0.0
    } else {
        (outside / n) / (total / n)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    use proptest::prelude::*;

    fn z_from_maps(maps: &[Array2<f32>], columns: usize) -> Array2<f32> {
        let d = maps[0].nrows();
        Array2::from_shape_fn((d * d, columns), |(b, k)| {
            maps.get(k).map_or(0.0, |m| m[[b / d, b % d]])
        })
    }

    #[test]
    fn min_max_normalise_hand_computed() {
        let m = array![[1.0_f32, 3.0], [2.0, 5.0]];
        assert_eq!(
            min_max_normalise(m.view()).unwrap(),
            array![[0.0, 0.5], [0.25, 1.0]]
        );
        assert_eq!(
            min_max_normalise(array![[2.0_f64, 2.0]].view()).unwrap(),
            array![[0.0, 0.0]]
        );
    }

    #[test]
    fn sl1_of_constant_map_is_zero() {
        assert_eq!(
            sl1_map(Array2::from_elem((5, 5), -3.0_f64).view()).unwrap(),
            0.0
        );
    }

    #[test]
    fn sl1_is_scale_and_offset_free() {
        // min-max normalisation removes affine changes of the map (exactly, for
        // a map of small integers and a power-of-two scale).
        let m = Array2::from_shape_fn((6, 6), |(r, c)| ((r * 7 + c * 3) % 5) as f64);
        let scaled = m.mapv(|v| 4.0 * v - 8.0);
        assert_eq!(sl1_map(m.view()).unwrap(), sl1_map(scaled.view()).unwrap());
    }

    #[test]
    fn sl2_window_even_and_odd() {
        // Impulse -> flat spectrum of ln 2: SL2 = (d^2 - 4 alpha^2) / d^2.
        for (d, alpha, expected) in [
            (4, 1, 12.0 / 16.0),
            (5, 1, 21.0 / 25.0),
            (7, 2, 33.0 / 49.0),
        ] {
            let mut m = Array2::<f64>::zeros((d, d));
            m[[0, 0]] = 1.0;
            assert!(
                (sl2_map(m.view(), alpha).unwrap() - expected).abs() < 1e-12,
                "d = {d}"
            );
        }
    }

    #[test]
    fn sl2_window_position_odd_size() {
        // d = 5: the window is rows/cols int(5/2 - 1):int(5/2 + 1) = 1:3.
        // Constant map: the only non-zero entry F[0, 0] = 25 is shifted to (2, 2),
        // inside the window: SL2 = 0.
        let flat = Array2::from_elem((5, 5), 1.0_f64);
        assert!(sl2_map(flat.view(), 1).unwrap().abs() < 1e-12);
        // x[r, c] = cos(2 pi r / 5): |F| = 12.5 at frequencies (1, 0) and (4, 0),
        // shifted to (3, 2) and (1, 2); (1, 2) is inside, (3, 2) outside, all other
        // entries are ln(1 + ~1e-15): SL2 = ln 13.5 / (2 ln 13.5) = 1/2 (a window
        // at 0:2 would give 1).
        let wave = Array2::from_shape_fn((5, 5), |(r, _)| {
            (2.0 * std::f64::consts::PI * r as f64 / 5.0).cos()
        });
        assert!((sl2_map(wave.view(), 1).unwrap() - 0.5).abs() < 1e-9);
    }

    #[test]
    fn rule_alpha_at_least_one() {
        let m = Array2::<f32>::zeros((4, 4));
        assert!(matches!(
            sl2_map(m.view(), 0),
            Err(ImagingError::InvalidParameter {
                name: "alpha",
                rule: "must be >= 1",
                ..
            })
        ));
    }

    #[test]
    fn rule_alpha_smaller_than_half_side() {
        let m = Array2::<f32>::ones((4, 5));
        assert!(matches!(
            sl2_map(m.view(), 2),
            Err(ImagingError::InvalidParameter { name: "alpha", .. })
        ));
        assert!(sl2_map(m.view(), 1).is_ok());
        let z = Array2::<f32>::ones((16, 4));
        assert!(matches!(
            sl2_batch(z.view(), &[2], 2),
            Err(ImagingError::InvalidParameter { name: "alpha", .. })
        ));
    }

    #[test]
    fn all_zero_map_has_zero_sl2() {
        assert_eq!(
            sl2_map(Array2::<f32>::zeros((4, 4)).view(), 1).unwrap(),
            0.0
        );
        assert_eq!(
            sl2_batch(Array2::<f32>::zeros((16, 4)).view(), &[2, 3], 1).unwrap(),
            0.0
        );
    }

    #[test]
    fn latent_map_is_row_major() {
        let z = Array2::from_shape_fn((9, 2), |(b, k)| (10 * b + k) as f32);
        assert_eq!(
            latent_map(z.view(), 1).unwrap(),
            array![[1.0, 11.0, 21.0], [31.0, 41.0, 51.0], [61.0, 71.0, 81.0]]
        );
    }

    #[test]
    fn batch_errors() {
        let z = Array2::<f32>::zeros((50, 4));
        assert_eq!(
            sl1_batch(z.view(), &[2, 3]),
            Err(ImagingError::NotSquareBatch { batch: 50 })
        );
        assert_eq!(
            sl2_batch(z.view(), &[2, 3], 1),
            Err(ImagingError::NotSquareBatch { batch: 50 })
        );
        let z = Array2::<f32>::zeros((64, 4));
        assert_eq!(
            sl1_batch(z.view(), &[2, 4]),
            Err(ImagingError::NoSuchColumn {
                column: 4,
                columns: 4
            })
        );
        assert!(matches!(
            sl1_batch(z.view(), &[]),
            Err(ImagingError::InvalidParameter {
                name: "columns",
                ..
            })
        ));
        let mut z = z;
        z[[5, 1]] = f32::NAN;
        assert!(matches!(
            sl2_batch(z.view(), &[2], 1),
            Err(ImagingError::NonFinite { row: 5, col: 1, .. })
        ));
    }

    #[test]
    fn sl2_batch_is_ratio_of_means() {
        // Map A: impulse on 4 x 4 (flat ln 2 spectrum, outside 12 ln 2, total 16 ln 2).
        // Map B: constant 1 (only the DC entry ln 17, inside the window: outside 0).
        // Ratio of means = 12 ln 2 / (16 ln 2 + ln 17); mean of ratios would be 0.375.
        let mut a = Array2::<f32>::zeros((4, 4));
        a[[0, 0]] = 1.0;
        let b = Array2::<f32>::ones((4, 4));
        let z = z_from_maps(&[Array2::zeros((4, 4)), Array2::zeros((4, 4)), a, b], 4);
        let expected = 12.0 * 2.0_f64.ln() / (16.0 * 2.0_f64.ln() + 17.0_f64.ln());
        let got = sl2_batch(z.view(), &[2, 3], 1).unwrap();
        assert!(
            (f64::from(got) - expected).abs() < 1e-6,
            "{got} vs {expected}"
        );
    }

    #[test]
    fn sl1_batch_is_mean_of_map_sums() {
        let a = Array2::from_shape_fn((4, 4), |(r, c)| ((r * 5 + c * 3) % 7) as f32);
        let b = Array2::from_shape_fn((4, 4), |(r, c)| if r < 2 && c < 3 { 1.0 } else { 0.0 });
        let z = z_from_maps(&[Array2::zeros((4, 4)), a.clone(), b.clone()], 3);
        let expected = (sl1_map(a.view()).unwrap() + sl1_map(b.view()).unwrap()) / 2.0;
        assert_eq!(sl1_batch(z.view(), &[1, 2]).unwrap(), expected);
        assert_eq!(
            sl1_batch(z.view(), &[1]).unwrap(),
            sl1_map(a.view()).unwrap()
        );
    }

    proptest! {
        #[test]
        fn sl2_is_a_fraction(data in proptest::collection::vec(-3.0f32..3.0, 36), alpha in 1usize..3) {
            let m = Array2::from_shape_vec((6, 6), data).unwrap();
            let v = sl2_map(m.view(), alpha).unwrap();
            prop_assert!((0.0..=1.0).contains(&v));
        }

        #[test]
        fn sl1_is_non_negative_and_finite(data in proptest::collection::vec(-3.0f32..3.0, 25)) {
            let m = Array2::from_shape_vec((5, 5), data).unwrap();
            let v = sl1_map(m.view()).unwrap();
            prop_assert!(v.is_finite() && v >= 0.0);
        }
    }
}
