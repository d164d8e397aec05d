//! The paper's segmentation of one latent map (Biswas, Ziatdinov & Kalinin 2023,
//! "visualization"; the authors' `visualize_boundaries`): min-max normalise, bilateral
//! denoise, then binary Otsu, multi-Otsu and Chan-Vese labels of the denoised map.
//!
//! Everything runs in `f32`, as the authors' latent maps are `float32` tensors and
//! scikit-image keeps `float32` in `float32`:
//! 1. if `max - min <= flat_threshold` the map is flat (see [`Segmentations::flat`]);
//! 2. optionally (a deviation from the paper, off by default), a Gaussian low-pass
//!    `z = gaussian(z, lowpass_sigma)` ([`crate::filters::gaussian`]): a latent that
//!    follows the position of its patch in the lattice oscillates at the lattice period
//!    across the grid, and the bilateral step keeps such an oscillation (it preserves
//!    edges); a standard deviation of half a unit cell removes it;
//! 3. `zn = (z - min) / (max - min)`;
//! 4. `den = denoise_bilateral(zn, sigma_color, sigma_spatial)` in scikit-image mode
//!    ([`crate::filters::BilateralMode::Skimage`], `mode='constant'`, `cval=0`);
//! 5. Otsu labels `den > threshold_otsu(den)`; for each class count `c`,
//!    `numpy.digitize(den, threshold_multiotsu(den, c))`; Chan-Vese labels
//!    `chan_vese(den) > 0` with scikit-image's defaults.

use crate::chan_vese::{ChanVeseParams, chan_vese};
use crate::error::check_finite;
use crate::filters::{BilateralMode, BilateralParams, SigmaColor, denoise_bilateral, gaussian};
use crate::numeric::min_max;
use crate::threshold::{MAX_CLASSES, MIN_CLASSES, binarize, digitize, multiotsu, otsu};
use crate::{ImagingError, Result};
use ndarray::{Array2, ArrayView2};

/// Range (max - min) at or below which a map counts as flat (the authors' `1e-3`).
pub const DEFAULT_FLAT_THRESHOLD: f64 = 1e-3;
/// Default colour (range) standard deviation of the bilateral denoising, in units of the
/// min-max normalised map: 0.3, the value of the paper's visualisation pipeline (the
/// authors' `visualize_boundaries`; the paper also quotes 0.1; see `docs/METHOD.md`,
/// section 4). The default of [`VisualizeParams`]; the CLI and the report take it as theirs.
pub const DEFAULT_SIGMA_COLOR: f64 = 0.3;
/// Spatial standard deviation of the denoising, in grid cells.
pub const DEFAULT_SIGMA_SPATIAL: f64 = 5.0;
/// Default standard deviation of the Gaussian low-pass before the pipeline, in grid
/// cells: 0, none (the paper's pipeline).
pub const DEFAULT_LOWPASS_SIGMA: f64 = 0.0;
/// Multi-Otsu class counts computed by default.
pub const DEFAULT_MULTIOTSU_CLASSES: [usize; 2] = [3, 4];

/// Validated parameters of [`segment_map`]; from [`VisualizeParams::new`] or
/// [`VisualizeParams::default`].
#[derive(Debug, Clone, PartialEq)]
pub struct VisualizeParams {
    flat_threshold: f64,
    lowpass_sigma: f64,
    bilateral: BilateralParams,
    multiotsu_classes: Vec<usize>,
    chan_vese: ChanVeseParams,
}

impl Default for VisualizeParams {
    /// The paper's settings: flat threshold 1e-3, no low-pass, `sigma_color` 0.3, `sigma_spatial` 5,
    /// multi-Otsu with 3 and 4 classes, Chan-Vese with scikit-image's defaults (energies
    /// not recorded).
    fn default() -> Self {
        // The default values satisfy every rule (checked by a unit test), so the
        // fallback, which only keeps the pipeline usable, is never taken.
        Self::new().build().unwrap_or_else(|_| Self {
            flat_threshold: DEFAULT_FLAT_THRESHOLD,
            lowpass_sigma: DEFAULT_LOWPASS_SIGMA,
            bilateral: BilateralParams::paper(),
            multiotsu_classes: DEFAULT_MULTIOTSU_CLASSES.to_vec(),
            chan_vese: ChanVeseParams::default().without_energies(),
        })
    }
}

