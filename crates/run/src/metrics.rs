//! `metrics.json`: what a run measured, written once by `train` and `encode`
//! (and by the classical baseline) and read by the report.
//!
//! Every field is typed; a field a run does not have is left out of the
//! file (`None`), and a file written by an older version reads with the
//! missing fields at their defaults.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use phyvae_data::PixelSize;
use serde::{Deserialize, Serialize};

use crate::auto::AutoSettings;
use crate::config::Method;
use crate::diagnose::Diagnosis;
use crate::history::EpochRecord;
use crate::{Result, RunError};

/// The scores of one segmentation against a truth map
/// (`phyvae_imaging::metrics::score`).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Score {
    /// Adjusted Rand index: 1 for a perfect match, about 0 for chance.
    pub ari: f64,
    /// Pixel accuracy under the best matching of labels, in `[0, 1]`.
    pub accuracy: f64,
    /// Boundary F1 within the tolerance, in `[0, 1]`.
    pub boundary_f1: f64,
}

impl From<phyvae_imaging::metrics::Scores> for Score {
    fn from(s: phyvae_imaging::metrics::Scores) -> Self {
        Self {
            ari: s.ari,
            accuracy: s.accuracy,
            boundary_f1: s.boundary_f1,
        }
    }
}

/// One latent map's entry in [`Metrics::maps`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MapMetrics {
    /// The segmentation pipeline found the map flat (no segmentation drawn).
    pub flat: bool,
    /// With a truth map: the score of each segmentation (`otsu`,
    /// `multiotsu3`, `multiotsu4`, `chanvese`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scores: Option<BTreeMap<String, Score>>,
    /// SL1 of the whole map (`None` when it cannot be computed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sl1: Option<f64>,
    /// SL2 of the whole map, alpha 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sl2: Option<f64>,
    /// Segmentations that were skipped (`multiotsu4`, ...), each with the
    /// reason: the denoised map has too few distinct levels for that many
    /// classes (a grid of very few cells, or a nearly uniform map).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub skipped: BTreeMap<String, String>,
}

/// The best score of any map and segmentation (with a truth map).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Oracle {
    /// The map (`result` for the result clustering).
    pub map: String,
    /// The segmentation (`otsu`, ..., `cluster`).
    pub segmentation: String,
    /// Its scores.
    #[serde(flatten)]
    pub score: Score,
}

/// The result of a run, picked without the truth ([`Metrics::result`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ResultMetrics {
    /// The picked map; `None` when no map carries information.
    pub map: Option<String>,
    /// How the result segmentation was made (`cluster`); `None` without one.
    pub segmentation: Option<String>,
    /// Why there is no result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The criterion of the pick, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub criterion: Option<String>,
    /// The maps clustered into the result segmentation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maps_clustered: Option<Vec<String>>,
    /// Classes of the result segmentation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classes: Option<usize>,
    /// Whether the number of classes was chosen (false: given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classes_chosen: Option<bool>,
    /// Mean silhouette of the result segmentation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub silhouette: Option<f64>,
    /// Class counts the automatic choice set aside because one of their
    /// classes had no interior half a window from the others (or one under a
    /// tenth of the class): a band of patches straddling a boundary, not a
    /// phase
    /// (`phyvae_imaging::pick::cluster_maps`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes_without_interior: Option<Vec<usize>>,
    /// Class counts the automatic choice set aside because two of their
    /// classes that touch meet along a gradient, not at a step: a map that
    /// drifts across a phase, cut into bands
    /// (`phyvae_imaging::pick::boundary_jump`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes_gradual: Option<Vec<usize>>,
    /// Otsu separability of each candidate map.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub separability: Option<BTreeMap<String, f64>>,
    /// The labels file, relative to the run folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<String>,
    /// With a truth map: the result segmentation's score.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<Score>,
    /// With a truth map: the score of the picked map's Otsu split.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub map_otsu_score: Option<Score>,
    /// With a truth map: the best map and segmentation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oracle: Option<Oracle>,
    /// A VAE's result held against the classical baseline's segmentation of
    /// the same image ([`BaselineCheck`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineCheck>,
    /// A VAE's boundary cells re-assigned by its decoded class templates
    /// ([`BoundaryRefinement`]); `None` for the classical baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boundary_refinement: Option<BoundaryRefinement>,
}

/// What the boundary refinement of a VAE's result did
/// (`phyvae_model::refine`): the cells near a boundary whose patch centre
/// one class's decoded template explains clearly better than their own
/// class's were moved to that class, when the templates recognise the
/// interiors of every class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoundaryRefinement {
    /// Whether any cell could move (the templates passed the interior check).
    pub applied: bool,
    /// Cells within a window of another class, the ones that may move.
    pub band_cells: usize,
    /// Cells that moved to another class.
    pub moved: usize,
    /// Per class: the share of its sampled interior cells whose centre its
    /// own template explains best.
    pub interior_accuracy: Vec<f64>,
    /// Why it was applied or not, in words.
    pub reason: String,
}

