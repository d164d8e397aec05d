//! Settings taken from the image: what `phyvae train IMAGE --out DIR` uses
//! when the command line does not say otherwise.
//!
//! The image is measured first ([`ImageFacts::measure`]): its lattice periods
//! from the peaks of its averaged power spectrum
//! ([`phyvae_imaging::lattice::measure_lattice`]), its noise level and the
//! share of its variance a tilted plane explains. The
//! choices follow from the longest strong period `P` (the unit-cell scale):
//!
//! | setting | rule | why |
//! |---|---|---|
//! | levelling | the least-squares plane subtracted when it explains more than [`LEVEL_PLANE_SHARE`] of the image's variance ([`ImageFacts::plane_share`]), else none; both models | an untreated topograph's tilt swamps the lattice in every patch |
//! | window | a VAE: `WINDOW_PERIODS_ONE_LATTICE * P` when every peak lies on one lattice ([`ImageFacts::one_lattice`]), else `WINDOW_PERIODS * P`, at most [`MAX_WINDOW`]; the FFT baseline: `WINDOW_PERIODS * P`, at most [`MAX_WINDOW_FFT`]; even, at least [`MIN_WINDOW`], at most a quarter of the image side | phases that differ in their lattice (period, orientation) are told apart by where their peaks lie, which a window resolves to `1 / window`, so it holds two cells; phases on one lattice differ only in what the cell holds, which a cell and a half shows, and a smaller window mixes less of the two sides of a boundary |
//! | step | `window / 4`, in `[MIN_STEP, MAX_STEP]` px | neighbouring patches overlap by three quarters: the latent maps resolve boundaries to a quarter window |
//! | shift prior `k` | `P / window` | a shift latent of +-1 moves the decoder grid by half a period, so every lattice position is reachable within one prior standard deviation |
//! | beta | [`BETA`] constant | a ramp to 1 switches the content latents off on noisy images (posterior collapse); a small constant keeps them on |
//! | batch, learning rate | [`BATCH`], [`LR`] | |
//! | length | [`STEPS`] optimiser steps, as whole epochs, or as [`MIN_EPOCHS`] capped epochs when fewer whole ones fit ([`length_for_steps`]) | a small image gives few batches per epoch, so a length in epochs under-trains it; a large one gives so many that one epoch overshoots the budget |
//! | retries | [`RETRIES`]: a run whose content latents collapsed, whose maps show no regions, or whose result a clear classical baseline agrees with only in part ([`crate::diagnose::train_again_for_agreement`]; the run then keeps the attempt that agrees more), trains again from scratch with the next seed and half the learning rate (after a collapse also half the KL scale) | all three are mostly an unlucky start: on the training images another seed, or a lower rate, separated the phases of an image on which the first attempt had collapsed; on a holdout image whose first attempt put the phases in a shift latent (no regions in the content maps), the retry separated them; of nine stored suite runs that a clear baseline agreed with only in part, a second attempt raised the mean ARI by 0.065 and lowered none |
//! | registration | the patches' origins moved onto the lattice of the strongest peak and the strongest other peak of a similar period at least 30 degrees away, refined to the primitive lattice when another peak lies half- or a third-way between them ([`refine_basis`]; one peak alone: along it); none without a peak; VAE only | patches of one phase then show the lattice at one position in the cell, so the model need not learn the translation first |
//! | decoder coordinates | with [`LATTICE_FEATURES`], Fourier features at the registration wavevectors ([`lattice_frequencies`]); else the raw coordinates | see [`LATTICE_FEATURES`] |
//! | scan drift | removed, row by row, when every peak lies on one lattice of two directions ([`ImageFacts::one_lattice`], two registration wavevectors); VAE only | a drift that changes over tens of rows shears the lattice from patch to patch, and on phases that differ only in what the cell holds (an intensity, a motif) the content latents code that shear as well; a second lattice would make a row's phase mean nothing |
//! | map low-pass | a Gaussian of [`LOWPASS_CELLS`] `* P` px on every map before segmentation; none without a lattice peak | a map that follows the position of its patch in the lattice oscillates at the lattice period; the low-pass removes that and keeps regions of a few cells |
//!
//! Without a lattice peak `P` is taken as [`FALLBACK_PERIOD`]. Every choice
//! carries its reason ([`Choice`]), written to `config.toml` and the report.

use phyvae_data::patches::Levelling;
use phyvae_imaging::background::plane_share;
use phyvae_imaging::lattice::{LatticeMeasurement, measure_lattice};
use serde::{Deserialize, Serialize};

use crate::config::Method;
use crate::{Result, RunError};

/// Whether the automatic settings give the spatial decoder Fourier features
/// at the measured lattice's wavevectors ([`lattice_frequencies`]).
pub const LATTICE_FEATURES: bool = false;