impl VisualizeParams {
    /// A builder starting from the defaults ([`VisualizeParams::default`]).
    #[must_use]
    #[allow(
        clippy::new_ret_no_self,
        reason = "parameters are only obtained validated, through the builder"
    )]
    pub fn new() -> VisualizeParamsBuilder {
        VisualizeParamsBuilder {
            flat_threshold: DEFAULT_FLAT_THRESHOLD,
            lowpass_sigma: DEFAULT_LOWPASS_SIGMA,
            sigma_color: DEFAULT_SIGMA_COLOR,
            sigma_spatial: DEFAULT_SIGMA_SPATIAL,
            multiotsu_classes: DEFAULT_MULTIOTSU_CLASSES.to_vec(),
            chan_vese: ChanVeseParams::default(),
        }
    }

    /// Range at or below which a map is flat.
    #[must_use]
    pub fn flat_threshold(&self) -> f64 {
        self.flat_threshold
    }

    /// Standard deviation of the Gaussian low-pass before the pipeline, in grid
    /// cells (0: none).
    #[must_use]
    pub fn lowpass_sigma(&self) -> f64 {
        self.lowpass_sigma
    }

    /// The bilateral filter settings (scikit-image mode).
    #[must_use]
    pub fn bilateral(&self) -> &BilateralParams {
        &self.bilateral
    }

    /// The multi-Otsu class counts, in the order the labels are returned.
    #[must_use]
    pub fn multiotsu_classes(&self) -> &[usize] {
        &self.multiotsu_classes
    }

    /// The Chan-Vese settings.
    #[must_use]
    pub fn chan_vese(&self) -> &ChanVeseParams {
        &self.chan_vese
    }
}

/// Builder of [`VisualizeParams`]; [`VisualizeParamsBuilder::build`] checks every rule.
#[derive(Debug, Clone, PartialEq)]
pub struct VisualizeParamsBuilder {
    flat_threshold: f64,
    lowpass_sigma: f64,
    sigma_color: f64,
    sigma_spatial: f64,
    multiotsu_classes: Vec<usize>,
    chan_vese: ChanVeseParams,
}

impl VisualizeParamsBuilder {
    /// Range (max - min) at or below which a map is flat; finite, `>= 0`.
    #[must_use]
    pub fn flat_threshold(mut self, flat_threshold: f64) -> Self {
        self.flat_threshold = flat_threshold;
        self
    }

    /// Standard deviation of the Gaussian low-pass applied to the map before
    /// everything else, in grid cells; finite, `>= 0` (0: none).
    #[must_use]
    pub fn lowpass_sigma(mut self, sigma: f64) -> Self {
        self.lowpass_sigma = sigma;
        self
    }

    /// Colour standard deviation of the denoising (normalised units); finite, `> 0`.
    #[must_use]
    pub fn sigma_color(mut self, sigma_color: f64) -> Self {
        self.sigma_color = sigma_color;
        self
    }

    /// Spatial standard deviation of the denoising (grid cells); finite, `> 0`.
    #[must_use]
    pub fn sigma_spatial(mut self, sigma_spatial: f64) -> Self {
        self.sigma_spatial = sigma_spatial;
        self
    }

    /// Multi-Otsu class counts; each in 2..=5 (may be empty).
    #[must_use]
    pub fn multiotsu_classes(mut self, classes: &[usize]) -> Self {
        self.multiotsu_classes = classes.to_vec();
        self
    }

    /// Chan-Vese settings (already validated); energies are switched off in any case.
    #[must_use]
    pub fn chan_vese(mut self, params: ChanVeseParams) -> Self {
        self.chan_vese = params;
        self
    }

