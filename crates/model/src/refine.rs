//! Boundary cells of a VAE's segmentation re-assigned by the model's own
//! decoded class templates.
//!
//! A patch that straddles a boundary holds both phases. The encoder maps it
//! to one code, and where that code lands is not linear in how much of each
//! phase the patch holds: on the benchmark suite's images with two lattices
//! of different periods, a patch a third of the way into the coarse phase
//! was still coded as the fine one, so the clustering moved the boundary by
//! about a grid cell along its whole length (BENCHMARKS.md, "Boundary cells
//! re-assigned by decoded templates"). A grid cell's label should say which
//! phase lies at its centre, the point its truth is read at
//! (`phyvae_data::patches::labels_at_patch_centres`), not which phase the
//! whole patch resembles more.
//!
//! The decoder can answer that question. For every class, the mean content
//! code of its interior cells (cells more than half a window plus half a cell
//! from any other class, [`interior_reach`]) is decoded at every shift of a
//! grid spanning one lattice period ([`Templates::decode`]). A cell's
//! *central error* for a class is the smallest, over the shifts, squared
//! difference between the template and the cell's patch, weighted by a
//! Gaussian of standard deviation a quarter window centred on the patch
//! centre ([`central_weights`]). The cells within half a window plus one cell
//! of another class (the band) then move to the class of smallest central
//! error among the classes near them, when that error is below
//! `1 - `[`MARGIN`] times their own class's.
//!
//! The templates must first recognise the interiors: of up to
//! [`INTERIOR_SAMPLE`] interior cells of each class (evenly spaced in grid
//! order), at least [`MIN_INTERIOR_ACCURACY`] must have their own class's
//! template as the one of smallest central error. Where a decoder draws two
//! classes alike (an intensity-only precipitate at a low dose, a small
//! sublattice displacement) that check fails and nothing moves.
//!
//! Deviation from a plain template match: the template is the decoder's
//! picture of the class at its interior's mean code, so a class whose codes
//! drift (a gradual strain) is matched by its mean picture only; the margin
//! keeps such cells where the clustering put them unless the evidence is
//! clear.

use ndarray::{Array2, ArrayView2, ArrayView3};
use phyvae_data::patches::PatchGrid;
use phyvae_run::metrics::BoundaryRefinement;
use rayon::prelude::*;

use crate::infer::decode_latents;
use crate::vae::Vae;
use crate::{ModelError, Result};

/// A band cell moves only when another class's central error is below
/// `1 - MARGIN` times its own class's. On the suite's tuning images (88 runs,
/// the bundled Au image's four included) a margin of 0.25 moved fewer cells
/// the wrong way than 0 or 0.1 did and kept most of their gain.
pub const MARGIN: f64 = 0.25;

/// Share of the sampled interior cells of every class that its own template
/// must explain best before any cell moves.
pub const MIN_INTERIOR_ACCURACY: f64 = 0.95;

/// Interior cells sampled per class for the interior check.
pub const INTERIOR_SAMPLE: usize = 60;

/// Shifts per lattice period along each axis, at most (at least 1 px apart).
pub const SHIFTS_PER_PERIOD: f64 = 16.0;

/// Decoded patches, `sigmoid(logit)`, of each class at each shift: `values`
/// holds `classes x shifts x window^2` values, class-major, row-major
/// pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Templates {
    classes: usize,
    shifts: usize,
    window: usize,
    values: Vec<f32>,
}

impl Templates {
    /// Templates from their values (`classes x shifts x window^2`,
    /// class-major).
    ///
    /// # Errors
    /// [`ModelError::ShapeMismatch`] when `values` does not hold that many.
    pub fn new(classes: usize, shifts: usize, window: usize, values: Vec<f32>) -> Result<Self> {
        if classes == 0 || shifts == 0 || window == 0 {
            return Err(ModelError::InvalidParameter {
                name: "templates",
                value: format!("{classes} classes, {shifts} shifts, window {window}"),
                rule: "at least one class, one shift and a window of 1 px",
            });
        }
        let n = classes * shifts * window * window;
        if values.len() != n {
            return Err(ModelError::ShapeMismatch {
                what: "template values (classes x shifts x window^2)",
                expected: vec![n],
                found: vec![values.len()],
            });
        }
        Ok(Self {
            classes,
            shifts,
            window,
            values,
        })
    }

