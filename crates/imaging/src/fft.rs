//! 2-D discrete Fourier transform, `fftshift` and log-magnitude spectra.
//!
//! Conventions are NumPy's / SciPy's: `fft2` is the unnormalised forward DFT
//! `F[k, l] = sum_{r, c} x[r, c] exp(-2 pi i (k r / h + l c / w))` (as
//! `scipy.fftpack.fft2` and `numpy.fft.fft2`), computed in the element type
//! (`f32` input gives a single-precision transform, as `scipy.fftpack` does for
//! `float32`); [`fftshift`] moves the zero frequency to index `n / 2` (integer
//! division) of each axis, as `numpy.fft.fftshift`. The transforms are done
//! with `rustfft`, rows first, then columns; results agree with SciPy's
//! pocketfft to rounding.
//!
//! The log-magnitude spectrum `log(|fftshift(fft2(x))| + 1)` is the quantity of
//! the phy-VAE Fourier loss SL2 (Biswas et al. 2023, *Mach. Learn.: Sci.
//! Technol.* 4 045004, eq. 5). For repeated transforms (SL2 is evaluated at
//! every training step) keep an [`Fft2`], which caches plans and scratch space.

use crate::error::check_finite;
use crate::{Real, Result};
use ndarray::{Array2, ArrayView2};
use rustfft::FftPlanner;
pub use rustfft::num_complex::Complex;

/// A reusable 2-D FFT: holds a `rustfft` planner (which caches the plans of
/// every length seen) and the scratch buffers, so repeated transforms of maps
/// of the same size allocate only their output.
pub struct Fft2<T: Real> {
    planner: FftPlanner<T>,
    scratch: Vec<Complex<T>>,
    transposed: Vec<Complex<T>>,
}

impl<T: Real> Default for Fft2<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Real> std::fmt::Debug for Fft2<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fft2")
            .field("scratch_len", &self.scratch.len())
            .finish_non_exhaustive()
    }
}

impl<T: Real> Fft2<T> {
    /// A transform with an empty plan cache.
    #[must_use]
    pub fn new() -> Self {
        Self {
            planner: FftPlanner::new(),
            scratch: Vec::new(),
            transposed: Vec::new(),
        }
    }

    /// The unnormalised forward 2-D DFT of `img` (see the module conventions),
    /// computed in `T`. An empty image gives an empty array; non-finite pixels
    /// propagate.
    #[must_use]
    pub fn fft2(&mut self, img: ArrayView2<'_, T>) -> Array2<Complex<T>> {
        let (h, w) = img.dim();
        if h == 0 || w == 0 {
            return Array2::from_elem((h, w), Complex::new(T::zero(), T::zero()));
        }
        let mut rows: Vec<Complex<T>> = img.iter().map(|&v| Complex::new(v, T::zero())).collect();
        let row_fft = self.planner.plan_fft_forward(w);
        let col_fft = self.planner.plan_fft_forward(h);
        let scratch_len = row_fft
            .get_inplace_scratch_len()
            .max(col_fft.get_inplace_scratch_len());
        self.scratch
            .resize(scratch_len, Complex::new(T::zero(), T::zero()));
        row_fft.process_with_scratch(&mut rows, &mut self.scratch);

        self.transposed.clear();
        self.transposed
            .resize(h * w, Complex::new(T::zero(), T::zero()));
        for (r, row) in rows.chunks_exact(w).enumerate() {
            for (c, &v) in row.iter().enumerate() {
                self.transposed[c * h + r] = v;
            }
        }
        col_fft.process_with_scratch(&mut self.transposed, &mut self.scratch);
        let t = &self.transposed;
        Array2::from_shape_fn((h, w), |(r, c)| t[c * h + r])
    }

    /// `log(|fftshift(fft2(img))| + 1)`, computed in `T`: the modulus is
    /// `hypot(re, im)`, then `+ 1` and the natural logarithm, as NumPy
    /// evaluates `np.log(abs(F) + 1)` on a `complex64` / `complex128` array
    /// (not `log1p`). This is the spectrum of the phy-VAE SL2 loss, where the
    /// authors use `scipy.fftpack` on `float32` maps.
    ///
    /// # Errors
    /// [`crate::ImagingError::EmptyImage`] or [`crate::ImagingError::NonFinite`].
    pub fn log_magnitude_spectrum(&mut self, img: ArrayView2<'_, T>) -> Result<Array2<T>> {
        check_finite(img)?;
        let spectrum = self.fft2(img);
        Ok(fftshift(spectrum.view()).mapv(|z| (z.norm() + T::one()).ln()))
    }
}

