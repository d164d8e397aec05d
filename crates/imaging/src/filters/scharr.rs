//! Scharr edge operator, as scikit-image 0.26 `skimage.filters.scharr`.
//!
//! scikit-image builds, for each axis, the 3 x 3 kernel
//! `edge (along that axis) x smooth (along the other)` with
//! `edge = [1, 0, -1]` and `smooth = [3, 10, 3] / 16`, applies it with
//! `scipy.ndimage.convolve(image, kernel, mode='reflect')` (a true convolution,
//! i.e. a correlation with the flipped kernel) and combines the two axes as
//! `sqrt(g0^2 + g1^2) / sqrt(2)`. Border mode `'reflect'` is SciPy's
//! half-sample symmetric extension (`d c b a | a b c d | d c b a`); with a
//! radius-1 kernel it repeats the edge pixel. The border is not zeroed.
//!
//! Reference: scikit-image 0.26 `skimage/filters/edges.py`
//! (`scharr`, `scharr_h`, `scharr_v`, `_generic_edge_filter`);
//! H. Scharr, PhD thesis, Heidelberg 2000; D. Kroon, "Numerical optimization of
//! kernel based image derivatives", University of Twente 2009.

use crate::error::check_finite;
use crate::{Real, Result};
use ndarray::{Array2, ArrayView2};

/// Derivative weights of the Scharr operator along the edge axis
/// (scikit-image `SCHARR_EDGE`), as a convolution kernel.
pub const SCHARR_EDGE: [f64; 3] = [1.0, 0.0, -1.0];

/// Smoothing weights of the Scharr operator across the edge axis
/// (scikit-image `SCHARR_SMOOTH` = `[3, 10, 3] / 16`; sums to 1).
pub const SCHARR_SMOOTH: [f64; 3] = [3.0 / 16.0, 10.0 / 16.0, 3.0 / 16.0];

/// Convolution kernel of [`scharr_h`] (derivative along axis 0, rows):
/// `SCHARR_EDGE[i] * SCHARR_SMOOTH[j]` (scikit-image `HSCHARR_WEIGHTS`).
pub const SCHARR_H_WEIGHTS: [[f64; 3]; 3] = outer(SCHARR_EDGE, SCHARR_SMOOTH);

/// Convolution kernel of [`scharr_v`] (derivative along axis 1, columns):
/// `SCHARR_SMOOTH[i] * SCHARR_EDGE[j]` (scikit-image `VSCHARR_WEIGHTS`).
pub const SCHARR_V_WEIGHTS: [[f64; 3]; 3] = outer(SCHARR_SMOOTH, SCHARR_EDGE);

/// SciPy `ndimage` leaves kernel weights with `|w| <= f64::EPSILON` out of the sum.
const NEGLIGIBLE_WEIGHT: f64 = f64::EPSILON;

/// Number of non-zero weights of each Scharr kernel.
const SCHARR_TAPS: usize = 6;

/// Correlation taps `(row offset + 1, column offset + 1, weight)` in SciPy's order.
type Taps = [(usize, usize, f64); SCHARR_TAPS];

/// Taps of [`SCHARR_H_WEIGHTS`] as `scipy.ndimage.convolve` applies them.
const H_TAPS: Taps = correlation_taps(SCHARR_H_WEIGHTS);
/// Taps of [`SCHARR_V_WEIGHTS`] as `scipy.ndimage.convolve` applies them.
const V_TAPS: Taps = correlation_taps(SCHARR_V_WEIGHTS);

/// Outer product `a[i] * b[j]`.
const fn outer(a: [f64; 3], b: [f64; 3]) -> [[f64; 3]; 3] {
    let mut k = [[0.0; 3]; 3];
    let mut i = 0;
    while i < 3 {
        let mut j = 0;
        while j < 3 {
            k[i][j] = a[i] * b[j];
            j += 1;
        }
        i += 1;
    }
    k
}