/// Lattice periods per window side: of the FFT baseline, and of a VAE on an
/// image with peaks off the registration lattice (a second lattice).
pub const WINDOW_PERIODS: f64 = 2.0;
/// Lattice periods per window side of a VAE on an image whose peaks all lie
/// on one lattice ([`ImageFacts::one_lattice`]: precipitates, motifs,
/// ferroelectric domains). On the suite's training images of those families
/// it segmented better than two cells (a window straddling a boundary mixes
/// less of the two sides), and it trains about twice as fast; on images with
/// a second lattice (grain boundaries, two periods, three phases) two cells
/// did better.
pub const WINDOW_PERIODS_ONE_LATTICE: f64 = 1.5;
/// Smallest automatic window, px.
pub const MIN_WINDOW: usize = 12;
/// Largest automatic window of a VAE, px: the decoder's cost grows with the
/// window's area, and 32 px bounds the cost of a default run.
pub const MAX_WINDOW: usize = 32;
/// Largest automatic window of the classical FFT baseline, px: its cost is
/// negligible, and its spectra sharpen with more cells per window.
pub const MAX_WINDOW_FFT: usize = 64;
/// Smallest automatic step, px.
pub const MIN_STEP: usize = 2;
/// Largest automatic step, px.
pub const MAX_STEP: usize = 8;
/// The period assumed when the spectrum has no lattice peak, px.
pub const FALLBACK_PERIOD: f64 = 16.0;
/// Constant KL scale.
pub const BETA: f32 = 0.05;
/// Batch size.
pub const BATCH: usize = 16;
/// Adam learning rate.
pub const LR: f64 = 5e-3;
/// Optimiser steps of a run.
pub const STEPS: usize = 2000;
/// Fewest epochs of a run given in steps ([`length_for_steps`]): a loss curve
/// with a trend, a diagnosis with a history and a checkpoint to resume from
/// before the end. Every suite image (256 px, at most 421 batches of every
/// patch) and the bundled Au image (233) keep whole epochs.
pub const MIN_EPOCHS: usize = 4;
/// Retries of a run whose content latents collapsed, whose maps show no
/// regions, or whose result a clear baseline agrees with only in part
/// ([`crate::config::RunConfig::retries`]).
pub const RETRIES: usize = 1;
/// Standard deviation of the maps' low-pass before segmentation, in unit
/// cells: half a cell attenuates an oscillation at the lattice period by
/// `exp(-2 pi^2 / 4)` (a factor of 7e-3) and blurs a boundary by less than the
/// window of one and a half to two cells already does.
pub const LOWPASS_CELLS: f64 = 0.5;
/// Largest ratio of the periods of the two registration wavevectors: a
/// second peak of a very different period more likely belongs to another
/// phase than to the first peak's lattice.
pub const REGISTER_PERIOD_RATIO: f64 = 1.45;
/// Smallest angle between the two registration wavevectors, degrees.
pub const REGISTER_MIN_ANGLE_DEG: f64 = 30.0;
/// Largest distance, in frequency bins of the averaged spectrum, between a
/// measured peak and a half- or third-point of the registration lattice for
/// the peak to refine that lattice (see [`refine_basis`]).
pub const REFINE_TOLERANCE_BINS: f64 = 1.0;
/// Distance, in frequency bins of the measured spectrum, beyond which a peak
/// is off the registration lattice ([`ImageFacts::off_lattice_peaks`]): the
/// peaks' positions are measured to a fraction of a bin, and a high-order
/// reflection carries the basis' error times its order.
pub const OFF_LATTICE_TOLERANCE_BINS: f64 = 1.5;
/// Share of the image's variance a least-squares plane must explain
/// ([`ImageFacts::plane_share`]) for the plane to be subtracted before the
/// patches are cut. The bundled STM topograph scores 0.97; every other
/// bundled image and each of 154 suite images scores at most 0.04, so the
/// rule has a wide margin on both sides.
pub const LEVEL_PLANE_SHARE: f64 = 0.5;
/// Relative tolerance under which two measured periods are one.
const PERIOD_TOLERANCE: f64 = 0.08;

/// What was measured on the image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageFacts {
    /// Image rows.
    pub rows: usize,
    /// Image columns.
    pub cols: usize,
    /// Distinct lattice periods, strongest first, px.
    pub periods_px: Vec<f64>,
    /// The longest strong period (the unit-cell scale), px.
    pub cell_px: Option<f64>,
    /// Noise standard deviation over signal standard deviation.
    pub noise_to_signal: f64,
    /// The wavevectors `[ky, kx]` (cycles per px) of the lattice to register
    /// the patches to: the strongest peak, and the strongest later one of a
    /// period within a factor [`REGISTER_PERIOD_RATIO`] and at least
    /// [`REGISTER_MIN_ANGLE_DEG`] degrees away from it, refined by the other
    /// peaks to the primitive basis of their lattice ([`refine_basis`]); the
    /// strongest peak alone when no second one qualifies; empty without a peak.
    #[serde(default)]
    pub wavevectors: Vec<[f64; 2]>,
    /// Measured peaks that do not lie on the lattice the `wavevectors` span
    /// (farther than [`OFF_LATTICE_TOLERANCE_BINS`] from every point
    /// `i g1 + j g2`, or from every multiple of `g1` when there is one
    /// wavevector): a second lattice, of another period or orientation.
    /// All peaks are off-lattice when there is no wavevector.
    #[serde(default)]
    pub off_lattice_peaks: usize,
    /// Share of the image's variance that a least-squares plane explains
    /// ([`phyvae_imaging::background::plane_share`]): near 1 on an untreated
    /// topograph whose tilt swamps the lattice, near 0 on a STEM image.
    #[serde(default)]
    pub plane_share: f64,
}

impl ImageFacts {
    /// Measures `pixels` (the image as the model will see it).
    ///
    /// # Errors
    /// [`RunError::Imaging`] when the image is too small or not finite.
    pub fn measure(pixels: ndarray::ArrayView2<'_, f32>) -> Result<Self> {
        let m = measure_lattice(pixels).map_err(RunError::from)?;
        let mut facts = Self::from_measurement(pixels.dim(), &m);
        facts.plane_share = plane_share(pixels).map_err(RunError::from)?;
        Ok(facts)
    }

    /// The facts of a lattice measurement of a `rows x cols` image.
    #[must_use]
    pub fn from_measurement((rows, cols): (usize, usize), m: &LatticeMeasurement) -> Self {
        let noise_to_signal = if m.signal_sigma > 0.0 {
            m.noise_sigma / m.signal_sigma
        } else {
            0.0
        };
        let mut wavevectors: Vec<[f64; 2]> = Vec::new();
        if let Some(first) = m.peaks.first() {
            wavevectors.push([first.ky, first.kx]);
            let sin_min = REGISTER_MIN_ANGLE_DEG.to_radians().sin();
            let second = m.peaks[1..].iter().find(|p| {
                let ratio = p.period_px / first.period_px;
                let sin = (first.ky * p.kx - first.kx * p.ky).abs()
                    / (first.ky.hypot(first.kx) * p.ky.hypot(p.kx));
                (1.0 / REGISTER_PERIOD_RATIO..=REGISTER_PERIOD_RATIO).contains(&ratio)
                    && sin >= sin_min
            });
            if let Some(p) = second {
                let tol = REFINE_TOLERANCE_BINS / m.tile.max(1) as f64;
                let peaks: Vec<[f64; 2]> = m.peaks.iter().map(|q| [q.ky, q.kx]).collect();
                let basis = refine_basis([[first.ky, first.kx], [p.ky, p.kx]], &peaks, tol);
                wavevectors = basis.to_vec();
            }
        }
        let tol = OFF_LATTICE_TOLERANCE_BINS / m.tile.max(1) as f64;
        let off_lattice_peaks = m
            .peaks
            .iter()
            .filter(|p| lattice_residual(&wavevectors, [p.ky, p.kx]) > tol)
            .count();
        Self {
            rows,
            cols,
            periods_px: m.distinct_periods(PERIOD_TOLERANCE),
            cell_px: m.largest_period(),
            noise_to_signal,
            wavevectors,
            off_lattice_peaks,
            plane_share: 0.0,
        }
    }

