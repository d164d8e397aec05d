//! Background levelling of topographs (STM/AFM height maps).
//!
//! Scanning-probe images carry a tilt of the sample plane and, line by line, an
//! offset drift of the slow scan axis. Both swamp the atomic contrast: a
//! `2 nm` tilt across an image hides `0.1 nm` corrugation. Two standard
//! corrections are provided (Gwyddion's "plane level" and "align rows / median"
//! tools; D. Nečas and P. Klapetek, *Gwyddion: an open-source software for SPM
//! data analysis*, Cent. Eur. J. Phys. 10 (2012) 181):
//!
//! - [`level_plane`]: subtract the least-squares plane `a + b * row + c * col`;
//! - [`level_lines`]: subtract each row's median (scan-line offset alignment).
//!
//! Pixel coordinates are the array indices `(row, col)` (unit spacing). Sums are
//! accumulated in `f64` whatever the element type, so that an `f32` image of
//! heights in metres (values ~ `1e-9`) is levelled as accurately as an `f64` one;
//! the result is returned in the element type.

use crate::error::check_finite;
use crate::{Real, Result};
use ndarray::{Array2, ArrayView2};

/// A plane `z = a + b * row + c * col` over pixel indices.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plane {
    /// Value at pixel `(0, 0)`.
    pub a: f64,
    /// Slope along rows (per pixel).
    pub b: f64,
    /// Slope along columns (per pixel).
    pub c: f64,
}

impl Plane {
    /// Value of the plane at `(row, col)`.
    #[must_use]
    pub fn at(&self, row: f64, col: f64) -> f64 {
        self.a + self.b * row + self.c * col
    }
}

/// Sum of `(i - (n - 1) / 2)^2` for `i = 0..n`, i.e. `n (n^2 - 1) / 12`.
fn centred_square_sum(n: usize) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let n = n as f64;
    n * (n * n - 1.0) / 12.0
}

/// Least-squares plane `a + b * row + c * col` through every pixel of `img`.
///
/// Closed form: with centred coordinates `u = row - (rows - 1) / 2` and
/// `v = col - (cols - 1) / 2`, the columns `1, u, v` of the design matrix are
/// mutually orthogonal on a full rectangular grid (`Σu = Σv = Σuv = 0`), so the
/// normal equations decouple:
/// `b = Σ u z / Σ u²`, `c = Σ v z / Σ v²`, and the plane passes through the mean,
/// `a = mean(z) - b (rows - 1) / 2 - c (cols - 1) / 2`, with
/// `Σ u² = cols · rows (rows² - 1) / 12` (and `Σ v²` likewise). A single row (or
/// column) has no slope along that axis: `b = 0` (or `c = 0`).
///
/// # Errors
/// [`crate::ImagingError::EmptyImage`] for an image with no pixels;
/// [`crate::ImagingError::NonFinite`] for the first NaN/infinite pixel.
///
/// # Example
/// ```
/// use ndarray::array;
/// use phyvae_imaging::background::fit_plane;
/// // z = 1 + 2 row + 3 col
/// let z = array![[1.0_f64, 4.0, 7.0], [3.0, 6.0, 9.0]];
/// let p = fit_plane(z.view()).unwrap();
/// assert!((p.a - 1.0).abs() < 1e-12 && (p.b - 2.0).abs() < 1e-12 && (p.c - 3.0).abs() < 1e-12);
/// ```
pub fn fit_plane<T: Real>(img: ArrayView2<'_, T>) -> Result<Plane> {
    check_finite(img)?;
    let (rows, cols) = img.dim();
    #[allow(clippy::cast_precision_loss)]
    let (rc, cc) = ((rows as f64 - 1.0) / 2.0, (cols as f64 - 1.0) / 2.0);
    let mut sum = 0.0_f64;
    let mut sum_uz = 0.0_f64;
    let mut sum_vz = 0.0_f64;
    for (r, row) in img.outer_iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let u = r as f64 - rc;
        let mut row_sum = 0.0_f64;
        for (c, &z) in row.iter().enumerate() {
            let z = z.f64();
            row_sum += z;
            #[allow(clippy::cast_precision_loss)]
            let v = c as f64 - cc;
            sum_vz += v * z;
        }
        sum += row_sum;
        sum_uz += u * row_sum;
    }
    #[allow(clippy::cast_precision_loss)]
    let (nr, nc) = (rows as f64, cols as f64);
    let suu = nc * centred_square_sum(rows);
    let svv = nr * centred_square_sum(cols);
    let b = if suu > 0.0 { sum_uz / suu } else { 0.0 };
    let c = if svv > 0.0 { sum_vz / svv } else { 0.0 };
    let mean = sum / (nr * nc);
    Ok(Plane {
        a: mean - b * rc - c * cc,
        b,
        c,
    })
}