/// The order in which `scipy.ndimage.convolve` sums a 3 x 3 kernel: a
/// convolution is a correlation with the flipped kernel `kernel[2 - i][2 - j]`,
/// whose non-negligible weights are visited row-major.
const fn correlation_taps(kernel: [[f64; 3]; 3]) -> Taps {
    let mut taps = [(0, 0, 0.0); SCHARR_TAPS];
    let mut n = 0;
    let mut i = 0;
    while i < 3 {
        let mut j = 0;
        while j < 3 {
            let wt = kernel[2 - i][2 - j];
            if wt.abs() > NEGLIGIBLE_WEIGHT && n < SCHARR_TAPS {
                taps[n] = (i, j, wt);
                n += 1;
            }
            j += 1;
        }
        i += 1;
    }
    taps
}

/// The image in `f64`, row-major, each row extended by one reflected pixel on
/// each side (`x[0] | x[0] .. x[w-1] | x[w-1]`); rows have `w + 2` entries.
fn padded_rows<T: Real>(img: ArrayView2<'_, T>) -> Vec<f64> {
    let w = img.ncols();
    let mut out = Vec::with_capacity(img.nrows() * (w + 2));
    for row in img.rows() {
        out.push(row[0].f64());
        out.extend(row.iter().map(|v| v.f64()));
        out.push(row[w - 1].f64());
    }
    out
}

/// Applies both Scharr kernels to every row with SciPy's `'reflect'` border and
/// summation order (from 0, taps in [`correlation_taps`] order, in `f64`), and
/// hands each output row index with its two derivative rows to `emit`.
fn scharr_rows<T: Real>(img: ArrayView2<'_, T>, mut emit: impl FnMut(usize, &[f64], &[f64])) {
    let (h, w) = img.dim();
    let stride = w + 2;
    let data = padded_rows(img);
    let row = |r: usize| &data[r * stride..(r + 1) * stride];
    let (mut gh, mut gv) = (vec![0.0; w], vec![0.0; w]);
    for r in 0..h {
        // Offsets -1, 0, +1 with the one-pixel reflection of rows.
        let rows = [row(r.saturating_sub(1)), row(r), row((r + 1).min(h - 1))];
        apply_taps(&rows, &H_TAPS, &mut gh);
        apply_taps(&rows, &V_TAPS, &mut gv);
        emit(r, &gh, &gv);
    }
}

/// `out[c] = sum over taps (i, j, wt) of rows[i][c + j] * wt`, accumulated from 0.
#[inline(always)]
fn apply_taps(rows: &[&[f64]; 3], taps: &Taps, out: &mut [f64]) {
    let w = out.len();
    let rows = rows.map(|r| &r[..w + 2]);
    for (c, o) in out.iter_mut().enumerate() {
        let mut acc = 0.0_f64;
        for &(i, j, wt) in taps {
            acc += rows[i][c + j] * wt;
        }
        *o = acc;
    }
}

/// One derivative component (`which` = 0 for axis 0, 1 for axis 1), rounded to `T`.
fn scharr_component<T: Real>(img: ArrayView2<'_, T>, which: usize) -> Array2<T> {
    let mut out = Array2::zeros(img.dim());
    scharr_rows(img, |r, gh, gv| {
        let g = if which == 0 { gh } else { gv };
        // NumPy: output = zeros + axis output.
        for (o, &v) in out.row_mut(r).iter_mut().zip(g) {
            *o = T::zero() + T::c(v);
        }
    });
    out
}

