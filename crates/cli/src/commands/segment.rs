//! `phyvae segment`: the paper's visualisation pipeline on one map.

use crate::cli::SegmentArgs;
use crate::commands::output::{create_dir, print_json};
use crate::input;
use anyhow::Result;
use ndarray::{Array2, ArrayView2};
use phyvae_data::io;
use phyvae_imaging::metrics;
use phyvae_imaging::pipeline::{Segmentations, VisualizeParams, segment_map};
use phyvae_report::render;
use phyvae_run::files;
use phyvae_run::metrics::MapMetrics;
use serde_json::json;
use std::path::Path;

/// Upscale factor so that a small grid map is readable as a PNG (about 512 px wide).
#[must_use]
pub fn upscale_for(map: ArrayView2<'_, f32>) -> usize {
    (512 / map.nrows().max(map.ncols()).max(1)).clamp(1, 16)
}

/// Runs the pipeline on `map` and writes the label maps (i32 NPY) and their PNGs to `dir`.
pub fn segment_and_write(
    map: ArrayView2<'_, f32>,
    params: &VisualizeParams,
    dir: &Path,
) -> Result<Segmentations> {
    let seg = segment_map(map, params)?;
    create_dir(dir)?;
    let up = upscale_for(map);
    io::write_npy_f32(&dir.join(files::DENOISED), seg.denoised.view())?;
    render::write_map_png(&dir.join("denoised.png"), seg.denoised.view(), None, up)?;
    for (name, labels) in seg.named_labels() {
        io::write_npy_i32(&dir.join(format!("{name}.npy")), labels.view())?;
        render::write_labels_png(&dir.join(format!("{name}.png")), labels.view(), up)?;
    }
    Ok(seg)
}

/// Writes one grid map (`map.png`) and the pipeline's outputs on it into `dir`,
/// and returns the map's metrics.json entry and its segmentations. The entry
/// holds `flat`, and with a truth map (labels at the grid cells) the ARI,
/// accuracy and boundary F1 of every segmentation, boundaries matched within
/// `tolerance` cells.
pub fn segment_grid_map(
    map: ArrayView2<'_, f32>,
    params: &VisualizeParams,
    dir: &Path,
    truth: Option<&Array2<i32>>,
    tolerance: usize,
) -> Result<(MapMetrics, Segmentations)> {
    create_dir(dir)?;
    render::write_map_png(&dir.join("map.png"), map, None, upscale_for(map))?;
    let seg = segment_and_write(map, params, dir)?;
    let mut entry = MapMetrics {
        flat: seg.flat,
        skipped: seg
            .skipped
            .iter()
            .map(|(k, why)| (format!("multiotsu{k}"), why.clone()))
            .collect(),
        ..MapMetrics::default()
    };
    if let Some(t) = truth {
        let mut scores = std::collections::BTreeMap::new();
        for (name, labels) in seg.named_labels() {
            let s = metrics::score(labels.view(), t.view(), tolerance)?;
            scores.insert(name, s.into());
        }
        entry.scores = Some(scores);
    }
    Ok((entry, seg))
}

/// `phyvae segment MAP --out DIR`.
pub fn run(a: &SegmentArgs) -> Result<()> {
    // Computed in f32 (the authors' latent maps are float32); any input is read as f32.
    let map = input::image(&a.map, None)?.pixels;
    let params = VisualizeParams::new()
        .sigma_color(a.sigma_color)
        .lowpass_sigma(a.lowpass)
        .build()?;
    let seg = segment_and_write(map.view(), &params, &a.out)?;
    print_json(&json!({
        "out": a.out,
        "shape": [map.nrows(), map.ncols()],
        "flat": seg.flat,
        "labels": seg.named_labels().iter().map(|(n, _)| format!("{n}.npy")).collect::<Vec<_>>(),
        "skipped": seg.skipped.iter().map(|(k, why)| (format!("multiotsu{k}"), why.clone())).collect::<std::collections::BTreeMap<_, _>>(),
    }))
}
