//! A benchmark suite of synthetic image families with per-pixel truth.
//!
//! Each [`Family`] poses one segmentation problem (two lattices of different
//! period, a grain boundary, 180-degree ferroelectric domains, ...). An image is
//! named by `(family, seed, size)`: [`suite_image`] draws every parameter of the
//! image (lattices, region geometry, dose, scan distortion) from a `ChaCha8Rng`
//! seeded with the family and the seed, renders it through the shared
//! acquisition model ([`ScanParams`]) and returns the image, its truth and the
//! drawn parameters ([`SuiteParams`], with [`SuiteParams::describe`] for tables).
//! The same `(family, seed, size)` gives a bit-identical image.
//!
//! Conventions shared by every family:
//! - coordinates are specimen coordinates `(u, v)` in px (`u` along x = columns,
//!   `v` along y = rows; see [`ScanParams`] for the scan mapping); angles are
//!   degrees from the `+u` axis towards `+v` (clockwise on screen, rows growing
//!   downward);
//! - a lattice is one of [`Motif`] with period `a` (px), a rotation and an origin
//!   ([`PhaseLattice`]); its A columns have peak 1 and standard deviation
//!   `sigma = f a`, `f` drawn per image in `[0.15, 0.2]` (so small periods still
//!   resolve); clean intensity = lattice of the pixel's region + [`BACKGROUND`];
//! - each region covers at least 15 % of the pixels (counted at the pixels'
//!   distorted specimen points, on every `max(1, size / 256)`-th row and column,
//!   so exactly up to 511 px and to within sampling above): the region geometry
//!   is redrawn until it does
//!   (up to 100 times, then a fixed fallback geometry: a straight boundary through
//!   the centre, three equal bands, or one central ellipse);
//! - dose log-uniform in `[8, 500]` counts per unit intensity, read noise
//!   uniform in `[0.005, 0.03]`; scan distortion on each image with probability
//!   1/3 (drift amplitude uniform in `[0.5, 3]` px over a period uniform in
//!   `[150, 600]` px, shear uniform in `[-0.02, 0.02]`), none otherwise;
//! - the noise is drawn from its own stream, seeded with a `u64` that is the
//!   first draw of the parameter stream ([`SuiteParams::noise_seed`]).
//!
//! ```
//! use phyvae_data::synth::{Family, suite_image};
//!
//! let img = suite_image(Family::Domains180, 3, 128)?;
//! assert_eq!(img.synthetic.image.pixels.dim(), (128, 128));
//! assert!(img.synthetic.truth.iter().all(|&l| l == 0 || l == 1));
//! assert!(img.params.delta_px.is_some_and(|d| (0.5..=3.0).contains(&d)));
//! # Ok::<(), phyvae_data::DataError>(())
//! ```

use super::lattice::{Crystal, Sublattice};
use super::params::check_size;
use super::scan::{self, ScanParams};
use super::{BACKGROUND, Synthetic};
use crate::Result;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::f64::consts::TAU;

/// Smallest fraction of the pixels each region covers.
pub const MIN_REGION_FRACTION: f64 = 0.15;
/// Region geometries drawn before falling back to a fixed one.
const MAX_GEOMETRY_TRIES: usize = 100;
/// Range of the A-column sigma as a fraction of the period.
const SIGMA_FRACTION: (f64, f64) = (0.15, 0.2);
/// B column of [`Motif::Perovskite`]: sigma relative to the A sigma (the fixed
/// generators' 1.8 / 2.2) and peak.
const B_SIGMA_RATIO: f64 = 1.8 / 2.2;
const B_AMPLITUDE: f64 = 0.45;
/// [`Motif::Dumbbell`]: column separation as a fraction of the period, sigma
/// relative to the A sigma, and peak of each column.
const DUMBBELL_SEPARATION: f64 = 0.4;
const DUMBBELL_SIGMA_RATIO: f64 = 0.7;
const DUMBBELL_AMPLITUDE: f64 = 0.8;
/// Largest `|rotation|` of a lattice where a family asks for a small one, degrees.
const SMALL_ROTATION_DEG: f64 = 8.0;

/// Whether a family separates phases (different crystals or compositions) or
/// domains (one crystal in symmetry-related variants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FamilyKind {
    /// Regions are different phases: lattice, motif, orientation or composition differ.
    Phases,
    /// Regions are variants of one structure: only a displacement or a
    /// translation of the same lattice differs.
    Domains,
}