/// Scharr derivative along axis 0 (rows), exactly as scikit-image 0.26
/// `skimage.filters.scharr_h` (= `scharr(img, axis=0)`):
/// `h[r, c] = sum_j SCHARR_SMOOTH[j] * (x[r + 1, c + j - 1] - x[r - 1, c + j - 1])`,
/// positive where the image increases toward larger row index; border mode
/// `'reflect'`; computed in `f64` and rounded to `T` (SciPy `ndimage.convolve`).
/// The smoothing weights sum to 1, so a unit ramp along rows gives 2.
///
/// ```
/// use ndarray::array;
/// use phyvae_imaging::filters::scharr_h;
///
/// let img = array![[0.0_f64, 0.0], [1.0, 1.0], [2.0, 2.0]];
/// // Middle row: x[2] - x[0] = 2; borders repeat the edge row: 1.
/// assert_eq!(scharr_h(img.view())?, array![[1.0, 1.0], [2.0, 2.0], [1.0, 1.0]]);
/// # Ok::<(), phyvae_imaging::ImagingError>(())
/// ```
///
/// # Errors
/// [`crate::ImagingError::EmptyImage`] or [`crate::ImagingError::NonFinite`].
#[must_use = "the edge map is returned; the input is not modified"]
pub fn scharr_h<T: Real>(img: ArrayView2<'_, T>) -> Result<Array2<T>> {
    check_finite(img)?;
    Ok(scharr_component(img, 0))
}

/// Scharr derivative along axis 1 (columns), exactly as scikit-image 0.26
/// `skimage.filters.scharr_v` (= `scharr(img, axis=1)`):
/// `v[r, c] = sum_i SCHARR_SMOOTH[i] * (x[r + i - 1, c + 1] - x[r + i - 1, c - 1])`,
/// positive where the image increases toward larger column index; border mode
/// `'reflect'`; computed in `f64` and rounded to `T`.
///
/// # Errors
/// [`crate::ImagingError::EmptyImage`] or [`crate::ImagingError::NonFinite`].
#[must_use = "the edge map is returned; the input is not modified"]
pub fn scharr_v<T: Real>(img: ArrayView2<'_, T>) -> Result<Array2<T>> {
    check_finite(img)?;
    Ok(scharr_component(img, 1))
}