    /// Checks the rules and returns the parameters.
    ///
    /// # Errors
    /// [`ImagingError::InvalidParameter`] naming the first broken rule: `flat_threshold`
    /// (finite, >= 0), `lowpass_sigma` (finite, >= 0), `sigma_color` (finite, > 0), `sigma_spatial` (finite, > 0),
    /// `multiotsu_classes` (each in 2..=5).
    pub fn build(self) -> Result<VisualizeParams> {
        if !(self.flat_threshold.is_finite() && self.flat_threshold >= 0.0) {
            return Err(ImagingError::InvalidParameter {
                name: "flat_threshold",
                value: self.flat_threshold.to_string(),
                rule: "must be finite and >= 0",
            });
        }
        if !(self.lowpass_sigma.is_finite() && self.lowpass_sigma >= 0.0) {
            return Err(ImagingError::InvalidParameter {
                name: "lowpass_sigma",
                value: self.lowpass_sigma.to_string(),
                rule: "must be finite and >= 0",
            });
        }
        if let Some(&c) = self
            .multiotsu_classes
            .iter()
            .find(|c| !(MIN_CLASSES..=MAX_CLASSES).contains(*c))
        {
            return Err(ImagingError::InvalidParameter {
                name: "multiotsu_classes",
                value: c.to_string(),
                rule: "each class count must be in 2..=5",
            });
        }
        // The bilateral builder checks sigma_color and sigma_spatial (finite, > 0).
        let bilateral = BilateralParams::new()
            .sigma_color(SigmaColor::Value(self.sigma_color))
            .sigma_spatial(self.sigma_spatial)
            .mode(BilateralMode::Skimage)
            .build()?;
        Ok(VisualizeParams {
            flat_threshold: self.flat_threshold,
            lowpass_sigma: self.lowpass_sigma,
            bilateral,
            multiotsu_classes: self.multiotsu_classes,
            chan_vese: self.chan_vese.without_energies(),
        })
    }
}

/// `map` min-max scaled to `[0, 1]`, the normalisation step of
/// [`segment_map`]: `(v - min) / (max - min)`; all zeros for a constant map.
#[must_use]
pub fn min_max_scaled(map: ArrayView2<'_, f32>) -> Array2<f32> {
    let (lo, hi) = min_max(map);
    // A map that is not constant keeps a positive range; the floor only
    // keeps the division finite.
    let range = (hi - lo).max(f32::MIN_POSITIVE);
    map.mapv(|v| (v - lo) / range)
}

/// The segmentations of one latent map, all of the map's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Segmentations {
    /// The low-passed (when asked), normalised, bilateral-denoised map (all zeros
    /// for a flat map).
    pub denoised: Array2<f32>,
    /// The map after the low-pass (the map itself without one), in the map's
    /// own units: the input of the normalisation and the bilateral step (all
    /// zeros for a flat map).
    pub lowpassed: Array2<f32>,
    /// Binary Otsu labels, 1 where `denoised > threshold_otsu(denoised)`.
    pub otsu: Array2<i32>,
    /// Multi-Otsu labels `0..classes` per requested class count, in the order of
    /// [`VisualizeParams::multiotsu_classes`], without the skipped ones.
    pub multiotsu: Vec<(usize, Array2<i32>)>,
    /// The requested multi-Otsu class counts that were skipped, each with the
    /// reason: the denoised map holds fewer distinct histogram levels than the
    /// count needs (a map of very few cells, or a nearly uniform one), where
    /// scikit-image raises instead.
    pub skipped: Vec<(usize, String)>,
    /// Chan-Vese labels, 1 where the final level set is `> 0`.
    pub chanvese: Array2<i32>,
    /// Whether the map was flat (`max - min <= flat_threshold`). A flat map carries no
    /// structure: every label map is all zeros and `denoised` is all zeros. (The
    /// authors' code replaces such a map by its mean and then min-max normalises it
    /// anyway, dividing by zero, so its output there is NaN.)
    pub flat: bool,
}

impl Segmentations {
    /// Every label map with its file-friendly name, in a fixed order: `otsu`,
    /// `multiotsu<k>` for each class count `k` (in the order of
    /// [`VisualizeParams`]), `chanvese`.
    #[must_use]
    pub fn named_labels(&self) -> Vec<(String, &Array2<i32>)> {
        let mut out = Vec::with_capacity(self.multiotsu.len() + 2);
        out.push(("otsu".to_owned(), &self.otsu));
        for (k, labels) in &self.multiotsu {
            out.push((format!("multiotsu{k}"), labels));
        }
        out.push(("chanvese".to_owned(), &self.chanvese));
        out
    }

    /// The multi-Otsu labels for `classes`, if they were requested.
    #[must_use]
    pub fn multiotsu_labels(&self, classes: usize) -> Option<&Array2<i32>> {
        self.multiotsu
            .iter()
            .find(|(c, _)| *c == classes)
            .map(|(_, l)| l)
    }
}