/// Share of `img`'s variance that its least-squares plane ([`fit_plane`])
/// explains, in `[0, 1]`: `(b^2 var(row) + c^2 var(col)) / var(img)`, the
/// coefficient of determination `R^2` of the fit (centred row and column
/// indices are uncorrelated over the grid, so the two slopes add). 0 for a
/// constant image.
///
/// An untreated STM topograph, whose sample tilt swamps the atomic
/// corrugation, scores near 1 (the bundled step-edge image: 0.97); a STEM
/// image, whose contrast is the lattice, near 0 (the bundled Au image: 0.005).
/// Written here because it is three sums on top of [`fit_plane`].
///
/// # Errors
/// As [`fit_plane`].
///
/// # Example
/// ```
/// use ndarray::array;
/// use phyvae_imaging::background::plane_share;
/// // z = col + a checkerboard: slope 1 along the columns explains half.
/// let img = array![[1.0_f64, 1.0], [0.0, 2.0]];
/// assert!((plane_share(img.view()).unwrap() - 0.5).abs() < 1e-12);
/// ```
pub fn plane_share<T: Real>(img: ArrayView2<'_, T>) -> Result<f64> {
    let p = fit_plane(img)?;
    let (rows, cols) = img.dim();
    #[allow(clippy::cast_precision_loss)]
    let n = (rows * cols) as f64;
    // The plane passes through the image's mean at the centre of the grid.
    #[allow(clippy::cast_precision_loss)]
    let mean = p.at((rows as f64 - 1.0) / 2.0, (cols as f64 - 1.0) / 2.0);
    let total = img.iter().map(|v| (v.f64() - mean).powi(2)).sum::<f64>() / n;
    if total <= 0.0 {
        return Ok(0.0);
    }
    #[allow(clippy::cast_precision_loss)]
    let explained = p.b * p.b * centred_square_sum(rows) / rows as f64
        + p.c * p.c * centred_square_sum(cols) / cols as f64;
    Ok((explained / total).clamp(0.0, 1.0))
}

/// Subtracts the least-squares plane ([`fit_plane`]) from `img`.
///
/// The result has zero mean and no first-order tilt: a pure plane becomes 0 (to
/// rounding); a plane plus a pattern returns the pattern minus its own
/// least-squares plane (for a pattern without tilt, the pattern minus its mean).
///
/// # Errors
/// As [`fit_plane`].
///
/// # Example
/// ```
/// use ndarray::Array2;
/// use phyvae_imaging::background::level_plane;
/// let tilted = Array2::from_shape_fn((4, 5), |(r, c)| 0.5 + 0.25 * r as f32 - 0.1 * c as f32);
/// let flat = level_plane(tilted.view()).unwrap();
/// assert!(flat.iter().all(|v| v.abs() < 1e-6));
/// ```
pub fn level_plane<T: Real>(img: ArrayView2<'_, T>) -> Result<Array2<T>> {
    let p = fit_plane(img)?;
    let mut out = img.to_owned();
    for (r, mut row) in out.outer_iter_mut().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let base = p.a + p.b * r as f64;
        for (c, z) in row.iter_mut().enumerate() {
            #[allow(clippy::cast_precision_loss)]
            let plane = base + p.c * c as f64;
            *z = T::c(z.f64() - plane);
        }
    }
    Ok(out)
}