/// Scharr edge magnitude exactly as scikit-image 0.26 `skimage.filters.scharr`
/// (`axis=None`, `mode='reflect'`, no mask):
/// `sqrt(h^2 + v^2) / sqrt(2)` with `h` = [`scharr_h`], `v` = [`scharr_v`].
/// Each derivative is computed in `f64` and rounded to `T`; squares, sum,
/// square root and the division by `sqrt(2)` (rounded to `T`) are in `T`, as
/// NumPy does for a `float32` image. The border is not zeroed (older
/// scikit-image versions zeroed it).
///
/// ```
/// use ndarray::Array2;
/// use phyvae_imaging::filters::scharr;
///
/// // A unit ramp along columns: v = 2 inside, h = 0, magnitude 2 / sqrt(2).
/// let img = Array2::from_shape_fn((3, 4), |(_, c)| c as f64);
/// let e = scharr(img.view())?;
/// assert!((e[[1, 1]] - 2.0_f64.sqrt()).abs() < 1e-15);
/// # Ok::<(), phyvae_imaging::ImagingError>(())
/// ```
///
/// # Errors
/// [`crate::ImagingError::EmptyImage`] or [`crate::ImagingError::NonFinite`].
#[must_use = "the edge map is returned; the input is not modified"]
pub fn scharr<T: Real>(img: ArrayView2<'_, T>) -> Result<Array2<T>> {
    check_finite(img)?;
    let sqrt2 = T::c(2.0).sqrt();
    let mut out = Array2::zeros(img.dim());
    scharr_rows(img, |r, gh, gv| {
        for ((o, &h), &v) in out.row_mut(r).iter_mut().zip(gh).zip(gv) {
            let (h, v) = (T::c(h), T::c(v));
            // NumPy: output = (0 + h * h) + v * v, then sqrt(output) / sqrt(2).
            *o = (h * h + v * v).sqrt() / sqrt2;
        }
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ImagingError;
    use ndarray::{Array2, array};
    use proptest::prelude::*;

    /// Straightforward `scipy.ndimage.convolve(img, kernel, mode='reflect')`:
    /// flip the kernel, visit its non-negligible weights row-major, clamp indices.
    fn reference_convolve(img: &Array2<f64>, kernel: &[[f64; 3]; 3]) -> Array2<f64> {
        let (h, w) = img.dim();
        Array2::from_shape_fn((h, w), |(r, c)| {
            let mut acc = 0.0;
            for i in 0..3 {
                for j in 0..3 {
                    let wt = kernel[2 - i][2 - j];
                    if wt.abs() > f64::EPSILON {
                        let rr = (r + i).saturating_sub(1).min(h - 1);
                        let cc = (c + j).saturating_sub(1).min(w - 1);
                        acc += img[[rr, cc]] * wt;
                    }
                }
            }
            acc
        })
    }

    #[test]
    fn taps_follow_scipy_order() {
        let (a, b) = (0.1875, 0.625);
        assert_eq!(
            H_TAPS,
            [
                (0, 0, -a),
                (0, 1, -b),
                (0, 2, -a),
                (2, 0, a),
                (2, 1, b),
                (2, 2, a)
            ]
        );
        assert_eq!(
            V_TAPS,
            [
                (0, 0, -a),
                (0, 2, a),
                (1, 0, -b),
                (1, 2, b),
                (2, 0, -a),
                (2, 2, a)
            ]
        );
    }

    #[test]
    fn kernels_are_scikit_image_weights() {
        assert_eq!(
            SCHARR_H_WEIGHTS,
            [
                [0.1875, 0.625, 0.1875],
                [0.0, 0.0, 0.0],
                [-0.1875, -0.625, -0.1875]
            ]
        );
        assert_eq!(
            SCHARR_V_WEIGHTS,
            [
                [0.1875, 0.0, -0.1875],
                [0.625, 0.0, -0.625],
                [0.1875, 0.0, -0.1875]
            ]
        );
    }

    #[test]
    fn step_edges_hand_computed() {
        // Step between rows 2 and 3 of a 5 x 5 image: h[2, :] = x[3] - x[1] = 1,
        // h[3, :] = x[4] - x[2] = 1, elsewhere 0; v = 0. skimage.filters.scharr_h
        // gives [1, 1, 1, 1, 1] on row 2.
        let img = Array2::from_shape_fn((5, 5), |(r, _)| if r >= 3 { 1.0_f64 } else { 0.0 });
        let h = scharr_h(img.view()).unwrap();
        for ((r, _), &v) in h.indexed_iter() {
            assert_eq!(v, if r == 2 || r == 3 { 1.0 } else { 0.0 });
        }
        assert!(scharr_v(img.view()).unwrap().iter().all(|&v| v == 0.0));
        // Step between columns 2 and 3: v[:, 2] = v[:, 3] = 1, and v[:, 4] = x[4] - x[3] = 0
        // because the reflection repeats column 4 (skimage.filters.scharr_v row:
        // [0, 0, 1, 1, 0]).
        let v = scharr_v(img.t()).unwrap();
        assert_eq!(v.row(2), array![0.0, 0.0, 1.0, 1.0, 0.0]);
        // Magnitude: 1 / sqrt(2) on the two edge rows.
        let m = scharr(img.view()).unwrap();
        assert!((m[[2, 0]] - 0.5_f64.sqrt()).abs() < 1e-15);
        assert_eq!(m[[0, 0]], 0.0);
    }

    #[test]
    fn single_pixel_smoothing_weights() {
        // An impulse of 16 at (1, 1) of a 3 x 3 image, with
        // h[r, c] = sum_j s_j (x[r+1, c+j-1] - x[r-1, c+j-1]), s = [3, 10, 3] / 16:
        // at r = 0 only x[1, 1] enters, with +16 s_j for j = 2 - c: [3, 10, 3];
        // at r = 2 it enters with -16 s_j: [-3, -10, -3]; at r = 1, x[2] - x[0] = 0.
        let mut img = Array2::<f64>::zeros((3, 3));
        img[[1, 1]] = 16.0;
        let h = scharr_h(img.view()).unwrap();
        assert_eq!(
            h,
            array![[3.0, 10.0, 3.0], [0.0, 0.0, 0.0], [-3.0, -10.0, -3.0]]
        );
    }

    #[test]
    fn constant_image_rounding_matches_scipy_order() {
        // SciPy sums the taps in the order of the flipped kernel, so on a constant
        // image the row derivative is -a - b - a + a + b + a with rounding, not 0.
        // scikit-image 0.26 on np.full((1, 1), -2.2348605400742327):
        // scharr_h = -5.55111512e-17, scharr_v = 0, scharr = 3.92523115e-17.
        let img = array![[-2.234_860_540_074_232_7_f64]];
        assert_eq!(scharr_h(img.view()).unwrap()[[0, 0]], -(2.0_f64.powi(-54)));
        assert_eq!(scharr_v(img.view()).unwrap()[[0, 0]], 0.0);
        let m = scharr(img.view()).unwrap()[[0, 0]];
        assert!((m - 3.925_231_15e-17).abs() < 1e-25);
    }

    #[test]
    fn one_pixel_image_has_no_edges() {
        assert_eq!(scharr(array![[5.0_f32]].view()).unwrap(), array![[0.0_f32]]);
    }

    #[test]
    fn rejects_empty_and_non_finite() {
        let empty = Array2::<f32>::zeros((2, 0));
        assert!(matches!(
            scharr(empty.view()),
            Err(ImagingError::EmptyImage { .. })
        ));
        let bad = array![[1.0_f64, f64::INFINITY]];
        assert!(matches!(
            scharr_h(bad.view()),
            Err(ImagingError::NonFinite { .. })
        ));
    }

    proptest! {
        #[test]
        fn components_equal_reference_convolution(
            (h, w, data) in (1usize..7, 1usize..7).prop_flat_map(|(h, w)| {
                (Just(h), Just(w), proptest::collection::vec(-1.0f64..1.0, h * w))
            })
        ) {
            let img = Array2::from_shape_vec((h, w), data).unwrap();
            let gh = reference_convolve(&img, &SCHARR_H_WEIGHTS);
            let gv = reference_convolve(&img, &SCHARR_V_WEIGHTS);
            prop_assert_eq!(scharr_h(img.view()).unwrap(), gh.clone());
            prop_assert_eq!(scharr_v(img.view()).unwrap(), gv.clone());
            let m = scharr(img.view()).unwrap();
            for ((&m, &x), &y) in m.iter().zip(&gh).zip(&gv) {
                prop_assert_eq!(m, (x * x + y * y).sqrt() / 2.0_f64.sqrt());
            }
        }

        #[test]
        fn constant_image_has_negligible_magnitude(v in -5.0f64..5.0, h in 1usize..6, w in 1usize..6) {
            // Zero up to the rounding of the six-term sum (see the test below).
            let img = Array2::from_elem((h, w), v);
            prop_assert!(scharr(img.view()).unwrap().iter().all(|&e| e.abs() <= 1e-15 * v.abs()));
        }

        #[test]
        fn transpose_swaps_components(data in proptest::collection::vec(-1.0f64..1.0, 20)) {
            let img = Array2::from_shape_vec((4, 5), data).unwrap();
            let h = scharr_h(img.view()).unwrap();
            let v_t = scharr_v(img.t()).unwrap();
            for ((r, c), &x) in h.indexed_iter() {
                prop_assert!((v_t[[c, r]] - x).abs() <= 1e-15);
            }
            let m = scharr(img.view()).unwrap();
            let m_t = scharr(img.t()).unwrap();
            for ((r, c), &x) in m.indexed_iter() {
                prop_assert!((m_t[[c, r]] - x).abs() <= 1e-15);
                prop_assert!(x >= 0.0);
            }
        }
    }
}
