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
use serde_json::Value;

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

/// One epoch of `history.csv`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistoryRow {
    /// Epoch, 1-based.
    pub epoch: f64,
    /// KL scale.
    pub beta: f64,
    /// Reconstruction term.
    pub recon: f64,
    /// KL term.
    pub kl: f64,
    /// ELBO part `L_sh`.
    pub elbo: f64,
    /// Physics term Psi.
    pub psi: f64,
    /// Loss minimised.
    pub total: f64,
    /// Seconds of the epoch.
    pub seconds: f64,
}

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
    pub metrics: Value,
    /// `config.toml`, when present.
    pub config: Option<toml::Table>,
    /// `history.csv` rows (empty when absent).
    pub history: Vec<HistoryRow>,
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

fn parse_history(path: &Path, text: &str) -> Result<Vec<HistoryRow>> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| run_file(path, format!("no column `{name}`")))
    };
    let idx = [
        col("epoch")?,
        col("beta")?,
        col("recon")?,
        col("kl")?,
        col("elbo")?,
        col("psi")?,
        col("total")?,
        col("seconds")?,
    ];
    let mut rows = Vec::new();
    for (n, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split(',').collect();
        let mut v = [0.0_f64; 8];
        for (slot, &i) in v.iter_mut().zip(&idx) {
            *slot = fields
                .get(i)
                .and_then(|f| f.trim().parse::<f64>().ok())
                .ok_or_else(|| {
                    run_file(path, format!("line {}: not a number in column {i}", n + 2))
                })?;
        }
        rows.push(HistoryRow {
            epoch: v[0],
            beta: v[1],
            recon: v[2],
            kl: v[3],
            elbo: v[4],
            psi: v[5],
            total: v[6],
            seconds: v[7],
        });
    }
    Ok(rows)
}

fn usize_at(t: &toml::Table, section: &str, key: &str) -> Option<usize> {
    t.get(section)?
        .get(key)?
        .as_integer()
        .and_then(|v| usize::try_from(v).ok())
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
        let mpath = dir.join("metrics.json");
        let metrics: Value = serde_json::from_str(&read_text(&mpath)?)
            .map_err(|e| run_file(&mpath, format!("not JSON: {e}")))?;
        let cpath = dir.join("config.toml");
        let config = if cpath.exists() {
            Some(
                read_text(&cpath)?
                    .parse::<toml::Table>()
                    .map_err(|e| run_file(&cpath, format!("not TOML: {e}")))?,
            )
        } else {
            None
        };
        let hpath = dir.join("history.csv");
        let history = if hpath.exists() {
            parse_history(&hpath, &read_text(&hpath)?)?
        } else {
            Vec::new()
        };
        let latents = read_3d(&dir.join("latents.npy"))?;
        let names: Vec<String> = match metrics["latents"].as_array() {
            Some(a) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            None => (1..=latents.dim().2).map(|i| format!("c{i}")).collect(),
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
        let window = config
            .as_ref()
            .and_then(|c| usize_at(c, "data", "window"))
            .or_else(|| metrics["window"].as_u64().map(|v| v as usize))
            .ok_or_else(|| run_file(&cpath, "no patch window (data.window)"))?;
        let step = config
            .as_ref()
            .and_then(|c| usize_at(c, "data", "step"))
            .or_else(|| metrics["step"].as_u64().map(|v| v as usize))
            .ok_or_else(|| run_file(&cpath, "no patch step (data.step)"))?;
        let ipath = dir.join("input.png");
        let input = if ipath.exists() {
            Some(read_image(&ipath, None)?.pixels)
        } else {
            None
        };
        let calibration = metrics.get("pixel_size").and_then(|p| {
            Some(Calibration {
                x: p.get("x")?.as_f64()?,
                y: p.get("y")?.as_f64()?,
                unit: p.get("unit")?.as_str()?.to_owned(),
            })
        });
        let fpath = dir.join("manifold.npy");
        let manifold = if fpath.exists() {
            Some(read_2d(&fpath)?)
        } else {
            None
        };
        let mut snapshots = Vec::new();
        if let Ok(entries) = std::fs::read_dir(dir.join("snapshots")) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(epoch) = name
                    .strip_prefix("latents_epoch_")
                    .and_then(|s| s.strip_suffix(".npy"))
                    .and_then(|s| s.parse::<usize>().ok())
                {
                    snapshots.push((epoch, read_3d(&e.path())?));
                }
            }
        }
        snapshots.sort_by_key(|(e, _)| *e);
        let tpath = dir.join("truth_grid.npy");
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

    /// Indices of the content latents (`z1`, `z2`, ...).
    #[must_use]
    pub fn content(&self) -> Vec<usize> {
        // metrics.json names them; older runs: the latents called z1, z2, ...
        let listed: Option<Vec<&str>> = self.metrics["content_latents"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect());
        self.names
            .iter()
            .enumerate()
            .filter(|(_, n)| match &listed {
                Some(l) => l.contains(&n.as_str()),
                None => n.starts_with('z'),
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// Whether the diagnosis (metrics.json) marks latent `name` as carrying
    /// no information (`true` when the run has no per-latent diagnosis).
    #[must_use]
    pub fn is_active(&self, name: &str) -> bool {
        self.metrics["diagnosis"]["latents"]
            .as_array()
            .and_then(|a| a.iter().find(|l| l["name"].as_str() == Some(name)))
            .is_none_or(|l| l["active"].as_bool().unwrap_or(true))
    }

    /// A setting from `config.toml` by its dotted path, as text.
    #[must_use]
    pub fn setting(&self, path: &str) -> Option<String> {
        let mut v: Option<&toml::Value> = None;
        for (k, part) in path.split('.').enumerate() {
            v = if k == 0 {
                self.config.as_ref()?.get(part)
            } else {
                v?.get(part)
            };
        }
        Some(match v? {
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
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
    fn history_is_read_by_column_name() {
        let text = "epoch,beta,recon,kl,elbo,psi,total,seconds\n1,0.5,10,2,11,0.25,11.25,3\n";
        let rows = parse_history(Path::new("h.csv"), text).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].elbo, 11.0);
        assert_eq!(rows[0].psi, 0.25);
        let bad = parse_history(Path::new("h.csv"), "epoch,beta\n1,2\n");
        assert!(matches!(bad, Err(ReportError::RunFile { .. })));
        let bad = parse_history(
            Path::new("h.csv"),
            "epoch,beta,recon,kl,elbo,psi,total,seconds\n1,x,1,1,1,1,1,1\n",
        );
        assert!(matches!(bad, Err(ReportError::RunFile { .. })));
    }

    #[test]
    fn a_folder_without_metrics_is_an_error_naming_the_file() {
        let d = tempfile::tempdir().unwrap();
        let err = RunData::load(d.path()).unwrap_err();
        assert!(err.to_string().contains("metrics.json"), "{err}");
    }
}
