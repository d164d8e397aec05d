//! Synthetic STEM-like images of atomic lattices with a known per-pixel truth
//! map, for testing segmentation end to end.
//!
//! Two fixed generators:
//! - [`two_phase`]: a square lattice (phase 0) next to a perovskite-like lattice
//!   (phase 1) across a straight or curved boundary; the physics of the
//!   reference generator `synth.py` (its defaults, not its random stream);
//! - [`domains`]: a BiFeO3-like film on a substrate, with two domain variants
//!   that differ only by a sub-pixel displacement of the B column.
//!
//! And a benchmark suite, [`suite_image`]: eight [`Family`]s of images (period,
//! motif, grain boundary, precipitate, three phases, 180- and 90-degree
//! domains, antiphase domains) whose parameters are drawn from a seed.
//!
//! Every image is rendered through the same acquisition model ([`ScanParams`]):
//! scan drift and shear, then Poisson shot noise and Gaussian read noise. All
//! noise comes from one `ChaCha8Rng` seeded with
//! `SeedableRng::seed_from_u64(seed)` (for the suite, its drawn noise seed) and
//! is drawn in row-major pixel order, so the same parameters give bit-identical
//! images; the truth does not depend on the noise seed.
//!
//! Atom columns are Gaussians summed over the 3 x 3 nearest lattice sites
//! (exact up to `< 1e-13` relative for the fixed generators and `< 2e-12` for
//! the suite; see the `lattice` module notes), in `f64`,
//! then stored as `f32`. Intensities are in units of the A-column peak, on a
//! background of [`BACKGROUND`].
//!
//! ```
//! use phyvae_data::synth::{Boundary, TwoPhaseParams, two_phase};
//!
//! let params = TwoPhaseParams::new()
//!     .size(96)
//!     .seed(7)
//!     .boundary(Boundary::Straight { angle_deg: 0.0 })
//!     .build()?;
//! let s = two_phase(&params)?;
//! assert_eq!(s.image.pixels.dim(), (96, 96));
//! // Left of the vertical boundary through the centre is phase 0, right phase 1.
//! assert_eq!((s.truth[[48, 10]], s.truth[[48, 85]]), (0, 1));
//! # Ok::<(), phyvae_data::DataError>(())
//! ```

mod lattice;
mod params;
mod scan;
mod suite;

pub use params::{
    Boundary, DEFAULT_POLAR_SHIFT_PX, DEFAULT_SIZE_PX, DEFAULT_SUBSTRATE_FRACTION,
    DEFAULT_WALL_ANGLE_DEG, DomainsParams, DomainsParamsBuilder, MAX_ANGLE_DEG, MAX_POLAR_SHIFT_PX,
    MAX_SIZE_PX, MIN_PERIOD_PX, MIN_SIZE_PX, TwoPhaseParams, TwoPhaseParamsBuilder,
};
pub use scan::{MAX_DOSE, MAX_SHEAR, ScanParams};
pub use suite::{
    Ellipse, Family, FamilyKind, Geometry, MIN_REGION_FRACTION, Motif, PhaseLattice, SuiteImage,
    SuiteParams, suite_image, suite_image_clean,
};

use crate::{Image, Result};
use lattice::{Perovskite, Sublattice};
use ndarray::Array2;
use std::f64::consts::TAU;

/// Lattice spacing of phase 0 of [`two_phase`] (square lattice), px.
pub const SQUARE_SPACING_PX: f64 = 12.0;
/// Lattice spacing of phase 1 of [`two_phase`] (perovskite), px.
pub const PEROVSKITE_SPACING_PX: f64 = 14.0;
/// Lattice spacing of the substrate of [`domains`] (perovskite), px.
pub const SUBSTRATE_SPACING_PX: f64 = 13.0;
/// Lattice spacing of the film of [`domains`] (perovskite), px.
pub const FILM_SPACING_PX: f64 = 14.0;
/// Standard deviation of an A column (and of the square lattice's columns), px.
pub const A_SITE_SIGMA_PX: f64 = 2.2;
/// Peak intensity of an A column (the intensity unit).
pub const A_SITE_AMPLITUDE: f64 = 1.0;
/// Standard deviation of a B column, px.
pub const B_SITE_SIGMA_PX: f64 = 1.8;
/// Peak intensity of a B column.
pub const B_SITE_AMPLITUDE: f64 = 0.45;
/// Constant background added to every clean pixel.
pub const BACKGROUND: f64 = 0.05;
/// Phase offset of the curved boundary's sine, radians (the reference's 0.3).
pub const CURVED_BOUNDARY_PHASE: f64 = 0.3;