/// The scan drift along the rows that a run removed
/// (`phyvae_imaging::scan::row_drift`, without its straight-line part).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScanDrift {
    /// Root mean square of the rows' displacements, px.
    pub rms_px: f64,
    /// Largest displacement of a row, px.
    pub max_px: f64,
    /// Largest change of the displacement from one row to the next (the
    /// steepest shear of the lattice), px per row.
    pub max_shear: f64,
}

impl ScanDrift {
    /// The summary of the row displacements `shifts` (px, one per row);
    /// `None` without rows.
    #[must_use]
    pub fn of(shifts: &[f64]) -> Option<Self> {
        if shifts.is_empty() {
            return None;
        }
        #[allow(clippy::cast_precision_loss)]
        let rms = (shifts.iter().map(|s| s * s).sum::<f64>() / shifts.len() as f64).sqrt();
        Some(Self {
            rms_px: rms,
            max_px: shifts.iter().fold(0.0, |m, s| m.max(s.abs())),
            max_shear: shifts
                .windows(2)
                .fold(0.0, |m, w| m.max((w[1] - w[0]).abs())),
        })
    }
}

/// A second opinion on a VAE's result: the classical baseline (`|FFT|` of
/// Hann-windowed patches, PCA, k-means, as `--model fft`) run on the same
/// image inside the VAE's run, and how far the two segmentations agree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineCheck {
    /// The baseline's window, px (its own automatic choice, two cells).
    pub window: usize,
    /// Its step, px (the run's, so that the two grids share their spacing).
    pub step: usize,
    /// Classes of the baseline's segmentation.
    pub classes: usize,
    /// The largest Otsu separability of its component maps: below
    /// `phyvae_run::diagnose::MIN_SEPARABILITY` they show no regions, and the
    /// agreement says nothing.
    pub separability: f64,
    /// Adjusted Rand index between the result and the baseline's labels, each
    /// read at the result grid's cell centres (1: the same partition; about
    /// 0: unrelated).
    pub agreement: f64,
}

/// Reads `commands` as a list of command lines, or as the single command
/// line of older files.
fn one_or_many_commands<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Commands {
        Many(Vec<Vec<String>>),
        One(Vec<String>),
    }
    Ok(match Commands::deserialize(d)? {
        Commands::Many(v) => v,
        Commands::One(v) if v.is_empty() => Vec::new(),
        Commands::One(v) => vec![v],
    })
}

impl ResultMetrics {
    /// No result, with the reason.
    #[must_use]
    pub fn none(reason: &str) -> Self {
        Self {
            reason: Some(reason.to_owned()),
            ..Self::default()
        }
    }
}

/// `metrics.json` of a run folder.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Metrics {
    /// The input image as given.
    pub input: PathBuf,
    /// The command lines that shaped the run: the one that started it, then
    /// each `--resume` (read from a file written before resuming was
    /// recorded, `"command": [...]`, as that one command).
    #[serde(alias = "command", deserialize_with = "one_or_many_commands")]
    pub commands: Vec<Vec<String>>,
    /// Rows and columns of the image.
    pub image_shape: [usize; 2],
    /// The image's pixel size, when its file records one.
    pub pixel_size: Option<PixelSize>,
    /// Patch window, px.
    pub window: usize,
    /// Patch step, px.
    pub step: usize,
    /// Rows and columns of the patch grid (of the latent maps).
    pub grid: [usize; 2],
    /// Number of patches.
    pub patches: usize,
    /// Names of the latent channels, special latents first.
    pub latents: Vec<String>,
    /// The content latents (those Psi and the result see).
    pub content_latents: Vec<String>,
    /// The version of phyvae that made the run.
    pub phyvae_version: String,
    /// `vae` (left out) or `fft`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<Method>,
    /// `encode`: the model folder used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<PathBuf>,
    /// Trainable parameters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<usize>,
    /// Epochs in the history.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epochs: Option<usize>,
    /// Optimiser steps of those epochs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
    /// The last epoch's record.
    #[serde(rename = "final", skip_serializing_if = "Option::is_none")]
    pub last_epoch: Option<EpochRecord>,
    /// Seconds spent training.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub training_seconds: Option<f64>,
    /// Patches per second of training.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patches_per_second: Option<f64>,
    /// The baseline: the share of variance of each principal component.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explained_variance_ratio: Option<Vec<f64>>,
    /// The baseline: seconds spent on spectra and PCA.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub features_seconds: Option<f64>,
    /// `cpu`, `cuda` or `metal`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Each latent map's entry.
    pub maps: BTreeMap<String, MapMetrics>,
    /// Whether the latents learned anything (`None`: a run made before runs
    /// were diagnosed).
    pub diagnosis: Option<Diagnosis>,
    /// The training attempts that were diagnosed as failed (collapsed, or no
    /// regions) and trained
    /// again from scratch ([`crate::config::RunConfig::retries`]), in order;
    /// the run's model, maps and `diagnosis` are those of the attempt after
    /// the last of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
    /// The result picked without the truth (`None`: a run made before
    /// results were picked).
    pub result: Option<ResultMetrics>,
    /// The settings measured on the image and chosen from it.
    pub settings: Option<AutoSettings>,
    /// The scan drift along the rows removed before the patches were cut
    /// (`data.dedrift`); absent when none was removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan_drift: Option<ScanDrift>,
    /// Seconds of the whole command.
    pub seconds: f64,
    /// The report written for the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<PathBuf>,
}

