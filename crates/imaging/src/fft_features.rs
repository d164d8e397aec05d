//! Sliding-window Fourier descriptors: the classical feature of Vasudevan et al.
//! (R. K. Vasudevan, N. Laanait, E. M. Ferragut, K. Wang, D. B. Geohegan, K. Xiao,
//! M. Ziatdinov, S. Jesse, O. Dyck, S. V. Kalinin, "Mapping mesoscopic phase
//! evolution during E-beam induced transformations via deep learning of atomically
//! resolved images", *npj Comput. Mater.* 4, 30 (2018)), where the magnitude of the
//! Fourier transform of each window is the descriptor that is then reduced (PCA)
//! and clustered (see [`crate::cluster`]).
//!
//! The magnitude `|F|` is used because it does not change when the lattice inside a
//! window is translated (a shift only changes the phase); the Hann taper makes this
//! hold approximately for windows that do not hold a whole number of periods.
//!
//! Patch grid (the same as the rest of phyvae): origins `(r * step, c * step)` for
//! `r` in `0..gh`, `c` in `0..gw`, with `gh = (rows - window) / step + 1` and
//! `gw = (cols - window) / step + 1`; patch index `r * gw + c` (row-major).

use crate::error::check_finite;
use crate::fft::Fft2;
use crate::lattice::hann_periodic;
use crate::{ImagingError, Result};
use ndarray::{Array2, ArrayView2, s};
use rayon::prelude::*;

/// Smallest window side accepted by [`window_spectra`], in px.
pub const MIN_WINDOW: usize = 4;

/// Length of one patch's descriptor: `(window / 2 + 1) * window`.
///
/// Layout: the `fftshift`ed magnitude `S = |fftshift(fft2(patch))|` (zero frequency
/// at `(window / 2, window / 2)`, see [`crate::fft::fftshift`]) has rows
/// `0..=window / 2` kept, i.e. the vertical frequencies `ky <= 0` (row `i` holds
/// `ky = (i - window / 2) / window` cycles per px), flattened row-major. Because
/// `|F(-k)| = |F(k)|` for a real patch, the discarded rows `ky > 0` repeat kept
/// values; the kept block is `window^2 / 2 + window` values long for even
/// windows (the rows `ky = 0` and, for even windows, `ky = -1/2` are kept whole
/// although half of each repeats the other half) and `(window^2 + window) / 2` for
/// odd ones.
#[must_use]
pub fn spectrum_len(window: usize) -> usize {
    (window / 2 + 1) * window
}

