//! Lattice measurement from the averaged power spectrum of an image.
//!
//! [`measure_lattice`] finds the strong Bragg-like peaks of an atomic-resolution
//! image and reports their periods and directions, together with estimates of the
//! additive noise level and of the image's standard deviation. It is meant to pick
//! settings (window size, physics-loss frequency) automatically, so it favours
//! robustness over the last digit.
//!
//! Method:
//! 1. Welch-averaged power spectrum (Welch 1967, *IEEE Trans. Audio Electroacoust.*
//!    15(2) 70-73) over square tiles of side `tile` = the largest power of two not
//!    above `min(rows, cols, 256)`, laid every `tile / 2` px (50 % overlap) plus one
//!    last row / column of tiles flush with the bottom / right edge when the grid
//!    does not reach it. Each tile has its mean subtracted and is multiplied by a
//!    separable periodic 2-D Hann window (Harris 1978, *Proc. IEEE* 66(1) 51-83)
//!    before its FFT; `|F|^2` is averaged over the tiles and `fftshift`ed.
//! 2. Candidate peaks: bins that are the maximum of their 5 x 5 neighbourhood (ties go
//!    to the first bin in row-major order), at least [`MIN_RADIUS_BINS`] bins from the
//!    zero frequency (periods up to `tile / 2`) and with a period of at least
//!    [`MIN_PERIOD_PX`] px. One of each Friedel pair is kept (the spectrum of a real
//!    image is point-symmetric): the half-plane `ky > 0`, plus `kx > 0` on `ky = 0`.
//! 3. Sub-bin position: a parabola through the logarithm of the three powers along
//!    each axis (Gaussian interpolation; the Hann window is separable, so its peak
//!    is too).
//! 4. Strength = peak power / background, the background being the median power of
//!    the annulus of bins whose rounded radius is within one bin of the peak's, floored
//!    at [`BACKGROUND_FLOOR`] times the spectrum's maximum. Peaks of strength at least
//!    [`MIN_PEAK_STRENGTH`] are kept, at most [`MAX_PEAKS`], strongest first.
//!
//! Coordinates: `x` is the column index, `y` the row index (pointing down), `k` in
//! cycles per pixel. A peak's angle is the direction of its `k`, measured from `+x`
//! towards `+y` (clockwise on screen), in `[0, 180)` degrees; lattice planes are
//! perpendicular to it. The range wraps: a peak whose sub-bin position lies just
//! below the `+x` axis is reported at an angle just below 180 degrees.

use crate::error::check_finite;
use crate::fft::{Fft2, fftshift};
use crate::{ImagingError, Result};
use ndarray::{Array2, ArrayView2, s};
use rayon::prelude::*;

/// Smallest image side [`measure_lattice`] accepts, in px.
pub const MIN_SIDE: usize = 16;
/// Largest tile side of the averaged spectrum, in px.
pub const MAX_TILE: usize = 256;
/// Candidate peaks closer than this to the zero frequency (in frequency bins) are
/// ignored: the Hann main lobe of the mean and of smooth backgrounds lives there.
pub const MIN_RADIUS_BINS: f64 = 2.0;
/// Shortest period reported, in px (Nyquist is 2 px).
pub const MIN_PERIOD_PX: f64 = 2.5;
/// Smallest strength (peak power over the local background) of a reported peak.
///
/// With a single tile (an image of at most 256 px on a side) the power of a
/// pure-noise bin is exponentially distributed, so `power / median` exceeds `s`
/// with probability `2^-s`; a 256-px tile has about 16 500 candidate bins in its
/// half-plane, so the threshold must be well above `log2(16 500) = 14` to keep
/// noise out. 25 gives an expected 5e-4 false peaks per noise image, while a lattice
/// of amplitude 0.1 times the noise standard deviation already reaches a strength of
/// about 70 in one 256-px tile. Averaging more tiles only narrows the noise
/// distribution.
pub const MIN_PEAK_STRENGTH: f64 = 25.0;
/// Largest number of peaks reported.
pub const MAX_PEAKS: usize = 12;
/// The background of a peak is at least this fraction of the spectrum's maximum, so
/// that noise-free images (whose spectrum away from the peaks is only window
/// leakage and rounding) do not turn leakage crossings into peaks: a reported
/// peak has at least `MIN_PEAK_STRENGTH * BACKGROUND_FLOOR` = 2.5e-5 of the
/// strongest bin's power (0.5 % of its amplitude).
pub const BACKGROUND_FLOOR: f64 = 1e-6;
/// Images whose variance is below this fraction of their mean square are flat:
/// their spectrum is rounding noise and no peak is searched.
const FLAT_RELATIVE_VARIANCE: f64 = 1e-20;

