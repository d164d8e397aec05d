//! Loading command inputs: images as f32 or, for f64 NPY files, as f64 so that
//! filters and thresholds run in the input's precision (as scikit-image does).

use anyhow::{Context, Result};
use ndarray::Array2;
use phyvae_data::patches::{PatchGrid, PatchSet, labels_at_patch_centres};
use phyvae_data::{Image, io};
use phyvae_imaging::scan;
use phyvae_run::config::DataConfig;
use phyvae_run::metrics::ScanDrift;
use std::path::{Path, PathBuf};

use crate::cli::InputArgs;
use crate::progress::Progress;

/// Pixels in the precision of the file they came from.
pub enum Pixels {
    /// Any non-f64 source, converted to f32.
    F32(Array2<f32>),
    /// A float64 NPY file, kept in f64.
    F64(Array2<f64>),
}

/// Reads an image in any supported format, as f32.
pub fn image(path: &Path, frame: Option<usize>) -> Result<Image> {
    io::read_image(path, frame).context("reading image")
}

/// Reads an image, `dataset` naming the entry of an HDF5 file.
pub fn image_in(path: &Path, frame: Option<usize>, dataset: Option<&str>) -> Result<Image> {
    io::read_image_in(path, frame, dataset).context("reading image")
}

/// Reads an image keeping f64 precision when the file is a float64 NPY.
pub fn pixels(path: &Path) -> Result<Pixels> {
    if let Some(a) = io::read_npy_f64(path, None).context("reading image")? {
        return Ok(Pixels::F64(a));
    }
    Ok(Pixels::F32(image(path, None)?.pixels))
}

/// Reads an integer label map (any integer or integral-float NPY/TIFF/PNG).
pub fn labels(path: &Path) -> Result<Array2<i32>> {
    let img = image(path, None)?;
    let mut out = Array2::<i32>::zeros(img.pixels.dim());
    for ((r, c), &v) in img.pixels.indexed_iter() {
        if !v.is_finite() || v.fract() != 0.0 || v.abs() > 16_777_216.0 {
            return Err(phyvae_data::DataError::InvalidParameter {
                name: "truth",
                value: format!("{}: pixel ({r}, {c}) = {v}", path.display()),
                rule: "a label map holds integer labels",
            }
            .into());
        }
        #[allow(clippy::cast_possible_truncation)]
        {
            out[(r, c)] = v as i32;
        }
    }
    Ok(out)
}

/// Reads the image with a progress line.
pub fn read_input(i: &InputArgs, progress: Progress) -> Result<phyvae_data::Image> {
    let st = progress.step("reading image");
    let img = image_in(&i.image, i.frame, i.dataset.as_deref())?;
    st.done();
    Ok(img)
}

/// The truth map at the patch centres of `grid`, when `--truth` was given.
pub fn read_truth(path: Option<&PathBuf>, grid: &PatchGrid) -> Result<Option<Array2<i32>>> {
    let Some(p) = path else { return Ok(None) };
    let t = labels(p)?;
    Ok(Some(
        labels_at_patch_centres(t.view(), grid).context("truth map does not match the image")?,
    ))
}

/// Cuts the patches with a progress line (nothing is written: a run that
/// fails here leaves no folder behind), after removing the scan drift along
/// the rows when `d.dedrift` says so; returns the patches and the drift
/// removed.
pub fn patches_for(
    img: &phyvae_data::Image,
    d: &DataConfig,
    progress: Progress,
) -> Result<(PatchSet, Option<ScanDrift>)> {
    let st = progress.step("cutting patches");
    let grid = PatchGrid::new(img.rows(), img.cols(), d.window, d.step)?;
    let dedrifted;
    let mut drift = None;
    let img = if d.dedrift {
        let cell = d
            .register
            .iter()
            .map(|k| 1.0 / k[0].hypot(k[1]))
            .fold(0.0, f64::max);
        let shifts = scan::row_drift(img.pixels.view(), &d.register, cell)?;
        drift = ScanDrift::of(&shifts);
        dedrifted = Image {
            pixels: scan::shift_rows(img.pixels.view(), &shifts)?,
            pixel_size: img.pixel_size.clone(),
            source: img.source.clone(),
        };
        &dedrifted
    } else {
        img
    };
    let mut patches = PatchSet::from_image(img, grid, d.scaling(), d.level)?;
    patches.register(&d.register)?;
    st.done();
    Ok((patches, drift))
}