    /// Decodes each class's content `codes` (one row of `n_latent` values
    /// per class) at every shift of a square grid spanning one lattice
    /// `period_px` (from `-period/2` to `period/2`, [`SHIFTS_PER_PERIOD`]
    /// steps at most, at least 1 px apart), the other special latents at 0.
    ///
    /// # Errors
    /// [`ModelError::InvalidParameter`] (`model`) for a model without shift
    /// latents or with a non-spatial decoder, (`period_px`) for a period
    /// that is not positive and finite; [`ModelError::ShapeMismatch`] when a
    /// code does not have `n_latent` values; [`ModelError::Framework`] when
    /// decoding fails.
    pub fn decode(model: &Vae, codes: &[Vec<f32>], period_px: f64) -> Result<Self> {
        let cfg = model.config();
        if !cfg.kind.translation() || !model.has_spatial_decoder() {
            return Err(ModelError::InvalidParameter {
                name: "model",
                value: format!("{:?}", cfg.kind),
                rule: "boundary templates need shift latents and the spatial decoder",
            });
        }
        if !(period_px.is_finite() && period_px > 0.0) {
            return Err(ModelError::InvalidParameter {
                name: "period_px",
                value: period_px.to_string(),
                rule: "the lattice period must be positive and finite",
            });
        }
        let (w, n, s) = (cfg.window, cfg.n_latent, cfg.kind.n_special());
        let l = s + n;
        for c in codes {
            if c.len() != n {
                return Err(ModelError::ShapeMismatch {
                    what: "class content code",
                    expected: vec![n],
                    found: vec![c.len()],
                });
            }
        }
        let offsets = shift_grid(period_px);
        // A shift latent of 1 moves the grid by the translation prior, in
        // coordinates spanning [-1, 1] over the window (2 / (w - 1) per px).
        #[allow(clippy::cast_precision_loss)]
        let per_px = 2.0 / (w.max(2) - 1) as f64 / f64::from(cfg.translation_prior);
        let shift_at = usize::from(cfg.kind.rotation());
        let shifts = offsets.len() * offsets.len();
        let mut z = Array2::<f32>::zeros((codes.len() * shifts, l));
        for (ci, code) in codes.iter().enumerate() {
            for (ai, &a) in offsets.iter().enumerate() {
                for (bi, &b) in offsets.iter().enumerate() {
                    let r = (ci * offsets.len() + ai) * offsets.len() + bi;
                    #[allow(clippy::cast_possible_truncation)]
                    {
                        z[[r, shift_at]] = (a * per_px) as f32;
                        z[[r, shift_at + 1]] = (b * per_px) as f32;
                    }
                    for (j, &c) in code.iter().enumerate() {
                        z[[r, s + j]] = c;
                    }
                }
            }
        }
        let values = decode_latents(model, z.view())?.into_raw_vec_and_offset().0;
        Self::new(codes.len(), shifts, w, values)
    }

    /// Classes.
    #[must_use]
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Shifts per class.
    #[must_use]
    pub fn shifts(&self) -> usize {
        self.shifts
    }

    /// Window side, px.
    #[must_use]
    pub fn window(&self) -> usize {
        self.window
    }

    /// The template of `class` at `shift`, row-major `window^2` values.
    fn get(&self, class: usize, shift: usize) -> &[f32] {
        let n = self.window * self.window;
        let at = (class * self.shifts + shift) * n;
        &self.values[at..at + n]
    }

    /// The smallest, over the shifts, `weights`-weighted squared difference
    /// between `class`'s template and `patch`.
    fn central_error(&self, class: usize, patch: &[f32], weights: &[f32]) -> f64 {
        (0..self.shifts)
            .map(|s| {
                self.get(class, s)
                    .iter()
                    .zip(patch)
                    .zip(weights)
                    .map(|((&t, &p), &w)| f64::from(w) * f64::from(t - p).powi(2))
                    .sum::<f64>()
            })
            .fold(f64::INFINITY, f64::min)
    }
}

