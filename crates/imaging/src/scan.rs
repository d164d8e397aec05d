//! Scan drift of a raster image: the displacement of each row along the fast
//! scan axis, measured on the image's lattice and removed.
//!
//! A scanning microscope records an image row after row. When the specimen
//! or the beam drifts while it does, row `y` shows the specimen displaced
//! along the row by some `d(y)`, smooth in `y`. A drift that changes over
//! tens of rows shears the lattice locally, and a model that sees a patch at
//! a time can take that shear for a change of structure.
//!
//! [`row_drift`] measures `d(y)` by geometric phase analysis (Hytch, Snoeck
//! and Kilaas 1998, "Quantitative measurement of displacement and strain
//! fields from HREM micrographs", Ultramicroscopy 74, 131-146), averaged over
//! each row: for a lattice wavevector `g`, the image demodulated by
//! `exp(-2 pi i g . r)` has the phase `-2 pi g . u` where the lattice is
//! displaced by `u`. Two wavevectors give both components of `u`; the row
//! means, smoothed along `y`, give `u_x(y)`. The straight-line part of
//! `u_x(y)` is left out: it is a uniform shear of the whole image (or the
//! wavevectors' own error), the same in every patch. [`shift_rows`] moves
//! each row back. Only the drift along the rows is measured and removed: a
//! drift across them stretches rows apart rather than shearing the lattice.
//!
//! Written here: no crate measures a lattice's phase row by row.

use ndarray::{Array2, ArrayView2};

use crate::Result;
use crate::background::level_plane;
use crate::error::ImagingError;
use crate::filters::gaussian;

/// The displacement along `x` (px) of each row of `img` relative to a
/// straight-line fit over the rows, from the lattice of `wavevectors` (two,
/// `[ky, kx]` in cycles per px, not parallel). The demodulated row means are
/// smoothed over rows with a Gaussian of `sigma_rows` rows (a lattice cell
/// is a good choice: the phase of a row is only defined over a cell).
///
/// Convention: row `y` shows, at column `x`, what a drift-free image shows
/// at `x - d[y]`; [`shift_rows`] with `d` undoes it. The line fitted to
/// `d` by least squares is subtracted, so `d` sums to 0 and has no linear
/// trend.
///
/// # Errors
/// [`ImagingError::EmptyImage`] for an image without pixels;
/// [`ImagingError::InvalidParameter`] (`wavevectors`) unless there are two
/// finite, non-parallel ones, and (`sigma_rows`) unless it is finite and
/// `>= 0`.
pub fn row_drift(
    img: ArrayView2<'_, f32>,
    wavevectors: &[[f64; 2]],
    sigma_rows: f64,
) -> Result<Vec<f64>> {
    let (h, w) = img.dim();
    if h * w == 0 {
        return Err(ImagingError::EmptyImage { rows: h, cols: w });
    }
    let &[g1, g2] = wavevectors else {
        return Err(ImagingError::InvalidParameter {
            name: "wavevectors",
            value: format!("{wavevectors:?}"),
            rule: "two lattice wavevectors [ky, kx]",
        });
    };
    let det = g1[0] * g2[1] - g1[1] * g2[0];
    let norm = g1[0].hypot(g1[1]) * g2[0].hypot(g2[1]);
    if !(det.is_finite() && norm.is_finite()) || det.abs() <= 1e-6 * norm {
        return Err(ImagingError::InvalidParameter {
            name: "wavevectors",
            value: format!("{wavevectors:?}"),
            rule: "finite and not parallel",
        });
    }
    if !(sigma_rows.is_finite() && sigma_rows >= 0.0) {
        return Err(ImagingError::InvalidParameter {
            name: "sigma_rows",
            value: sigma_rows.to_string(),
            rule: "finite and >= 0",
        });
    }
    #[allow(clippy::cast_precision_loss)]
    let mean = img.iter().map(|&v| f64::from(v)).sum::<f64>() / (h * w) as f64;
    let tau = std::f64::consts::TAU;
    // The unwrapped phase of each wavevector's smoothed row means.
    let phase = |g: [f64; 2]| -> Result<Vec<f64>> {
        #[allow(clippy::cast_precision_loss)]
        let ex: Vec<(f64, f64)> = (0..w).map(|x| (tau * g[1] * x as f64).sin_cos()).collect();
        let mut re = Array2::<f64>::zeros((h, 1));
        let mut im = Array2::<f64>::zeros((h, 1));
        for (y, row) in img.rows().into_iter().enumerate() {
            // sum_x (I - mean) exp(-2 pi i (ky y + kx x))
            let (mut sr, mut si) = (0.0, 0.0);
            for (&v, &(s, c)) in row.iter().zip(&ex) {
                let v = f64::from(v) - mean;
                sr += v * c;
                si -= v * s;
            }
            #[allow(clippy::cast_precision_loss)]
            let (s, c) = (tau * g[0] * y as f64).sin_cos();
            re[[y, 0]] = sr * c + si * s;
            im[[y, 0]] = si * c - sr * s;
        }
        // A column of one pixel: the 2-D filter smooths along the rows only.
        let (re, im) = (
            gaussian(re.view(), sigma_rows)?,
            gaussian(im.view(), sigma_rows)?,
        );
        // Each row's phase, moved by the multiple of 2 pi that brings it
        // nearest to the previous row's.
        let mut out: Vec<f64> = Vec::with_capacity(h);
        for (&r, &i) in re.iter().zip(&im) {
            let p = i.atan2(r);
            out.push(out.last().map_or(p, |&q| p - tau * ((p - q) / tau).round()));
        }
        Ok(out)
    };
    let (p1, p2) = (phase(g1)?, phase(g2)?);
    // g . u = -phi / 2 pi for both wavevectors; Cramer's rule for u_x.
    let ux = Array2::from_shape_fn((h, 1), |(y, _)| {
        let (r1, r2) = (-p1[y] / tau, -p2[y] / tau);
        (g1[0] * r2 - g2[0] * r1) / det
    });
    // The least-squares plane of one column is the straight line over rows.
    Ok(level_plane(ux.view())?.iter().copied().collect())
}

