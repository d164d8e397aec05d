//! `phyvae train IMAGE --model fft`: the classical baseline, no training.
//!
//! Sliding-window Fourier analysis with decomposition and clustering
//! (Vasudevan et al., "Mapping mesoscopic phase evolution during E-beam
//! induced transformations via deep learning of atomically resolved images",
//! npj Comput. Mater. 4, 30 (2018)): every patch of the grid (the run's window
//! and step) is mean-subtracted and Hann-windowed, the magnitude of its FFT is
//! its descriptor ([`phyvae_imaging::fft_features`]), PCA reduces the
//! descriptors to [`COMPONENTS`] scores ([`phyvae_imaging::cluster::pca`]),
//! and the scores are the run's latent maps `pc1..pc4`. Each map goes through
//! the segmentation pipeline as a VAE's would, and the result is picked the
//! same way ([`super::result`]), clustering the denoised component maps.
//!
//! `|FFT|` is blind to translations, so it cannot tell 180-degree domains or
//! antiphase regions apart (Friedel's law: `|F(k)| = |F(-k)|` for a real
//! image, and a shift only changes phases). It is the floor a VAE run is held
//! against, and a quick first look.

use std::time::Instant;

use anyhow::Result;
use ndarray::{Array2, Array3, ArrayView2, Axis};
use phyvae_data::patches::{PatchGrid, PatchSet};
use phyvae_imaging::cluster::{Pca, pca};
use phyvae_imaging::fft_features::window_spectra;
use phyvae_imaging::metrics::adjusted_rand_index;
use phyvae_imaging::pick::separability;
use phyvae_imaging::pipeline::{VisualizeParams, otsu_split};
use phyvae_run::config::{Method, RunConfig};
use phyvae_run::diagnose::Diagnosis;
use phyvae_run::files::RunDir;
use phyvae_run::metrics::BaselineCheck;

use crate::cli::TrainArgs;
use crate::commands::output::{base_metrics, finish_run, warn_diagnosis, write_maps};
use crate::commands::result::{self, MapResult};
use crate::progress::Progress;

/// Principal components kept (the maps `pc1..pc4`).
pub const COMPONENTS: usize = 4;

/// Runs the baseline on `patches` and writes the run folder.
///
/// # Errors
/// When the descriptors, the PCA, the segmentation or a file fails.
pub fn run(
    a: &TrainArgs,
    img: &phyvae_data::Image,
    cfg: &RunConfig,
    patches: &PatchSet,
    truth: Option<&Array2<i32>>,
    t0: Instant,
    progress: Progress,
) -> Result<()> {
    let grid = patches.grid();
    let st = progress.step("window spectra and PCA");
    let start = Instant::now();
    let (maps, p) = component_maps(
        patches.scaled_image(),
        grid.window(),
        grid.step(),
        cfg.train.seed,
    )?;
    let k = maps.dim().2;
    let seconds = start.elapsed().as_secs_f64();
    st.done();
    let names: Vec<String> = (1..=k).map(|i| format!("pc{i}")).collect();
    let dir = RunDir::new(&a.run.out);
    let (per_map, segs) = write_maps(
        &dir,
        &names,
        maps.view(),
        None,
        truth,
        &cfg.visualize_params()?,
        progress,
    )?;
    let candidates: Vec<MapResult<'_>> = names
        .iter()
        .zip(&segs)
        .map(|(name, seg)| MapResult { name, seg })
        .collect();
    let mut metrics = base_metrics(&a.input, img, &cfg.data, patches, &names, &names, progress);
    metrics.maps = per_map.into_iter().collect();
    let (picked, _) = result::pick(
        &dir,
        &candidates,
        result::Clustering::BASELINE,
        cfg.result.classes,
        // Half a window in grid cells.
        grid.window().div_ceil(2 * grid.step().max(1)),
        cfg.train.seed,
        truth,
        &metrics.maps,
        "every principal-component map is flat: the patches' spectra do not vary",
        None,
    )?;
    // No latents to diagnose; whether the components show regions is checked.
    let mut diagnosis = Diagnosis::default();
    if let Some(sep) = &picked.separability {
        diagnosis.check_separation(sep);
    }
    warn_diagnosis(&diagnosis, progress);
    metrics.result = Some(picked);
    metrics.method = Some(Method::Fft);
    metrics.explained_variance_ratio = Some(p.explained_variance_ratio().to_vec());
    metrics.features_seconds = Some(seconds);
    metrics.settings = cfg.auto.clone();
    metrics.diagnosis = Some(diagnosis);
    finish_run(&dir, metrics, t0, progress)
}

/// The principal-component maps `(gh, gw, k)` of the `|FFT|` descriptors of
/// `image`'s `window`-px patches at `step` (the grid of
/// [`phyvae_data::patches::PatchGrid`]), with their PCA.
fn component_maps(
    image: ArrayView2<'_, f32>,
    window: usize,
    step: usize,
    seed: u64,
) -> Result<(Array3<f32>, Pca)> {
    let (rows, cols) = image.dim();
    let grid = PatchGrid::new(rows, cols, window, step)?;
    let (gh, gw) = (grid.gh(), grid.gw());
    let features = window_spectra(image, window, step)?; // (n, d)
    let k = COMPONENTS
        .min(features.nrows())
        .min(features.ncols())
        .max(1);
    let p = pca(features.view(), k, seed)?;
    let scores = p.transform(features.view())?; // (n, k)
    let mut maps = Array3::<f32>::zeros((gh, gw, k));
    for ((i, c), v) in scores.indexed_iter() {
        maps[[i / gw, i % gw, c]] = *v as f32;
    }
    Ok((maps, p))
}