/// Subtracts from each row its median (scan-line alignment of SPM images,
/// Gwyddion "align rows, median").
///
/// The median of an even number of values is the mean of the two central ones
/// (as `numpy.median`). Only row offsets are removed: a tilt along the rows
/// (x slope) is kept, so this is usually applied after [`level_plane`].
///
/// # Errors
/// [`crate::ImagingError::EmptyImage`] for an image with no pixels;
/// [`crate::ImagingError::NonFinite`] for the first NaN/infinite pixel.
///
/// # Example
/// ```
/// use ndarray::array;
/// use phyvae_imaging::background::level_lines;
/// let img = array![[1.0_f32, 2.0, 9.0], [10.0, 14.0, 11.0]];
/// let out = level_lines(img.view()).unwrap();
/// assert_eq!(out, array![[-1.0, 0.0, 7.0], [-1.0, 3.0, 0.0]]);
/// ```
pub fn level_lines<T: Real>(img: ArrayView2<'_, T>) -> Result<Array2<T>> {
    check_finite(img)?;
    let mut out = img.to_owned();
    let mut scratch: Vec<T> = Vec::with_capacity(img.ncols());
    for mut row in out.outer_iter_mut() {
        scratch.clear();
        scratch.extend(row.iter().copied());
        let m = median_in_place(&mut scratch);
        row.mapv_inplace(|v| v - m);
    }
    Ok(out)
}

