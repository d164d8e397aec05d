//! The result of a run, picked without the truth: one map and one
//! segmentation, written to `result/` and described in metrics.json's
//! `"result"`.
//!
//! The candidates are the maps that carry information (a VAE's active content
//! latents, see `phyvae_model::diagnose`; the classical baseline's principal
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

use std::path::Path;

use anyhow::Result;
use ndarray::{Array2, ArrayView2};
use phyvae_data::io;
use phyvae_imaging::metrics;
use phyvae_imaging::pick::{cluster_maps, separability};
use phyvae_imaging::pipeline::Segmentations;
use phyvae_report::render;
use serde_json::{Value, json};

use crate::commands::create_dir;
use crate::commands::segment::upscale_for;

/// Folder of the result inside a run folder.
pub const RESULT_DIR: &str = "result";
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

fn scores_json(labels: ArrayView2<'_, i32>, truth: &Array2<i32>) -> Result<Value> {
    let s = metrics::score(labels, truth.view(), 1)?;
    Ok(json!({ "ari": s.ari, "accuracy": s.accuracy, "boundary_f1": s.boundary_f1 }))
}

/// The best-ARI map and segmentation in `per_map` (metrics.json's `"maps"`)
/// and the result clustering, among `allowed` maps.
fn oracle(per_map: &Value, result_scores: Option<&Value>) -> Value {
    let mut best: Option<(f64, Value)> = None;
    if let Some(maps) = per_map.as_object() {
        for (name, entry) in maps {
            if let Some(scores) = entry["scores"].as_object() {
                for (method, s) in scores {
                    if let Some(ari) = s["ari"].as_f64()
                        && best.as_ref().is_none_or(|(b, _)| ari > *b)
                    {
                        let mut v = s.clone();
                        v["map"] = json!(name);
                        v["segmentation"] = json!(method);
                        best = Some((ari, v));
                    }
                }
            }
        }
    }
    if let Some(s) = result_scores
        && let Some(ari) = s["ari"].as_f64()
        && best.as_ref().is_none_or(|(b, _)| ari > *b)
    {
        let mut v = s.clone();
        v["map"] = json!("result");
        v["segmentation"] = json!("cluster");
        best = Some((ari, v));
    }
    best.map_or(Value::Null, |(_, v)| v)
}

/// Picks the result among `candidates`, writes `out/result/labels.npy` and
/// `labels.png`, and returns metrics.json's `"result"`. Without candidates the
/// result is `null` with `reason`, and nothing is written.
///
/// # Errors
/// When the clustering fails or a file cannot be written.
pub fn pick(
    out: &Path,
    candidates: &[MapResult<'_>],
    classes: Option<usize>,
    seed: u64,
    truth: Option<&Array2<i32>>,
    per_map: &Value,
    reason: &str,
) -> Result<Value> {
    let usable: Vec<&MapResult<'_>> = candidates.iter().filter(|c| !c.seg.flat).collect();
    if usable.is_empty() {
        let mut v =
            json!({ "map": null, "segmentation": null, "reason": reason, "criterion": CRITERION });
        if truth.is_some() {
            v["oracle"] = oracle(per_map, None);
        }
        return Ok(v);
    }
    let mut eta = serde_json::Map::new();
    let mut best: Option<(f64, &str)> = None;
    for c in &usable {
        let e = separability(c.seg.denoised.view(), c.seg.otsu.view())?;
        eta.insert(c.name.to_owned(), json!(e));
        if best.is_none_or(|(b, _)| e > b) {
            best = Some((e, c.name));
        }
    }
    let maps: Vec<ArrayView2<'_, f32>> = usable.iter().map(|c| c.seg.denoised.view()).collect();
    let clustered = cluster_maps(&maps, classes, seed)?;
    let dir = out.join(RESULT_DIR);
    create_dir(&dir)?;
    io::write_npy_i32(&dir.join("labels.npy"), clustered.labels.view())?;
    render::write_labels_png(
        &dir.join("labels.png"),
        clustered.labels.view(),
        upscale_for(maps[0]),
    )?;
    let mut v = json!({
        "map": best.map(|(_, n)| n),
        "segmentation": "cluster",
        "maps_clustered": usable.iter().map(|c| c.name).collect::<Vec<_>>(),
        "classes": clustered.classes,
        "classes_chosen": clustered.chosen,
        "silhouette": clustered.silhouette,
        "separability": eta,
        "criterion": CRITERION,
        "labels": format!("{RESULT_DIR}/labels.npy"),
    });
    if let Some(t) = truth {
        let s = scores_json(clustered.labels.view(), t)?;
        v["oracle"] = oracle(per_map, Some(&s));
        // The pick's map alone, split by Otsu, for comparison.
        if let Some((_, name)) = best
            && let Some(c) = usable.iter().find(|c| c.name == name)
        {
            v["map_otsu_score"] = scores_json(c.seg.otsu.view(), t)?;
        }
        v["score"] = s;
    }
    Ok(v)
}
