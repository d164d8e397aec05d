//! Writing a run folder ([`phyvae_run::files`]): the settings, the history,
//! the latent maps and their segmentations, the model's figures, and
//! `metrics.json` (written once, with the report that follows it).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use ndarray::{Array2, ArrayView3, Axis};
use phyvae_data::io;
use phyvae_data::patches::PatchSet;
use phyvae_imaging::physics::{sl1_map, sl2_map};
use phyvae_imaging::pipeline::{Segmentations, VisualizeParams};
use phyvae_model::infer::{LatentMaps, latent_histogram, manifold2d};
use phyvae_model::vae::Vae;
use phyvae_run::RunError;
use phyvae_run::config::DataConfig;
use phyvae_run::config::RunConfig;
use phyvae_run::diagnose::Diagnosis;
use phyvae_run::files::{self, RunDir, RunLock};
use phyvae_run::history::{self, EpochRecord};
use phyvae_run::metrics::Metrics;

use crate::cli::{InputArgs, RunArgs};
use phyvae_report::render;

use crate::commands::report::write_report;
use crate::commands::result::PerMap;
use crate::commands::segment::segment_grid_map;
use crate::progress::Progress;

/// Side of the manifold grid (pyroVED `manifold2d` default d = 12).
const MANIFOLD_D: usize = 12;
/// Bins per axis of the latent histogram.
const HIST_BINS: usize = 64;

/// Writes `text` to `path` (atomically: a reader never sees half a file).
pub fn write_text(path: &Path, text: &str) -> Result<()> {
    phyvae_data::atomic::write_bytes_atomic(path, text.as_bytes()).map_err(|e| {
        OutputError {
            path: e.path,
            source: e.source,
        }
        .into()
    })
}

/// Writes `config.toml`.
pub fn write_config(dir: &RunDir, cfg: &RunConfig) -> Result<()> {
    write_text(&dir.file(files::CONFIG), &toml::to_string_pretty(cfg)?)
}

/// Writes `history.csv`.
pub fn write_history(dir: &RunDir, h: &[EpochRecord]) -> Result<()> {
    write_text(&dir.file(files::HISTORY), &history::to_csv(h))
}

/// Writes the latent maps (`latents.npy`, `latents_sd.npy`, `truth_grid.npy`)
/// and the segmentation pipeline's outputs on every map; returns the per-map
/// metrics and each map's segmentations.
pub fn write_maps(
    dir: &RunDir,
    names: &[String],
    mean: ArrayView3<'_, f32>,
    sd: Option<ArrayView3<'_, f32>>,
    truth: Option<&Array2<i32>>,
    params: &VisualizeParams,
    progress: Progress,
) -> Result<(PerMap, Vec<Segmentations>)> {
    io::write_npy_f32_3d(&dir.file(files::LATENTS), mean)?;
    if let Some(t) = truth {
        io::write_npy_i32(&dir.file(files::TRUTH_GRID), t.view())?;
    }
    if let Some(sd) = sd {
        io::write_npy_f32_3d(&dir.file(files::LATENTS_SD), sd)?;
    }
    let mut per_map = PerMap::new();
    let mut segs = Vec::with_capacity(names.len());
    let step = progress.bar("segmenting", names.len() as u64);
    for (c, name) in names.iter().enumerate() {
        step.message(name.clone());
        let map: Array2<f32> = mean.index_axis(Axis(2), c).to_owned();
        let (mut entry, seg) =
            segment_grid_map(map.view(), params, &dir.segmentation(name), truth, 1)?;
        entry.sl1 = sl1_map(map.view()).ok().map(f64::from);
        entry.sl2 = sl2_map(map.view(), 1).ok().map(f64::from);
        per_map.insert(name.clone(), entry);
        segs.push(seg);
        step.bar().inc(1);
        phyvae_data::fault::point("segment.map");
    }
    step.done();
    Ok((per_map, segs))
}

/// Writes the manifold and the latent histogram of a trained model.
pub fn write_model_figures(dir: &RunDir, model: &Vae, maps: &LatentMaps) -> Result<()> {
    let cfg = model.config();
    let manifold = manifold2d(model, MANIFOLD_D)?;
    io::write_npy_f32(&dir.file(files::MANIFOLD), manifold.view())?;
    render::write_grey_png(&dir.file(files::MANIFOLD_PNG), manifold.view())?;
    let s = cfg.kind.n_special();
    if cfg.n_latent >= 2 {
        let h = latent_histogram(maps, s, s + 1, HIST_BINS)?;
        let counts = h.counts.mapv(|v| v as f32);
        io::write_npy_f32(&dir.file(files::LATENT_HIST), counts.view())?;
    }
    Ok(())
}