/// The classical baseline's segmentation of an image, read on a VAE run's
/// patch grid: the second opinion a VAE's result is held against.
#[derive(Debug, Clone)]
pub struct Baseline {
    /// Its labels at the centres of the run grid's cells.
    pub labels: Array2<i32>,
    /// Its window, px.
    pub window: usize,
    /// Its step, px (the run's).
    pub step: usize,
    /// Its classes.
    pub classes: usize,
    /// The separability of its clearest component map.
    pub separability: f64,
}

impl Baseline {
    /// How far `result` (labels on the same grid) agrees with it (adjusted
    /// Rand index), as metrics.json records it.
    ///
    /// # Errors
    /// When the shapes differ.
    pub fn check(&self, result: ArrayView2<'_, i32>) -> Result<BaselineCheck> {
        Ok(BaselineCheck {
            window: self.window,
            step: self.step,
            classes: self.classes,
            separability: self.separability,
            agreement: adjusted_rand_index(result, self.labels.view())?,
        })
    }
}

/// The classical baseline as a second opinion on a VAE run over `image` with
/// patches on `grid`: its segmentation of the same image with a `window`-px
/// window at the grid's step, made as `--model fft` makes it (components
/// low-passed, denoised and split with `params` ([`otsu_split`]) for their
/// separability, their low-passed maps clustered as
/// [`Clustering::BASELINE`](result::Clustering::BASELINE) says into `classes`
/// classes or as many as the silhouette prefers among the counts whose
/// classes have interiors half a window wide), read at the centres of
/// `grid`'s cells ([`Baseline::check`] then measures the agreement). A
/// `window` the image cannot hold (an encoded image smaller than the one the
/// window was chosen on) gives way to `grid`'s. `None` when every component
/// map is flat.
///
/// # Errors
/// When the descriptors, the PCA, a segmentation or the clustering fails.
pub fn second_opinion(
    image: ArrayView2<'_, f32>,
    grid: &PatchGrid,
    window: usize,
    params: &VisualizeParams,
    classes: Option<usize>,
    seed: u64,
) -> Result<Option<Baseline>> {
    let step = grid.step();
    let (rows, cols) = image.dim();
    let window = if window <= rows.min(cols) {
        window
    } else {
        grid.window()
    };
    let (maps, _) = component_maps(image, window, step, seed)?;
    let mut lowpassed = Vec::new();
    let mut best = f64::NAN;
    for m in maps.axis_iter(Axis(2)) {
        let Some(seg) = otsu_split(m, params)? else {
            continue;
        };
        let eta = separability(seg.denoised.view(), seg.otsu.view())?;
        if best.is_nan() || eta > best {
            best = eta;
        }
        lowpassed.push(seg.lowpassed);
    }
    if lowpassed.is_empty() {
        return Ok(None);
    }
    let refs: Vec<&Array2<f32>> = lowpassed.iter().collect();
    let (clustered, _) = result::Clustering::BASELINE.run(
        &refs,
        classes,
        window.div_ceil(2 * step.max(1)),
        seed,
        None,
    )?;
    // The baseline's cell whose centre is nearest each result cell's centre:
    // with one step, the two grids differ by (window - result window) / 2 px.
    let (bh, bw) = clustered.labels.dim();
    let at = |i: usize, n: usize| -> usize {
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
        let j = ((i * step) as f64 + (grid.window() as f64 - window as f64) / 2.0) / step as f64;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let j = j.round().max(0.0) as usize;
        j.min(n - 1)
    };
    let labels = Array2::from_shape_fn((grid.gh(), grid.gw()), |(r, c)| {
        clustered.labels[[at(r, bh), at(c, bw)]]
    });
    Ok(Some(Baseline {
        labels,
        window,
        step,
        classes: clustered.classes,
        separability: best,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_baseline_window_larger_than_the_image_gives_way_to_the_grids() {
        // Two halves of different stripe periods, 48 x 48 px, on a grid of
        // 16 px patches; the baseline is asked for 64 px windows.
        let image = Array2::from_shape_fn((48, 48), |(r, c)| {
            let period = if c < 24 { 4.0 } else { 7.0 };
            #[allow(clippy::cast_precision_loss)]
            let v = (std::f32::consts::TAU * r as f32 / period).cos();
            v
        });
        let grid = PatchGrid::new(48, 48, 16, 4).unwrap();
        let result = Array2::from_shape_fn((grid.gh(), grid.gw()), |(_, c)| i32::from(c >= 4));
        let baseline = second_opinion(
            image.view(),
            &grid,
            64,
            &VisualizeParams::default(),
            Some(2),
            0,
        )
        .unwrap()
        .unwrap();
        assert_eq!(baseline.labels.dim(), (grid.gh(), grid.gw()));
        let check = baseline.check(result.view()).unwrap();
        assert_eq!((check.window, check.step), (16, 4));
        assert!((-1.0..=1.0).contains(&check.agreement), "{check:?}");
    }
}