/// One spectral peak of a lattice (one of its Friedel pair).
#[derive(Debug, Clone, PartialEq)]
pub struct LatticePeak {
    /// Period of the lattice fringes, `1 / |k|`, in px.
    pub period_px: f64,
    /// Direction of `k` from `+x` (columns) towards `+y` (rows, down), in degrees,
    /// in `[0, 180)`.
    pub angle_deg: f64,
    /// Horizontal (column) frequency, cycles per px.
    pub kx: f64,
    /// Vertical (row, downward) frequency, cycles per px.
    pub ky: f64,
    /// Peak power over the median power of its annulus (see the module docs);
    /// dimensionless and comparable across scales.
    pub strength: f64,
}

/// What [`measure_lattice`] found in an image.
#[derive(Debug, Clone, PartialEq)]
pub struct LatticeMeasurement {
    /// Peaks of strength at least [`MIN_PEAK_STRENGTH`], strongest first, at most
    /// [`MAX_PEAKS`]; empty when the image shows no lattice.
    pub peaks: Vec<LatticePeak>,
    /// Side of the square tiles of the averaged spectrum, in px (frequency bins are
    /// `1 / tile` cycles per px wide).
    pub tile: usize,
    /// Estimated standard deviation of additive white noise, in image units
    /// (Immerkaer 1996, see [`noise_sigma`]).
    pub noise_sigma: f64,
    /// Standard deviation of the image (population, `ddof = 0`), in image units;
    /// it includes the noise.
    pub signal_sigma: f64,
}

impl LatticeMeasurement {
    /// Whether at least one peak was found.
    #[must_use]
    pub fn has_lattice(&self) -> bool {
        !self.peaks.is_empty()
    }

    /// The longest period among the reported peaks (all of which passed
    /// [`MIN_PEAK_STRENGTH`]), in px: the unit-cell scale. `None` without peaks.
    ///
    /// No relative cut is applied: the longest period of a lattice can carry a
    /// weak reflection (e.g. the `(1, 0)` reflection of a perovskite whose A and B
    /// columns have similar intensities), which is still the cell.
    #[must_use]
    pub fn largest_period(&self) -> Option<f64> {
        self.peaks.iter().map(|p| p.period_px).reduce(f64::max)
    }

    /// The distinct periods of the peaks, strongest first: peaks are taken in
    /// strength order, and a peak whose period is within `rel_tol` (relative,
    /// `|p - q| <= rel_tol * q`) of the first period `q` of an earlier group joins
    /// that group; each group is reported as the strength-weighted mean of its
    /// periods. A square lattice gives one period for its `(1, 0)` and `(0, 1)`
    /// peaks.
    #[must_use]
    pub fn distinct_periods(&self, rel_tol: f64) -> Vec<f64> {
        // (first period, sum of strength * period, sum of strength)
        let mut groups: Vec<(f64, f64, f64)> = Vec::new();
        for p in &self.peaks {
            match groups
                .iter_mut()
                .find(|g| (p.period_px - g.0).abs() <= rel_tol * g.0)
            {
                Some(g) => {
                    g.1 += p.strength * p.period_px;
                    g.2 += p.strength;
                }
                None => groups.push((p.period_px, p.strength * p.period_px, p.strength)),
            }
        }
        groups
            .into_iter()
            .map(|(first, wsum, w)| {
                if w.is_finite() && w > 0.0 {
                    wsum / w
                } else {
                    first
                }
            })
            .collect()
    }

    /// Signal-to-noise ratio `signal_sigma / noise_sigma`; `None` when the noise
    /// estimate is zero.
    #[must_use]
    pub fn snr(&self) -> Option<f64> {
        (self.noise_sigma > 0.0).then(|| self.signal_sigma / self.noise_sigma)
    }
}