/// Says on stderr what the diagnosis found (always, even with `--quiet`:
/// a failed run must not pass unnoticed), unless a library caller drives the
/// run (it reports the findings of metrics.json its own way).
pub fn warn_diagnosis(d: &Diagnosis, progress: Progress) {
    if !progress.prints_results() {
        return;
    }
    let said = d.findings.iter().map(|f| ("warning", f));
    for (what, f) in said.chain(d.cautions.iter().map(|f| ("caution", f))) {
        eprintln!(
            "{what}: {}: {}. Try: {}.",
            f.kind.title(),
            f.message,
            f.advice
        );
    }
}

/// Writes `metrics.json` (once), then the report, and prints the metrics.
pub fn finish_run(
    dir: &RunDir,
    mut metrics: Metrics,
    t0: Instant,
    progress: Progress,
) -> Result<()> {
    metrics.report = Some(dir.file(files::REPORT));
    metrics.seconds = t0.elapsed().as_secs_f64();
    write_metrics(dir, &metrics)?;
    phyvae_data::fault::point("report.start");
    write_report(&[dir.root().to_path_buf()], None, progress)?;
    if !progress.prints_results() {
        return Ok(());
    }
    print_json(&serde_json::to_value(&metrics)?)
}

/// Writes `metrics.json`.
pub fn write_metrics(dir: &RunDir, metrics: &Metrics) -> Result<()> {
    write_text(&dir.file(files::METRICS), &metrics.to_json())
}

/// The fields of metrics.json every run has.
#[must_use]
pub fn base_metrics(
    input: &InputArgs,
    img: &phyvae_data::Image,
    data: &DataConfig,
    patches: &PatchSet,
    names: &[String],
    content: &[String],
    progress: Progress,
) -> Metrics {
    Metrics {
        input: input.image.clone(),
        commands: vec![progress.command()],
        image_shape: [img.rows(), img.cols()],
        pixel_size: img.pixel_size.clone(),
        window: data.window,
        step: data.step,
        grid: [patches.grid().gh(), patches.grid().gw()],
        patches: patches.len(),
        latents: names.to_vec(),
        content_latents: content.to_vec(),
        phyvae_version: env!("CARGO_PKG_VERSION").to_owned(),
        ..Metrics::default()
    }
}

/// An output could not be written (maps to exit code 5).
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {source}")]
pub struct OutputError {
    /// Path concerned.
    pub path: PathBuf,
    /// Cause.
    #[source]
    pub source: std::io::Error,
}

/// Creates an output folder (and its parents).
pub fn create_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|source| {
        OutputError {
            path: path.to_path_buf(),
            source,
        }
        .into()
    })
}

/// Prints a JSON value on stdout, pretty.
pub fn print_json(value: &serde_json::Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Refuses a folder that holds a run (unless resuming it or `--overwrite`),
/// creates the run folder, takes its lock for as long as the returned guard
/// lives, removes the run it held with `--overwrite`, and removes the
/// temporary files an interrupted run left in it. A folder holding only the
/// lock and temporary files (a run killed before it wrote `config.toml`)
/// holds no run.
pub fn open_run(dir: &RunDir, r: &RunArgs, resume: bool) -> Result<RunLock> {
    if !resume && !r.overwrite && dir.holds_run() {
        let dir = dir.root().to_path_buf();
        return Err(RunError::Occupied { dir }.into());
    }
    create_dir(dir.root())?;
    let lock = dir.lock()?;
    if r.overwrite {
        dir.remove_run()?;
    }
    // What a killed writer left behind.
    dir.remove_stale_temps()?;
    Ok(lock)
}

/// Saves the image the model sees (after levelling and scaling) as
/// `input.png` for the report.
pub fn write_input(dir: &RunDir, patches: &PatchSet) -> Result<()> {
    render::write_grey_png(&dir.file(files::INPUT_PNG), patches.scaled_image())?;
    Ok(())
}
