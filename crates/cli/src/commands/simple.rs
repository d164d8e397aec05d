//! The small commands: `threshold`, `synth`, `patches`, `score`.

use crate::cli::{
    ConvertArgs, InfoArgs, PatchesArgs, ScoreArgs, SynthArgs, SynthKind, ThresholdCommand,
};
use crate::commands::output::{create_dir, print_json};
use crate::input::{self, Pixels};
use anyhow::{Context, Result};
use phyvae_data::io;
use phyvae_data::patches::PatchGrid;
use phyvae_data::synth::{self, DomainsParams, TwoPhaseParams};
use phyvae_imaging::{metrics, threshold};
use serde_json::json;

/// `phyvae threshold otsu|multiotsu`: prints `{"thresholds": [...]}`.
pub fn threshold(cmd: ThresholdCommand) -> Result<()> {
    let thresholds: Vec<f64> = match cmd {
        ThresholdCommand::Otsu { input } => match input::pixels(&input)? {
            Pixels::F32(x) => vec![f64::from(threshold::otsu(x.view())?)],
            Pixels::F64(x) => vec![threshold::otsu(x.view())?],
        },
        ThresholdCommand::Multiotsu { input, classes } => match input::pixels(&input)? {
            Pixels::F32(x) => threshold::multiotsu(x.view(), classes)?
                .into_iter()
                .map(f64::from)
                .collect(),
            Pixels::F64(x) => threshold::multiotsu(x.view(), classes)?,
        },
    };
    print_json(&json!({ "thresholds": thresholds }))
}

/// `phyvae synth two-phase|domains`: writes image.npy, truth.npy and PNGs of both.
pub fn synth(a: &SynthArgs) -> Result<()> {
    let mut params = None;
    let s = match a.kind {
        SynthKind::Suite => {
            let name = a.family.as_deref().unwrap_or_default();
            let family = synth::Family::from_name(name).ok_or_else(|| {
                phyvae_data::DataError::InvalidParameter {
                    name: "family",
                    value: name.to_string(),
                    rule: "one of period, motif, grain-boundary, precipitate, three-phase, domains-180, domains-90, antiphase",
                }
            })?;
            let img = synth::suite_image(family, a.seed, a.size)?;
            let described: serde_json::Map<String, serde_json::Value> = img
                .params
                .describe()
                .into_iter()
                .map(|(k, v)| (k, json!(v)))
                .collect();
            params = Some(json!({
                "family": family.name(),
                "kind": format!("{:?}", family.kind()).to_lowercase(),
                "seed": a.seed,
                "size": a.size,
                "params": described,
            }));
            img.synthetic
        }
        SynthKind::TwoPhase => {
            synth::two_phase(&TwoPhaseParams::new().size(a.size).seed(a.seed).build()?)?
        }
        SynthKind::Domains => {
            synth::domains(&DomainsParams::new().size(a.size).seed(a.seed).build()?)?
        }
    };
    create_dir(&a.out)?;
    io::write_npy_f32(&a.out.join("image.npy"), s.image.pixels.view())?;
    io::write_npy_i32(&a.out.join("truth.npy"), s.truth.view())?;
    phyvae_report::render::write_grey_png(&a.out.join("image.png"), s.image.pixels.view())?;
    phyvae_report::render::write_labels_png(&a.out.join("truth.png"), s.truth.view(), 1)?;
    if let Some(p) = &params {
        crate::commands::output::write_text(
            &a.out.join("params.json"),
            &serde_json::to_string_pretty(p)?,
        )?;
    }
    print_json(&json!({
        "image": a.out.join("image.npy"),
        "truth": a.out.join("truth.npy"),
        "shape": [s.image.rows(), s.image.cols()],
    }))
}

/// `phyvae patches`: prints the grid of an image.
pub fn patches(a: &PatchesArgs) -> Result<()> {
    let i = &a.input;
    let img = input::image_in(&i.image, i.frame, i.dataset.as_deref())?;
    let grid = PatchGrid::new(img.rows(), img.cols(), a.window, a.step)?;
    print_json(&json!({
        "image_shape": [img.rows(), img.cols()],
        "window": grid.window(),
        "step": grid.step(),
        "grid": [grid.gh(), grid.gw()],
        "patches": grid.len(),
        "unused_px": [img.rows() - ((grid.gh() - 1) * grid.step() + grid.window()),
                      img.cols() - ((grid.gw() - 1) * grid.step() + grid.window())],
        "pixel_size": img.pixel_size,
    }))
}

/// `phyvae score`: prints ARI, accuracy and boundary F1.
pub fn score(a: &ScoreArgs) -> Result<()> {
    let pred = input::labels(&a.labels)?;
    let truth = input::labels(&a.truth)?;
    let s = metrics::score(pred.view(), truth.view(), a.tolerance)?;
    print_json(&json!({
        "ari": s.ari,
        "accuracy": s.accuracy,
        "boundary_f1": s.boundary_f1,
        "tolerance": a.tolerance,
    }))
}

/// `phyvae info FILE`.
pub fn info(a: &InfoArgs) -> Result<()> {
    print_json(&info_value(&a.file)?)
}

/// What `phyvae info FILE` prints: the file's format, its images (shape,
/// element type, pixel size) and which one commands use by default.
///
/// # Errors
/// When the file cannot be read or is not a supported format.
pub fn info_value(file: &std::path::Path) -> Result<serde_json::Value> {
    let info = io::file_info(file).context("reading file")?;
    let mut v = serde_json::to_value(&info)?;
    v["file"] = json!(file);
    Ok(v)
}

/// `phyvae convert FILE OUT.npy [--frame N]`.
pub fn convert(a: &ConvertArgs) -> Result<()> {
    let i = &a.input;
    let img = input::image_in(&i.image, i.frame, i.dataset.as_deref())?;
    io::write_npy_f32(&a.out, img.pixels.view())?;
    print_json(&json!({
        "file": i.image,
        "out": a.out,
        "frame": i.frame,
        "dataset": i.dataset,
        "shape": [img.rows(), img.cols()],
        "pixel_size": img.pixel_size,
    }))
}
