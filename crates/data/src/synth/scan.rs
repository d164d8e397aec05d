//! The acquisition model shared by every synthetic image: scan distortion
//! (line drift and shear) and detector noise (Poisson shot noise plus Gaussian
//! read noise), as in the reference generator `synth.py`.

use super::Synthetic;
use crate::{DataError, Image, Result};
use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Poisson, StandardNormal};
use std::f64::consts::TAU;

/// Largest accepted dose (counts per unit intensity). Far above any useful
/// value; it keeps every Poisson mean below `rand_distr::Poisson::MAX_LAMBDA`.
pub const MAX_DOSE: f64 = 1e12;

/// Largest accepted `|shear|` (px of y shift per px of x).
pub const MAX_SHEAR: f64 = 0.1;

/// How a synthetic image is "acquired".
///
/// Scan distortion: the observed pixel `(y, x)` (row, column) samples the
/// specimen point
/// `u = x + drift_amplitude_px * sin(2 pi y / drift_period_px)`,
/// `v = y + shear * x`
/// (line-dependent x drift of a raster scan plus a small linear shear). The
/// truth labels are evaluated at the same `(u, v)`, so they are exact for the
/// observed pixels.
///
/// Noise (when `noise` is true): a pixel of clean intensity `c` becomes
/// `K / dose + read_noise * Z` with `K ~ Poisson(c * dose)` (shot noise at
/// `dose` counts per unit intensity) and `Z ~ N(0, 1)` (detector read noise);
/// its mean is `c` and its variance `c / dose + read_noise^2`. With
/// `noise == false` the clean intensity is returned and nothing is drawn.
///
/// The defaults are the reference generator's: drift 3 px over a 400 px
/// period, shear 0.01, dose 40, read noise 0.03, noise on. Rules (checked when
/// the owning parameters are built): `drift_amplitude_px` finite and `>= 0`;
/// `drift_period_px` finite and `> 0`; `|shear| <= 0.1`; `dose` in
/// `(0, 1e12]`; `read_noise` finite and `>= 0`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScanParams {
    /// Amplitude `d` of the sinusoidal line drift along x, px.
    pub drift_amplitude_px: f64,
    /// Period `P` of the line drift along y, px.
    pub drift_period_px: f64,
    /// Linear shear: px of y offset per px of x.
    pub shear: f64,
    /// Electron dose: counts per unit of clean intensity.
    pub dose: f64,
    /// Standard deviation of the Gaussian read noise, in intensity units.
    pub read_noise: f64,
    /// Whether to add noise at all (false: the clean image).
    pub noise: bool,
}

impl Default for ScanParams {
    fn default() -> Self {
        Self {
            drift_amplitude_px: 3.0,
            drift_period_px: 400.0,
            shear: 0.01,
            dose: 40.0,
            read_noise: 0.03,
            noise: true,
        }
    }
}

/// `InvalidParameter` for `name = value` breaking `rule`.
pub(crate) fn invalid(
    name: &'static str,
    value: impl std::fmt::Display,
    rule: &'static str,
) -> DataError {
    DataError::InvalidParameter {
        name,
        value: value.to_string(),
        rule,
    }
}

impl ScanParams {
    /// Checks every rule listed on the type.
    pub(crate) fn validate(&self) -> Result<()> {
        if !(self.drift_amplitude_px.is_finite() && self.drift_amplitude_px >= 0.0) {
            return Err(invalid(
                "drift_amplitude_px",
                self.drift_amplitude_px,
                "must be finite and >= 0",
            ));
        }
        if !(self.drift_period_px.is_finite() && self.drift_period_px > 0.0) {
            return Err(invalid(
                "drift_period_px",
                self.drift_period_px,
                "must be finite and > 0",
            ));
        }
        if self.shear.is_nan() || self.shear.abs() > MAX_SHEAR {
            return Err(invalid("shear", self.shear, "must be within [-0.1, 0.1]"));
        }
        if !(self.dose > 0.0 && self.dose <= MAX_DOSE) {
            return Err(invalid("dose", self.dose, "must be > 0 and <= 1e12"));
        }
        if !(self.read_noise.is_finite() && self.read_noise >= 0.0) {
            return Err(invalid(
                "read_noise",
                self.read_noise,
                "must be finite and >= 0",
            ));
        }
        Ok(())
    }
}

/// Renders a `size x size` image of `specimen` through the scan model.
///
/// `specimen(u, v)` returns the clean intensity and the truth label at the
/// specimen point `(u, v)`. Pixels are visited row by row, left to right; for
/// each pixel the Poisson count and then the read-noise normal are drawn from
/// one `ChaCha8Rng` seeded with `seed_from_u64(seed)`, so equal seeds give
/// bit-identical images.
pub(crate) fn acquire(
    size: usize,
    seed: u64,
    scan: &ScanParams,
    specimen: impl Fn(f64, f64) -> (f64, i32),
) -> Result<Synthetic> {
    let mut pixels = Array2::<f32>::zeros((size, size));
    let mut truth = Array2::<i32>::zeros((size, size));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let two_pi_over_period = TAU / scan.drift_period_px;
    for (y, (mut prow, mut trow)) in pixels
        .rows_mut()
        .into_iter()
        .zip(truth.rows_mut())
        .enumerate()
    {
        let yf = y as f64;
        let drift = scan.drift_amplitude_px * (two_pi_over_period * yf).sin();
        for (x, (p, t)) in prow.iter_mut().zip(trow.iter_mut()).enumerate() {
            let xf = x as f64;
            let (clean, label) = specimen(xf + drift, yf + scan.shear * xf);
            *t = label;
            let value = if scan.noise {
                let mean = clean * scan.dose;
                let counts: f64 = Poisson::new(mean)
                    .map_err(|_| {
                        invalid(
                            "dose",
                            scan.dose,
                            "clean intensity x dose must be a finite, positive Poisson mean",
                        )
                    })?
                    .sample(&mut rng);
                let z: f64 = StandardNormal.sample(&mut rng);
                counts / scan.dose + scan.read_noise * z
            } else {
                clean
            };
            *p = value as f32;
        }
    }
    Ok(Synthetic {
        image: Image::new(pixels),
        truth,
    })
}

