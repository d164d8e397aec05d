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
use ndarray::{Array2, Array3};
use phyvae_data::patches::PatchSet;
use phyvae_imaging::cluster::pca;
use phyvae_imaging::fft_features::window_spectra;
use phyvae_run::config::{Method, RunConfig};
use phyvae_run::diagnose::Diagnosis;
use phyvae_run::files::RunDir;

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
    let (gh, gw) = (grid.gh(), grid.gw());
    let st = progress.step("window spectra and PCA");
    let start = Instant::now();
    let features = window_spectra(patches.scaled_image(), grid.window(), grid.step())?; // (n, d)
    let k = COMPONENTS
        .min(features.nrows())
        .min(features.ncols())
        .max(1);
    let p = pca(features.view(), k, cfg.train.seed)?;
    let scores = p.transform(features.view())?; // (n, k)
    let mut maps = Array3::<f32>::zeros((gh, gw, k));
    for ((i, c), v) in scores.indexed_iter() {
        maps[[i / gw, i % gw, c]] = *v as f32;
    }
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
    let picked = result::pick(
        &dir,
        &candidates,
        result::Weighting::Equal,
        cfg.result.classes,
        // The spectra of a straddling patch mix about linearly: no re-centring
        // (on the validation split it helped the VAE, and moved the baseline
        // both ways).
        None,
        cfg.train.seed,
        truth,
        &metrics.maps,
        "every principal-component map is flat: the patches' spectra do not vary",
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