/// One family of benchmark images; the doc line of each says what
/// distinguishes its regions, the rest gives its drawn parameter ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// The two regions' lattices differ in period.
    ///
    /// Periods uniform in `[6, 20]` px, the larger at least 1.15 times the
    /// smaller; motif of each drawn from square, perovskite and hexagonal; each
    /// its own rotation in `[-8, 8]` degrees and origin; a straight or (half the
    /// images) curved boundary. Labels 0/1.
    Period,
    /// Same period and orientation, different motif (square, perovskite-like
    /// with a weaker centred column, or dumbbell).
    ///
    /// Period uniform in `[8, 18]` px; two distinct motifs of
    /// {square, perovskite, dumbbell}; one rotation in `[-8, 8]` degrees and one
    /// origin; straight or curved boundary. Labels 0/1.
    Motif,
    /// One lattice in two orientations 10 to 45 degrees apart.
    ///
    /// Motif of square, perovskite or hexagonal; period uniform in `[7, 16]` px;
    /// first rotation uniform in `[-45, 45]` degrees, the second differing by a
    /// misorientation uniform in `[10, 45]` degrees (either sign); independent
    /// origins; straight or curved boundary. Labels 0/1.
    GrainBoundary,
    /// Same lattice; the precipitate's columns are 25 to 60 % brighter or darker.
    ///
    /// Motif of square, perovskite or hexagonal; period uniform in `[8, 18]` px;
    /// rotation in `[-8, 8]` degrees; column intensity ratio inside
    /// `1 +- [0.25, 0.6]`; 1 to 3 ellipses (label 1) in a matrix (label 0).
    Precipitate,
    /// Three lattices with three different motifs (and independently drawn
    /// periods).
    ///
    /// Three distinct motifs of {square, perovskite, hexagonal, dumbbell},
    /// periods uniform in `[8, 18]` px, rotations in `[-8, 8]` degrees; regions
    /// are the Voronoi cells of 3 random points or 3 parallel bands (half the
    /// images each). Labels 0, 1, 2.
    ThreePhase,
    /// 180-degree domains: the B column is displaced by `+delta` in one domain
    /// and `-delta` in the other along one lattice axis; mean intensities are
    /// equal.
    ///
    /// Perovskite, period uniform in `[10, 16]` px, rotation in `[-8, 8]`
    /// degrees, `delta` uniform in `[0.5, 3]` px along the lattice's first or
    /// second axis; one wall, straight at a random angle or (half the images)
    /// sinusoidal. Labels 0 (`+delta`) / 1 (`-delta`).
    #[serde(rename = "domains-180")]
    Domains180,
    /// 90-degree domains: the B column is displaced by `delta` along the lattice's
    /// first axis in one domain and along its second axis in the other.
    ///
    /// Perovskite, period uniform in `[10, 16]` px, rotation in `[-8, 8]`
    /// degrees, `delta` uniform in `[1, 3]` px; straight or curved wall.
    /// Labels 0 (first axis) / 1 (second axis).
    #[serde(rename = "domains-90")]
    Domains90,
    /// Antiphase domains: the same lattice translated by half a lattice vector
    /// across the boundary.
    ///
    /// Motif of square, perovskite or hexagonal; period uniform in `[8, 18]` px;
    /// rotation in `[-8, 8]` degrees; shift `a1 / 2`, `a2 / 2` or
    /// `(a1 + a2) / 2` (one of the three, equally likely); straight or curved
    /// boundary. Labels 0/1.
    Antiphase,
}

impl Family {
    /// Every family, in the order of the list above.
    pub const ALL: [Family; 8] = [
        Family::Period,
        Family::Motif,
        Family::GrainBoundary,
        Family::Precipitate,
        Family::ThreePhase,
        Family::Domains180,
        Family::Domains90,
        Family::Antiphase,
    ];

