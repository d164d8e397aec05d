//! The Gaussian low-pass filter, as `scipy.ndimage.gaussian_filter(img, sigma,
//! mode='nearest', truncate=4.0)` computes it (which scikit-image's
//! `skimage.filters.gaussian` calls with `mode='nearest'`): a separable
//! convolution with the sampled, normalised kernel
//! `exp(-x^2 / (2 sigma^2))`, `x = -r..=r`, `r = floor(4 sigma + 0.5)`, the
//! image extended by repeating its edge pixels.
//!
//! Written by hand: the imaging crates of the ecosystem blur `image` buffers of
//! pixels, not `ndarray` maps of `f32`/`f64`, and the pipeline needs scipy's
//! exact kernel and edge mode to match scikit-image.

use crate::error::check_finite;
use crate::{ImagingError, Real, Result};
use ndarray::{Array2, ArrayView2};

/// scipy's default `truncate`: the kernel reaches `4 sigma`.
pub const GAUSSIAN_TRUNCATE: f64 = 4.0;

/// The normalised 1-D kernel of [`gaussian`] (length `2 r + 1`).
fn kernel(sigma: f64) -> Vec<f64> {
    // scipy: radius = int(truncate * sigma + 0.5).
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let r = (GAUSSIAN_TRUNCATE * sigma + 0.5) as usize;
    #[allow(clippy::cast_precision_loss)]
    let w: Vec<f64> = (0..=2 * r)
        .map(|i| {
            let x = i as f64 - r as f64;
            (-0.5 * x * x / (sigma * sigma)).exp()
        })
        .collect();
    let s: f64 = w.iter().sum();
    w.into_iter().map(|v| v / s).collect()
}

/// One 1-D pass along `len` samples read with stride `stride` from `src`
/// starting at `start`, written the same way into `dst`; edges repeat.
fn pass<T: Real>(src: &[T], dst: &mut [T], start: usize, stride: usize, len: usize, k: &[T]) {
    let r = k.len() / 2;
    for i in 0..len {
        let mut acc = T::zero();
        for (j, &w) in k.iter().enumerate() {
            // Index i + j - r, clamped into 0..len ('nearest').
            let at = (i + j).saturating_sub(r).min(len - 1);
            acc += w * src[start + at * stride];
        }
        dst[start + i * stride] = acc;
    }
}

/// Gaussian-filters `img` with standard deviation `sigma` pixels along both
/// axes (scipy `gaussian_filter`, `mode='nearest'`, `truncate=4`; module
/// documentation). `sigma = 0` returns the image unchanged, as scipy does.
///
/// # Errors
/// [`ImagingError::InvalidParameter`] when `sigma` is negative or not
/// finite; [`ImagingError::EmptyImage`] / [`ImagingError::NonFinite`] for an
/// empty or non-finite image.
///
/// # Example
/// ```
/// use ndarray::Array2;
/// use phyvae_imaging::filters::gaussian;
///
/// // A row of 16 that alternates 0, 1: away from its ends, the mean survives
/// // and the oscillation does not (scipy gives 0.50006 at index 8).
/// let img = Array2::from_shape_fn((1, 16), |(_, j)| (j % 2) as f32);
/// let low = gaussian(img.view(), 2.0)?;
/// assert!((low[[0, 8]] - 0.500_06).abs() < 1e-4);
/// # Ok::<(), phyvae_imaging::ImagingError>(())
/// ```
pub fn gaussian<T: Real>(img: ArrayView2<'_, T>, sigma: f64) -> Result<Array2<T>> {
    if !(sigma.is_finite() && sigma >= 0.0) {
        return Err(ImagingError::InvalidParameter {
            name: "sigma",
            value: sigma.to_string(),
            rule: "must be finite and >= 0",
        });
    }
    check_finite(img)?;
    if sigma == 0.0 {
        return Ok(img.to_owned());
    }
    let (h, w) = img.dim();
    let src: Vec<T> = img.iter().copied().collect();
    let k: Vec<T> = kernel(sigma).into_iter().map(T::c).collect();
    let mut rows = vec![T::zero(); h * w];
    for r in 0..h {
        pass(&src, &mut rows, r * w, 1, w, &k);
    }
    let mut out = vec![T::zero(); h * w];
    for c in 0..w {
        pass(&rows, &mut out, c, w, h, &k);
    }
    Array2::from_shape_vec((h, w), out).map_err(|_| ImagingError::ShapeMismatch {
        what: "gaussian output",
        expected: vec![h, w],
        found: vec![h * w],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn kernel_is_scipys() {
        // scipy 1.17 `ndimage._filters._gaussian_kernel1d(1.0, 0, 4)`: radius 4.
        let k = kernel(1.0);
        assert_eq!(k.len(), 9);
        assert!((k[4] - 0.398_943_47).abs() < 1e-7, "{}", k[4]);
        assert!((k[3] - 0.241_971_45).abs() < 1e-7, "{}", k[3]);
        assert!((k[0] - 1.338_306_2e-4).abs() < 1e-10, "{}", k[0]);
        // radius int(4 * 0.3 + 0.5) = 1
        assert_eq!(kernel(0.3).len(), 3);
    }

    #[test]
    fn matches_scipy_on_a_small_map() {
        // scipy.ndimage.gaussian_filter(a, 1.0, mode='nearest') of
        // a = [[0,0,0,0],[0,1,0,0],[0,0,0,2]] (float64), computed with scipy 1.17.1.
        let a = array![
            [0.0_f64, 0.0, 0.0, 0.0],
            [0.0, 1.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 2.0]
        ];
        let want = array![
            [0.059_084_89, 0.103_390_73, 0.093_746_14, 0.094_981_99],
            [0.099_277_17, 0.194_351_85, 0.277_167_40, 0.441_961_46],
            [0.064_937_33, 0.178_450_61, 0.478_972_23, 0.991_585_73]
        ];
        let got = gaussian(a.view(), 1.0).unwrap();
        for (g, w) in got.iter().zip(want.iter()) {
            assert!((g - w).abs() < 1e-6, "{got:?}");
        }
    }

    #[test]
    fn preserves_a_constant_and_the_mean_of_a_periodic_row() {
        let c = Array2::from_elem((5, 7), 3.5_f32);
        let g = gaussian(c.view(), 1.7).unwrap();
        assert!(g.iter().all(|&v| (v - 3.5).abs() < 1e-5));
        let zero = gaussian(c.view(), 0.0).unwrap();
        assert_eq!(zero, c);
    }

    #[test]
    fn rejects_bad_sigma_and_bad_images() {
        let a = Array2::<f32>::zeros((3, 3));
        for s in [-1.0, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                gaussian(a.view(), s),
                Err(ImagingError::InvalidParameter { name: "sigma", .. })
            ));
        }
        let e = Array2::<f32>::zeros((0, 3));
        assert!(gaussian(e.view(), 1.0).is_err());
        let mut n = Array2::<f32>::zeros((2, 2));
        n[[0, 1]] = f32::NAN;
        assert!(gaussian(n.view(), 1.0).is_err());
    }
}