/// Median of a non-empty slice of finite values (reorders the slice).
fn median_in_place<T: Real>(v: &mut [T]) -> T {
    let n = v.len();
    let mid = n / 2;
    let cmp = |x: &T, y: &T| x.partial_cmp(y).unwrap_or(std::cmp::Ordering::Equal);
    let (lower, upper_mid, _) = v.select_nth_unstable_by(mid, cmp);
    let upper = *upper_mid;
    if n % 2 == 1 {
        upper
    } else {
        // The largest value of the lower half is the other central value.
        let lower_max = lower.iter().copied().fold(T::neg_infinity(), T::max);
        T::c((lower_max.f64() + upper.f64()) / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ImagingError;
    use ndarray::{Array2, array};

    #[test]
    fn pure_plane_becomes_zero() {
        let img = Array2::from_shape_fn((7, 9), |(r, c)| 3.0 - 0.5 * r as f64 + 0.2 * c as f64);
        let p = fit_plane(img.view()).unwrap();
        assert!((p.a - 3.0).abs() < 1e-12);
        assert!((p.b + 0.5).abs() < 1e-12);
        assert!((p.c - 0.2).abs() < 1e-12);
        let out = level_plane(img.view()).unwrap();
        assert!(out.iter().all(|v| v.abs() < 1e-12));
    }

    #[test]
    fn plane_share_of_a_plane_a_pattern_and_both() {
        // A pure plane explains all of itself.
        let plane = Array2::from_shape_fn((5, 4), |(r, c)| 1.0 + 2.0 * r as f64 - c as f64);
        assert!((plane_share(plane.view()).unwrap() - 1.0).abs() < 1e-12);
        // A checkerboard on an even grid has no slope: nothing.
        let checker = Array2::from_shape_fn((4, 6), |(r, c)| f64::from(u8::from((r + c) % 2 == 0)));
        assert!(plane_share(checker.view()).unwrap().abs() < 1e-12);
        // z = 2 col + checkerboard(+-1) on 2 x 2: [[1, 1], [-1, 3]]. By hand:
        // slope c = 2, var(col) = 1/4, explained 1; mean 1, variance
        // (0 + 0 + 4 + 4) / 4 = 2; share 1/2.
        let both = array![[1.0_f64, 1.0], [-1.0, 3.0]];
        assert!((plane_share(both.view()).unwrap() - 0.5).abs() < 1e-12);
        // A constant image has no variance to explain.
        let flat = Array2::from_elem((3, 3), 7.0_f64);
        assert_eq!(plane_share(flat.view()).unwrap(), 0.0);
    }

    #[test]
    fn plane_plus_pattern_returns_pattern_minus_mean() {
        // Pattern with zero row- and column-slope: a checkerboard of +-1 on an
        // even x even grid has Σu·z = Σv·z = 0 (each row and each column sums to 0
        // in pairs), and mean 0; add 5 to make its mean 5.
        let pattern = Array2::from_shape_fn((6, 8), |(r, c)| {
            5.0 + if (r + c) % 2 == 0 { 1.0 } else { -1.0 }
        });
        let plane = Array2::from_shape_fn((6, 8), |(r, c)| 10.0 + 2.0 * r as f64 - 3.0 * c as f64);
        let img = &pattern + &plane;
        let out = level_plane(img.view()).unwrap();
        for (o, p) in out.iter().zip(pattern.iter()) {
            assert!((o - (p - 5.0)).abs() < 1e-12, "{o} vs {}", p - 5.0);
        }
    }

    #[test]
    fn f32_heights_in_metres_level_accurately() {
        // A 1 nm tilt over 64 px in f32, values ~ 1e-9: levelled to below 1e-15.
        let img = Array2::from_shape_fn((64, 64), |(r, c)| {
            (1e-9 + 1e-11 * r as f64 + 5e-12 * c as f64) as f32
        });
        let out = level_plane(img.view()).unwrap();
        assert!(out.iter().all(|v| v.abs() < 1e-15));
    }

    #[test]
    fn single_row_has_no_row_slope() {
        let img = array![[1.0_f64, 2.0, 3.0]];
        let p = fit_plane(img.view()).unwrap();
        assert_eq!(p.b, 0.0);
        assert!((p.c - 1.0).abs() < 1e-12 && (p.a - 1.0).abs() < 1e-12);
    }

    #[test]
    fn line_medians_odd_and_even() {
        // Row 0 median 2 (odd count); row 1 median of [4, 8, 1, 5] = (4 + 5) / 2 = 4.5.
        let img = array![[3.0_f64, 2.0, 1.0], [4.0, 8.0, 1.0]];
        let out = level_lines(img.view()).unwrap();
        assert_eq!(out.row(0).to_vec(), vec![1.0, 0.0, -1.0]);
        // [4, 8, 1] median 4.
        assert_eq!(out.row(1).to_vec(), vec![0.0, 4.0, -3.0]);
        let img = array![[4.0_f64, 8.0, 1.0, 5.0]];
        let out = level_lines(img.view()).unwrap();
        assert_eq!(out.row(0).to_vec(), vec![-0.5, 3.5, -3.5, 0.5]);
    }

    #[test]
    fn line_offsets_are_removed() {
        let base = Array2::from_shape_fn((5, 7), |(_, c)| (c as f64 - 3.0) * 0.1);
        let offsets = [0.0, 3.0, -2.0, 7.5, 1.25];
        let img = Array2::from_shape_fn((5, 7), |(r, c)| base[[r, c]] + offsets[r]);
        let out = level_lines(img.view()).unwrap();
        for (o, b) in out.iter().zip(base.iter()) {
            assert!((o - b).abs() < 1e-12);
        }
    }

    #[test]
    fn empty_image_is_an_error() {
        let img = Array2::<f64>::zeros((0, 4));
        assert!(matches!(
            level_plane(img.view()),
            Err(ImagingError::EmptyImage { rows: 0, cols: 4 })
        ));
        assert!(matches!(
            level_lines(img.view()),
            Err(ImagingError::EmptyImage { rows: 0, cols: 4 })
        ));
    }

    #[test]
    fn non_finite_pixel_is_an_error() {
        let img = array![[1.0_f32, 2.0], [f32::NAN, 0.0]];
        assert!(matches!(
            level_plane(img.view()),
            Err(ImagingError::NonFinite { row: 1, col: 0, .. })
        ));
        assert!(matches!(
            level_lines(img.view()),
            Err(ImagingError::NonFinite { row: 1, col: 0, .. })
        ));
    }
}