/// Measures the lattice of `img` from its averaged power spectrum (see the module
/// documentation for the method and conventions).
///
/// A constant image or pure noise gives no peak (and no error).
///
/// # Errors
/// [`ImagingError::EmptyImage`], [`ImagingError::NonFinite`], or
/// [`ImagingError::ImageTooSmall`] if a side is below [`MIN_SIDE`] px.
///
/// # Example
/// ```
/// use ndarray::Array2;
/// use phyvae_imaging::lattice::measure_lattice;
///
/// // Horizontal fringes every 8 px: k points down the rows (90 degrees).
/// let img = Array2::from_shape_fn((64, 64), |(r, _)| {
///     (2.0 * std::f32::consts::PI * r as f32 / 8.0).cos()
/// });
/// let m = measure_lattice(img.view())?;
/// assert!((m.peaks[0].period_px - 8.0).abs() < 0.05);
/// assert!((m.peaks[0].angle_deg - 90.0).abs() < 0.5);
/// # Ok::<(), phyvae_imaging::ImagingError>(())
/// ```
pub fn measure_lattice(img: ArrayView2<'_, f32>) -> Result<LatticeMeasurement> {
    check_finite(img)?;
    let (rows, cols) = img.dim();
    if rows < MIN_SIDE || cols < MIN_SIDE {
        return Err(ImagingError::ImageTooSmall {
            rows,
            cols,
            min_rows: MIN_SIDE,
            min_cols: MIN_SIDE,
            what: "minimum for a lattice measurement",
        });
    }
    let x = img.mapv(f64::from);
    #[allow(clippy::cast_precision_loss)]
    let n = x.len() as f64;
    let mean = x.sum() / n;
    let variance = x.iter().map(|&v| (v - mean) * (v - mean)).sum::<f64>() / n;
    let mean_square = x.iter().map(|&v| v * v).sum::<f64>() / n;
    let tile = largest_power_of_two(rows.min(cols).min(MAX_TILE));
    let peaks = if variance <= FLAT_RELATIVE_VARIANCE * mean_square {
        Vec::new()
    } else {
        find_peaks(&welch_power(x.view(), tile), tile)
    };
    Ok(LatticeMeasurement {
        peaks,
        tile,
        noise_sigma: immerkaer_sigma(x.view()),
        signal_sigma: variance.sqrt(),
    })
}

/// Standard deviation of additive white Gaussian noise in `img`, by Immerkaer's
/// estimator (J. Immerkaer, "Fast noise variance estimation", *Comput. Vis. Image
/// Underst.* 64(2) (1996) 300-302): `sigma = sqrt(pi / 2) / (6 (W - 2) (H - 2)) *
/// sum |img * N|` over the interior pixels, with the mask
/// `N = [1 -2 1; -2 4 -2; 1 -2 1]` (the difference of two Laplacians, which cancels
/// any image that is linear along rows or along columns).
///
/// Fine image structure (sharp edges, atom columns only a few pixels wide) also
/// excites the mask, so the estimate is an upper bound on the noise for such images
/// (and `signal_sigma / noise_sigma` a lower bound on the SNR).
///
/// # Errors
/// [`ImagingError::EmptyImage`], [`ImagingError::NonFinite`], or
/// [`ImagingError::ImageTooSmall`] if a side is below 3 px.
pub fn noise_sigma(img: ArrayView2<'_, f32>) -> Result<f64> {
    check_finite(img)?;
    let (rows, cols) = img.dim();
    if rows < 3 || cols < 3 {
        return Err(ImagingError::ImageTooSmall {
            rows,
            cols,
            min_rows: 3,
            min_cols: 3,
            what: "noise-estimation mask",
        });
    }
    Ok(immerkaer_sigma(img.mapv(f64::from).view()))
}

/// Immerkaer's estimator on an image of at least 3 x 3 px (see [`noise_sigma`]).
fn immerkaer_sigma(x: ArrayView2<'_, f64>) -> f64 {
    let (rows, cols) = x.dim();
    let mut total = 0.0;
    for r in 1..rows - 1 {
        let (a, b, c) = (x.row(r - 1), x.row(r), x.row(r + 1));
        for j in 1..cols - 1 {
            let da = a[j - 1] - 2.0 * a[j] + a[j + 1];
            let db = b[j - 1] - 2.0 * b[j] + b[j + 1];
            let dc = c[j - 1] - 2.0 * c[j] + c[j + 1];
            total += (da - 2.0 * db + dc).abs();
        }
    }
    #[allow(clippy::cast_precision_loss)]
    let interior = ((rows - 2) * (cols - 2)) as f64;
    (std::f64::consts::FRAC_PI_2).sqrt() * total / (6.0 * interior)
}