/// The unnormalised forward 2-D DFT of `img`, computed in `T`
/// (`scipy.fftpack.fft2` / `numpy.fft.fft2` convention). Plans a fresh
/// transform; use [`Fft2`] for repeated calls.
///
/// ```
/// use ndarray::array;
/// use phyvae_imaging::fft::{Complex, fft2};
///
/// let f = fft2(array![[1.0_f64, 2.0], [3.0, 4.0]].view());
/// // F[0, 0] = sum = 10; F[1, 0] = (1 + 2) - (3 + 4) = -4; F[0, 1] = (1 + 3) - (2 + 4) = -2.
/// assert_eq!(f[[0, 0]], Complex::new(10.0, 0.0));
/// assert_eq!(f[[1, 0]], Complex::new(-4.0, 0.0));
/// assert_eq!(f[[0, 1]], Complex::new(-2.0, 0.0));
/// ```
#[must_use]
pub fn fft2<T: Real>(img: ArrayView2<'_, T>) -> Array2<Complex<T>> {
    Fft2::new().fft2(img)
}

/// Moves the zero-frequency element to the centre: `out[i, j] = a[(i - h/2) mod h,
/// (j - w/2) mod w]` with integer division, as `numpy.fft.fftshift` /
/// `scipy.fftpack.fftshift` over both axes (for odd `n` the zero frequency
/// lands at index `(n - 1) / 2`).
///
/// ```
/// use ndarray::array;
/// use phyvae_imaging::fft::fftshift;
///
/// let a = array![[0, 1, 2, 3, 4]];
/// assert_eq!(fftshift(a.view()), array![[3, 4, 0, 1, 2]]);
/// ```
#[must_use]
pub fn fftshift<E: Clone>(a: ArrayView2<'_, E>) -> Array2<E> {
    let (h, w) = a.dim();
    Array2::from_shape_fn((h, w), |(i, j)| {
        a[[(i + h - h / 2) % h, (j + w - w / 2) % w]].clone()
    })
}

/// Inverse of [`fftshift`]: `out[i, j] = a[(i + h/2) mod h, (j + w/2) mod w]`,
/// as `numpy.fft.ifftshift` (differs from `fftshift` for odd sizes).
#[must_use]
pub fn ifftshift<E: Clone>(a: ArrayView2<'_, E>) -> Array2<E> {
    let (h, w) = a.dim();
    Array2::from_shape_fn((h, w), |(i, j)| {
        a[[(i + h / 2) % h, (j + w / 2) % w]].clone()
    })
}