/// `img` with row `y` moved by `-shifts[y]` px along `x`: the value at
/// `(y, x)` is `img` at `(y, x + shifts[y])`, linearly interpolated, the
/// row's end value beyond its ends (scipy `map_coordinates`, `order=1`,
/// `mode='nearest'`).
///
/// # Errors
/// [`ImagingError::ShapeMismatch`] unless there is one shift per row, and
/// [`ImagingError::InvalidParameter`] (`shifts`) for a shift that is not
/// finite.
pub fn shift_rows(img: ArrayView2<'_, f32>, shifts: &[f64]) -> Result<Array2<f32>> {
    let (h, w) = img.dim();
    if shifts.len() != h {
        return Err(ImagingError::ShapeMismatch {
            what: "one shift per row",
            expected: vec![h],
            found: vec![shifts.len()],
        });
    }
    if let Some(bad) = shifts.iter().find(|s| !s.is_finite()) {
        return Err(ImagingError::InvalidParameter {
            name: "shifts",
            value: bad.to_string(),
            rule: "finite",
        });
    }
    let mut out = Array2::<f32>::zeros((h, w));
    if w == 0 {
        return Ok(out);
    }
    #[allow(clippy::cast_precision_loss)]
    let last = (w - 1) as f64;
    for ((row, mut dst), &s) in img.rows().into_iter().zip(out.rows_mut()).zip(shifts) {
        for (x, d) in dst.iter_mut().enumerate() {
            #[allow(clippy::cast_precision_loss)]
            let u = (x as f64 + s).clamp(0.0, last);
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let i = (u.floor() as usize).min(w - 1);
            let f = u - i as f64;
            let a = f64::from(row[i]);
            let b = f64::from(row[(i + 1).min(w - 1)]);
            #[allow(clippy::cast_possible_truncation)]
            {
                *d = (a + f * (b - a)) as f32;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    /// A square lattice of period 8 px (cosines along both axes, so that the
    /// two wavevectors are `[0, 1/8]` and `[1/8, 0]`), `rows x 96`, row `y`
    /// displaced by `d(y)`: the value at `(y, x)` is the drift-free
    /// lattice's at `x - d(y)`.
    fn drifted(rows: usize, d: impl Fn(f64) -> f64) -> Array2<f32> {
        let tau = std::f64::consts::TAU;
        Array2::from_shape_fn((rows, 96), |(y, x)| {
            let (y, x) = (y as f64, x as f64);
            let u = x - d(y);
            (2.0 + (tau * u / 8.0).cos() + (tau * y / 8.0).cos()) as f32
        })
    }

    const SQUARE: [[f64; 2]; 2] = [[0.0, 0.125], [0.125, 0.0]];

    #[test]
    fn the_drift_of_each_row_is_measured_without_its_line() {
        // d(y) = 1.5 sin(2 pi y / 64) + 0.01 y: the line is left out, so the
        // expected drift is the sine minus its own least-squares line.
        let d = |y: f64| 1.5 * (std::f64::consts::TAU * y / 64.0).sin() + 0.01 * y;
        let img = drifted(128, d);
        let got = row_drift(img.view(), &SQUARE, 1.0).unwrap();
        let line = Array2::from_shape_fn((128, 1), |(y, _)| d(y as f64));
        let expected = level_plane(line.view()).unwrap();
        // Away from the first and last rows (where the smoothing sees only one
        // side), within 0.05 px.
        for y in 8..120 {
            assert!(
                (got[y] - expected[[y, 0]]).abs() < 0.05,
                "row {y}: {} vs {}",
                got[y],
                expected[[y, 0]]
            );
        }
        // A lattice without drift has none.
        let straight = drifted(64, |_| 0.0);
        let none = row_drift(straight.view(), &SQUARE, 1.0).unwrap();
        assert!(none.iter().all(|v| v.abs() < 1e-9), "{none:?}");
    }

    #[test]
    fn shifting_the_rows_back_removes_the_drift() {
        let d = |y: f64| 1.2 * (std::f64::consts::TAU * y / 48.0).sin();
        let img = drifted(96, d);
        let shifts = row_drift(img.view(), &SQUARE, 1.0).unwrap();
        let fixed = shift_rows(img.view(), &shifts).unwrap();
        let left = row_drift(fixed.view(), &SQUARE, 1.0).unwrap();
        let rms = |v: &[f64]| (v[8..88].iter().map(|x| x * x).sum::<f64>() / 80.0).sqrt();
        assert!(rms(&shifts) > 0.7, "{}", rms(&shifts));
        assert!(rms(&left) < 0.05, "{}", rms(&left));
    }

    #[test]
    fn rows_shift_by_hand() {
        // Row 0 by +0.5: (0.5, 1.5, 2.5, 3) (the end value beyond the end);
        // row 1 by -1: (10, 10, 11, 12); row 2 not at all.
        let img = array![
            [0.0f32, 1.0, 2.0, 3.0],
            [10.0, 11.0, 12.0, 13.0],
            [5.0, 6.0, 7.0, 8.0]
        ];
        let out = shift_rows(img.view(), &[0.5, -1.0, 0.0]).unwrap();
        assert_eq!(
            out,
            array![
                [0.5f32, 1.5, 2.5, 3.0],
                [10.0, 10.0, 11.0, 12.0],
                [5.0, 6.0, 7.0, 8.0]
            ]
        );
    }

    #[test]
    fn bad_input_is_refused() {
        let img = drifted(16, |_| 0.0);
        let invalid = |r: Result<Vec<f64>>, what: &str| {
            assert!(
                matches!(r, Err(ImagingError::InvalidParameter { name, .. }) if name == what),
                "{what}"
            );
        };
        invalid(row_drift(img.view(), &SQUARE[..1], 1.0), "wavevectors");
        invalid(
            row_drift(img.view(), &[[0.0, 0.125], [0.0, 0.25]], 1.0),
            "wavevectors",
        );
        invalid(
            row_drift(img.view(), &[[f64::NAN, 0.125], [0.125, 0.0]], 1.0),
            "wavevectors",
        );
        invalid(row_drift(img.view(), &SQUARE, -1.0), "sigma_rows");
        let empty = Array2::<f32>::zeros((0, 4));
        assert!(matches!(
            row_drift(empty.view(), &SQUARE, 1.0),
            Err(ImagingError::EmptyImage { .. })
        ));
        assert!(matches!(
            shift_rows(img.view(), &[0.0; 3]),
            Err(ImagingError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            shift_rows(img.view(), &[f64::INFINITY; 16]),
            Err(ImagingError::InvalidParameter { name: "shifts", .. })
        ));
    }
}