/// The largest power of two not above `n` (`n >= 1`).
fn largest_power_of_two(n: usize) -> usize {
    1 << (usize::BITS - 1 - n.leading_zeros())
}

/// Tile origins along one axis: every `tile / 2` px, plus one flush with the end.
fn tile_origins(len: usize, tile: usize) -> Vec<usize> {
    let last = len - tile;
    let mut origins: Vec<usize> = (0..=last).step_by((tile / 2).max(1)).collect();
    if origins.last() != Some(&last) {
        origins.push(last);
    }
    origins
}

/// The periodic Hann window of length `n`: `w[i] = 0.5 - 0.5 cos(2 pi i / n)`.
pub(crate) fn hann_periodic(n: usize) -> Vec<f64> {
    #[allow(clippy::cast_precision_loss)]
    let nf = n as f64;
    (0..n)
        .map(|i| {
            #[allow(clippy::cast_precision_loss)]
            let t = i as f64;
            0.5 - 0.5 * (2.0 * std::f64::consts::PI * t / nf).cos()
        })
        .collect()
}

/// Welch-averaged, `fftshift`ed power spectrum over `tile x tile` tiles.
///
/// Each row band of tiles is summed on one thread in a fixed order and the bands
/// are added in order, so the result does not depend on the number of threads.
fn welch_power(x: ArrayView2<'_, f64>, tile: usize) -> Array2<f64> {
    let (rows, cols) = x.dim();
    let row_origins = tile_origins(rows, tile);
    let col_origins = tile_origins(cols, tile);
    let w = hann_periodic(tile);
    let bands: Vec<Array2<f64>> = row_origins
        .par_iter()
        .map_init(Fft2::<f64>::new, |fft, &r0| {
            let mut acc = Array2::<f64>::zeros((tile, tile));
            for &c0 in &col_origins {
                let t = x.slice(s![r0..r0 + tile, c0..c0 + tile]);
                #[allow(clippy::cast_precision_loss)]
                let mean = t.sum() / (tile * tile) as f64;
                let windowed =
                    Array2::from_shape_fn((tile, tile), |(i, j)| (t[[i, j]] - mean) * w[i] * w[j]);
                let f = fft.fft2(windowed.view());
                acc.zip_mut_with(&f, |a, z| *a += z.norm_sqr());
            }
            acc
        })
        .collect();
    let mut total = Array2::<f64>::zeros((tile, tile));
    for b in &bands {
        total += b;
    }
    #[allow(clippy::cast_precision_loss)]
    let count = (row_origins.len() * col_origins.len()) as f64;
    total.mapv_inplace(|v| v / count);
    fftshift(total.view())
}

/// Vertex offset of a parabola through `(-1, a)`, `(0, m)`, `(1, b)`, using the
/// logarithms when all three are positive (Gaussian interpolation). In `[-0.5, 0.5]`
/// when `m` is the largest.
fn vertex_offset(a: f64, m: f64, b: f64) -> f64 {
    let (a, m, b) = if a > 0.0 && m > 0.0 && b > 0.0 {
        (a.ln(), m.ln(), b.ln())
    } else {
        (a, m, b)
    };
    let den = a - 2.0 * m + b;
    if den < 0.0 {
        (0.5 * (a - b) / den).clamp(-0.5, 0.5)
    } else {
        0.0
    }
}

/// Median of `v` (mean of the two middle values for an even length); 0 if empty.
fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let n = v.len();
    let mid = n / 2;
    let (_, &mut upper, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    if n % 2 == 1 {
        upper
    } else {
        let lower = v[..mid].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        0.5 * (lower + upper)
    }
}