/// `log(|fftshift(fft2(img))| + 1)` computed in `T` (see
/// [`Fft2::log_magnitude_spectrum`]); plans a fresh transform.
///
/// ```
/// use ndarray::Array2;
/// use phyvae_imaging::fft::log_magnitude_spectrum;
///
/// // A unit impulse has a flat unit spectrum: log(1 + 1) everywhere.
/// let mut img = Array2::<f32>::zeros((4, 4));
/// img[[0, 0]] = 1.0;
/// let s = log_magnitude_spectrum(img.view())?;
/// assert!(s.iter().all(|&v| (v - 2.0_f32.ln()).abs() < 1e-6));
/// # Ok::<(), phyvae_imaging::ImagingError>(())
/// ```
///
/// # Errors
/// [`crate::ImagingError::EmptyImage`] or [`crate::ImagingError::NonFinite`].
pub fn log_magnitude_spectrum<T: Real>(img: ArrayView2<'_, T>) -> Result<Array2<T>> {
    Fft2::new().log_magnitude_spectrum(img)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ImagingError;
    use ndarray::array;
    use proptest::prelude::*;
    use std::f64::consts::PI;

    /// Direct evaluation of the DFT sum.
    fn naive_dft(x: &Array2<f64>) -> Array2<Complex<f64>> {
        let (h, w) = x.dim();
        Array2::from_shape_fn((h, w), |(k, l)| {
            let mut s = Complex::new(0.0, 0.0);
            for ((r, c), &v) in x.indexed_iter() {
                let phase = -2.0 * PI * ((k * r) as f64 / h as f64 + (l * c) as f64 / w as f64);
                s += Complex::new(phase.cos(), phase.sin()) * v;
            }
            s
        })
    }

    #[test]
    fn fftshift_even_and_odd() {
        // numpy.fft.fftshift([0, 1, 2, 3]) = [2, 3, 0, 1]; of [0..5] = [3, 4, 0, 1, 2].
        let a = array![[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]];
        assert_eq!(
            fftshift(a.view()),
            array![[10, 11, 8, 9], [2, 3, 0, 1], [6, 7, 4, 5]]
        );
        // numpy.fft.ifftshift([0, 1, 2, 3, 4]) = [2, 3, 4, 0, 1].
        assert_eq!(
            ifftshift(array![[0, 1, 2, 3, 4]].view()),
            array![[2, 3, 4, 0, 1]]
        );
        assert_eq!(ifftshift(fftshift(a.view()).view()), a);
    }

    #[test]
    fn impulse_and_constant() {
        let mut x = Array2::<f64>::zeros((3, 5));
        x[[0, 0]] = 1.0;
        assert!(
            fft2(x.view())
                .iter()
                .all(|z| (z - Complex::new(1.0, 0.0)).norm() < 1e-15)
        );
        let c = Array2::from_elem((3, 5), 2.0_f64);
        let f = fft2(c.view());
        assert!((f[[0, 0]] - Complex::new(30.0, 0.0)).norm() < 1e-13);
        assert!(f.iter().skip(1).all(|z| z.norm() < 1e-13));
    }

    #[test]
    fn zero_map_has_zero_log_spectrum() {
        let s = log_magnitude_spectrum(Array2::<f32>::zeros((4, 6)).view()).unwrap();
        assert!(s.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn log_spectrum_of_constant_peaks_at_centre() {
        // Constant 1 on 5 x 4: F[0, 0] = 20, moved to (5 / 2, 4 / 2) = (2, 2).
        let s = log_magnitude_spectrum(Array2::from_elem((5, 4), 1.0_f64).view()).unwrap();
        assert!((s[[2, 2]] - 21.0_f64.ln()).abs() < 1e-14);
        assert!(s.iter().filter(|&&v| v.abs() > 1e-12).count() == 1);
    }

    #[test]
    fn empty_and_non_finite() {
        assert_eq!(fft2(Array2::<f32>::zeros((0, 3)).view()).dim(), (0, 3));
        assert!(matches!(
            log_magnitude_spectrum(Array2::<f32>::zeros((0, 3)).view()),
            Err(ImagingError::EmptyImage { .. })
        ));
        assert!(matches!(
            log_magnitude_spectrum(array![[f64::NAN]].view()),
            Err(ImagingError::NonFinite { .. })
        ));
    }

    #[test]
    fn reused_planner_gives_same_result() {
        let mut fft = Fft2::<f32>::new();
        let a = Array2::from_shape_fn((8, 8), |(r, c)| (r * 3 + c) as f32 * 0.1);
        let b = Array2::from_shape_fn((5, 7), |(r, c)| (r + 2 * c) as f32);
        let first = fft.fft2(a.view());
        let _ = fft.fft2(b.view());
        assert_eq!(fft.fft2(a.view()), first);
        assert_eq!(fft.fft2(b.view()), fft2(b.view()));
    }

    proptest! {
        #[test]
        fn matches_direct_dft(
            (h, w, data) in (1usize..7, 1usize..7).prop_flat_map(|(h, w)| {
                (Just(h), Just(w), proptest::collection::vec(-1.0f64..1.0, h * w))
            })
        ) {
            let x = Array2::from_shape_vec((h, w), data).unwrap();
            let f = fft2(x.view());
            let g = naive_dft(&x);
            for (a, b) in f.iter().zip(g.iter()) {
                prop_assert!((a - b).norm() < 1e-12);
            }
        }
    }
}