    /// Whether the image shows one lattice: at least one wavevector, and every
    /// measured peak on the lattice it spans (phases, if several, differ in
    /// what the cell holds, not in the lattice).
    #[must_use]
    pub fn one_lattice(&self) -> bool {
        !self.wavevectors.is_empty() && self.off_lattice_peaks == 0
    }
}

/// Distance (cycles per px) from `p` to the nearest point of the lattice
/// spanned by `basis` (two wavevectors: `i g1 + j g2`; one: `i g1`);
/// infinite for an empty or degenerate basis.
fn lattice_residual(basis: &[[f64; 2]], p: [f64; 2]) -> f64 {
    match basis {
        [g] => {
            let gg = dot(*g, *g);
            if gg <= f64::EPSILON {
                return f64::INFINITY;
            }
            let r = axpy(p, -(dot(p, *g) / gg).round(), *g);
            dot(r, r).sqrt()
        }
        [g1, g2, ..] => {
            let Some([a, b]) = lattice_coords([*g1, *g2], p) else {
                return f64::INFINITY;
            };
            let r = axpy(axpy(p, -a.round(), *g1), -b.round(), *g2);
            dot(r, r).sqrt()
        }
        [] => f64::INFINITY,
    }
}

/// The coordinates `[a, b]` of `p = a g1 + b g2` (Cramer's rule); `None`
/// for a degenerate basis.
fn lattice_coords([g1, g2]: [[f64; 2]; 2], p: [f64; 2]) -> Option<[f64; 2]> {
    let det = g1[0] * g2[1] - g1[1] * g2[0];
    (det.abs() > f64::EPSILON).then(|| {
        [
            (p[0] * g2[1] - p[1] * g2[0]) / det,
            (g1[0] * p[1] - g1[1] * p[0]) / det,
        ]
    })
}

fn dot(a: [f64; 2], b: [f64; 2]) -> f64 {
    a[0] * b[0] + a[1] * b[1]
}

/// `a + t * b`.
fn axpy(a: [f64; 2], t: f64, b: [f64; 2]) -> [f64; 2] {
    [a[0] + t * b[0], a[1] + t * b[1]]
}

/// The Lagrange-Gauss reduction of a 2-D lattice basis: the same lattice,
/// spanned by its shortest vector and the shortest one independent of it
/// (Nguyen and Vallee, eds., "The LLL Algorithm", Springer 2010, ch. 2).
fn gauss_reduce([mut a, mut b]: [[f64; 2]; 2]) -> [[f64; 2]; 2] {
    // Each pass shortens the longer vector; a bound keeps degenerate
    // (near-collinear) input from looping long.
    for _ in 0..64 {
        if dot(b, b) < dot(a, a) {
            std::mem::swap(&mut a, &mut b);
        }
        let mu = (dot(a, b) / dot(a, a)).round();
        if mu == 0.0 || !mu.is_finite() {
            break;
        }
        b = axpy(b, -mu, a);
    }
    [a, b]
}

/// The primitive basis of the reciprocal lattice of the image's main phase,
/// starting from two strong peaks `basis` (`[ky, kx]`, cycles per px) and
/// refined by the other measured `peaks`.
///
/// Two strong peaks need not span the whole reciprocal lattice: in a centred
/// lattice (a perovskite's A and B columns, an fcc crystal along `[001]`) the
/// strongest peaks are often the `(1, 1)` family, and the `(1, 0)` peak lies
/// half-way between two of them. Registering to the lattice the strong pair
/// spans would then align a patch to an A column or to a B column, whichever
/// is nearer: two kinds of patches of one phase, which the model must tell
/// apart by a half-cell shift. So every peak that lies, within `tol` (cycles
/// per px), on a half- or third-point `(i g1 + j g2) / n` (`n` 2 or 3) of the
/// current basis refines it to the lattice that includes that point, until no
/// peak does; the result is Gauss-reduced (shortest vectors, the fundamental
/// reflections). A peak of another phase lies on such a point only by
/// coincidence (the tolerance is one frequency bin), and a refinement is kept
/// only when a measured peak has the spacing of the refined lattice's
/// shortest vector: a weak peak that happens to lie near a third-point of a
/// fine spectrum's lattice would otherwise imply a cell three times the
/// measured one.
#[must_use]
pub fn refine_basis(basis: [[f64; 2]; 2], peaks: &[[f64; 2]], tol: f64) -> [[f64; 2]; 2] {
    let mut basis = gauss_reduce(basis);
    // A refinement at least halves the cell's area; four of them are already
    // more than a measured spectrum resolves.
    'refine: for _ in 0..4 {
        let [g1, g2] = basis;
        for &p in peaks {
            let Some([a, b]) = lattice_coords(basis, p) else {
                break 'refine;
            };
            for n in [2i64, 3] {
                let nf = n as f64;
                let (ai, bi) = ((a * nf).round(), (b * nf).round());
                let r = axpy(axpy([0.0, 0.0], a - ai / nf, g1), b - bi / nf, g2);
                let (ar, br) = ((ai as i64).rem_euclid(n), (bi as i64).rem_euclid(n));
                if dot(r, r).sqrt() > tol || (ar == 0 && br == 0) {
                    continue;
                }
                // The lattice spanned by g1, g2 and (ar g1 + br g2) / n. For
                // n = 2 or 3 every non-zero residue is its own inverse
                // (1 * 1 = 1, 2 * 2 = 4 = 1 mod 3), so with ar != 0 the point
                // times ar is (g1 + c g2) / n, c = ar * br mod n.
                let refined = gauss_reduce(if ar != 0 {
                    let c = (ar * br).rem_euclid(n) as f64;
                    let u = axpy(g1, c, g2);
                    [[u[0] / nf, u[1] / nf], g2]
                } else {
                    [g1, [g2[0] / nf, g2[1] / nf]]
                });
                // The refined lattice's fundamental reflection (its shortest
                // vector) must have the spacing of a measured peak: otherwise
                // the point was a coincidence, and the lattice it implies (a
                // cell two or three times the measured one) is not in the image.
                if !is_measured(refined[0], peaks, tol) {
                    continue;
                }
                basis = refined;
                continue 'refine;
            }
        }
        break;
    }
    basis
}

