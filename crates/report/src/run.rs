//! Reading a run folder written by `phyvae train` (or `phyvae encode`): its
//! settings, history, latent maps, segmentations, manifold, snapshots and
//! input image, as the report needs them.
//!
//! Required: `metrics.json` and `latents.npy`. Everything else is optional,
//! and the report leaves out what is missing (an `encode` folder has no
//! history, for instance).

use std::path::{Path, PathBuf};

use ndarray::{Array2, Array3, Ix3};
use phyvae_data::io::{read_image, read_npy_array};
use phyvae_run::config::RunConfig;
use phyvae_run::files::{self, RunDir};
use phyvae_run::history::{self, EpochRecord};
use phyvae_run::metrics::Metrics;

use crate::ReportError;
use crate::render::Result;

/// Segmentation methods in the order the report shows them, with the file
/// stem written by the segmentation pipeline and a human name.
pub const METHODS: [(&str, &str); 4] = [
    ("otsu", "Otsu"),
    ("multiotsu3", "multi-Otsu, 3 classes"),
    ("multiotsu4", "multi-Otsu, 4 classes"),
    ("chanvese", "Chan-Vese"),
];

/// The pixel size of the input image, when its file records one.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    /// Size of a pixel along x.
    pub x: f64,
    /// Size of a pixel along y.
    pub y: f64,
    /// Unit of `x` and `y`.
    pub unit: String,
}

/// Everything the report reads from one run folder.
#[derive(Debug, Clone)]
pub struct RunData {
    /// The folder.
    pub dir: PathBuf,
    /// `metrics.json`.
    pub metrics: Metrics,
    /// `config.toml`, when present.
    pub config: Option<RunConfig>,
    /// `history.csv` rows (empty when absent; without per-latent fields).
    pub history: Vec<EpochRecord>,
    /// Latent means, `gh x gw x L`.
    pub latents: Array3<f32>,
    /// Names of the latent channels (`dx`, `dy`, `z1`, ...).
    pub names: Vec<String>,
    /// Patch window and step in px.
    pub window: usize,
    /// Patch step in px.
    pub step: usize,
    /// The image the patches were cut from (as the model saw it), if saved.
    pub input: Option<Array2<f32>>,
    /// Pixel size of the input, if known.
    pub calibration: Option<Calibration>,
    /// `manifold.npy`, if present.
    pub manifold: Option<Array2<f32>>,
    /// `(epoch, latents)` of every snapshot, in epoch order.
    pub snapshots: Vec<(usize, Array3<f32>)>,
    /// The truth labels at the grid cells (`truth_grid.npy`), if given.
    pub truth: Option<Array2<i32>>,
}

fn run_file(path: &Path, reason: impl Into<String>) -> ReportError {
    ReportError::RunFile {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| run_file(path, e.to_string()))
}

fn read_3d(path: &Path) -> Result<Array3<f32>> {
    let a = read_npy_array(path)?;
    let a = a
        .into_dimensionality::<Ix3>()
        .map_err(|_| run_file(path, "expected a 3-D array (rows x cols x latents)"))?;
    Ok(a.mapv(|v| v as f32))
}

/// Reads a 2-D array of any numeric dtype as `f32`.
pub(crate) fn read_2d(path: &Path) -> Result<Array2<f32>> {
    let a = read_npy_array(path)?;
    let a = a
        .into_dimensionality::<ndarray::Ix2>()
        .map_err(|_| run_file(path, "expected a 2-D array"))?;
    Ok(a.mapv(|v| v as f32))
}

/// Reads a 2-D label array (any integer or float dtype holding integers).
///
/// # Errors
/// [`ReportError::Data`] if the file cannot be read; [`ReportError::RunFile`]
/// if it is not 2-D.
pub fn read_labels(path: &Path) -> Result<Array2<i32>> {
    Ok(read_2d(path)?.mapv(|v| v as i32))
}

