//! `phyvae run`: the main job on one image.
//!
//! Reads the image, lays the patch grid, computes one map per feature over the
//! grid (for now the per-patch mean and standard deviation of the scaled image,
//! a training-free baseline), runs the paper's segmentation pipeline on each
//! map, scores the segmentations when a truth map is given, and writes
//! everything (NPY, PNG, summary.json) to the output folder.

use crate::cli::{LevellingArg, RunArgs};
use crate::commands::{create_dir, print_json, segment::segment_grid_map};
use crate::input;
use crate::progress::Progress;
use anyhow::{Context, Result};
use ndarray::{Array2, Array3};
use phyvae_data::io;
use phyvae_data::patches::{Levelling, PatchGrid, PatchSet, Scaling, labels_at_patch_centres};
use phyvae_imaging::visualize::VisualizeParams;
use phyvae_report::render;
use serde_json::{Value, json};
use std::time::Instant;

/// Names of the per-patch feature maps, in the order of `maps.npy`'s last axis.
const MAP_NAMES: [&str; 2] = ["patch_mean", "patch_std"];

/// Runs the main job.
pub fn run(a: &RunArgs, progress: Progress) -> Result<()> {
    let t0 = Instant::now();
    let st = progress.step("reading image");
    let img = input::image_in(&a.image, a.frame, a.dataset.as_deref())?;
    st.done();
    let grid = PatchGrid::new(img.rows(), img.cols(), a.window, a.step)?;
    let levelling = match a.level {
        LevellingArg::None => Levelling::None,
        LevellingArg::Plane => Levelling::Plane,
        LevellingArg::PlaneLines => Levelling::PlanePlusLines,
    };
    let patches = PatchSet::from_image(&img, grid, Scaling::GlobalMinMax, levelling)?;
    let params = VisualizeParams::new().sigma_color(a.sigma_color).build()?;
    let truth = match &a.truth {
        Some(p) => {
            let t = input::labels(p)?;
            Some(
                labels_at_patch_centres(t.view(), &grid)
                    .context("truth map does not match the image")?,
            )
        }
        None => None,
    };

    create_dir(&a.out)?;
    render::write_grey_png(&a.out.join("image.png"), patches.scaled_image())?;

    // Per-patch statistics over the grid: (gh, gw, 2).
    let st = progress.bar("patch statistics", grid.len() as u64);
    let (gh, gw) = (grid.gh(), grid.gw());
    let mut maps = Array3::<f32>::zeros((gh, gw, MAP_NAMES.len()));
    let mut buf = vec![0.0f32; grid.window() * grid.window()];
    for i in 0..grid.len() {
        patches.copy_patch_into(i, &mut buf)?;
        let (r, c) = grid.position(i);
        let (mean, std) = mean_std(&buf);
        maps[(r, c, 0)] = mean;
        maps[(r, c, 1)] = std;
        st.bar().inc(1);
    }
    st.done();
    io::write_npy_f32_3d(&a.out.join("maps.npy"), maps.view())?;

    let mut results = serde_json::Map::new();
    let st = progress.bar("segmenting", MAP_NAMES.len() as u64);
    for (k, name) in MAP_NAMES.iter().enumerate() {
        let map: Array2<f32> = maps.index_axis(ndarray::Axis(2), k).to_owned();
        let dir = a.out.join("segmentation").join(name);
        let (entry, _) = segment_grid_map(map.view(), &params, &dir, truth.as_ref(), a.tolerance)?;
        results.insert((*name).to_string(), entry);
        st.bar().inc(1);
    }
    st.done();

    let summary = json!({
        "input": a.image,
        "frame": a.frame,
        "dataset": a.dataset,
        "image_shape": [img.rows(), img.cols()],
        "pixel_size": img.pixel_size,
        "window": grid.window(),
        "step": grid.step(),
        "grid": [gh, gw],
        "patches": grid.len(),
        "levelling": format!("{:?}", a.level),
        "sigma_color": a.sigma_color,
        "maps": MAP_NAMES,
        "segmentations": Value::Object(results),
        "seconds": t0.elapsed().as_secs_f64(),
        "phyvae_version": env!("CARGO_PKG_VERSION"),
    });
    let path = a.out.join("summary.json");
    std::fs::write(&path, serde_json::to_string_pretty(&summary)?).map_err(|source| {
        super::OutputError {
            path: path.clone(),
            source,
        }
    })?;
    print_json(&summary)
}

/// Mean and population standard deviation of a slice (f64 accumulation).
#[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
fn mean_std(v: &[f32]) -> (f32, f32) {
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let var = v
        .iter()
        .map(|&x| (f64::from(x) - mean).powi(2))
        .sum::<f64>()
        / n;
    (mean as f32, var.sqrt() as f32)
}