/// Whether one of `peaks` has the length of `g` within `tol`: a reflection
/// of that spacing is measured, in any orientation (the list holds the
/// strongest peaks only, so of a family of equivalent reflections it may hold
/// one).
fn is_measured(g: [f64; 2], peaks: &[[f64; 2]], tol: f64) -> bool {
    let len = dot(g, g).sqrt();
    peaks.iter().any(|&q| (dot(q, q).sqrt() - len).abs() <= tol)
}

/// One automatic choice and its reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// Setting name, as in `config.toml` (`data.window`, `train.beta`, ...).
    pub name: String,
    /// The value chosen, as text.
    pub value: String,
    /// Why.
    pub reason: String,
}

/// The settings chosen for an image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoSettings {
    /// What they were chosen from.
    pub facts: ImageFacts,
    /// Patch window, px.
    pub window: usize,
    /// Patch step, px.
    pub step: usize,
    /// Translation prior `k`.
    pub shift_prior: f32,
    /// Constant KL scale.
    pub beta: f32,
    /// Batch size.
    pub batch: usize,
    /// Learning rate.
    pub lr: f64,
    /// Optimiser steps (the run trains the whole epochs that cover them).
    pub steps: usize,
    /// Standard deviation of the maps' low-pass before segmentation, px (0: none).
    #[serde(default)]
    pub lowpass_px: f64,
    /// Wavevectors of the patches' lattice registration (empty: none).
    #[serde(default)]
    pub register: Vec<[f64; 2]>,
    /// Whether the scan drift along the rows is removed before the patches
    /// are cut.
    #[serde(default)]
    pub dedrift: bool,
    /// Retries of a failed run (collapsed, or no regions).
    #[serde(default)]
    pub retries: usize,
    /// Background levelling before the patches are cut.
    #[serde(default)]
    pub level: Levelling,
    /// The spatial decoder's Fourier-feature frequencies, cycles per unit of
    /// the coordinate grid (empty: the raw coordinates).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub coord_frequencies: Vec<[f32; 2]>,
    /// Each choice with its reason.
    pub choices: Vec<Choice>,
}

fn choice(name: &str, value: impl ToString, reason: String) -> Choice {
    Choice {
        name: name.into(),
        value: value.to_string(),
        reason,
    }
}

fn fmt_periods(p: &[f64]) -> String {
    let v: Vec<String> = p.iter().take(4).map(|x| format!("{x:.1} px")).collect();
    v.join(", ")
}