impl RunData {
    /// Reads the run folder `dir`.
    ///
    /// # Errors
    /// [`ReportError::Io`] / [`ReportError::Data`] when `metrics.json` or
    /// `latents.npy` cannot be read; [`ReportError::RunFile`] when a file
    /// present is malformed (bad JSON, TOML or CSV, wrong array rank, no patch
    /// window or step anywhere).
    pub fn load(dir: &Path) -> Result<Self> {
        let files = RunDir::new(dir);
        let mpath = files.file(files::METRICS);
        let metrics = Metrics::parse(&mpath, &read_text(&mpath)?)?;
        let cpath = files.file(files::CONFIG);
        let config = if cpath.exists() {
            Some(
                toml::from_str::<RunConfig>(&read_text(&cpath)?).map_err(|e| {
                    run_file(&cpath, format!("not a phyvae run configuration: {e}"))
                })?,
            )
        } else {
            None
        };
        let hpath = files.file(files::HISTORY);
        let history = if hpath.exists() {
            history::parse_csv(&hpath, &read_text(&hpath)?)?
        } else {
            Vec::new()
        };
        let latents = read_3d(&files.file(files::LATENTS))?;
        let names: Vec<String> = if metrics.latents.is_empty() {
            (1..=latents.dim().2).map(|i| format!("c{i}")).collect()
        } else {
            metrics.latents.clone()
        };
        if names.len() != latents.dim().2 {
            return Err(run_file(
                &mpath,
                format!(
                    "{} latent names for {} latent maps",
                    names.len(),
                    latents.dim().2
                ),
            ));
        }
        let (window, step) = match &config {
            Some(c) => (c.data.window, c.data.step),
            None => (metrics.window, metrics.step),
        };
        if window == 0 || step == 0 {
            return Err(run_file(
                &cpath,
                "no patch window and step (data.window, data.step)",
            ));
        }
        let ipath = files.file(files::INPUT_PNG);
        let input = if ipath.exists() {
            Some(read_image(&ipath, None)?.pixels)
        } else {
            None
        };
        let calibration = metrics.pixel_size.as_ref().map(|p| Calibration {
            x: p.x,
            y: p.y,
            unit: p.unit.clone(),
        });
        let fpath = files.file(files::MANIFOLD);
        let manifold = if fpath.exists() {
            Some(read_2d(&fpath)?)
        } else {
            None
        };
        let mut snapshots = Vec::new();
        if let Ok(entries) = std::fs::read_dir(files.file(files::SNAPSHOTS_DIR)) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(epoch) = RunDir::snapshot_epoch(&name) {
                    snapshots.push((epoch, read_3d(&e.path())?));
                }
            }
        }
        snapshots.sort_by_key(|(e, _)| *e);
        let tpath = files.file(files::TRUTH_GRID);
        let truth = if tpath.exists() {
            Some(read_labels(&tpath)?)
        } else {
            None
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            metrics,
            config,
            history,
            latents,
            names,
            window,
            step,
            input,
            calibration,
            manifold,
            snapshots,
            truth,
        })
    }

    /// Indices of the content latents ([`Metrics::content_latents`]; a run
    /// that lists none: the latents named `z1`, `z2`, ...).
    #[must_use]
    pub fn content(&self) -> Vec<usize> {
        let listed = &self.metrics.content_latents;
        self.names
            .iter()
            .enumerate()
            .filter(|(_, n)| {
                if listed.is_empty() {
                    n.starts_with('z')
                } else {
                    listed.contains(n)
                }
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// Whether the diagnosis (metrics.json) marks latent `name` as carrying
    /// no information (`true` when the run has no per-latent diagnosis).
    #[must_use]
    pub fn is_active(&self, name: &str) -> bool {
        self.metrics
            .diagnosis
            .as_ref()
            .and_then(|d| d.latents.iter().find(|l| l.name == name))
            .is_none_or(|l| l.active)
    }

    /// A short name for the run: its folder name.
    #[must_use]
    pub fn label(&self) -> String {
        self.dir.file_name().map_or_else(
            || self.dir.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_without_metrics_is_an_error_naming_the_file() {
        let d = tempfile::tempdir().unwrap();
        let err = RunData::load(d.path()).unwrap_err();
        assert!(err.to_string().contains("metrics.json"), "{err}");
    }
}