/// Fraction of the pixels of a `size x size` image that carry each label
/// `0..n_labels`, with `label(u, v)` evaluated at the specimen point of each
/// pixel exactly as [`acquire`] maps it; only every `stride`-th row and column
/// is visited (`stride >= 1`). Labels outside `0..n_labels` are not counted.
pub(crate) fn label_fractions(
    size: usize,
    scan: &ScanParams,
    stride: usize,
    n_labels: usize,
    label: impl Fn(f64, f64) -> i32,
) -> Vec<f64> {
    let mut counts = vec![0_usize; n_labels];
    let mut total = 0_usize;
    let two_pi_over_period = TAU / scan.drift_period_px;
    let stride = stride.max(1);
    for y in (0..size).step_by(stride) {
        let yf = y as f64;
        let drift = scan.drift_amplitude_px * (two_pi_over_period * yf).sin();
        for x in (0..size).step_by(stride) {
            let xf = x as f64;
            total += 1;
            if let Some(c) = usize::try_from(label(xf + drift, yf + scan.shear * xf))
                .ok()
                .and_then(|l| counts.get_mut(l))
            {
                *c += 1;
            }
        }
    }
    let total = total.max(1) as f64;
    counts.into_iter().map(|c| c as f64 / total).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(scan: ScanParams) -> Option<&'static str> {
        match scan.validate() {
            Err(DataError::InvalidParameter { name, .. }) => Some(name),
            _ => None,
        }
    }

    #[test]
    fn defaults_are_valid() {
        assert!(ScanParams::default().validate().is_ok());
    }

    #[test]
    fn negative_or_nan_drift_amplitude_is_an_error() {
        for d in [-0.5, f64::NAN, f64::INFINITY] {
            let s = ScanParams {
                drift_amplitude_px: d,
                ..ScanParams::default()
            };
            assert_eq!(rejected(s), Some("drift_amplitude_px"));
        }
    }

    #[test]
    fn non_positive_drift_period_is_an_error() {
        for p in [0.0, -10.0, f64::NAN] {
            let s = ScanParams {
                drift_period_px: p,
                ..ScanParams::default()
            };
            assert_eq!(rejected(s), Some("drift_period_px"));
        }
    }

    #[test]
    fn large_shear_is_an_error() {
        for sh in [0.2, -0.11, f64::NAN] {
            let s = ScanParams {
                shear: sh,
                ..ScanParams::default()
            };
            assert_eq!(rejected(s), Some("shear"));
        }
        let s = ScanParams {
            shear: -0.1,
            ..ScanParams::default()
        };
        assert_eq!(rejected(s), None);
    }

    #[test]
    fn non_positive_dose_is_an_error() {
        for d in [0.0, -1.0, f64::NAN, f64::INFINITY, 2e12] {
            let s = ScanParams {
                dose: d,
                ..ScanParams::default()
            };
            assert_eq!(rejected(s), Some("dose"));
        }
    }

    #[test]
    fn negative_read_noise_is_an_error() {
        for r in [-0.01, f64::NAN] {
            let s = ScanParams {
                read_noise: r,
                ..ScanParams::default()
            };
            assert_eq!(rejected(s), Some("read_noise"));
        }
        let s = ScanParams {
            read_noise: 0.0,
            ..ScanParams::default()
        };
        assert_eq!(rejected(s), None);
    }

    #[test]
    fn scan_distortion_maps_pixels_to_specimen_points() {
        // Record u - x and v - y through the specimen callback: row y is shifted
        // by d sin(2 pi y / P) and column x adds shear * x to v.
        let scan = ScanParams {
            drift_amplitude_px: 2.0,
            drift_period_px: 8.0,
            shear: 0.05,
            noise: false,
            ..ScanParams::default()
        };
        let s = acquire(8, 0, &scan, |u, v| (u, (v * 1000.0).round() as i32)).unwrap();
        // Row 2: sin(2 pi 2 / 8) = 1 -> u = x + 2. Row 4: sin(pi) ~ 0 -> u = x.
        assert!((s.image.pixels[[2, 5]] - 7.0).abs() < 1e-6);
        assert!((s.image.pixels[[4, 5]] - 5.0).abs() < 1e-5);
        // v = y + 0.05 x: pixel (3, 6) -> 3.3.
        assert_eq!(s.truth[[3, 6]], 3300);
    }
}