    /// Kebab-case name, the same as its serde name (e.g. `"grain-boundary"`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Family::Period => "period",
            Family::Motif => "motif",
            Family::GrainBoundary => "grain-boundary",
            Family::Precipitate => "precipitate",
            Family::ThreePhase => "three-phase",
            Family::Domains180 => "domains-180",
            Family::Domains90 => "domains-90",
            Family::Antiphase => "antiphase",
        }
    }

    /// The family named `name` (exactly as [`Self::name`] spells it), if any.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Number of truth labels (`0..n_phases`) in each image of the family.
    #[must_use]
    pub fn n_phases(self) -> usize {
        match self {
            Family::ThreePhase => 3,
            _ => 2,
        }
    }

    /// Whether the regions are phases or domains.
    #[must_use]
    pub fn kind(self) -> FamilyKind {
        match self {
            Family::Domains180 | Family::Domains90 | Family::Antiphase => FamilyKind::Domains,
            _ => FamilyKind::Phases,
        }
    }

    /// Position in [`Self::ALL`], used in the parameter stream's seed.
    fn index(self) -> u64 {
        match self {
            Family::Period => 0,
            Family::Motif => 1,
            Family::GrainBoundary => 2,
            Family::Precipitate => 3,
            Family::ThreePhase => 4,
            Family::Domains180 => 5,
            Family::Domains90 => 6,
            Family::Antiphase => 7,
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The columns of one unit cell, in the lattice frame (period `a`, A sigma `s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Motif {
    /// Square lattice, one column (peak 1, sigma `s`) at `(i a, j a)`.
    Square,
    /// \[001\] perovskite: A columns (peak 1, sigma `s`) at `(i a, j a)` and a
    /// weaker B column (peak 0.45, sigma `0.82 s`) at the cell centre
    /// `((i + 1/2) a, (j + 1/2) a)` plus [`PhaseLattice::b_shift_px`].
    Perovskite,
    /// Hexagonal (triangular) lattice of nearest-neighbour distance `a`: columns
    /// (peak 1, sigma `s`) at `i (a, 0) + j (a / 2, a sqrt(3) / 2)`.
    Hexagonal,
    /// Square lattice of dumbbells: two columns (peak 0.8 each, sigma `0.7 s`)
    /// at `(i a +- 0.2 a, j a)`, `0.4 a` apart along the first axis.
    Dumbbell,
}

impl Motif {
    /// Kebab-case name, as serde spells it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Motif::Square => "square",
            Motif::Perovskite => "perovskite",
            Motif::Hexagonal => "hexagonal",
            Motif::Dumbbell => "dumbbell",
        }
    }
}

/// One region's lattice.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PhaseLattice {
    /// Columns of the unit cell.
    pub motif: Motif,
    /// Period `a` (nearest-neighbour distance for [`Motif::Hexagonal`]), px.
    pub period_px: f64,
    /// Rotation: the first lattice axis points along `(cos r, sin r)` in `(u, v)`,
    /// degrees.
    pub rotation_deg: f64,
    /// Specimen point `(u, v)` of the lattice frame's origin (an A site), px.
    pub origin_px: (f64, f64),
    /// Standard deviation of an A column, px.
    pub sigma_px: f64,
    /// Factor on every column's peak (1 except in a precipitate).
    pub intensity_scale: f64,
    /// Displacement of the B column of [`Motif::Perovskite`] from the cell
    /// centre, in the lattice frame `(first axis, second axis)`, px; `(0, 0)` for
    /// the other motifs.
    pub b_shift_px: (f64, f64),
}

impl PhaseLattice {
    /// The renderer of this lattice.
    fn crystal(&self) -> Crystal {
        let a = self.period_px;
        let s = self.sigma_px;
        let sites = match self.motif {
            Motif::Square => vec![Sublattice::new(a, s, 1.0, 0.0, 0.0)],
            Motif::Perovskite => vec![
                Sublattice::new(a, s, 1.0, 0.0, 0.0),
                Sublattice::new(
                    a,
                    B_SIGMA_RATIO * s,
                    B_AMPLITUDE,
                    0.5 * a + self.b_shift_px.0,
                    0.5 * a + self.b_shift_px.1,
                ),
            ],
            Motif::Hexagonal => {
                let cell = (a, a * 3f64.sqrt());
                vec![
                    Sublattice::rectangular(cell, s, 1.0, (0.0, 0.0)),
                    Sublattice::rectangular(cell, s, 1.0, (0.5 * cell.0, 0.5 * cell.1)),
                ]
            }
            Motif::Dumbbell => {
                let half = 0.5 * DUMBBELL_SEPARATION * a;
                let sd = DUMBBELL_SIGMA_RATIO * s;
                vec![
                    Sublattice::new(a, sd, DUMBBELL_AMPLITUDE, -half, 0.0),
                    Sublattice::new(a, sd, DUMBBELL_AMPLITUDE, half, 0.0),
                ]
            }
        };
        Crystal::new(
            sites,
            self.rotation_deg.to_radians(),
            self.origin_px,
            self.intensity_scale,
        )
    }
}

/// An ellipse in specimen coordinates.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Ellipse {
    /// Centre `(u, v)`, px.
    pub centre_px: (f64, f64),
    /// Semi-axes along the ellipse's own first and second axes, px.
    pub semi_axes_px: (f64, f64),
    /// Direction of the first semi-axis, degrees from `+u` towards `+v`.
    pub angle_deg: f64,
}

impl Ellipse {
    fn contains(&self, u: f64, v: f64) -> bool {
        let (s, c) = self.angle_deg.to_radians().sin_cos();
        let du = u - self.centre_px.0;
        let dv = v - self.centre_px.1;
        let x = (c * du + s * dv) / self.semi_axes_px.0;
        let y = (c * dv - s * du) / self.semi_axes_px.1;
        x * x + y * y <= 1.0
    }
}

/// How the image is cut into regions; `(cu, cv) = (size / 2, size / 2)` is the
/// image centre and `n = (cos t, sin t)`, `m = (-sin t, cos t)` for an angle `t`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Geometry {
    /// Two regions: label 1 where
    /// `n . p - offset_px - amplitude_px sin(2 pi (m . p) / wavelength_px + phase_rad) > 0`,
    /// `p = (u - cu, v - cv)`, `t = normal_deg`; straight when `amplitude_px == 0`.
    Split {
        /// Direction of the boundary normal, pointing into region 1, degrees.
        normal_deg: f64,
        /// Signed distance of the mean boundary from the centre along the normal, px.
        offset_px: f64,
        /// Amplitude of the sinusoidal undulation, px (0: straight).
        amplitude_px: f64,
        /// Wavelength of the undulation along the boundary, px.
        wavelength_px: f64,
        /// Phase of the undulation, radians.
        phase_rad: f64,
    },
    /// Label 1 inside any of the ellipses, 0 outside.
    Ellipses(Vec<Ellipse>),
    /// Three regions: label `k` at the points nearer to `seeds_px[k]` than to
    /// the others (ties to the lower label).
    Voronoi {
        /// The three seed points `(u, v)`, px.
        seeds_px: [(f64, f64); 3],
    },
    /// Three parallel bands: with `s = n . p` (`t = normal_deg`), label 0 where
    /// `s <= cuts_px.0`, 1 where `cuts_px.0 < s <= cuts_px.1`, 2 beyond.
    Bands {
        /// Direction across the bands, degrees.
        normal_deg: f64,
        /// The two band edges along the normal, from the centre, px (ascending).
        cuts_px: (f64, f64),
    },
}

impl Geometry {
    /// Truth label of the specimen point `(u, v)` in a `size x size` image.
    fn label(&self, size: usize, u: f64, v: f64) -> i32 {
        let c = size as f64 / 2.0;
        let (pu, pv) = (u - c, v - c);
        match self {
            Geometry::Split {
                normal_deg,
                offset_px,
                amplitude_px,
                wavelength_px,
                phase_rad,
            } => {
                let (s, co) = normal_deg.to_radians().sin_cos();
                let across = co * pu + s * pv;
                let along = co * pv - s * pu;
                let wall =
                    offset_px + amplitude_px * (TAU * along / wavelength_px + phase_rad).sin();
                i32::from(across > wall)
            }
            Geometry::Ellipses(list) => i32::from(list.iter().any(|e| e.contains(u, v))),
            Geometry::Voronoi { seeds_px } => {
                let d2 = |(su, sv): (f64, f64)| (u - su).powi(2) + (v - sv).powi(2);
                let (mut best, mut label) = (d2(seeds_px[0]), 0);
                for (k, &seed) in seeds_px.iter().enumerate().skip(1) {
                    let d = d2(seed);
                    if d < best {
                        best = d;
                        label = k as i32;
                    }
                }
                label
            }
            Geometry::Bands {
                normal_deg,
                cuts_px,
            } => {
                let (s, co) = normal_deg.to_radians().sin_cos();
                let across = co * pu + s * pv;
                if across <= cuts_px.0 {
                    0
                } else if across <= cuts_px.1 {
                    1
                } else {
                    2
                }
            }
        }
    }

    /// Short text for tables.
    fn describe(&self) -> String {
        match self {
            Geometry::Split {
                normal_deg,
                amplitude_px,
                ..
            } if *amplitude_px == 0.0 => format!("straight, normal {normal_deg:.0} deg"),
            Geometry::Split {
                amplitude_px,
                wavelength_px,
                ..
            } => {
                format!("curved, amplitude {amplitude_px:.1} px, wavelength {wavelength_px:.0} px")
            }
            Geometry::Ellipses(list) => format!("{} ellipse(s)", list.len()),
            Geometry::Voronoi { .. } => "voronoi".to_owned(),
            Geometry::Bands { normal_deg, .. } => format!("bands, normal {normal_deg:.0} deg"),
        }
    }
}

/// Every parameter drawn for one suite image.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SuiteParams {
    /// The lattice of each label: `lattices[k]` is rendered where the truth is `k`.
    pub lattices: Vec<PhaseLattice>,
    /// How the image is cut into regions.
    pub geometry: Geometry,
    /// Image side, px.
    pub size: usize,
    /// Scan and noise model (drift 0 and shear 0 when not distorted).
    pub scan: ScanParams,
    /// Whether scan distortion (drift, shear) is applied.
    pub distorted: bool,
    /// Seed of the noise stream given to the acquisition model.
    pub noise_seed: u64,
    /// A-column sigma as a fraction of the period (same for every lattice).
    pub sigma_fraction: f64,
    /// B-column displacement `delta`, px ([`Family::Domains180`], [`Family::Domains90`]).
    pub delta_px: Option<f64>,
    /// Misorientation of the second grain, degrees, signed ([`Family::GrainBoundary`]).
    pub misorientation_deg: Option<f64>,
    /// Column intensity of the precipitate over the matrix ([`Family::Precipitate`]).
    pub intensity_ratio: Option<f64>,
    /// Translation of region 1's lattice relative to region 0's, in the lattice
    /// frame, px ([`Family::Antiphase`]).
    pub antiphase_shift_px: Option<(f64, f64)>,
}

impl SuiteParams {
    /// The parameters as `(key, value)` text, for a table: `motif`, `period_px`,
    /// `rotation_deg` (one value per label, joined by `" / "`), `sigma_px`,
    /// `geometry`, `dose`, `read_noise`, `distortion`, then whichever of
    /// `delta_px`, `misorientation_deg`, `intensity_ratio`, `antiphase_shift_px`
    /// apply.
    #[must_use]
    pub fn describe(&self) -> Vec<(String, String)> {
        let join = |f: &dyn Fn(&PhaseLattice) -> String| {
            self.lattices.iter().map(f).collect::<Vec<_>>().join(" / ")
        };
        let mut out = vec![
            ("motif".to_owned(), join(&|l| l.motif.name().to_owned())),
            (
                "period_px".to_owned(),
                join(&|l| format!("{:.1}", l.period_px)),
            ),
            (
                "rotation_deg".to_owned(),
                join(&|l| format!("{:.1}", l.rotation_deg)),
            ),
            (
                "sigma_px".to_owned(),
                join(&|l| format!("{:.2}", l.sigma_px)),
            ),
            ("geometry".to_owned(), self.geometry.describe()),
            ("dose".to_owned(), format!("{:.0}", self.scan.dose)),
            (
                "read_noise".to_owned(),
                format!("{:.3}", self.scan.read_noise),
            ),
            (
                "distortion".to_owned(),
                if self.distorted {
                    format!(
                        "drift {:.1} px / {:.0} px, shear {:.3}",
                        self.scan.drift_amplitude_px, self.scan.drift_period_px, self.scan.shear
                    )
                } else {
                    "none".to_owned()
                },
            ),
        ];
        if let Some(d) = self.delta_px {
            out.push(("delta_px".to_owned(), format!("{d:.2}")));
        }
        if let Some(m) = self.misorientation_deg {
            out.push(("misorientation_deg".to_owned(), format!("{m:.1}")));
        }
        if let Some(r) = self.intensity_ratio {
            out.push(("intensity_ratio".to_owned(), format!("{r:.2}")));
        }
        if let Some((x, y)) = self.antiphase_shift_px {
            out.push(("antiphase_shift_px".to_owned(), format!("({x:.1}, {y:.1})")));
        }
        out
    }
}

/// One image of the suite.
#[derive(Debug, Clone, PartialEq)]
pub struct SuiteImage {
    /// Its family.
    pub family: Family,
    /// The seed it was drawn from.
    pub seed: u64,
    /// Image and per-pixel truth (labels `0..family.n_phases()`).
    pub synthetic: Synthetic,
    /// The drawn parameters.
    pub params: SuiteParams,
}

/// The image of `family` drawn from `seed`, `size x size` px, with noise.
///
/// See the module notes for the shared conventions and [`Family`] for each
/// family's ranges. Deterministic: equal arguments give bit-identical images.
///
/// # Errors
/// [`crate::DataError::InvalidParameter`] (`size`) unless
/// `MIN_SIZE_PX <= size <= MAX_SIZE_PX` (64 to 32768).
pub fn suite_image(family: Family, seed: u64, size: usize) -> Result<SuiteImage> {
    render(family, seed, size, true)
}

/// The image of [`suite_image`] for the same arguments without noise: same
/// parameters (including the scan distortion), clean intensities.
///
/// # Errors
/// As [`suite_image`].
pub fn suite_image_clean(family: Family, seed: u64, size: usize) -> Result<SuiteImage> {
    render(family, seed, size, false)
}

fn render(family: Family, seed: u64, size: usize, noise: bool) -> Result<SuiteImage> {
    check_size(size)?;
    let mut params = draw(family, seed, size);
    params.scan.noise = noise;
    params.scan.validate()?;
    let crystals: Vec<Crystal> = params.lattices.iter().map(PhaseLattice::crystal).collect();
    let geometry = &params.geometry;
    let synthetic = scan::acquire(size, params.noise_seed, &params.scan, |u, v| {
        let label = geometry.label(size, u, v);
        let clean = usize::try_from(label)
            .ok()
            .and_then(|k| crystals.get(k))
            .map_or(0.0, |c| c.intensity(u, v));
        (BACKGROUND + clean, label)
    })?;
    Ok(SuiteImage {
        family,
        seed,
        synthetic,
        params,
    })
}

/// The parameter stream of `(family, seed)`: a `ChaCha8Rng` whose 32-byte seed
/// is `seed` (little-endian), the family's index (little-endian `u64`) and a
/// fixed 16-byte tag.
fn parameter_rng(family: Family, seed: u64) -> ChaCha8Rng {
    let mut key = [0_u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&family.index().to_le_bytes());
    key[16..].copy_from_slice(b"phyvae-suite-v1\0");
    ChaCha8Rng::from_seed(key)
}

fn uniform(rng: &mut ChaCha8Rng, (lo, hi): (f64, f64)) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

fn log_uniform(rng: &mut ChaCha8Rng, (lo, hi): (f64, f64)) -> f64 {
    (lo.ln() + (hi.ln() - lo.ln()) * rng.random::<f64>()).exp()
}

/// `+1` or `-1` with equal odds.
fn sign(rng: &mut ChaCha8Rng) -> f64 {
    if rng.random_bool(0.5) { 1.0 } else { -1.0 }
}

/// Picks `k` distinct motifs of `from`, in random order.
fn distinct_motifs(rng: &mut ChaCha8Rng, from: &[Motif], k: usize) -> Vec<Motif> {
    let mut pool = from.to_vec();
    let mut out = Vec::with_capacity(k);
    while out.len() < k && !pool.is_empty() {
        let i = rng.random_range(0..pool.len());
        out.push(pool.swap_remove(i));
    }
    out
}

fn pick_motif(rng: &mut ChaCha8Rng, from: &[Motif]) -> Motif {
    from.get(rng.random_range(0..from.len().max(1)))
        .copied()
        .unwrap_or(Motif::Square)
}

const MOTIFS_BASIC: [Motif; 3] = [Motif::Square, Motif::Perovskite, Motif::Hexagonal];

/// A lattice with rotation, random origin in the first cell, no B shift.
fn lattice(
    rng: &mut ChaCha8Rng,
    motif: Motif,
    period_px: f64,
    rotation_deg: f64,
    sigma_fraction: f64,
) -> PhaseLattice {
    let origin_px = (
        uniform(rng, (0.0, period_px)),
        uniform(rng, (0.0, period_px)),
    );
    PhaseLattice {
        motif,
        period_px,
        rotation_deg,
        origin_px,
        sigma_px: sigma_fraction * period_px,
        intensity_scale: 1.0,
        b_shift_px: (0.0, 0.0),
    }
}

fn small_rotation(rng: &mut ChaCha8Rng) -> f64 {
    uniform(rng, (-SMALL_ROTATION_DEG, SMALL_ROTATION_DEG))
}

/// A second period at least 15 % away from `p0` (ratio of larger to smaller
/// `>= 1.15`), uniform over the allowed part of `[lo, hi]`.
fn distinct_period(rng: &mut ChaCha8Rng, p0: f64, (lo, hi): (f64, f64)) -> f64 {
    const RATIO: f64 = 1.15;
    let below = (p0 / RATIO - lo).max(0.0);
    let above = (hi - p0 * RATIO).max(0.0);
    let t = uniform(rng, (0.0, below + above));
    if t < below {
        lo + t
    } else {
        p0 * RATIO + (t - below)
    }
}

/// The acquisition: dose, read noise, distortion on a third of the images.
fn draw_scan(rng: &mut ChaCha8Rng) -> (ScanParams, bool) {
    let dose = log_uniform(rng, (8.0, 500.0));
    let read_noise = uniform(rng, (0.005, 0.03));
    let distorted = rng.random_bool(1.0 / 3.0);
    let (drift_amplitude_px, drift_period_px, shear) = if distorted {
        (
            uniform(rng, (0.5, 3.0)),
            uniform(rng, (150.0, 600.0)),
            uniform(rng, (-0.02, 0.02)),
        )
    } else {
        (0.0, 400.0, 0.0)
    };
    let scan = ScanParams {
        drift_amplitude_px,
        drift_period_px,
        shear,
        dose,
        read_noise,
        noise: true,
    };
    (scan, distorted)
}

/// A two-region boundary: straight or (half the time) curved, normal in any
/// direction, offset within a quarter of the side from the centre; curved
/// ones have amplitude in `[0.03, 0.1] size` and wavelength in `[0.5, 1.5] size`.
fn draw_split(rng: &mut ChaCha8Rng, size: usize) -> Geometry {
    let side = size as f64;
    let normal_deg = uniform(rng, (0.0, 360.0));
    let offset_px = uniform(rng, (-0.25, 0.25)) * side;
    let curved = rng.random_bool(0.5);
    let (amplitude_px, wavelength_px, phase_rad) = if curved {
        (
            uniform(rng, (0.03, 0.1)) * side,
            uniform(rng, (0.5, 1.5)) * side,
            uniform(rng, (0.0, TAU)),
        )
    } else {
        (0.0, side, 0.0)
    };
    Geometry::Split {
        normal_deg,
        offset_px,
        amplitude_px,
        wavelength_px,
        phase_rad,
    }
}

/// 1 to 3 ellipses, semi-axes in `[0.18, 0.35] size / sqrt(count)`, centres in
/// the middle half of the image, any orientation.
fn draw_ellipses(rng: &mut ChaCha8Rng, size: usize) -> Geometry {
    let side = size as f64;
    let count = rng.random_range(1..=3_usize);
    let scale = side / (count as f64).sqrt();
    let list = (0..count)
        .map(|_| Ellipse {
            centre_px: (
                uniform(rng, (0.25, 0.75)) * side,
                uniform(rng, (0.25, 0.75)) * side,
            ),
            semi_axes_px: (
                uniform(rng, (0.18, 0.35)) * scale,
                uniform(rng, (0.18, 0.35)) * scale,
            ),
            angle_deg: uniform(rng, (0.0, 180.0)),
        })
        .collect();
    Geometry::Ellipses(list)
}

/// Voronoi cells of 3 points in `[0.15, 0.85] size` squared, or (half the time)
/// 3 bands with edges within `0.35 size` of the centre.
fn draw_three(rng: &mut ChaCha8Rng, size: usize) -> Geometry {
    let side = size as f64;
    if rng.random_bool(0.5) {
        let mut point = || {
            (
                uniform(rng, (0.15, 0.85)) * side,
                uniform(rng, (0.15, 0.85)) * side,
            )
        };
        Geometry::Voronoi {
            seeds_px: [point(), point(), point()],
        }
    } else {
        let normal_deg = uniform(rng, (0.0, 360.0));
        let a = uniform(rng, (-0.35, 0.35)) * side;
        let b = uniform(rng, (-0.35, 0.35)) * side;
        Geometry::Bands {
            normal_deg,
            cuts_px: (a.min(b), a.max(b)),
        }
    }
}

/// Draws geometries with `next` until every label `0..n` covers at least
/// [`MIN_REGION_FRACTION`] of the (distorted) pixels, at most
/// [`MAX_GEOMETRY_TRIES`] times, then returns `fallback`.
fn region_geometry(
    rng: &mut ChaCha8Rng,
    size: usize,
    scan: &ScanParams,
    n: usize,
    next: fn(&mut ChaCha8Rng, usize) -> Geometry,
    fallback: Geometry,
) -> Geometry {
    // At most about 256 x 256 evaluations per check, whatever the size.
    let stride = (size / 256).max(1);
    for _ in 0..MAX_GEOMETRY_TRIES {
        let g = next(rng, size);
        let fractions = scan::label_fractions(size, scan, stride, n, |u, v| g.label(size, u, v));
        if fractions.iter().all(|&f| f >= MIN_REGION_FRACTION) {
            return g;
        }
    }
    fallback
}

fn split_fallback() -> Geometry {
    Geometry::Split {
        normal_deg: 0.0,
        offset_px: 0.0,
        amplitude_px: 0.0,
        wavelength_px: 1.0,
        phase_rad: 0.0,
    }
}

/// Draws every parameter of `(family, seed)` at `size`.
fn draw(family: Family, seed: u64, size: usize) -> SuiteParams {
    let mut rng = parameter_rng(family, seed);
    let rng = &mut rng;
    let noise_seed: u64 = rng.random();
    let (scan, distorted) = draw_scan(rng);
    let sigma_fraction = uniform(rng, SIGMA_FRACTION);
    let mut delta_px = None;
    let mut misorientation_deg = None;
    let mut intensity_ratio = None;
    let mut antiphase_shift_px = None;
    let two =
        |rng: &mut ChaCha8Rng| region_geometry(rng, size, &scan, 2, draw_split, split_fallback());
    let (lattices, geometry) = match family {
        Family::Period => {
            let p0 = uniform(rng, (6.0, 20.0));
            let p1 = distinct_period(rng, p0, (6.0, 20.0));
            let m0 = pick_motif(rng, &MOTIFS_BASIC);
            let m1 = pick_motif(rng, &MOTIFS_BASIC);
            let (r0, r1) = (small_rotation(rng), small_rotation(rng));
            let l0 = lattice(rng, m0, p0, r0, sigma_fraction);
            let l1 = lattice(rng, m1, p1, r1, sigma_fraction);
            (vec![l0, l1], two(rng))
        }
        Family::Motif => {
            let period = uniform(rng, (8.0, 18.0));
            let motifs =
                distinct_motifs(rng, &[Motif::Square, Motif::Perovskite, Motif::Dumbbell], 2);
            let rotation = small_rotation(rng);
            let m0 = motifs.first().copied().unwrap_or(Motif::Square);
            let l0 = lattice(rng, m0, period, rotation, sigma_fraction);
            let l1 = PhaseLattice {
                motif: motifs.get(1).copied().unwrap_or(Motif::Dumbbell),
                ..l0
            };
            (vec![l0, l1], two(rng))
        }
        Family::GrainBoundary => {
            let motif = pick_motif(rng, &MOTIFS_BASIC);
            let period = uniform(rng, (7.0, 16.0));
            let r0 = uniform(rng, (-45.0, 45.0));
            let mis = sign(rng) * uniform(rng, (10.0, 45.0));
            misorientation_deg = Some(mis);
            let l0 = lattice(rng, motif, period, r0, sigma_fraction);
            let l1 = lattice(rng, motif, period, r0 + mis, sigma_fraction);
            (vec![l0, l1], two(rng))
        }
        Family::Precipitate => {
            let motif = pick_motif(rng, &MOTIFS_BASIC);
            let period = uniform(rng, (8.0, 18.0));
            let rotation = small_rotation(rng);
            let ratio = 1.0 + sign(rng) * uniform(rng, (0.25, 0.6));
            intensity_ratio = Some(ratio);
            let l0 = lattice(rng, motif, period, rotation, sigma_fraction);
            let l1 = PhaseLattice {
                intensity_scale: ratio,
                ..l0
            };
            let fallback = Geometry::Ellipses(vec![Ellipse {
                centre_px: (size as f64 / 2.0, size as f64 / 2.0),
                semi_axes_px: (0.3 * size as f64, 0.3 * size as f64),
                angle_deg: 0.0,
            }]);
            let g = region_geometry(rng, size, &scan, 2, draw_ellipses, fallback);
            (vec![l0, l1], g)
        }
        Family::ThreePhase => {
            let motifs = distinct_motifs(
                rng,
                &[
                    Motif::Square,
                    Motif::Perovskite,
                    Motif::Hexagonal,
                    Motif::Dumbbell,
                ],
                3,
            );
            let lattices = motifs
                .into_iter()
                .map(|m| {
                    let period = uniform(rng, (8.0, 18.0));
                    let rotation = small_rotation(rng);
                    lattice(rng, m, period, rotation, sigma_fraction)
                })
                .collect();
            let third = size as f64 / 6.0;
            let fallback = Geometry::Bands {
                normal_deg: 0.0,
                cuts_px: (-third, third),
            };
            let g = region_geometry(rng, size, &scan, 3, draw_three, fallback);
            (lattices, g)
        }
        Family::Domains180 | Family::Domains90 => {
            let period = uniform(rng, (10.0, 16.0));
            let rotation = small_rotation(rng);
            let base = lattice(rng, Motif::Perovskite, period, rotation, sigma_fraction);
            let (l0, l1) = if family == Family::Domains180 {
                let delta = uniform(rng, (0.5, 3.0));
                delta_px = Some(delta);
                let axis = if rng.random_bool(0.5) {
                    (1.0, 0.0)
                } else {
                    (0.0, 1.0)
                };
                (
                    PhaseLattice {
                        b_shift_px: (delta * axis.0, delta * axis.1),
                        ..base
                    },
                    PhaseLattice {
                        b_shift_px: (-delta * axis.0, -delta * axis.1),
                        ..base
                    },
                )
            } else {
                let delta = uniform(rng, (1.0, 3.0));
                delta_px = Some(delta);
                (
                    PhaseLattice {
                        b_shift_px: (delta, 0.0),
                        ..base
                    },
                    PhaseLattice {
                        b_shift_px: (0.0, delta),
                        ..base
                    },
                )
            };
            (vec![l0, l1], two(rng))
        }
        Family::Antiphase => {
            let motif = pick_motif(rng, &MOTIFS_BASIC);
            let period = uniform(rng, (8.0, 18.0));
            let rotation = small_rotation(rng);
            let l0 = lattice(rng, motif, period, rotation, sigma_fraction);
            // Primitive vectors in the lattice frame.
            let a1 = (period, 0.0);
            let a2 = match motif {
                Motif::Hexagonal => (0.5 * period, 0.5 * 3f64.sqrt() * period),
                _ => (0.0, period),
            };
            let shift = match rng.random_range(0..3_u8) {
                0 => (0.5 * a1.0, 0.5 * a1.1),
                1 => (0.5 * a2.0, 0.5 * a2.1),
                _ => (0.5 * (a1.0 + a2.0), 0.5 * (a1.1 + a2.1)),
            };
            antiphase_shift_px = Some(shift);
            let (s, c) = rotation.to_radians().sin_cos();
            let l1 = PhaseLattice {
                origin_px: (
                    l0.origin_px.0 + c * shift.0 - s * shift.1,
                    l0.origin_px.1 + s * shift.0 + c * shift.1,
                ),
                ..l0
            };
            (vec![l0, l1], two(rng))
        }
    };
    SuiteParams {
        lattices,
        geometry,
        size,
        scan,
        distorted,
        noise_seed,
        sigma_fraction,
        delta_px,
        misorientation_deg,
        intensity_ratio,
        antiphase_shift_px,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance from `(x, y)` to the nearest site of the lattice
    /// `(i a + ox, j a + oy)`.
    fn nearest_site(x: f64, y: f64, a: f64, (ox, oy): (f64, f64)) -> f64 {
        let dx = x - ox - ((x - ox) / a).round() * a;
        let dy = y - oy - ((y - oy) / a).round() * a;
        dx.hypot(dy)
    }

    #[test]
    fn domains_180_differ_only_near_b_columns() {
        // Same A lattice; the B column (peak 0.45, sigma s_B) sits at the cell
        // centre + b or - b. Farther than 4.5 s_B from both B positions each
        // B Gaussian is below 0.45 exp(-10.1) < 2e-5, so the variants agree
        // there to 4e-5; at a B column they differ by at least
        // 0.45 (1 - exp(-(2 delta)^2 / (2 s_B^2))).
        for seed in 0..6 {
            let p = draw(Family::Domains180, seed, 128);
            let (l0, l1) = (p.lattices[0], p.lattices[1]);
            let (c0, c1) = (l0.crystal(), l1.crystal());
            let a = l0.period_px;
            let sb = B_SIGMA_RATIO * l0.sigma_px;
            let delta = p.delta_px.unwrap_or(0.0);
            let (sn, cs) = l0.rotation_deg.to_radians().sin_cos();
            let b0 = (0.5 * a + l0.b_shift_px.0, 0.5 * a + l0.b_shift_px.1);
            let b1 = (0.5 * a + l1.b_shift_px.0, 0.5 * a + l1.b_shift_px.1);
            let mut max_diff = 0.0_f64;
            for i in 0..200 {
                for j in 0..200 {
                    // Lattice-frame point, then its specimen coordinates.
                    let (x, y) = (f64::from(i) * 0.037 * a, f64::from(j) * 0.041 * a);
                    let u = l0.origin_px.0 + cs * x - sn * y;
                    let v = l0.origin_px.1 + sn * x + cs * y;
                    let diff = (c0.intensity(u, v) - c1.intensity(u, v)).abs();
                    max_diff = max_diff.max(diff);
                    let far = nearest_site(x, y, a, b0).min(nearest_site(x, y, a, b1)) > 4.5 * sb;
                    if far {
                        assert!(diff < 4e-5, "seed {seed}: diff {diff} at ({x}, {y})");
                    }
                }
            }
            let at_column = 0.45 * (1.0 - (-(2.0 * delta).powi(2) / (2.0 * sb * sb)).exp());
            assert!(
                max_diff >= 0.9 * at_column,
                "seed {seed}: {max_diff} vs {at_column}"
            );
        }
    }

    #[test]
    fn hexagonal_columns_are_a_apart() {
        // Each column of a hexagonal lattice has six neighbours at distance a:
        // the intensity at a site equals that at the site a away along 60 deg.
        let l = PhaseLattice {
            motif: Motif::Hexagonal,
            period_px: 10.0,
            rotation_deg: 0.0,
            origin_px: (0.0, 0.0),
            sigma_px: 1.8,
            intensity_scale: 1.0,
            b_shift_px: (0.0, 0.0),
        };
        let c = l.crystal();
        let peak = c.intensity(0.0, 0.0);
        let (x, y) = (5.0, 5.0 * 3f64.sqrt());
        assert!((c.intensity(x, y) - peak).abs() < 1e-12);
        assert!((c.intensity(10.0, 0.0) - peak).abs() < 1e-12);
        // Cell centre of the triangle (0,0), (10,0), (5, 8.66): a minimum.
        assert!(c.intensity(5.0, 10.0 / (2.0 * 3f64.sqrt())) < 0.2 * peak);
    }

    #[test]
    fn rotation_turns_the_lattice_about_its_origin() {
        // Square lattice rotated by 30 deg about (3, 4): the site (1, 0) a of the
        // lattice frame sits at (3, 4) + a (cos 30, sin 30).
        let l = PhaseLattice {
            motif: Motif::Square,
            period_px: 12.0,
            rotation_deg: 30.0,
            origin_px: (3.0, 4.0),
            sigma_px: 2.0,
            intensity_scale: 1.0,
            b_shift_px: (0.0, 0.0),
        };
        let c = l.crystal();
        let (sn, cs) = 30f64.to_radians().sin_cos();
        let site = (3.0 + 12.0 * cs, 4.0 + 12.0 * sn);
        let on = c.intensity(site.0, site.1);
        assert!((on - c.intensity(3.0, 4.0)).abs() < 1e-12);
        // Along the unrotated x axis, 12 px from the origin, is no site.
        assert!(c.intensity(15.0, 4.0) < 0.5 * on);
    }
}