/// The Fourier-magnitude descriptors of all `window x window` patches of `img`
/// every `step` px: an array of shape `(gh * gw, spectrum_len(window))`, row `r * gw
/// + c` for the patch at `(r * step, c * step)` (see the module documentation).
///
/// Each patch has its mean subtracted, is multiplied by the separable periodic Hann
/// window `w[i] w[j]`, `w[i] = 0.5 - 0.5 cos(2 pi i / window)` (Harris 1978, *Proc.
/// IEEE* 66(1) 51-83; the periodic form is the one whose DFT has only three
/// non-zero terms), is transformed by the unnormalised 2-D FFT (computed in `f64`),
/// and its magnitude `|F|` is `fftshift`ed; the half-plane of [`spectrum_len`] is
/// stored, rounded to `f32`.
///
/// Patches are computed in parallel (rayon), each independently into its own row,
/// so the result is bit-identical for any number of threads.
///
/// # Errors
/// [`ImagingError::EmptyImage`], [`ImagingError::NonFinite`];
/// [`ImagingError::InvalidParameter`] if `window < 4` or `step == 0`;
/// [`ImagingError::ImageTooSmall`] if the image cannot hold one window.
///
/// # Example
/// ```
/// use ndarray::Array2;
/// use phyvae_imaging::fft_features::{spectrum_len, window_spectra};
///
/// let img = Array2::from_shape_fn((40, 50), |(r, c)| ((r + 2 * c) % 7) as f32);
/// let f = window_spectra(img.view(), 16, 8)?;
/// // (40 - 16) / 8 + 1 = 4 rows and (50 - 16) / 8 + 1 = 5 columns of patches.
/// assert_eq!(f.dim(), (4 * 5, spectrum_len(16)));
/// assert_eq!(spectrum_len(16), 9 * 16);
/// # Ok::<(), phyvae_imaging::ImagingError>(())
/// ```
pub fn window_spectra(img: ArrayView2<'_, f32>, window: usize, step: usize) -> Result<Array2<f32>> {
    check_finite(img)?;
    if window < MIN_WINDOW {
        return Err(ImagingError::InvalidParameter {
            name: "window",
            value: window.to_string(),
            rule: "must be at least 4 px",
        });
    }
    if step == 0 {
        return Err(ImagingError::InvalidParameter {
            name: "step",
            value: step.to_string(),
            rule: "must be at least 1 px",
        });
    }
    let (rows, cols) = img.dim();
    if rows < window || cols < window {
        return Err(ImagingError::ImageTooSmall {
            rows,
            cols,
            min_rows: window,
            min_cols: window,
            what: "window",
        });
    }
    let gh = (rows - window) / step + 1;
    let gw = (cols - window) / step + 1;
    let len = spectrum_len(window);
    let hann = hann_periodic(window);
    let half = window / 2;
    let mut out = vec![0.0_f32; gh * gw * len];
    out.par_chunks_mut(len)
        .enumerate()
        .for_each_init(Fft2::<f64>::new, |fft, (index, row)| {
            let (r0, c0) = ((index / gw) * step, (index % gw) * step);
            let patch = img.slice(s![r0..r0 + window, c0..c0 + window]);
            #[allow(clippy::cast_precision_loss)]
            let mean = patch.iter().map(|&v| f64::from(v)).sum::<f64>() / (window * window) as f64;
            let tapered = Array2::from_shape_fn((window, window), |(i, j)| {
                (f64::from(patch[[i, j]]) - mean) * hann[i] * hann[j]
            });
            let f = fft.fft2(tapered.view());
            // Shifted row i, column j is unshifted (i + window - half) % window, same for j.
            for (i, out_row) in row.chunks_exact_mut(window).enumerate() {
                let fi = (i + window - half) % window;
                for (j, v) in out_row.iter_mut().enumerate() {
                    let fj = (j + window - half) % window;
                    #[allow(clippy::cast_possible_truncation)]
                    {
                        *v = f[[fi, fj]].norm() as f32;
                    }
                }
            }
        });
    Array2::from_shape_vec((gh * gw, len), out).map_err(|_| ImagingError::ShapeMismatch {
        what: "descriptor buffer",
        expected: vec![gh * gw, len],
        found: vec![gh * gw * len],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fft::fftshift;
    use std::f64::consts::PI;

    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    fn lattice(rows: usize, cols: usize, period: f64, angle_deg: f64, shift: f64) -> Array2<f32> {
        let (s, c) = angle_deg.to_radians().sin_cos();
        Array2::from_shape_fn((rows, cols), |(r, col)| {
            let (x, y) = (col as f64 + shift, r as f64 + 0.7 * shift);
            let u = x * c + y * s;
            let v = -x * s + y * c;
            ((2.0 * PI * u / period).cos() + (2.0 * PI * v / period).cos()) as f32
        })
    }

    fn distance(a: ndarray::ArrayView1<'_, f32>, b: ndarray::ArrayView1<'_, f32>) -> f64 {
        let num: f64 = a
            .iter()
            .zip(b)
            .map(|(&x, &y)| f64::from(x - y).powi(2))
            .sum();
        let den: f64 = a.iter().map(|&x| f64::from(x).powi(2)).sum();
        (num / den).sqrt()
    }

    #[test]
    fn cosine_peak_at_its_bin() {
        // cos(2 pi x / 8) on a 32 px window: 32 / 8 = 4 cycles, so |F| peaks at
        // kx = +-4 bins, i.e. columns 16 -+ 4 of the shifted spectrum, row ky = 0
        // (row 16, the last kept row).
        let img = Array2::from_shape_fn((32, 32), |(_, c)| {
            #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
            let v = (2.0 * PI * c as f64 / 8.0).cos() as f32;
            v
        });
        let f = window_spectra(img.view(), 32, 1).unwrap();
        assert_eq!(f.dim(), (1, spectrum_len(32)));
        assert_eq!(spectrum_len(32), 17 * 32);
        let (argmax, _) =
            f.row(0).iter().enumerate().fold(
                (0, f32::MIN),
                |best, (i, &v)| if v > best.1 { (i, v) } else { best },
            );
        assert_eq!((argmax / 32, argmax % 32), (16, 12));
        // Its mirror (column 20) has the same magnitude.
        assert!((f[[0, 16 * 32 + 20]] - f[[0, argmax]]).abs() <= 1e-3 * f[[0, argmax]]);
        // Hann: sum w = 16 along each axis, so |F| = (1/2) * 16 * 16 at the peak.
        assert!((f64::from(f[[0, argmax]]) - 128.0).abs() < 1e-3);
    }

    #[test]
    fn matches_direct_computation_for_odd_window() {
        let img = Array2::from_shape_fn((9, 11), |(r, c)| ((r * 7 + c * 3) % 5) as f32);
        let window = 5;
        let f = window_spectra(img.view(), window, 2).unwrap();
        let (gh, gw) = ((9 - 5) / 2 + 1, (11 - 5) / 2 + 1);
        assert_eq!(f.dim(), (gh * gw, 15));
        let hann = hann_periodic(window);
        let index = gw + 2; // patch (1, 2), origin (2, 4)
        let patch = img.slice(s![2..7, 4..9]).mapv(f64::from);
        let mean = patch.mean().unwrap();
        let tapered =
            Array2::from_shape_fn((5, 5), |(i, j)| (patch[[i, j]] - mean) * hann[i] * hann[j]);
        let expected = fftshift(crate::fft::fft2(tapered.view()).view());
        for i in 0..3 {
            for j in 0..5 {
                let e = expected[[i, j]].norm();
                assert!((f64::from(f[[index, i * 5 + j]]) - e).abs() < 1e-5 * (1.0 + e));
            }
        }
    }

    #[test]
    fn different_lattices_differ_more_than_shifts() {
        // Periods that do not divide the window: |F| is shift-invariant only
        // approximately, through the Hann taper.
        let a = lattice(48, 48, 7.0, 0.0, 0.0);
        let a_shifted = lattice(48, 48, 7.0, 0.0, 3.3);
        let b = lattice(48, 48, 5.5, 25.0, 0.0);
        let fa = window_spectra(a.view(), 32, 16).unwrap();
        let fs = window_spectra(a_shifted.view(), 32, 16).unwrap();
        let fb = window_spectra(b.view(), 32, 16).unwrap();
        let same = distance(fa.row(0), fs.row(0));
        let across = distance(fa.row(0), fb.row(0));
        assert!(same < 0.3 * across, "same {same}, across {across}");
        // Two windows of the same lattice at different places of one image.
        let within = distance(fa.row(0), fa.row(3));
        assert!(within < 0.3 * across, "within {within}, across {across}");
    }

    #[test]
    fn bit_identical_across_thread_counts() {
        let img = Array2::from_shape_fn((70, 90), |(r, c)| {
            #[allow(clippy::cast_precision_loss)]
            let v = ((r * 31 + c * 17) % 23) as f32 * 0.37 - (r as f32 * 0.05).sin();
            v
        });
        let run = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| window_spectra(img.view(), 16, 3).unwrap())
        };
        let one = run(1);
        let two = run(2);
        assert_eq!(one.dim(), (19 * 25, 9 * 16));
        assert!(
            one.iter()
                .zip(two.iter())
                .all(|(a, b)| a.to_bits() == b.to_bits())
        );
    }

    #[test]
    fn errors() {
        let img = Array2::<f32>::zeros((10, 12));
        assert!(matches!(
            window_spectra(img.view(), 3, 1),
            Err(ImagingError::InvalidParameter { name: "window", .. })
        ));
        assert!(matches!(
            window_spectra(img.view(), 4, 0),
            Err(ImagingError::InvalidParameter { name: "step", .. })
        ));
        assert!(matches!(
            window_spectra(img.view(), 11, 1),
            Err(ImagingError::ImageTooSmall {
                rows: 10,
                cols: 12,
                ..
            })
        ));
        let mut bad = img.clone();
        bad[[1, 2]] = f32::INFINITY;
        assert!(matches!(
            window_spectra(bad.view(), 4, 1),
            Err(ImagingError::NonFinite { row: 1, col: 2, .. })
        ));
        // A window as large as the image gives one patch.
        assert_eq!(window_spectra(img.view(), 10, 5).unwrap().dim(), (1, 60));
    }
}