/// The offsets in px, `-period/2` to `period/2` in steps of
/// `max(1, period / SHIFTS_PER_PERIOD)`.
fn shift_grid(period_px: f64) -> Vec<f64> {
    let step = (period_px / SHIFTS_PER_PERIOD).max(1.0);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let n = (period_px / step).floor() as usize + 1;
    #[allow(clippy::cast_precision_loss)]
    (0..n).map(|i| -period_px / 2.0 + i as f64 * step).collect()
}

/// Gaussian weights over a `window x window` patch, standard deviation a
/// quarter window, centred on `(window / 2, window / 2)` (the pixel a grid
/// cell's truth is read at), summing to 1.
#[must_use]
pub fn central_weights(window: usize) -> Vec<f32> {
    #[allow(clippy::cast_precision_loss)]
    let (c, sd) = (window as f64 / 2.0, window as f64 / 4.0);
    let mut w: Vec<f64> = (0..window * window)
        .map(|i| {
            #[allow(clippy::cast_precision_loss)]
            let (r, q) = ((i / window) as f64, (i % window) as f64);
            (-((r - c).powi(2) + (q - c).powi(2)) / (2.0 * sd * sd)).exp()
        })
        .collect();
    let total: f64 = w.iter().sum();
    w.iter_mut().for_each(|v| *v /= total);
    #[allow(clippy::cast_possible_truncation)]
    w.into_iter().map(|v| v as f32).collect()
}

/// Half a window in grid cells, `window / 2 / step`: a patch whose centre is
/// that far from a boundary does not straddle it.
#[must_use]
pub fn interior_reach(window: usize, step: usize) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    {
        window as f64 / 2.0 / step.max(1) as f64
    }
}

/// For every cell of `labels` (row-major, `gh x gw`), the Euclidean distance
/// in cells to the nearest cell of another class, searched within `reach`
/// cells along each axis (`INFINITY` beyond). Written here: the grids are a
/// few ten thousand cells and the search is local.
fn distance_to_other(labels: &[usize], (gh, gw): (usize, usize), reach: usize) -> Vec<f64> {
    (0..gh * gw)
        .into_par_iter()
        .map(|i| {
            let (r, c) = (i / gw, i % gw);
            let l = labels[i];
            let mut best = f64::INFINITY;
            for a in r.saturating_sub(reach)..(r + reach + 1).min(gh) {
                for b in c.saturating_sub(reach)..(c + reach + 1).min(gw) {
                    if labels[a * gw + b] != l {
                        #[allow(clippy::cast_precision_loss)]
                        let d =
                            ((a as f64 - r as f64).powi(2) + (b as f64 - c as f64).powi(2)).sqrt();
                        best = best.min(d);
                    }
                }
            }
            best
        })
        .collect()
}

/// The cells of `class` more than `reach + 0.5` cells from any other class
/// (`far` from [`distance_to_other`]), in grid order.
fn interior_cells(idx: &[usize], far: &[f64], class: usize, reach: f64) -> Vec<usize> {
    (0..idx.len())
        .filter(|&i| idx[i] == class && far[i] > reach + 0.5)
        .collect()
}

/// Checks `labels` (`gh x gw`, classes from 0) and returns them as indices
/// with the class count.
fn class_indices(labels: ArrayView2<'_, i32>) -> Result<(Vec<usize>, usize)> {
    let idx: Vec<usize> = labels
        .iter()
        .map(|&l| usize::try_from(l))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| ModelError::InvalidParameter {
            name: "labels",
            value: labels.iter().min().copied().unwrap_or(0).to_string(),
            rule: "class numbers from 0",
        })?;
    let k = idx.iter().max().map_or(0, |&m| m + 1);
    Ok((idx, k))
}