/// A training attempt that was thrown away and trained again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// Its seed.
    pub seed: u64,
    /// Its learning rate.
    pub lr: f64,
    /// Epochs it trained.
    pub epochs: usize,
    /// Its diagnosis: why it was thrown away when it failed.
    pub diagnosis: Diagnosis,
    /// When it did not fail: how far its result agreed with the classical
    /// baseline (adjusted Rand index). It was thrown away because another
    /// attempt agreed more (`phyvae_run::diagnose::train_again_for_agreement`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement: Option<f64>,
}

impl Metrics {
    /// Reads `metrics.json`.
    ///
    /// # Errors
    /// [`RunError::Read`] when the file cannot be read, [`RunError::BadFile`]
    /// when it is not a run's metrics.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| RunError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses `metrics.json` text; `path` only names the file in errors.
    ///
    /// # Errors
    /// [`RunError::BadFile`] when it is not a run's metrics.
    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| RunError::BadFile {
            path: path.to_path_buf(),
            reason: format!("not a phyvae metrics file: {e}"),
        })
    }

    /// The JSON text written to `metrics.json` (pretty, keys in sorted order).
    #[must_use]
    pub fn to_json(&self) -> String {
        // Through a `Value`: its maps sort their keys. Serialising these
        // plain data types cannot fail.
        serde_json::to_value(self)
            .and_then(|v| serde_json::to_string_pretty(&v))
            .unwrap_or_default()
    }

    /// Whether the run is the classical baseline.
    #[must_use]
    pub fn is_fft(&self) -> bool {
        self.method == Some(Method::Fft)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drift_is_summarised_by_hand() {
        // Shifts 0, 1, -1, 0: rms sqrt(2 / 4), largest 1, steepest step 2.
        let d = ScanDrift::of(&[0.0, 1.0, -1.0, 0.0]).unwrap();
        assert!((d.rms_px - 0.5f64.sqrt()).abs() < 1e-12);
        assert_eq!(d.max_px, 1.0);
        assert_eq!(d.max_shear, 2.0);
        assert_eq!(ScanDrift::of(&[]), None);
    }

    #[test]
    fn round_trip_and_sorted_keys() {
        let mut m = Metrics {
            window: 16,
            latents: vec!["dx".into(), "z1".into()],
            commands: vec![
                vec!["phyvae".into(), "train".into()],
                vec!["phyvae".into(), "train".into(), "--resume".into()],
            ],
            ..Metrics::default()
        };
        m.maps.insert(
            "z1".into(),
            MapMetrics {
                flat: false,
                sl1: Some(2.5),
                ..MapMetrics::default()
            },
        );
        m.result = Some(ResultMetrics::none("no content latent carries information"));
        let text = m.to_json();
        let keys: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("  \"") && !l.starts_with("   "))
            .filter_map(|l| l.trim().split('"').nth(1))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(keys, sorted);
        assert!(!text.contains("\"report\""), "absent fields are left out");
        assert!(text.contains("\"pixel_size\": null"));
        let back = Metrics::parse(Path::new("m.json"), &text).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn an_older_file_with_fewer_fields_reads() {
        let m =
            Metrics::parse(Path::new("m.json"), r#"{"window": 48, "latents": ["z1"]}"#).unwrap();
        assert_eq!(m.window, 48);
        assert!(m.maps.is_empty());
        assert!(m.result.is_none() && m.diagnosis.is_none());
        // Its one command line becomes the list's first.
        let m = Metrics::parse(
            Path::new("m.json"),
            r#"{"command": ["phyvae", "train", "a.png"], "window": 48}"#,
        )
        .unwrap();
        assert_eq!(m.commands, vec![vec!["phyvae", "train", "a.png"]]);
        let m = Metrics::parse(Path::new("m.json"), r#"{"command": []}"#).unwrap();
        assert!(m.commands.is_empty());
        let e = Metrics::parse(Path::new("m.json"), "[1]").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("m.json: not a phyvae metrics file"),
            "{e}"
        );
    }
}