/// Segments one latent map as the paper's visualisation does (module documentation):
/// low-pass (when [`VisualizeParams::lowpass_sigma`] is above 0), normalise,
/// bilateral-denoise, then Otsu, multi-Otsu and Chan-Vese labels.
///
/// # Errors
/// [`ImagingError::EmptyImage`] / [`ImagingError::NonFinite`] for an empty or non-finite
/// map. A requested multi-Otsu class count for which the denoised map has too few
/// occupied histogram bins is not an error (scikit-image raises there): it is left
/// out of [`Segmentations::multiotsu`] and listed in [`Segmentations::skipped`].
///
/// # Example
/// ```
/// use ndarray::Array2;
/// use phyvae_imaging::pipeline::{VisualizeParams, segment_map};
///
/// // Two domains with a vertical wall, plus a gentle ramp.
/// let map = Array2::from_shape_fn((24, 24), |(i, j)| {
///     (if j < 12 { 0.0_f32 } else { 1.0 }) + 0.01 * i as f32
/// });
/// let seg = segment_map(map.view(), &VisualizeParams::default())?;
/// assert!(!seg.flat);
/// assert_ne!(seg.otsu[[12, 2]], seg.otsu[[12, 21]]);
/// assert_eq!(seg.multiotsu_labels(3).map(|l| l.dim()), Some((24, 24)));
/// # Ok::<(), phyvae_imaging::ImagingError>(())
/// ```
pub fn segment_map(map: ArrayView2<'_, f32>, params: &VisualizeParams) -> Result<Segmentations> {
    let Some(OtsuSplit {
        lowpassed,
        denoised,
        otsu: otsu_labels,
    }) = otsu_split(map, params)?
    else {
        let zeros = Array2::<i32>::zeros(map.dim());
        return Ok(Segmentations {
            denoised: Array2::zeros(map.dim()),
            lowpassed: Array2::zeros(map.dim()),
            otsu: zeros.clone(),
            multiotsu: params
                .multiotsu_classes
                .iter()
                .map(|&c| (c, zeros.clone()))
                .collect(),
            chanvese: zeros,
            skipped: Vec::new(),
            flat: true,
        });
    };
    let mut multiotsu_labels = Vec::with_capacity(params.multiotsu_classes.len());
    let mut skipped = Vec::new();
    for &c in &params.multiotsu_classes {
        match multiotsu(denoised.view(), c) {
            Ok(t) => multiotsu_labels.push((c, digitize(denoised.view(), &t))),
            Err(ImagingError::TooFewLevels { found, needed, .. }) => skipped.push((
                c,
                format!(
                    "the denoised map has {found} distinct histogram levels, fewer than the {needed} that {c} classes need"
                ),
            )),
            Err(e) => return Err(e),
        }
    }
    let cv = chan_vese(denoised.view(), &params.chan_vese)?;
    Ok(Segmentations {
        otsu: otsu_labels,
        multiotsu: multiotsu_labels,
        skipped,
        chanvese: cv.segmentation.mapv(i32::from),
        denoised,
        lowpassed,
        flat: false,
    })
}

/// The first steps of [`segment_map`], for a caller that needs only the
/// binary split: the low-passed map, the normalised and bilateral-denoised
/// map, and its Otsu labels.
#[derive(Debug, Clone, PartialEq)]
pub struct OtsuSplit {
    /// As [`Segmentations::lowpassed`].
    pub lowpassed: Array2<f32>,
    /// As [`Segmentations::denoised`].
    pub denoised: Array2<f32>,
    /// As [`Segmentations::otsu`].
    pub otsu: Array2<i32>,
}