/// The mean content code of each class of `labels` over its interior cells
/// (more than [`interior_reach`]` + 0.5` cells from another class; all its
/// cells when fewer than 3 are interior), from the latent means `maps`
/// (`gh x gw x L`), whose content latents are channels `first..first + n`.
///
/// # Errors
/// [`ModelError::ShapeMismatch`] when `maps` and `labels` differ in grid or
/// the channels do not exist; [`ModelError::InvalidParameter`] for a
/// negative label.
pub fn class_codes(
    maps: ArrayView3<'_, f32>,
    labels: ArrayView2<'_, i32>,
    first: usize,
    n: usize,
    reach: f64,
) -> Result<Vec<Vec<f32>>> {
    let (gh, gw, l) = maps.dim();
    if labels.dim() != (gh, gw) || first + n > l {
        return Err(ModelError::ShapeMismatch {
            what: "latent maps (gh, gw, channels) against labels and content latents",
            expected: vec![labels.nrows(), labels.ncols(), first + n],
            found: vec![gh, gw, l],
        });
    }
    let (idx, k) = class_indices(labels)?;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let far = distance_to_other(&idx, (gh, gw), (reach + 1.5).ceil() as usize);
    let mut codes = Vec::with_capacity(k);
    for class in 0..k {
        let interior = interior_cells(&idx, &far, class, reach);
        let cells = if interior.len() >= 3 {
            interior
        } else {
            (0..gh * gw).filter(|&i| idx[i] == class).collect()
        };
        let mut code = vec![0.0f64; n];
        for &i in &cells {
            for (j, v) in code.iter_mut().enumerate() {
                *v += f64::from(maps[[i / gw, i % gw, first + j]]);
            }
        }
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
        codes.push(
            code.iter()
                .map(|v| (v / cells.len().max(1) as f64) as f32)
                .collect(),
        );
    }
    Ok(codes)
}

/// `labels` (classes `0..k` on `grid`) with their band cells re-assigned by
/// `templates` (one per class, in class order) matched against the patches
/// of `image` (the scaled image the model saw), as the module documentation
/// says; with what was done.
///
/// # Errors
/// [`ModelError::ShapeMismatch`] when `labels` is not on `grid`, `image` is
/// not the grid's image, or the templates' window or class count differ;
/// [`ModelError::InvalidParameter`] for a negative label.
pub fn refine_boundaries(
    image: ArrayView2<'_, f32>,
    grid: &PatchGrid,
    labels: ArrayView2<'_, i32>,
    templates: &Templates,
) -> Result<(Array2<i32>, BoundaryRefinement)> {
    let (gh, gw) = (grid.gh(), grid.gw());
    if labels.dim() != (gh, gw) || image.dim() != grid.image_shape() {
        return Err(ModelError::ShapeMismatch {
            what: "labels and image against the patch grid",
            expected: vec![gh, gw, grid.image_shape().0, grid.image_shape().1],
            found: vec![labels.nrows(), labels.ncols(), image.nrows(), image.ncols()],
        });
    }
    let (idx, k) = class_indices(labels)?;
    let w = grid.window();
    if templates.window() != w || templates.classes() != k {
        return Err(ModelError::ShapeMismatch {
            what: "templates (classes, window) against labels and grid",
            expected: vec![k, w],
            found: vec![templates.classes(), templates.window()],
        });
    }
    let unchanged = |reason: String, band: usize, accuracy: Vec<f64>| {
        (
            labels.to_owned(),
            BoundaryRefinement {
                applied: false,
                band_cells: band,
                moved: 0,
                interior_accuracy: accuracy,
                reason,
            },
        )
    };
    if k < 2 {
        return Ok(unchanged("one class: no boundary".into(), 0, Vec::new()));
    }
    let reach = interior_reach(w, grid.step());
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let far = distance_to_other(&idx, (gh, gw), (reach + 1.5).ceil() as usize);
    let weights = central_weights(w);
    let patch = |i: usize| -> Vec<f32> {
        let (r0, c0) = grid.origin(i / gw, i % gw);
        image
            .slice(ndarray::s![r0..r0 + w, c0..c0 + w])
            .iter()
            .copied()
            .collect()
    };
    // The interior check.
    let mut accuracy = Vec::with_capacity(k);
    for class in 0..k {
        let interior = interior_cells(&idx, &far, class, reach);
        if interior.is_empty() {
            accuracy.push(0.0);
            continue;
        }
        let every = interior.len().div_ceil(INTERIOR_SAMPLE);
        let sample: Vec<usize> = interior.iter().copied().step_by(every).collect();
        let right = sample
            .par_iter()
            .filter(|&&i| {
                let p = patch(i);
                let errs: Vec<f64> = (0..k)
                    .map(|c| templates.central_error(c, &p, &weights))
                    .collect();
                argmin(&errs) == class
            })
            .count();
        #[allow(clippy::cast_precision_loss)]
        accuracy.push(right as f64 / sample.len() as f64);
    }
    let band: Vec<usize> = (0..gh * gw).filter(|&i| far[i] <= reach + 1.0).collect();
    if let Some((class, &acc)) = accuracy
        .iter()
        .enumerate()
        .find(|&(_, &a)| a < MIN_INTERIOR_ACCURACY)
    {
        return Ok(unchanged(
            format!(
                "not applied: class {class}'s template explains the centre of {:.0} % of its interior cells best (below {:.0} %), so the templates cannot place a boundary",
                100.0 * acc,
                100.0 * MIN_INTERIOR_ACCURACY
            ),
            band.len(),
            accuracy,
        ));
    }
    // Band cells: the classes within reach + 1 cells are the candidates.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let near = reach.floor() as usize + 1;
    let moves: Vec<(usize, usize)> = band
        .par_iter()
        .filter_map(|&i| {
            let (r, c) = (i / gw, i % gw);
            let mut candidates = vec![false; k];
            for a in r.saturating_sub(near)..(r + near + 1).min(gh) {
                for b in c.saturating_sub(near)..(c + near + 1).min(gw) {
                    candidates[idx[a * gw + b]] = true;
                }
            }
            let p = patch(i);
            let own = templates.central_error(idx[i], &p, &weights);
            let best = (0..k)
                .filter(|&c| candidates[c] && c != idx[i])
                .map(|c| (templates.central_error(c, &p, &weights), c))
                .min_by(|a, b| a.0.total_cmp(&b.0))?;
            (best.0 < own * (1.0 - MARGIN)).then_some((i, best.1))
        })
        .collect();
    let mut out = labels.to_owned();
    for &(i, class) in &moves {
        #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
        {
            out[[i / gw, i % gw]] = class as i32;
        }
    }
    Ok((
        out,
        BoundaryRefinement {
            applied: true,
            band_cells: band.len(),
            moved: moves.len(),
            interior_accuracy: accuracy,
            reason: format!(
                "applied: {} of {} cells within a window of another class moved, each to the class whose template explains its patch centre with an error below {:.0} % of its own class's",
                moves.len(),
                band.len(),
                100.0 * (1.0 - MARGIN)
            ),
        },
    ))
}