/// Chooses the settings of `method` for an image with `facts`; a `window`
/// given by the user replaces the automatic one, and the step and shift prior
/// follow it. The automatic window holds [`WINDOW_PERIODS_ONE_LATTICE`] cells
/// for a VAE on an image of one lattice, [`WINDOW_PERIODS`] otherwise, and is
/// at most [`MAX_WINDOW`] for a VAE, [`MAX_WINDOW_FFT`] for the baseline.
#[must_use]
pub fn choose(facts: &ImageFacts, window: Option<usize>, method: Method) -> AutoSettings {
    let side = facts.rows.min(facts.cols);
    let (cell, found) = match facts.cell_px {
        Some(p) => (p, true),
        None => (FALLBACK_PERIOD, false),
    };
    let one_lattice = method == Method::Vae && facts.one_lattice();
    let (periods, max_window) = match method {
        Method::Vae if one_lattice => (WINDOW_PERIODS_ONE_LATTICE, MAX_WINDOW),
        Method::Vae => (WINDOW_PERIODS, MAX_WINDOW),
        Method::Fft => (WINDOW_PERIODS, MAX_WINDOW_FFT),
    };
    let cap = (side / 4).max(MIN_WINDOW);
    let raw = (periods * cell).round() as usize;
    let given = window.is_some();
    let window = window
        .unwrap_or_else(|| {
            (raw.div_ceil(2) * 2).clamp(MIN_WINDOW, max_window.min(cap).max(MIN_WINDOW))
        })
        .max(1);
    let step = (window / 4).clamp(MIN_STEP, MAX_STEP);
    let shift_prior = ((cell / window as f64) as f32).clamp(0.05, 1.0);
    let lowpass_px = if found {
        (LOWPASS_CELLS * cell * 100.0).round() / 100.0
    } else {
        0.0
    };
    let lowpass_reason = if found {
        format!(
            "{LOWPASS_CELLS} x the cell of {cell:.1} px: removes an oscillation of the maps at the lattice period (a latent that follows the patch's position in the lattice) before segmentation"
        )
    } else {
        "no lattice peak: no lattice-period oscillation to remove, so the paper's pipeline unchanged".to_owned()
    };
    let register = facts.wavevectors.clone();
    let coord_frequencies = if LATTICE_FEATURES {
        lattice_frequencies(&register, window)
    } else {
        Vec::new()
    };
    let coords_reason = if !LATTICE_FEATURES {
        "the raw coordinates (pyroVED's decoder): on the suite's training images Fourier features at the lattice did not segment better (`--coords lattice` gives them)".to_owned()
    } else if coord_frequencies.is_empty() {
        "no lattice peak: the raw coordinates".to_owned()
    } else {
        format!(
            "sines and cosines at the registration wavevectors, {} cycles per window: the decoder draws many cells without first learning their frequency",
            register
                .iter()
                .map(|k| format!("{:.1}", window as f64 * k[0].hypot(k[1])))
                .collect::<Vec<_>>()
                .join(" and ")
        )
    };
    let register_reason = match register.as_slice() {
        [] => "no lattice peak: patches on the regular grid".to_owned(),
        [k] => format!(
            "one lattice direction (period {:.1} px): each patch's origin moves along it, by less than a period, to where the fringes have one phase",
            1.0 / k[0].hypot(k[1])
        ),
        _ => format!(
            "lattice peaks of periods {}: each patch's origin moves, by less than a cell, to where the lattice has one phase, so the model need not learn the translation between neighbouring patches",
            register
                .iter()
                .map(|k| format!("{:.1} px", 1.0 / k[0].hypot(k[1])))
                .collect::<Vec<_>>()
                .join(" and ")
        ),
    };
    let dedrift = one_lattice && register.len() == 2;
    let level = if facts.plane_share > LEVEL_PLANE_SHARE {
        Levelling::Plane
    } else {
        Levelling::None
    };
    let level_reason = if level == Levelling::Plane {
        format!(
            "a least-squares plane explains {:.0} % of the image's variance (more than {:.0} %): a tilted topograph, whose tilt would swamp the lattice in every patch, so the plane is subtracted (`--level plane-lines` also aligns the scan lines; on an image with a step edge that shifts each line by how much of it lies on each terrace)",
            100.0 * facts.plane_share,
            100.0 * LEVEL_PLANE_SHARE
        )
    } else {
        format!(
            "a least-squares plane explains {:.1} % of the image's variance (at most {:.0} %): no tilt to remove, so the image as read",
            100.0 * facts.plane_share,
            100.0 * LEVEL_PLANE_SHARE
        )
    };
    let dedrift_reason = match method {
        Method::Fft => "the baseline's |FFT| does not see the shear of a drifting scan".to_owned(),
        Method::Vae if dedrift => "every peak on one lattice of two directions: each row's displacement along the scan is measured on that lattice and the row moved back, so that a drifting scan does not shear the lattice from patch to patch (a shear the content latents would code as well as the phases)".to_owned(),
        Method::Vae if register.len() == 2 => "peaks off the lattice (a second lattice): a row's phase would mix both lattices, so the drift is not measured".to_owned(),
        Method::Vae => "fewer than two lattice directions: a row's drift cannot be told from the lattice's own position".to_owned(),
    };
    let lattice = if found {
        format!(
            "lattice peaks at {}; unit cell {cell:.1} px",
            fmt_periods(&facts.periods_px)
        )
    } else {
        format!("no lattice peak in the power spectrum; a cell of {cell:.0} px is assumed")
    };
    let window_reason = if given {
        format!("{lattice}; given on the command line")
    } else {
        let why = match (method, one_lattice) {
            (Method::Fft, _) => "the baseline's spectra sharpen with more cells",
            (Method::Vae, false) if facts.wavevectors.is_empty() => {
                "no lattice to register on, so no peak is known to lie on one lattice"
            }
            (Method::Vae, true) => {
                "every peak on one lattice, so the phases differ in what the cell holds, which a cell and a half shows; a smaller window mixes less of the two sides of a boundary"
            }
            (Method::Vae, false) => {
                "peaks off the registration lattice (a second lattice), whose positions a window resolves to 1 / window"
            }
        };
        format!(
            "{lattice}; {} measured peak(s) off the registration lattice; a window of about {periods} cells (even, {MIN_WINDOW} to {max_window} px, at most a quarter of the image side): {why}",
            facts.off_lattice_peaks
        )
    };
    let choices = vec![
        choice("data.window", window, window_reason),
        choice(
            "data.step",
            step,
            format!(
                "a quarter of the window ({MIN_STEP} to {MAX_STEP} px): patches overlap by three quarters"
            ),
        ),
        choice(
            "model.translation_prior",
            format!("{shift_prior:.3}"),
            format!(
                "cell / window = {cell:.1} / {window}: a shift latent of +-1 moves the grid by half a cell"
            ),
        ),
        choice(
            "data.level",
            if level == Levelling::Plane { "plane" } else { "none" },
            level_reason,
        ),
        choice("lowpass_px", lowpass_px, lowpass_reason),
        choice(
            "data.register",
            format!("{register:?}"),
            register_reason,
        ),
        choice("data.dedrift", dedrift, dedrift_reason),
        choice(
            "model.coord_frequencies",
            format!("{coord_frequencies:?}"),
            coords_reason,
        ),
        choice(
            "train.beta",
            BETA,
            format!(
                "constant: a ramp to 1 switches the content latents off on noisy images (noise/signal here {:.2})",
                facts.noise_to_signal
            ),
        ),
        choice(
            "train.batch_size",
            BATCH,
            "small batches give many optimiser steps per epoch".into(),
        ),
        choice(
            "train.lr",
            LR,
            "five times pyroVED's default: at 1e-3 the phases of the training images had not separated within the step budget".into(),
        ),
        choice(
            "train.steps",
            STEPS,
            "a length in optimiser steps, not epochs: a small image gives few batches per epoch (`--steps`; train.epochs records them as the whole epochs that cover them, or, where fewer than 4 whole epochs fit, as 4 or more epochs of a fresh random draw of steps / 4 batches each, train.batches_per_epoch)"
                .into(),
        ),
        choice(
            "retries",
            RETRIES,
            "a run whose content latents collapse, whose maps show no regions, or whose result a clear classical baseline agrees with only in part, trains again with the next seed and half the learning rate (after a collapse also half the KL scale; after a partial agreement it keeps the attempt that agrees more): all three are mostly an unlucky start (on the suite's images another seed, rate or KL scale separated the phases)".into(),
        ),
    ];
    AutoSettings {
        facts: facts.clone(),
        window,
        step,
        shift_prior,
        beta: BETA,
        batch: BATCH,
        lr: LR,
        steps: STEPS,
        lowpass_px,
        register,
        dedrift,
        retries: RETRIES,
        level,
        coord_frequencies,
        choices,
    }
}