/// A synthetic image and its truth.
#[derive(Debug, Clone, PartialEq)]
pub struct Synthetic {
    /// The image (`f32`, `size x size`), no pixel size, no source file.
    pub image: Image,
    /// Per-pixel truth label, same shape as the image (see each generator for
    /// the meaning of the labels).
    pub truth: Array2<i32>,
}

/// Two phases with different lattices across a boundary.
///
/// In specimen coordinates `(u, v)` (px; scan model in [`ScanParams`]):
/// - phase 0 (label 0): square lattice, spacing [`SQUARE_SPACING_PX`] (12 px),
///   one column of amplitude 1 and sigma 2.2 px per cell, sites at `(12 i, 12 j)`;
/// - phase 1 (label 1): perovskite-like projection, spacing
///   [`PEROVSKITE_SPACING_PX`] (14 px): A columns (amplitude 1, sigma 2.2 px) at
///   the cell corners `(14 i, 14 j)` and B columns (amplitude 0.45, sigma 1.8 px)
///   at the cell centres `(14 i + 7, 14 j + 7)`;
/// - the boundary is [`TwoPhaseParams::boundary`] ([`Boundary`]);
/// - clean intensity = the lattice of the pixel's phase + [`BACKGROUND`].
///
/// This is the physics of the reference generator `synth.py` (`make_image`),
/// with the atom sums over the 3 x 3 nearest sites instead of the nearest site
/// only.
///
/// # Errors
/// [`crate::DataError::InvalidParameter`] (`dose`) if a pixel's Poisson mean
/// cannot be sampled, which the parameter rules already exclude.
pub fn two_phase(params: &TwoPhaseParams) -> Result<Synthetic> {
    let size = params.size();
    let side = size as f64;
    let half = side / 2.0;
    let square = Sublattice::new(
        SQUARE_SPACING_PX,
        A_SITE_SIGMA_PX,
        A_SITE_AMPLITUDE,
        0.0,
        0.0,
    );
    let perovskite = Perovskite::new(PEROVSKITE_SPACING_PX, 0.0);
    let boundary = params.boundary();
    let (sin, cos) = match boundary {
        Boundary::Straight { angle_deg } => angle_deg.to_radians().sin_cos(),
        Boundary::Curved { .. } => (0.0, 1.0),
    };
    let in_phase_1 = move |u: f64, v: f64| match boundary {
        Boundary::Straight { .. } => (u - half) * cos - (v - half) * sin > 0.0,
        Boundary::Curved { amplitude_px } => {
            u > half + amplitude_px * (TAU * v / side + CURVED_BOUNDARY_PHASE).sin()
        }
    };
    scan::acquire(size, params.seed(), params.scan(), |u, v| {
        if in_phase_1(u, v) {
            (BACKGROUND + perovskite.intensity(u, v), 1)
        } else {
            (BACKGROUND + square.intensity(u, v), 0)
        }
    })
}

