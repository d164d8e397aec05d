//! Settings taken from the image: what `phyvae train IMAGE --out DIR` uses
//! when the command line does not say otherwise.
//!
//! The image is measured first ([`ImageFacts::measure`]): its lattice periods
//! from the peaks of its averaged power spectrum
//! ([`phyvae_imaging::lattice::measure_lattice`]) and its noise level. The
//! choices follow from the longest strong period `P` (the unit-cell scale):
//!
//! | setting | rule | why |
//! |---|---|---|
//! | window | `WINDOW_PERIODS * P`, even, in `[MIN_WINDOW, MAX_WINDOW]`, at most a quarter of the image side | a patch holds a couple of unit cells: enough to tell lattices apart, few enough for the coordinate decoder to draw |
//! | step | `window / 4`, in `[MIN_STEP, MAX_STEP]` px | neighbouring patches overlap by three quarters: the latent maps resolve boundaries to a quarter window |
//! | shift prior `k` | `P / window` | a shift latent of +-1 moves the decoder grid by half a period, so every lattice position is reachable within one prior standard deviation |
//! | beta | [`BETA`] constant | a ramp to 1 switches the content latents off on noisy images (posterior collapse); a small constant keeps them on |
//! | batch, learning rate | [`BATCH`], [`LR`] | |
//! | length | [`STEPS`] optimiser steps, as whole epochs | a small image gives few batches per epoch, so a length in epochs under-trains it |
//! | map low-pass | a Gaussian of [`LOWPASS_CELLS`] `* P` px on every map before segmentation; none without a lattice peak | a map that follows the position of its patch in the lattice oscillates at the lattice period; the low-pass removes that and keeps regions of a few cells |
//!
//! Without a lattice peak `P` is taken as [`FALLBACK_PERIOD`]. Every choice
//! carries its reason ([`Choice`]), written to `config.toml` and the report.

use phyvae_imaging::lattice::{LatticeMeasurement, measure_lattice};
use serde::{Deserialize, Serialize};

use crate::{Result, RunError};

/// Lattice periods per window side.
pub const WINDOW_PERIODS: f64 = 2.0;
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
/// Standard deviation of the maps' low-pass before segmentation, in unit
/// cells: half a cell attenuates an oscillation at the lattice period by
/// `exp(-2 pi^2 / 4)` (a factor of 7e-3) and blurs a boundary by less than the
/// window of two cells already does.
pub const LOWPASS_CELLS: f64 = 0.5;
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
}

impl ImageFacts {
    /// Measures `pixels` (the image as the model will see it).
    ///
    /// # Errors
    /// [`RunError::Imaging`] when the image is too small or not finite.
    pub fn measure(pixels: ndarray::ArrayView2<'_, f32>) -> Result<Self> {
        let m = measure_lattice(pixels).map_err(RunError::from)?;
        Ok(Self::from_measurement(pixels.dim(), &m))
    }

    /// The facts of a lattice measurement of a `rows x cols` image.
    #[must_use]
    pub fn from_measurement((rows, cols): (usize, usize), m: &LatticeMeasurement) -> Self {
        let noise_to_signal = if m.signal_sigma > 0.0 {
            m.noise_sigma / m.signal_sigma
        } else {
            0.0
        };
        Self {
            rows,
            cols,
            periods_px: m.distinct_periods(PERIOD_TOLERANCE),
            cell_px: m.largest_period(),
            noise_to_signal,
        }
    }
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

/// Chooses the settings for an image with `facts`; a `window` given by the
/// user replaces the automatic one, and the step and shift prior follow it.
/// The automatic window is at most `max_window` ([`MAX_WINDOW`] for a VAE,
/// [`MAX_WINDOW_FFT`] for the baseline).
#[must_use]
pub fn choose(facts: &ImageFacts, window: Option<usize>, max_window: usize) -> AutoSettings {
    let side = facts.rows.min(facts.cols);
    let (cell, found) = match facts.cell_px {
        Some(p) => (p, true),
        None => (FALLBACK_PERIOD, false),
    };
    let cap = (side / 4).max(MIN_WINDOW);
    let raw = (WINDOW_PERIODS * cell).round() as usize;
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
        format!(
            "{lattice}; a window of about {WINDOW_PERIODS} cells (even, {MIN_WINDOW} to {MAX_WINDOW} px, at most a quarter of the image side)"
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
        choice("lowpass_px", lowpass_px, lowpass_reason),
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
            "a length in optimiser steps, not epochs: a small image gives few batches per epoch"
                .into(),
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
        choices,
    }
}

/// Whole epochs that cover `steps` optimiser steps over `patches` patches in
/// batches of `batch` (at least 1).
#[must_use]
pub fn epochs_for_steps(steps: usize, patches: usize, batch: usize) -> usize {
    let per_epoch = patches.div_ceil(batch.max(1)).max(1);
    steps.div_ceil(per_epoch).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choose_(f: &ImageFacts) -> AutoSettings {
        choose(f, None, MAX_WINDOW)
    }

    #[test]
    fn a_given_window_sets_step_and_shift_prior() {
        let a = choose(&facts(Some(10.0), 512), Some(40), MAX_WINDOW);
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
        assert_eq!(a.choices.len(), 8);
        // Half the 12 px cell.
        assert_eq!(a.lowpass_px, 6.0);
        assert_eq!(choose_(&facts(None, 512)).lowpass_px, 0.0);
    }

    #[test]
    fn window_stays_in_bounds_and_fits_the_image() {
        assert_eq!(choose_(&facts(Some(3.0), 512)).window, MIN_WINDOW);
        assert_eq!(choose_(&facts(Some(60.0), 512)).window, MAX_WINDOW);
        // The baseline's cap is higher: 2 x 20 px = 40.
        assert_eq!(
            choose(&facts(Some(20.0), 512), None, MAX_WINDOW_FFT).window,
            40
        );
        // A 128 px image caps the window at 32.
        assert_eq!(choose_(&facts(Some(20.0), 128)).window, 32);
        // No lattice: the fallback cell of 16 px.
        assert_eq!(choose_(&facts(None, 512)).window, 32);
    }

    #[test]
    fn a_lattice_image_is_measured_and_gets_a_two_cell_window() {
        // A square lattice of period 12 px: cos(2 pi x / 12) + cos(2 pi y / 12).
        let img = ndarray::Array2::from_shape_fn((256, 256), |(r, c)| {
            let t = std::f32::consts::TAU / 12.0;
            (t * c as f32).cos() + (t * r as f32).cos()
        });
        let f = ImageFacts::measure(img.view()).unwrap();
        let cell = f.cell_px.unwrap();
        assert!((cell - 12.0).abs() < 0.2, "cell {cell}");
        let a = choose(&f, None, MAX_WINDOW);
        assert_eq!(a.window, 24);
        // A constant image has no lattice: the fallback cell.
        let flat = ndarray::Array2::<f32>::zeros((128, 128));
        let f = ImageFacts::measure(flat.view()).unwrap();
        assert_eq!(f.cell_px, None);
        assert_eq!(
            choose(&f, None, MAX_WINDOW).window,
            2 * FALLBACK_PERIOD as usize
        );
    }

    #[test]
    fn epochs_cover_the_steps() {
        // 841 patches in batches of 16: 53 batches per epoch; 3000 steps need 57 epochs.
        assert_eq!(epochs_for_steps(3000, 841, 16), 57);
        assert_eq!(epochs_for_steps(1, 841, 16), 1);
        assert_eq!(epochs_for_steps(0, 10, 16), 1);
    }
}