/// Peaks of the shifted averaged power spectrum `p` of side `tile`.
#[allow(clippy::cast_precision_loss, clippy::cast_possible_wrap)]
fn find_peaks(p: &Array2<f64>, tile: usize) -> Vec<LatticePeak> {
    let c = (tile / 2) as isize;
    let t = tile as f64;
    let max_power = p.iter().copied().fold(0.0, f64::max);
    if max_power <= 0.0 {
        return Vec::new();
    }
    // Power values by rounded radius.
    let radius = |i: isize, j: isize| ((i - c) as f64).hypot((j - c) as f64);
    let max_ring = radius(0, 0).round() as usize + 2;
    let mut rings: Vec<Vec<f64>> = vec![Vec::new(); max_ring + 1];
    for ((i, j), &v) in p.indexed_iter() {
        let r = radius(i as isize, j as isize).round() as usize;
        rings[r].push(v);
    }
    let max_radius = t / MIN_PERIOD_PX;
    let floor = BACKGROUND_FLOOR * max_power;
    let mut backgrounds: Vec<Option<f64>> = vec![None; max_ring + 1];
    let mut background = |ring: usize| -> f64 {
        if let Some(b) = backgrounds[ring] {
            return b;
        }
        let mut values: Vec<f64> = rings[ring.saturating_sub(1)..=(ring + 1).min(max_ring)]
            .iter()
            .flatten()
            .copied()
            .collect();
        let b = median(&mut values).max(floor);
        backgrounds[ring] = Some(b);
        b
    };

    let n = tile as isize;
    let at = |i: isize, j: isize| -> Option<f64> {
        ((0..n).contains(&i) && (0..n).contains(&j)).then(|| p[[i as usize, j as usize]])
    };
    let mut peaks = Vec::new();
    for i in c..n {
        for j in 0..n {
            let (di, dj) = (i - c, j - c);
            if di == 0 && dj <= 0 {
                continue;
            }
            let r = radius(i, j);
            if r < MIN_RADIUS_BINS || r > max_radius {
                continue;
            }
            let v = p[[i as usize, j as usize]];
            let is_max = (-2..=2_isize).all(|a| {
                (-2..=2_isize).all(|b| {
                    let before = a < 0 || (a == 0 && b < 0);
                    match at(i + a, j + b) {
                        Some(u) if (a, b) != (0, 0) => {
                            if before {
                                u < v
                            } else {
                                u <= v
                            }
                        }
                        _ => true,
                    }
                })
            });
            if !is_max {
                continue;
            }
            let strength = v / background(r.round() as usize);
            if strength < MIN_PEAK_STRENGTH {
                continue;
            }
            let get = |a: isize, b: isize| at(i + a, j + b).unwrap_or(0.0);
            let dy = vertex_offset(get(-1, 0), v, get(1, 0));
            let dx = vertex_offset(get(0, -1), v, get(0, 1));
            let (mut kx, mut ky) = ((dj as f64 + dx) / t, (di as f64 + dy) / t);
            let mut angle = ky.atan2(kx).to_degrees();
            if !(0.0..180.0).contains(&angle) {
                kx = -kx;
                ky = -ky;
                angle = ky.atan2(kx).to_degrees();
            }
            if angle >= 180.0 {
                angle -= 180.0;
            }
            peaks.push(LatticePeak {
                period_px: 1.0 / kx.hypot(ky),
                angle_deg: angle.max(0.0),
                kx,
                ky,
                strength,
            });
        }
    }
    // Stable sort: ties keep the row-major scan order.
    peaks.sort_by(|a, b| b.strength.total_cmp(&a.strength));
    peaks.truncate(MAX_PEAKS);
    peaks
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, StandardNormal};
    use std::f64::consts::PI;

    /// Image from a function of (x = column, y = row), rounded to `f32`.
    fn image(rows: usize, cols: usize, f: impl Fn(f64, f64) -> f64) -> Array2<f32> {
        #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
        Array2::from_shape_fn((rows, cols), |(r, c)| f(c as f64, r as f64) as f32)
    }

    fn noise(rows: usize, cols: usize, sigma: f64, seed: u64) -> Array2<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Array2::from_shape_fn((rows, cols), |_| {
            sigma * <StandardNormal as Distribution<f64>>::sample(&StandardNormal, &mut rng)
        })
    }

    #[test]
    fn cosine_lattice_period_and_angles() {
        let img = image(256, 256, |x, y| {
            (2.0 * PI * x / 9.0).cos() + (2.0 * PI * y / 9.0).cos()
        });
        let m = measure_lattice(img.view()).unwrap();
        assert_eq!(m.tile, 256);
        assert_eq!(m.peaks.len(), 2, "{:?}", m.peaks);
        for p in &m.peaks {
            assert!((p.period_px - 9.0).abs() < 0.15, "{p:?}");
        }
        let mut angles: Vec<f64> = m.peaks.iter().map(|p| p.angle_deg).collect();
        angles.sort_by(f64::total_cmp);
        assert!(
            angles[0].abs() < 1.0 && (angles[1] - 90.0).abs() < 1.0,
            "{angles:?}"
        );
        assert!((m.largest_period().unwrap() - 9.0).abs() < 0.15);
        assert_eq!(m.distinct_periods(0.05).len(), 1);
        assert!(m.has_lattice());
    }

    #[test]
    fn rotated_lattice_angle() {
        // Wave vectors at 30 and 120 degrees (clockwise from +x, y down), period 10 px.
        let th = 30.0_f64.to_radians();
        let img = image(256, 256, |x, y| {
            (2.0 * PI * (x * th.cos() + y * th.sin()) / 10.0).cos()
                + (2.0 * PI * (-x * th.sin() + y * th.cos()) / 10.0).cos()
        });
        let m = measure_lattice(img.view()).unwrap();
        assert_eq!(m.peaks.len(), 2, "{:?}", m.peaks);
        let mut angles: Vec<f64> = m.peaks.iter().map(|p| p.angle_deg).collect();
        angles.sort_by(f64::total_cmp);
        assert!((angles[0] - 30.0).abs() < 1.5, "{angles:?}");
        assert!((angles[1] - 120.0).abs() < 1.5, "{angles:?}");
        for p in &m.peaks {
            assert!((p.period_px - 10.0).abs() < 0.15, "{p:?}");
            assert!((p.angle_deg - p.ky.atan2(p.kx).to_degrees()).abs() < 1e-9);
        }
    }

    #[test]
    fn two_half_images_give_two_periods() {
        let img = image(256, 256, |x, y| {
            let p = if x < 128.0 { 9.0 } else { 11.0 };
            (2.0 * PI * x / p).cos() + (2.0 * PI * y / p).cos()
        });
        let m = measure_lattice(img.view()).unwrap();
        let periods = m.distinct_periods(0.05);
        for expected in [9.0, 11.0] {
            assert!(
                periods.iter().any(|&p| (p - expected).abs() < 0.2),
                "{expected} not in {periods:?}"
            );
        }
    }

    #[test]
    fn pure_noise_has_no_peak() {
        for (seed, (rows, cols)) in [(1, (256, 256)), (2, (200, 300)), (3, (64, 64))] {
            let n = noise(rows, cols, 1.0, seed);
            #[allow(clippy::cast_possible_truncation)]
            let img = n.mapv(|v| v as f32);
            let m = measure_lattice(img.view()).unwrap();
            assert!(m.peaks.is_empty(), "seed {seed}: {:?}", m.peaks);
            assert!(!m.has_lattice());
            assert_eq!(m.largest_period(), None);
            // White noise of sigma 1: both estimates near 1.
            assert!((m.noise_sigma - 1.0).abs() < 0.1, "{}", m.noise_sigma);
            assert!((m.signal_sigma - 1.0).abs() < 0.1, "{}", m.signal_sigma);
        }
    }

    #[test]
    fn constant_image_has_no_peak() {
        for v in [0.0_f32, 0.3, -7.25] {
            let m = measure_lattice(Array2::from_elem((40, 50), v).view()).unwrap();
            assert!(m.peaks.is_empty());
            assert_eq!(m.tile, 32);
            assert!(m.noise_sigma.abs() < 1e-12);
            assert!(m.signal_sigma.abs() < 1e-12);
            assert_eq!(m.snr(), None);
        }
    }

    #[test]
    fn noise_sigma_of_smooth_image_plus_noise() {
        let n = noise(200, 240, 0.1, 11);
        #[allow(clippy::cast_possible_truncation)]
        let img = Array2::from_shape_fn((200, 240), |(r, c)| {
            let (x, y) = (c as f64, r as f64);
            let smooth = (2.0 * PI * x / 150.0).sin() * (2.0 * PI * y / 120.0).cos() + 0.002 * x;
            (smooth + n[[r, c]]) as f32
        });
        let m = measure_lattice(img.view()).unwrap();
        assert!((m.noise_sigma - 0.1).abs() < 0.015, "{}", m.noise_sigma);
        assert!((noise_sigma(img.view()).unwrap() - m.noise_sigma).abs() < 1e-15);
        assert!(m.snr().unwrap() > 3.0);
    }

    #[test]
    fn gaussian_atom_columns_give_the_cell() {
        // Gaussian columns (sigma 2 px) on a 12 px square lattice, offset by 3 px.
        let a = 12.0;
        let img = image(256, 256, |x, y| {
            let mut v = 0.0;
            for i in -1..24 {
                for j in -1..24 {
                    let (cx, cy) = (3.0 + a * f64::from(j), 3.0 + a * f64::from(i));
                    let d2 = (x - cx).powi(2) + (y - cy).powi(2);
                    v += (-d2 / (2.0 * 4.0)).exp();
                }
            }
            v
        });
        let m = measure_lattice(img.view()).unwrap();
        let largest = m.largest_period().unwrap();
        assert!((largest - 12.0).abs() < 0.2, "{largest} {:?}", m.peaks);
        // The two strongest peaks are the (1, 0) and (0, 1) reflections.
        for p in &m.peaks[..2] {
            assert!((p.period_px - 12.0).abs() < 0.2, "{p:?}");
        }
        // Any other peak is a higher-order reflection: period 12 / sqrt(h^2 + k^2).
        for p in &m.peaks {
            let order2 = (a / p.period_px).powi(2);
            assert!((order2 - order2.round()).abs() < 0.1, "{p:?}");
        }
    }

    #[test]
    fn errors() {
        assert!(matches!(
            measure_lattice(Array2::<f32>::zeros((15, 64)).view()),
            Err(ImagingError::ImageTooSmall {
                rows: 15,
                cols: 64,
                ..
            })
        ));
        let mut img = Array2::<f32>::zeros((32, 32));
        img[[3, 4]] = f32::NAN;
        assert!(matches!(
            measure_lattice(img.view()),
            Err(ImagingError::NonFinite { row: 3, col: 4, .. })
        ));
        assert!(matches!(
            measure_lattice(Array2::<f32>::zeros((0, 32)).view()),
            Err(ImagingError::EmptyImage { .. })
        ));
        assert!(matches!(
            noise_sigma(Array2::<f32>::zeros((2, 32)).view()),
            Err(ImagingError::ImageTooSmall { .. })
        ));
    }

    #[test]
    fn helpers() {
        assert_eq!(largest_power_of_two(256), 256);
        assert_eq!(largest_power_of_two(255), 128);
        assert_eq!(largest_power_of_two(16), 16);
        assert_eq!(tile_origins(256, 256), vec![0]);
        assert_eq!(tile_origins(300, 256), vec![0, 44]);
        assert_eq!(tile_origins(640, 256), vec![0, 128, 256, 384]);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        // A sampled Gaussian exp(-(i - 0.3)^2) has its vertex at exactly 0.3.
        let g = |i: f64| (-(i - 0.3_f64).powi(2)).exp();
        assert!((vertex_offset(g(-1.0), g(0.0), g(1.0)) - 0.3).abs() < 1e-12);
    }

    #[test]
    fn distinct_periods_merges_within_tolerance() {
        let peak = |period_px: f64, strength: f64| LatticePeak {
            period_px,
            angle_deg: 0.0,
            kx: 1.0 / period_px,
            ky: 0.0,
            strength,
        };
        let m = LatticeMeasurement {
            peaks: vec![peak(10.0, 300.0), peak(7.0, 200.0), peak(10.2, 100.0)],
            tile: 64,
            noise_sigma: 0.0,
            signal_sigma: 1.0,
        };
        let d = m.distinct_periods(0.05);
        assert_eq!(d.len(), 2);
        assert!((d[0] - (300.0 * 10.0 + 100.0 * 10.2) / 400.0).abs() < 1e-12);
        assert!((d[1] - 7.0).abs() < 1e-12);
        assert_eq!(m.distinct_periods(0.0).len(), 3);
        assert_eq!(m.largest_period(), Some(10.2));
    }
}