/// Index of the smallest value (the first on a tie).
fn argmin(v: &[f64]) -> usize {
    v.iter()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

/// What [`BoundaryRefiner::refine`] needs of a trained VAE's run: the model,
/// the scaled image and grid its maps were encoded on, the latent means and
/// the lattice period.
#[derive(Debug, Clone, Copy)]
pub struct BoundaryRefiner<'a> {
    /// The trained model.
    pub model: &'a Vae,
    /// The scaled image the model saw (`PatchSet::scaled_image`).
    pub image: ArrayView2<'a, f32>,
    /// Its patch grid.
    pub grid: &'a PatchGrid,
    /// Latent means on the grid, `gh x gw x L` (special latents first).
    pub maps: ArrayView3<'a, f32>,
    /// The lattice period the shifts span, px.
    pub period_px: f64,
}

impl BoundaryRefiner<'_> {
    /// `labels` with their band cells re-assigned ([`refine_boundaries`]),
    /// templates decoded from the interior codes ([`class_codes`],
    /// [`Templates::decode`]). A model without shift latents or a spatial
    /// decoder leaves them as they are, and says so.
    ///
    /// # Errors
    /// As [`class_codes`], [`Templates::decode`] and [`refine_boundaries`].
    pub fn refine(&self, labels: ArrayView2<'_, i32>) -> Result<(Array2<i32>, BoundaryRefinement)> {
        let cfg = self.model.config();
        if !cfg.kind.translation() || !self.model.has_spatial_decoder() {
            return Ok((
                labels.to_owned(),
                BoundaryRefinement {
                    applied: false,
                    band_cells: 0,
                    moved: 0,
                    interior_accuracy: Vec::new(),
                    reason: "not applied: the model has no shift latents or spatial decoder to draw templates with".into(),
                },
            ));
        }
        let reach = interior_reach(self.grid.window(), self.grid.step());
        let codes = class_codes(self.maps, labels, cfg.kind.n_special(), cfg.n_latent, reach)?;
        let templates = Templates::decode(self.model, &codes, self.period_px)?;
        refine_boundaries(self.image, self.grid, labels, &templates)
    }
}