/// Low-pass (when [`VisualizeParams::lowpass_sigma`] is above 0), normalise,
/// bilateral-denoise and Otsu-split one map, as [`segment_map`] does first;
/// `None` for a flat map (`max - min <= flat_threshold`).
///
/// # Errors
/// [`ImagingError::EmptyImage`] / [`ImagingError::NonFinite`] for an empty or
/// non-finite map.
pub fn otsu_split(map: ArrayView2<'_, f32>, params: &VisualizeParams) -> Result<Option<OtsuSplit>> {
    check_finite(map)?;
    let (lo, hi) = min_max(map);
    if f64::from(hi - lo) <= params.flat_threshold {
        return Ok(None);
    }
    let lowpassed = if params.lowpass_sigma > 0.0 {
        gaussian(map, params.lowpass_sigma)?
    } else {
        map.to_owned()
    };
    let normalised = min_max_scaled(lowpassed.view());
    let denoised = denoise_bilateral(normalised.view(), &params.bilateral)?;
    let otsu_labels = binarize(denoised.view(), otsu(denoised.view())?);
    Ok(Some(OtsuSplit {
        lowpassed,
        denoised,
        otsu: otsu_labels,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn invalid_name(r: Result<VisualizeParams>) -> &'static str {
        match r {
            Err(ImagingError::InvalidParameter { name, .. }) => name,
            other => panic!("expected InvalidParameter, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_the_papers() {
        let p = VisualizeParams::default();
        // Built through the checked builder (not the fallback of `default`).
        assert_eq!(p, VisualizeParams::new().build().unwrap());
        assert_eq!(p.flat_threshold(), 1e-3);
        assert_eq!(p.lowpass_sigma(), 0.0);
        assert_eq!(p.bilateral().sigma_color(), SigmaColor::Value(0.3));
        assert_eq!(p.bilateral().sigma_spatial(), 5.0);
        assert_eq!(p.bilateral().mode(), BilateralMode::Skimage);
        assert_eq!(p.multiotsu_classes(), &[3, 4]);
        assert!(!p.chan_vese().record_energies());
        assert_eq!(p.chan_vese().max_num_iter(), 500);
    }

    #[test]
    fn rejects_negative_flat_threshold() {
        let r = VisualizeParams::new().flat_threshold(-1e-3).build();
        assert_eq!(invalid_name(r), "flat_threshold");
    }

    #[test]
    fn rejects_negative_or_non_finite_lowpass_sigma() {
        for s in [-0.5, f64::NAN] {
            let r = VisualizeParams::new().lowpass_sigma(s).build();
            assert_eq!(invalid_name(r), "lowpass_sigma");
        }
    }

    #[test]
    fn lowpass_removes_a_lattice_oscillation_that_the_bilateral_step_keeps() {
        // Left half: an oscillation between 0 and 1 along x with a period of two
        // cells (a latent that follows the lattice phase); right half: a constant
        // 0.9. The regions differ in their mean (0.5 against 0.9), not in their range.
        let map =
            Array2::from_shape_fn((16, 16), |(_, j)| if j < 8 { (j % 2) as f32 } else { 0.9 });
        let plain = segment_map(map.view(), &VisualizeParams::default()).unwrap();
        // Without the low-pass, Otsu splits the oscillation itself.
        assert_ne!(plain.otsu[[8, 2]], plain.otsu[[8, 3]]);
        let p = VisualizeParams::new().lowpass_sigma(1.0).build().unwrap();
        let low = segment_map(map.view(), &p).unwrap();
        assert_eq!(p.lowpass_sigma(), 1.0);
        // With it, the left half is one class and the right half the other.
        for i in 0..16 {
            for j in 0..6 {
                assert_eq!(low.otsu[[i, j]], low.otsu[[0, 0]], "({i}, {j})");
            }
            for j in 10..16 {
                assert_ne!(low.otsu[[i, j]], low.otsu[[0, 0]], "({i}, {j})");
            }
        }
    }

    #[test]
    fn rejects_nonpositive_sigma_color() {
        let r = VisualizeParams::new().sigma_color(0.0).build();
        assert_eq!(invalid_name(r), "sigma_color");
    }

    #[test]
    fn rejects_nonpositive_sigma_spatial() {
        let r = VisualizeParams::new().sigma_spatial(-5.0).build();
        assert_eq!(invalid_name(r), "sigma_spatial");
    }

    #[test]
    fn rejects_class_counts_out_of_range() {
        let r = VisualizeParams::new().multiotsu_classes(&[3, 6]).build();
        assert_eq!(invalid_name(r), "multiotsu_classes");
        let r = VisualizeParams::new().multiotsu_classes(&[1]).build();
        assert_eq!(invalid_name(r), "multiotsu_classes");
    }

    #[test]
    fn flat_map_gives_zero_labels() {
        // Range 5e-4 <= 1e-3: flat.
        let map = array![[1.0_f32, 1.0005], [1.0002, 1.0]];
        let seg = segment_map(map.view(), &VisualizeParams::default()).unwrap();
        assert!(seg.flat);
        assert_eq!(seg.denoised, Array2::<f32>::zeros((2, 2)));
        assert_eq!(seg.otsu, Array2::<i32>::zeros((2, 2)));
        assert_eq!(seg.chanvese, Array2::<i32>::zeros((2, 2)));
        assert_eq!(seg.multiotsu.len(), 2);
        assert!(seg.multiotsu.iter().all(|(_, l)| l.iter().all(|&v| v == 0)));
        assert!(seg.skipped.is_empty());
        assert_eq!(seg.lowpassed, Array2::<f32>::zeros((2, 2)));
    }

    #[test]
    fn min_max_scaled_by_hand() {
        // min -1, max 3: (v + 1) / 4.
        let map = array![[-1.0_f32, 0.0], [1.0, 3.0]];
        assert_eq!(
            min_max_scaled(map.view()),
            array![[0.0_f32, 0.25], [0.5, 1.0]]
        );
        // A constant map: zeros, not NaN.
        let flat = array![[2.0_f32, 2.0]];
        assert_eq!(min_max_scaled(flat.view()), array![[0.0_f32, 0.0]]);
    }

    #[test]
    fn lowpassed_is_the_map_in_its_own_units() {
        // No low-pass: the map itself.
        let map = array![[-0.5_f32, 1.0, 3.5], [0.0, 2.0, 1.5]];
        let seg = segment_map(map.view(), &VisualizeParams::default()).unwrap();
        assert_eq!(seg.lowpassed, map);
        // With one: the Gaussian filter's output, not normalised.
        let p = VisualizeParams::new().lowpass_sigma(1.0).build().unwrap();
        let smoothed = segment_map(map.view(), &p).unwrap();
        assert_eq!(smoothed.lowpassed, gaussian(map.view(), 1.0).unwrap());
    }

    #[test]
    fn labels_have_the_requested_ranges() {
        let map = Array2::from_shape_fn((20, 20), |(i, j)| ((i * 3 + j * 7) % 11) as f32);
        let p = VisualizeParams::new()
            .multiotsu_classes(&[2, 5])
            .build()
            .unwrap();
        let seg = segment_map(map.view(), &p).unwrap();
        assert!(!seg.flat);
        assert_eq!(seg.multiotsu[0].0, 2);
        assert_eq!(seg.multiotsu[1].0, 5);
        assert!(seg.multiotsu[0].1.iter().all(|&v| (0..2).contains(&v)));
        assert!(seg.multiotsu[1].1.iter().all(|&v| (0..5).contains(&v)));
        assert!(seg.otsu.iter().all(|&v| v == 0 || v == 1));
        assert!(seg.chanvese.iter().all(|&v| v == 0 || v == 1));
        assert!(seg.multiotsu_labels(3).is_none());
        // The denoised map of a [0, 1] map stays in [0, 1].
        assert!(seg.denoised.iter().all(|&v| (0.0..=1.0).contains(&v)));
    }

    #[test]
    fn too_few_levels_skip_that_class_count_only() {
        // A 1 x 3 map of three distinct values, far apart: after denoising it
        // still holds three histogram levels, enough for 2 and 3 classes but
        // not for 4 (multi-Otsu with k classes needs k occupied bins).
        let map = array![[0.0_f32, 0.5, 1.0]];
        let p = VisualizeParams::new()
            .multiotsu_classes(&[3, 4])
            .sigma_color(0.01)
            .build()
            .unwrap();
        let seg = segment_map(map.view(), &p).unwrap();
        assert!(!seg.flat);
        assert_eq!(seg.multiotsu.len(), 1);
        assert_eq!(seg.multiotsu[0].0, 3);
        assert_eq!(seg.skipped.len(), 1);
        assert_eq!(seg.skipped[0].0, 4);
        assert!(
            seg.skipped[0].1.contains("3 distinct histogram levels"),
            "{}",
            seg.skipped[0].1
        );
        let names: Vec<String> = seg.named_labels().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["otsu", "multiotsu3", "chanvese"]);
    }

    #[test]
    fn rejects_non_finite_map() {
        let map = array![[0.0_f32, f32::NAN]];
        assert!(matches!(
            segment_map(map.view(), &VisualizeParams::default()),
            Err(ImagingError::NonFinite { .. })
        ));
    }
}