/// A BiFeO3-like film with two domain variants on a substrate.
///
/// In specimen coordinates `(u, v)` of a `size x size` image (px; scan model
/// in [`ScanParams`]):
/// - substrate (label 0) where `v >= size * (1 - substrate_fraction)` (a band
///   at the bottom): a perovskite (A columns at `(13 i, 13 j)`, B columns at the
///   cell centres) of spacing [`SUBSTRATE_SPACING_PX`] (13 px);
/// - film above it: a perovskite of spacing [`FILM_SPACING_PX`] (14 px), A
///   columns at `(14 i, 14 j)`, in stripes separated by straight domain walls
///   inclined at `wall_angle_deg` (counter-clockwise from the x axis as seen on
///   screen). With `s = u sin(angle) + v cos(angle)` (distance across the walls)
///   and `w = period_px / 2`, the stripe `floor(s / w)` is variant 1 (label 1)
///   when even and variant 2 (label 2) when odd;
/// - the variants differ only by the ferroelectric displacement of the B column
///   along x: at `(14 i + 7 + p, 14 j + 7)` in variant 1 and
///   `(14 i + 7 - p, 14 j + 7)` in variant 2, `p = polar_shift_px` (0.6 px by
///   default: about 17 pm if the 14 px cell is BiFeO3's 0.396 nm pseudo-cubic
///   cell, a fraction of BiFeO3's Fe off-centring, hence a hard case), so the
///   walls are coherent: the A lattice runs straight through them;
/// - clean intensity = lattice + [`BACKGROUND`]; same amplitudes and sigmas as
///   [`two_phase`].
///
/// ```
/// use phyvae_data::synth::{DomainsParams, domains};
///
/// let s = domains(&DomainsParams::new().size(128).noise(false).build()?)?;
/// // Bottom rows are substrate; the film holds both variants.
/// assert_eq!(s.truth[[127, 64]], 0);
/// assert!(s.truth.iter().any(|&l| l == 1) && s.truth.iter().any(|&l| l == 2));
/// # Ok::<(), phyvae_data::DataError>(())
/// ```
///
/// # Errors
/// [`crate::DataError::InvalidParameter`] (`dose`) if a pixel's Poisson mean
/// cannot be sampled, which the parameter rules already exclude.
pub fn domains(params: &DomainsParams) -> Result<Synthetic> {
    let size = params.size();
    let interface_v = size as f64 * (1.0 - params.substrate_fraction());
    let substrate = Perovskite::new(SUBSTRATE_SPACING_PX, 0.0);
    let shift = params.polar_shift_px();
    let variant_1 = Perovskite::new(FILM_SPACING_PX, shift);
    let variant_2 = Perovskite::new(FILM_SPACING_PX, -shift);
    let (sin, cos) = params.wall_angle_deg().to_radians().sin_cos();
    let inv_stripe = 2.0 / params.period_px();
    scan::acquire(size, params.seed(), params.scan(), |u, v| {
        if v >= interface_v {
            (BACKGROUND + substrate.intensity(u, v), 0)
        } else if ((u * sin + v * cos) * inv_stripe).floor().rem_euclid(2.0) == 0.0 {
            (BACKGROUND + variant_1.intensity(u, v), 1)
        } else {
            (BACKGROUND + variant_2.intensity(u, v), 2)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn clean_two_phase(size: usize, boundary: Boundary) -> Synthetic {
        let p = TwoPhaseParams::new()
            .size(size)
            .boundary(boundary)
            .scan(ScanParams {
                drift_amplitude_px: 0.0,
                shear: 0.0,
                noise: false,
                ..ScanParams::default()
            })
            .build()
            .unwrap();
        two_phase(&p).unwrap()
    }

    #[test]
    fn undistorted_clean_pixels_on_sites() {
        // No drift, no shear, no noise: pixel (row, col) is the specimen point
        // (u, v) = (col, row). Phase 0 at (0, 0) is a column site: 1 + tails + 0.05.
        // Phase 1 at (row 14, col 70) is an A site, at (row 21, col 77) a B site.
        let s = clean_two_phase(128, Boundary::Straight { angle_deg: 0.0 });
        let px = &s.image.pixels;
        let tail = |a: f64, sigma: f64| (-(a * a) / (2.0 * sigma * sigma)).exp();
        let on_square = (1.0 + 2.0 * tail(12.0, 2.2)).powi(2) + 0.05;
        assert!((f64::from(px[[0, 0]]) - on_square).abs() < 1e-6);
        assert_eq!(s.truth[[0, 0]], 0);
        // A site of the perovskite: A peak + B tails from 4 centres at 7 sqrt(2).
        let on_a = 1.0 + 4.0 * 0.45 * tail(7.0 * 2f64.sqrt(), 1.8) + 0.05;
        assert!((f64::from(px[[14, 70]]) - on_a).abs() < 1e-5);
        let on_b = 0.45 + 4.0 * tail(7.0 * 2f64.sqrt(), 2.2) + 0.05;
        assert!((f64::from(px[[21, 77]]) - on_b).abs() < 1e-5);
        assert_eq!((s.truth[[14, 70]], s.truth[[21, 77]]), (1, 1));
    }

    #[test]
    fn straight_boundary_tilts_with_angle() {
        // Angle 45 degrees: phase 1 where (u - 64) - (v - 64) > 0, i.e. col > row.
        let s = clean_two_phase(128, Boundary::Straight { angle_deg: 45.0 });
        assert_eq!(s.truth[[10, 100]], 1);
        assert_eq!(s.truth[[100, 10]], 0);
        assert_eq!(s.truth[[60, 61]], 1);
        assert_eq!(s.truth[[61, 60]], 0);
    }

    #[test]
    fn curved_boundary_follows_the_sine() {
        // Amplitude 20 on 128 px: x_b(v) = 64 + 20 sin(2 pi v / 128 + 0.3).
        let s = clean_two_phase(128, Boundary::Curved { amplitude_px: 20.0 });
        for row in [0_usize, 30, 64, 100] {
            let xb = 64.0 + 20.0 * (TAU * row as f64 / 128.0 + 0.3).sin();
            let first_1 = s.truth.row(row).iter().position(|&l| l == 1).unwrap();
            // First column with u > x_b is floor(x_b) + 1.
            assert_eq!(first_1, xb.floor() as usize + 1, "row {row}");
        }
    }

    #[test]
    fn domain_stripes_and_substrate() {
        // size 128, period 56 (stripe width 28), walls at 0 degrees: s = v, so
        // rows 0..28 are variant 1, 28..56 variant 2, 56..84 variant 1, 84..96
        // variant 2 and rows >= 96 (= 128 * 0.75) substrate.
        let p = DomainsParams::new()
            .size(128)
            .wall_angle_deg(0.0)
            .period_px(56.0)
            .scan(ScanParams {
                drift_amplitude_px: 0.0,
                shear: 0.0,
                noise: false,
                ..ScanParams::default()
            })
            .build()
            .unwrap();
        let s = domains(&p).unwrap();
        for (row, label) in [
            (0, 1),
            (27, 1),
            (28, 2),
            (55, 2),
            (56, 1),
            (84, 2),
            (95, 2),
            (96, 0),
            (127, 0),
        ] {
            assert!(s.truth.row(row).iter().all(|&l| l == label), "row {row}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]

        #[test]
        fn clean_intensity_is_bounded_and_labels_valid(
            seed in any::<u64>(),
            angle in -90.0_f64..=90.0,
            amplitude in 0.0_f64..=16.0,
            curved in any::<bool>(),
        ) {
            // A clean pixel is background plus at most one A column (1 + tails)
            // plus one B column (0.45 + tails): within [0.05, 0.05 + 1.45 + 0.01].
            let boundary = if curved {
                Boundary::Curved { amplitude_px: amplitude }
            } else {
                Boundary::Straight { angle_deg: angle }
            };
            let p = TwoPhaseParams::new().size(64).seed(seed).boundary(boundary).noise(false).build().unwrap();
            let s = two_phase(&p).unwrap();
            prop_assert!(s.image.pixels.iter().all(|&v| (0.05..=1.51).contains(&v)));
            prop_assert!(s.truth.iter().all(|&l| l == 0 || l == 1));
            let d = domains(&DomainsParams::new().size(64).seed(seed).wall_angle_deg(angle).noise(false).build().unwrap()).unwrap();
            prop_assert!(d.image.pixels.iter().all(|&v| (0.05..=1.51).contains(&v)));
            prop_assert!(d.truth.iter().all(|&l| (0..=2).contains(&l)));
        }

        #[test]
        fn noisy_pixels_are_finite_and_truth_ignores_seed(seed in any::<u64>()) {
            let p = TwoPhaseParams::new().size(64).seed(seed).build().unwrap();
            let s = two_phase(&p).unwrap();
            let s0 = two_phase(&TwoPhaseParams::new().size(64).build().unwrap()).unwrap();
            prop_assert!(s.image.pixels.iter().all(|v| v.is_finite()));
            prop_assert_eq!(s.truth, s0.truth);
        }
    }
}