/// Frequencies of the spatial decoder's Fourier features, in cycles per unit
/// of the coordinate grid, for lattice `wavevectors` `[ky, kx]` (cycles per px,
/// along the image's rows and columns) and a `window`-px patch; the first
/// [`MAX_FREQUENCIES`](crate::config::MAX_FREQUENCIES) only.
///
/// The grid (pyroVED `imcoordgrid`) puts pixel `(r, c)` at
/// `x = -1 + 2 r / (w - 1)`, `y = 1 - 2 c / (w - 1)`, so
/// `ky r + kx c = (w - 1) / 2 (ky x - kx y) + const`: the frequency is
/// `(w - 1) / 2 (ky, -kx)`, and the feature `sin 2 pi f.(x, y)` is the lattice
/// wave `sin 2 pi (ky r + kx c)` up to a constant phase.
#[must_use]
pub fn lattice_frequencies(wavevectors: &[[f64; 2]], window: usize) -> Vec<[f32; 2]> {
    let half = (window.max(2) as f64 - 1.0) / 2.0;
    wavevectors
        .iter()
        .take(crate::config::MAX_FREQUENCIES)
        .map(|k| [(half * k[0]) as f32, (-half * k[1]) as f32])
        .collect()
}

/// Whole epochs that cover `steps` optimiser steps over `patches` patches in
/// batches of `batch` (at least 1).
#[must_use]
pub fn epochs_for_steps(steps: usize, patches: usize, batch: usize) -> usize {
    let per_epoch = patches.div_ceil(batch.max(1)).max(1);
    steps.div_ceil(per_epoch).max(1)
}

/// Batches in an epoch over `patches` patches in batches of `batch`, at most
/// `cap` ([`crate::config::TrainConfig::batches_per_epoch`]).
#[must_use]
pub fn batches_per_epoch(patches: usize, batch: usize, cap: Option<usize>) -> usize {
    let all = patches.div_ceil(batch.max(1)).max(1);
    cap.map_or(all, |c| all.min(c.max(1)))
}