/// The lattice period the templates' shifts span: the longest spacing
/// `1 / |k|` of the registration `wavevectors` (cycles per px), else half
/// the `window`.
#[must_use]
pub fn template_period(wavevectors: &[[f64; 2]], window: usize) -> f64 {
    let longest = wavevectors
        .iter()
        .map(|k| 1.0 / k[0].hypot(k[1]))
        .filter(|p| p.is_finite() && *p > 0.0)
        .fold(0.0, f64::max);
    #[allow(clippy::cast_precision_loss)]
    if longest > 0.0 {
        longest
    } else {
        window as f64 / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `rows x cols` image: `left` in columns below `edge`, `right` from it.
    fn two_halves(rows: usize, cols: usize, edge: usize, left: f32, right: f32) -> Array2<f32> {
        Array2::from_shape_fn((rows, cols), |(_, c)| if c < edge { left } else { right })
    }

    /// Flat templates: class 0 draws `a` everywhere, class 1 `b`.
    fn flat_templates(window: usize, a: f32, b: f32) -> Templates {
        let n = window * window;
        let mut v = vec![a; n];
        v.extend(std::iter::repeat_n(b, n));
        Templates::new(2, 1, window, v).unwrap()
    }

    /// Labels split at grid column `at`: 0 before, 1 from it.
    fn split_labels(gh: usize, gw: usize, at: usize) -> Array2<i32> {
        Array2::from_shape_fn((gh, gw), |(_, c)| i32::from(c >= at))
    }

    /// [`refine_boundaries`] on an 8 x 40 px `img` with 8 px windows every
    /// 2 px (a 1 x 17 grid; the centre of cell c at column 2c + 4).
    fn refine_strip(
        img: &Array2<f32>,
        labels: &Array2<i32>,
        templates: &Templates,
    ) -> Result<(Array2<i32>, BoundaryRefinement)> {
        let grid = PatchGrid::new(8, 40, 8, 2)?;
        refine_boundaries(img.view(), &grid, labels.view(), templates)
    }

    #[test]
    fn a_boundary_placed_one_cell_late_moves_back_to_the_patch_centres() {
        // 8 px windows every 2 px on 8 x 40 px: origins 0, 2, ..., 32, the
        // centre of cell c at column 2c + 4. The image changes at column 20,
        // so cells 0..=7 (centres 4..=18) are 0 and cells 8.. (centres 20..)
        // are 1. The labels put the boundary at cell 9: cell 8 is wrong.
        let grid = PatchGrid::new(8, 40, 8, 2).unwrap();
        assert_eq!((grid.gh(), grid.gw()), (1, 17));
        let img = two_halves(8, 40, 20, 0.2, 0.8);
        let labels = split_labels(1, 17, 9);
        let (out, r) = refine_strip(&img, &labels, &flat_templates(8, 0.2, 0.8)).unwrap();
        assert!(r.applied, "{r:?}");
        assert_eq!(out, split_labels(1, 17, 8), "{r:?}");
        assert_eq!(r.moved, 1);
        assert_eq!(r.interior_accuracy, vec![1.0, 1.0]);
    }

    #[test]
    fn a_correct_boundary_stays() {
        let img = two_halves(8, 40, 20, 0.2, 0.8);
        let labels = split_labels(1, 17, 8);
        let (out, r) = refine_strip(&img, &labels, &flat_templates(8, 0.2, 0.8)).unwrap();
        assert_eq!(out, labels);
        assert_eq!(r.moved, 0);
        assert!(r.applied);
        // Band: cells within reach + 1 = 2 + 1 cells of the other class.
        assert_eq!(r.band_cells, 6, "{r:?}");
    }

    #[test]
    fn templates_that_cannot_tell_the_interiors_apart_move_nothing() {
        // Both templates draw 0.5: every interior cell is a tie, which goes
        // to class 0, so class 1's interior accuracy is 0.
        let img = two_halves(8, 40, 20, 0.2, 0.8);
        let labels = split_labels(1, 17, 9);
        let (out, r) = refine_strip(&img, &labels, &flat_templates(8, 0.5, 0.5)).unwrap();
        assert!(!r.applied);
        assert_eq!(out, labels);
        assert_eq!(r.interior_accuracy, vec![1.0, 0.0]);
        assert!(r.reason.starts_with("not applied"), "{}", r.reason);
    }

    #[test]
    fn a_cell_moves_only_by_the_margin() {
        // Cell 8's patch (columns 16..24) filled with one value v: its
        // central errors are (v - 0.2)^2 under class 0 and (0.8 - v)^2 under
        // class 1. Labelled 0 (labels split at 9), it moves to 1 only when
        // (0.8 - v)^2 < 0.75 (v - 0.2)^2: v = 0.6 gives 0.04 < 0.12 and
        // moves; v = 0.52 gives 0.0784 against 0.75 * 0.1024 = 0.0768 and
        // stays. (Cell 7, whose centre also lies in the filled columns, moves
        // with v = 0.6 as well; with 0.52 nothing moves.)
        let labels = split_labels(1, 17, 9);
        for (v, moves) in [(0.6, true), (0.52, false)] {
            let mut img = two_halves(8, 40, 20, 0.2, 0.8);
            img.slice_mut(ndarray::s![.., 16..24]).fill(v);
            let (out, r) = refine_strip(&img, &labels, &flat_templates(8, 0.2, 0.8)).unwrap();
            assert!(r.applied, "{r:?}");
            assert_eq!(out[[0, 8]], i32::from(moves), "v = {v}: {r:?}");
            assert_eq!(r.moved > 0, moves, "v = {v}: {r:?}");
        }
    }

    #[test]
    fn labels_must_fit_the_grid_and_templates() {
        let img = two_halves(8, 40, 20, 0.2, 0.8);
        let wrong = split_labels(1, 16, 8);
        assert!(matches!(
            refine_strip(&img, &wrong, &flat_templates(8, 0.2, 0.8)),
            Err(ModelError::ShapeMismatch { .. })
        ));
        let labels = split_labels(1, 17, 8);
        assert!(matches!(
            refine_strip(&img, &labels, &flat_templates(6, 0.2, 0.8)),
            Err(ModelError::ShapeMismatch { .. })
        ));
        let negative = Array2::from_elem((1, 17), -1);
        assert!(matches!(
            refine_strip(&img, &negative, &flat_templates(8, 0.2, 0.8)),
            Err(ModelError::InvalidParameter { name: "labels", .. })
        ));
    }

    #[test]
    fn the_shift_grid_spans_one_period() {
        assert_eq!(shift_grid(4.0), vec![-2.0, -1.0, 0.0, 1.0, 2.0]);
        // 32 px: steps of 2 px, 17 offsets from -16 to 16.
        let g = shift_grid(32.0);
        assert_eq!(g.len(), 17);
        assert_eq!((g[0], g[16]), (-16.0, 16.0));
    }

    #[test]
    fn central_weights_peak_at_the_centre_pixel_and_sum_to_one() {
        let w = central_weights(8);
        let total: f32 = w.iter().sum();
        assert!((total - 1.0).abs() < 1e-5);
        let max = w.iter().copied().fold(0.0, f32::max);
        assert_eq!(w[4 * 8 + 4], max);
    }

    #[test]
    fn class_codes_average_the_interiors() {
        // 1 x 12 grid, window 4, step 2: reach 1, interior beyond 1.5 cells.
        // Class 0 in cells 0..6 with code 1 in cells 0..=3 and 5 near the
        // boundary; class 1 with code -1. Cell 4 (distance 2) is interior,
        // cell 5 (distance 1) is not.
        let labels = split_labels(1, 12, 6);
        let maps = ndarray::Array3::from_shape_fn((1, 12, 3), |(_, c, j)| match (j, c) {
            (0, _) => 9.0,
            (_, 5) => 5.0,
            (_, c) if c < 6 => 1.0,
            _ => -1.0,
        });
        let codes = class_codes(maps.view(), labels.view(), 1, 2, 1.0).unwrap();
        assert_eq!(codes, vec![vec![1.0, 1.0], vec![-1.0, -1.0]]);
    }

    #[test]
    fn the_template_period_is_the_longest_lattice_spacing() {
        assert_eq!(template_period(&[[0.1, 0.0], [0.0, 0.05]], 32), 20.0);
        assert_eq!(template_period(&[], 32), 16.0);
    }
}
