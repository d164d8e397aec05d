//! `phyvae segment`: the paper's visualisation pipeline on one map.

use crate::cli::SegmentArgs;
use crate::commands::{create_dir, print_json};
use crate::input;
use anyhow::Result;
use ndarray::ArrayView2;
use phyvae_data::io;
use phyvae_imaging::visualize::{Segmentations, VisualizeParams, segment_map};
use phyvae_report::render;
use serde_json::json;
use std::path::Path;

/// Upscale factor so that a small grid map is readable as a PNG (about 512 px wide).
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
    io::write_npy_f32(&dir.join("denoised.npy"), seg.denoised.view())?;
    render::write_map_png(&dir.join("denoised.png"), seg.denoised.view(), None, up)?;
    for (name, labels) in seg.named_labels() {
        io::write_npy_i32(&dir.join(format!("{name}.npy")), labels.view())?;
        render::write_labels_png(&dir.join(format!("{name}.png")), labels.view(), up)?;
    }
    Ok(seg)
}

/// `phyvae segment MAP --out DIR`.
pub fn run(a: &SegmentArgs) -> Result<()> {
    // Computed in f32 (the authors' latent maps are float32); any input is read as f32.
    let map = input::image(&a.map, None)?.pixels;
    let params = VisualizeParams::new().sigma_color(a.sigma_color).build()?;
    let seg = segment_and_write(map.view(), &params, &a.out)?;
    print_json(&json!({
        "out": a.out,
        "shape": [map.nrows(), map.ncols()],
        "flat": seg.flat,
        "labels": seg.named_labels().iter().map(|(n, _)| format!("{n}.npy")).collect::<Vec<_>>(),
    }))
}