/// The length of a run of `steps` optimiser steps over `patches` patches in
/// batches of `batch`: `(epochs, batches_per_epoch)`.
///
/// Whole epochs of every patch ([`epochs_for_steps`], no cap) when at least
/// [`MIN_EPOCHS`] of them fit in `steps`; otherwise epochs of
/// `ceil(steps / MIN_EPOCHS)` batches each (a fresh random subset of the
/// patches every epoch), as many as cover `steps`. Whole epochs overshoot the
/// budget by up to one epoch, which on a large image is most of the run: a
/// 2048 x 2048 px image cut every 8 px has 64 009 patches, 4 001 batches of 16,
/// twice the default budget in one epoch.
#[must_use]
pub fn length_for_steps(steps: usize, patches: usize, batch: usize) -> (usize, Option<usize>) {
    // A cap of at least every batch (always so when MIN_EPOCHS whole epochs
    // fit) is no cap.
    let cap = steps.div_ceil(MIN_EPOCHS).max(1);
    if cap >= batches_per_epoch(patches, batch, None) {
        return (epochs_for_steps(steps, patches, batch), None);
    }
    (steps.div_ceil(cap).max(1), Some(cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choose_(f: &ImageFacts) -> AutoSettings {
        choose(f, None, Method::Vae)
    }

    /// The feature's phase must advance by `2 pi (ky, kx)` from one pixel to
    /// the next down a column and along a row: pixel `(r, c)` sits at
    /// `x = -1 + 2 r / (w - 1)`, `y = 1 - 2 c / (w - 1)` (the grid's convention).
    #[test]
    fn lattice_frequencies_follow_the_pixel_grid() {
        let (w, k) = (17usize, [0.125, -0.05]);
        let f = lattice_frequencies(&[k], w);
        // w = 17: (w - 1) / 2 = 8, so f = (8 * 0.125, 8 * 0.05) = (1, 0.4)
        assert!((f[0][0] - 1.0).abs() < 1e-6 && (f[0][1] - 0.4).abs() < 1e-6);
        let at = |r: f64, c: f64| {
            let (x, y) = (-1.0 + 2.0 * r / 16.0, 1.0 - 2.0 * c / 16.0);
            f64::from(f[0][0]) * x + f64::from(f[0][1]) * y
        };
        assert!((at(4.0, 3.0) - at(3.0, 3.0) - k[0]).abs() < 1e-6);
        assert!((at(3.0, 4.0) - at(3.0, 3.0) - k[1]).abs() < 1e-6);
        // at most four frequencies
        assert_eq!(lattice_frequencies(&[k; 6], w).len(), 4);
    }

    #[test]
    fn a_given_window_sets_step_and_shift_prior() {
        let a = choose(&facts(Some(10.0), 512), Some(40), Method::Vae);
        assert_eq!((a.window, a.step), (40, 8));
        assert!((a.shift_prior - 0.25).abs() < 1e-6);
    }

    fn facts(cell: Option<f64>, side: usize) -> ImageFacts {
        ImageFacts {
            rows: side,
            cols: side,
            periods_px: cell.into_iter().collect(),
            cell_px: cell,
            noise_to_signal: 0.3,
            wavevectors: Vec::new(),
            off_lattice_peaks: 0,
            plane_share: 0.0,
        }
    }

    #[test]
    fn window_is_two_cells_and_the_shift_prior_half_a_cell_per_unit() {
        let a = choose_(&facts(Some(12.0), 512));
        assert_eq!(a.window, 24);
        assert_eq!(a.step, 6);
        // 12 / 24 = 0.5: a shift of 1 moves the [-1, 1] grid by 0.5, i.e. a
        // quarter of the window, i.e. half a cell.
        assert!((a.shift_prior - 0.5).abs() < 1e-6);
        // One choice for each automatic setting, in the order config.toml
        // and the report list them.
        let names: Vec<&str> = a.choices.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "data.window",
                "data.step",
                "model.translation_prior",
                "data.level",
                "lowpass_px",
                "data.register",
                "data.dedrift",
                "model.coord_frequencies",
                "train.beta",
                "train.batch_size",
                "train.lr",
                "train.steps",
                "retries",
            ]
        );
        assert_eq!(a.retries, RETRIES);
        // Half the 12 px cell.
        assert_eq!(a.lowpass_px, 6.0);
        assert_eq!(choose_(&facts(None, 512)).lowpass_px, 0.0);
    }

    #[test]
    fn a_run_keeps_whole_epochs_unless_fewer_than_four_fit_its_steps() {
        // The Au image: 3 721 patches, 233 batches of 16; 4 x 233 <= 2000,
        // so whole epochs, 9 of them (8 would be 1 864 steps).
        assert_eq!(length_for_steps(2000, 3721, 16), (9, None));
        // 2048 px cut every 8 px by 40 px windows: 253^2 = 64 009 patches,
        // 4 001 batches; capped at 2000 / 4 = 500 batches, 4 epochs.
        assert_eq!(length_for_steps(2000, 64_009, 16), (4, Some(500)));
        // 10 steps over 3 batches: a cap of 3 would be every batch anyway.
        assert_eq!(length_for_steps(10, 48, 16), (4, None));
        assert_eq!(batches_per_epoch(100, 16, None), 7);
        assert_eq!(batches_per_epoch(100, 16, Some(3)), 3);
        assert_eq!(batches_per_epoch(100, 16, Some(10)), 7);
    }

    #[test]
    fn a_plane_that_explains_more_than_half_the_variance_is_levelled() {
        let with = |share: f64| {
            let mut f = facts(Some(12.0), 256);
            f.plane_share = share;
            choose_(&f).level
        };
        assert_eq!(with(0.0), Levelling::None);
        assert_eq!(with(LEVEL_PLANE_SHARE), Levelling::None);
        assert_eq!(with(0.51), Levelling::Plane);
        // The baseline cuts its patches from the same levelled image.
        let mut f = facts(Some(12.0), 256);
        f.plane_share = 0.97;
        assert_eq!(choose(&f, None, Method::Fft).level, Levelling::Plane);
    }

    #[test]
    fn window_stays_in_bounds_and_fits_the_image() {
        assert_eq!(choose_(&facts(Some(3.0), 512)).window, MIN_WINDOW);
        assert_eq!(choose_(&facts(Some(60.0), 512)).window, MAX_WINDOW);
        // The baseline's cap is higher: 2 x 20 px = 40.
        assert_eq!(
            choose(&facts(Some(20.0), 512), None, Method::Fft).window,
            40
        );
        // A 128 px image caps the window at 32.
        assert_eq!(choose_(&facts(Some(20.0), 128)).window, 32);
        // No lattice: the fallback cell of 16 px.
        assert_eq!(choose_(&facts(None, 512)).window, 32);
    }

    #[test]
    fn a_one_lattice_image_is_measured_and_gets_a_window_of_a_cell_and_a_half() {
        // A square lattice of period 12 px: cos(2 pi x / 12) + cos(2 pi y / 12).
        let img = ndarray::Array2::from_shape_fn((256, 256), |(r, c)| {
            let t = std::f32::consts::TAU / 12.0;
            (t * c as f32).cos() + (t * r as f32).cos()
        });
        let f = ImageFacts::measure(img.view()).unwrap();
        let cell = f.cell_px.unwrap();
        assert!((cell - 12.0).abs() < 0.2, "cell {cell}");
        assert_eq!(f.off_lattice_peaks, 0);
        assert!(f.one_lattice());
        let a = choose(&f, None, Method::Vae);
        // 1.5 x 12 = 18 px for a VAE; the baseline keeps two cells.
        assert_eq!(a.window, 18);
        assert_eq!(choose(&f, None, Method::Fft).window, 24);
        // Registered to the two cosines' wavevectors, (1/12, 0) and (0, 1/12)
        // in some order and sign.
        assert_eq!(a.register.len(), 2, "{:?}", a.register);
        // One lattice of two directions: the drift is removed (VAE only).
        assert!(a.dedrift);
        assert!(!choose(&f, None, Method::Fft).dedrift);
        for k in &a.register {
            let (big, small) = (k[0].abs().max(k[1].abs()), k[0].abs().min(k[1].abs()));
            assert!((big - 1.0 / 12.0).abs() < 2e-3 && small < 2e-3, "{k:?}");
        }
        // A constant image has no lattice: the fallback cell.
        let flat = ndarray::Array2::<f32>::zeros((128, 128));
        let f = ImageFacts::measure(flat.view()).unwrap();
        assert_eq!(f.cell_px, None);
        assert!(choose(&f, None, Method::Vae).register.is_empty());
        assert_eq!(
            choose(&f, None, Method::Vae).window,
            2 * FALLBACK_PERIOD as usize
        );
    }

    #[test]
    fn a_second_lattice_is_off_the_first_and_keeps_two_cells() {
        // Left half: a square lattice of 12 px; right half: the same lattice
        // turned by 30 degrees (a grain boundary). The turned lattice's peaks,
        // at (cos 30, sin 30) / 12 and (-sin 30, cos 30) / 12, are 0.52 / 12
        // cycles per px (6.8 bins of a 128 px tile) from every point of the
        // first lattice.
        let t = std::f32::consts::TAU / 12.0;
        let (c30, s30) = (30f32.to_radians().cos(), 30f32.to_radians().sin());
        let img = ndarray::Array2::from_shape_fn((256, 256), |(r, c)| {
            let (x, y) = (c as f32, r as f32);
            if c < 128 {
                (t * x).cos() + (t * y).cos()
            } else {
                (t * (c30 * x + s30 * y)).cos() + (t * (-s30 * x + c30 * y)).cos()
            }
        });
        let f = ImageFacts::measure(img.view()).unwrap();
        assert!(f.off_lattice_peaks >= 2, "{f:?}");
        assert!(!f.one_lattice());
        assert_eq!(choose(&f, None, Method::Vae).window, 24);
    }

    #[test]
    fn lattice_residual_is_the_distance_to_the_nearest_lattice_point() {
        let basis = [[0.1, 0.0], [0.0, 0.1]];
        // (0.21, -0.095) is nearest to 2 g1 - g2 = (0.2, -0.1), at
        // hypot(0.01, 0.005).
        let r = lattice_residual(&basis, [0.21, -0.095]);
        assert!((r - 0.01f64.hypot(0.005)).abs() < 1e-12, "{r}");
        // One wavevector: the nearest multiple, 3 g = (0.3, 0), is 0.02 away
        // across it.
        let r = lattice_residual(&basis[..1], [0.3, 0.02]);
        assert!((r - 0.02).abs() < 1e-12, "{r}");
        // No basis, or a degenerate one: nothing is on it.
        assert!(lattice_residual(&[], [0.1, 0.0]).is_infinite());
        assert!(lattice_residual(&[[0.1, 0.0], [0.2, 0.0]], [0.1, 0.0]).is_infinite());
        // Without a wavevector an image is not of one lattice.
        let mut f = facts(Some(12.0), 256);
        assert!(!f.one_lattice());
        f.wavevectors = vec![[0.1, 0.0]];
        assert!(f.one_lattice());
        f.off_lattice_peaks = 1;
        assert!(!f.one_lattice());
    }

    /// Whether `v` is an integer combination of `basis`, to 1e-9.
    fn on_lattice(basis: [[f64; 2]; 2], v: [f64; 2]) -> bool {
        let [g1, g2] = basis;
        let det = g1[0] * g2[1] - g1[1] * g2[0];
        let a = (v[0] * g2[1] - v[1] * g2[0]) / det;
        let b = (g1[0] * v[1] - g1[1] * v[0]) / det;
        (a - a.round()).abs() < 1e-9 && (b - b.round()).abs() < 1e-9
    }

    fn area([g1, g2]: [[f64; 2]; 2]) -> f64 {
        (g1[0] * g2[1] - g1[1] * g2[0]).abs()
    }

    #[test]
    fn a_centred_lattice_is_refined_to_its_primitive_cell() {
        // A perovskite of period 10 px: the strong pair is (1, 1) / 10 and
        // (1, -1) / 10; the (1, 0) / 10 peak lies half-way between them.
        let strong = [[0.1, 0.1], [0.1, -0.1]];
        let peaks = [[0.1, 0.1], [0.1, -0.1], [0.1, 0.0], [0.0, 0.1], [0.2, 0.0]];
        let b = refine_basis(strong, &peaks, 1e-3);
        // The primitive cell: (1, 0) / 10 and (0, 1) / 10, area 0.01, half
        // that of the strong pair, and every peak on it.
        assert!((area(b) - 0.01).abs() < 1e-12, "{b:?}");
        for p in peaks {
            assert!(on_lattice(b, p), "{p:?} not on {b:?}");
        }
        for g in b {
            assert!((g[0].hypot(g[1]) - 0.1).abs() < 1e-12, "{b:?}");
        }
    }

    #[test]
    fn a_third_point_refines_by_three() {
        // Peaks at (1/3)(g1 + g2) of a square pair of period 10/3 px.
        let strong = [[0.3, 0.0], [0.0, 0.3]];
        let b = refine_basis(strong, &[[0.1, 0.1]], 1e-3);
        assert!((area(b) - 0.03).abs() < 1e-12, "{b:?}");
        for v in [[0.3, 0.0], [0.0, 0.3], [0.1, 0.1]] {
            assert!(on_lattice(b, v), "{v:?} not on {b:?}");
        }
    }

    #[test]
    fn peaks_of_the_lattice_or_of_another_phase_leave_it() {
        let strong = [[0.1, 0.0], [0.0, 0.1]];
        // Harmonics of the lattice itself, and a peak of another phase that
        // misses the half-point (0.05, 0.05) by 2e-3, over the tolerance.
        let peaks = [[0.2, 0.1], [0.1, -0.1], [0.052, 0.05]];
        assert!((area(refine_basis(strong, &peaks, 1e-3)) - 0.01).abs() < 1e-12);
        // Within the tolerance it would count.
        assert!((area(refine_basis(strong, &peaks, 3e-3)) - 0.005).abs() < 1e-12);
    }

    #[test]
    fn a_coincidence_whose_fundamental_is_not_measured_leaves_the_lattice() {
        // A square lattice of period 10 px and a weak peak of another phase
        // at (g1 + 4 g2) / 3: a third-point, but the lattice it would add has
        // the fundamental (g1 + g2) / 3 (period 21 px), which no peak shows.
        let strong = [[0.1, 0.0], [0.0, 0.1]];
        let third = [0.1 / 3.0, 0.4 / 3.0];
        let peaks = [[0.1, 0.0], [0.0, 0.1], [0.1, 0.1], third];
        assert!((area(refine_basis(strong, &peaks, 1e-3)) - 0.01).abs() < 1e-12);
        // Had that fundamental been measured, the point would refine the lattice.
        let peaks = [[0.1, 0.0], [0.0, 0.1], third, [0.1 / 3.0, 0.1 / 3.0]];
        assert!((area(refine_basis(strong, &peaks, 1e-3)) - 0.01 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn gauss_reduction_finds_the_shortest_basis() {
        // (1, 0) and (5, 1) span the integer lattice; reduced: two unit vectors.
        let b = gauss_reduce([[1.0, 0.0], [5.0, 1.0]]);
        assert!((area(b) - 1.0).abs() < 1e-12);
        for g in b {
            assert!((g[0].hypot(g[1]) - 1.0).abs() < 1e-12, "{b:?}");
        }
    }

    #[test]
    fn epochs_cover_the_steps() {
        // 841 patches in batches of 16: 53 batches per epoch; 3000 steps need 57 epochs.
        assert_eq!(epochs_for_steps(3000, 841, 16), 57);
        assert_eq!(epochs_for_steps(1, 841, 16), 1);
        assert_eq!(epochs_for_steps(0, 10, 16), 1);
    }
}
