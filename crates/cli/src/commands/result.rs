//! The result of a run, picked without the truth: one map and one
//! segmentation, written to `result/` and described in metrics.json's
//! `"result"`.
//!
//! The candidates are the maps that carry information (a VAE's active content
//! latents, see `phyvae_run::diagnose`; the classical baseline's principal
//! components). The criterion:
//! - **map**: the candidate whose binary Otsu split of its denoised map has
//!   the highest separability `eta` (Otsu 1979: between-class over total
//!   variance): the map that most clearly splits into regions;
//! - **segmentation**: k-means on all candidates' denoised maps together,
//!   with `--classes` classes, or as many (2 to 4) as the mean silhouette
//!   prefers ([`phyvae_imaging::pick::cluster_maps`]). Two content latents
//!   often share a phase distinction between them, so clustering both sees
//!   what either alone may miss, and it can give more than two phases.
//!
//! With a truth map, `"result"` also holds the pick's scores and the best
//! score of any map and segmentation (the oracle), so the cost of not
//! knowing the truth is measured.

use anyhow::Result;
use ndarray::{Array2, ArrayView2};
use phyvae_data::io;
use phyvae_imaging::metrics;
use phyvae_imaging::pick::{cluster_maps, separability};
use phyvae_imaging::pipeline::Segmentations;
use phyvae_report::render;
use phyvae_run::diagnose::Diagnosis;
use phyvae_run::files::{self, RunDir};
use phyvae_run::metrics::{MapMetrics, Oracle, ResultMetrics, Score};

use crate::commands::output::create_dir;
use crate::commands::segment::upscale_for;

/// The criterion, as metrics.json and the report state it.
pub const CRITERION: &str = "map: the largest Otsu separability (between-class over total variance) of its denoised map; segmentation: k-means on the denoised maps of every informative map, classes from --classes or the best mean silhouette (2 to 4)";

/// One candidate map: its name and its segmentation pipeline's outputs.
#[derive(Debug, Clone, Copy)]
pub struct MapResult<'a> {
    /// Latent name.
    pub name: &'a str,
    /// The pipeline's outputs on it.
    pub seg: &'a Segmentations,
}

fn score(labels: ArrayView2<'_, i32>, truth: &Array2<i32>) -> Result<Score> {
    Ok(metrics::score(labels, truth.view(), 1)?.into())
}

/// The best-ARI map and segmentation in `per_map` (metrics.json's `"maps"`)
/// and the result clustering.
fn oracle(per_map: &PerMap, result: Option<&Score>) -> Option<Oracle> {
    let mut best: Option<Oracle> = None;
    let mut consider = |map: &str, segmentation: &str, s: &Score| {
        if best.as_ref().is_none_or(|b| s.ari > b.score.ari) {
            best = Some(Oracle {
                map: map.to_owned(),
                segmentation: segmentation.to_owned(),
                score: *s,
            });
        }
    };
    for (name, entry) in per_map {
        for (method, s) in entry.scores.iter().flatten() {
            consider(name, method, s);
        }
    }
    if let Some(s) = result {
        consider("result", "cluster", s);
    }
    best
}

/// Picks the result among `candidates`, writes `out/result/labels.npy` and
/// `labels.png`, and returns metrics.json's `"result"`. Without candidates the
/// result is `null` with `reason`, and nothing is written.
///
/// # Errors
/// When the clustering fails or a file cannot be written.
pub fn pick(
    dir: &RunDir,
    candidates: &[MapResult<'_>],
    classes: Option<usize>,
    seed: u64,
    truth: Option<&Array2<i32>>,
    per_map: &PerMap,
    reason: &str,
) -> Result<ResultMetrics> {
    let usable: Vec<&MapResult<'_>> = candidates.iter().filter(|c| !c.seg.flat).collect();
    if usable.is_empty() {
        return Ok(ResultMetrics {
            criterion: Some(CRITERION.to_owned()),
            oracle: truth.and_then(|_| oracle(per_map, None)),
            ..ResultMetrics::none(reason)
        });
    }
    let mut eta = std::collections::BTreeMap::new();
    let mut best: Option<(f64, &str)> = None;
    for c in &usable {
        let e = separability(c.seg.denoised.view(), c.seg.otsu.view())?;
        eta.insert(c.name.to_owned(), e);
        if best.is_none_or(|(b, _)| e > b) {
            best = Some((e, c.name));
        }
    }
    let maps: Vec<ArrayView2<'_, f32>> = usable.iter().map(|c| c.seg.denoised.view()).collect();
    let clustered = cluster_maps(&maps, classes, seed)?;
    create_dir(&dir.file(files::RESULT_DIR))?;
    let labels_path = dir.result_labels();
    io::write_npy_i32(&labels_path, clustered.labels.view())?;
    render::write_labels_png(
        &labels_path.with_extension("png"),
        clustered.labels.view(),
        upscale_for(maps[0]),
    )?;
    let mut r = ResultMetrics {
        map: best.map(|(_, n)| n.to_owned()),
        segmentation: Some("cluster".to_owned()),
        maps_clustered: Some(usable.iter().map(|c| c.name.to_owned()).collect()),
        classes: Some(clustered.classes),
        classes_chosen: Some(clustered.chosen),
        silhouette: Some(clustered.silhouette),
        separability: Some(eta),
        criterion: Some(CRITERION.to_owned()),
        labels: Some(format!("{}/{}", files::RESULT_DIR, files::RESULT_LABELS)),
        ..ResultMetrics::default()
    };
    if let Some(t) = truth {
        let s = score(clustered.labels.view(), t)?;
        r.oracle = oracle(per_map, Some(&s));
        // The pick's map alone, split by Otsu, for comparison.
        if let Some((_, name)) = best
            && let Some(c) = usable.iter().find(|c| c.name == name)
        {
            r.map_otsu_score = Some(score(c.seg.otsu.view(), t)?);
        }
        r.score = Some(s);
    }
    Ok(r)
}

/// The per-map metrics as metrics.json holds them.
pub(crate) type PerMap = std::collections::BTreeMap<String, MapMetrics>;

/// The candidates of the result pick: the content latents the diagnosis
/// found active, with their segmentations (`segs` in latent order).
#[must_use]
pub fn informative<'a>(
    diagnosis: &Diagnosis,
    names: &'a [String],
    segs: &'a [Segmentations],
) -> Vec<MapResult<'a>> {
    diagnosis
        .latents
        .iter()
        .zip(names.iter().zip(segs))
        .filter(|(l, _)| l.content && l.active)
        .map(|(_, (name, seg))| MapResult { name, seg })
        .collect()
}
