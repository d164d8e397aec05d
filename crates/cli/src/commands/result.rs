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
//! - **segmentation**: k-means on all candidates' low-passed maps together
//!   (weighted as [`Weighting`] says), with `--classes` classes, or as many (2 to 4) as the mean silhouette
//!   prefers ([`phyvae_imaging::pick::cluster_maps`]); for a VAE the classes
//!   are then re-centred on their interiors, half a window from any other
//!   class ([`phyvae_imaging::pick::refine_by_interiors`]), so that patches
//!   straddling a boundary do not pull a small region's centroid, and its
//!   boundary cells are re-assigned by the model's decoded class templates
//!   ([`phyvae_model::refine`]): the cell's label then says which phase
//!   lies at its centre, not which one its whole patch resembles. For both
//!   models a count above 2 is only chosen when every class has such an
//!   interior: patches straddling a long boundary form a compact cluster of
//!   their own, a band about a window wide with no interior, that is not a
//!   phase. Two content latents
//!   often share a phase distinction between them, so clustering both sees
//!   what either alone may miss, and it can give more than two phases.
//!
//! With a truth map, `"result"` also holds the pick's scores and the best
//! score of any map and segmentation (the oracle), so the cost of not
//! knowing the truth is measured.

use anyhow::Result;
use ndarray::{Array2, ArrayView2, ArrayView3, Axis};
use phyvae_data::io;
use phyvae_imaging::metrics;
use phyvae_imaging::pick::{Clustered, cluster_maps, refine_by_interiors, separability};
use phyvae_imaging::pipeline::{
    OtsuSplit, Segmentations, VisualizeParams, min_max_scaled, otsu_split,
};
use phyvae_model::refine::BoundaryRefiner;
use phyvae_report::render;
use phyvae_run::diagnose::Diagnosis;
use phyvae_run::files::{self, RunDir};
use phyvae_run::metrics::{BoundaryRefinement, MapMetrics, Oracle, ResultMetrics, Score};

use crate::commands::output::create_dir;
use crate::commands::segment::upscale_for;

/// The criterion, as metrics.json and the report state it.
pub const CRITERION: &str = "map: the largest Otsu separability (between-class over total variance) of its denoised map; segmentation: k-means on the low-passed maps of every informative map (a VAE's latents in their own units, principal components each scaled to [0, 1]), classes from --classes or the best mean silhouette (2 to 4); a VAE's classes then re-centred on their interiors (cells half a window from any other class), so that patches straddling a boundary do not pull a centroid; a count above 2 chosen only when every class has an interior half a window from the others, a tenth of its cells at least (a class without one is a band of patches straddling a boundary), and every two classes that touch meet at a step of at least half the gap between their centroids, extrapolated from each side's cells beyond the straddling band (a map that drifts across a phase, cut into bands, meets along a gradient), and then the count of highest silhouette (for principal components, only by a lead of more than 0.02: they drift within a phase); a VAE's cells within a window of another class then moved to the class whose decoded template explains their patch centre with an error below 75 % of their own class's, when every class's template recognises its own interior cells (95 % at least)";

/// How the result clustering weighs the candidate maps against each other.
/// Either way it clusters the low-passed maps ([`Segmentations::lowpassed`]),
/// not the bilateral-denoised ones: the bilateral step of an Otsu split pulls
/// each map's values towards its two extremes, and a third phase between them
/// then no longer forms its own cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weighting {
    /// Each map in its own units. For a VAE's latents, which are in units of
    /// the prior's standard deviation: a latent's spread over the map says how
    /// much the model uses it, and a near-silent latent's noise should not
    /// weigh as much as the latent that carries the phases.
    OwnUnits,
    /// Each map min-max scaled to `[0, 1]`. For principal components: their
    /// variances rank the spectra's variation over the whole image, and the
    /// contrast between phases often lies in a weak component (an
    /// intensity-only precipitate), which equal weights keep.
    Equal,
}

impl Weighting {
    /// The map `m` as the clustering sees it.
    fn apply(self, m: &Array2<f32>) -> Array2<f32> {
        match self {
            Self::OwnUnits => m.clone(),
            Self::Equal => min_max_scaled(m.view()),
        }
    }
}

/// How the result's k-means runs: how it weighs the maps, whether it
/// re-centres the classes on their interiors ([`refine_by_interiors`]), and
/// the silhouette lead a count above 2 needs ([`cluster_maps`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clustering {
    /// How the maps are weighed against each other.
    pub weighting: Weighting,
    /// Whether the classes are re-centred on their interiors.
    pub recentre: bool,
    /// Silhouette lead a count above 2 needs over a smaller one.
    pub margin: f64,
}

impl Clustering {
    /// A VAE's latents: in their own units, re-centred (patches straddling a
    /// boundary must not pull a centroid), and no silhouette margin: two of
    /// three phases can lie close in the latents (see
    /// [`SILHOUETTE_MARGIN`](phyvae_imaging::pick::SILHOUETTE_MARGIN)).
    pub const VAE: Self = Self {
        weighting: Weighting::OwnUnits,
        recentre: true,
        margin: 0.0,
    };

    /// The classical baseline's principal components: each scaled to
    /// `[0, 1]`, not re-centred (the spectra of a straddling patch mix about
    /// linearly; on the validation split re-centring helped the VAE and moved
    /// the baseline both ways), and the silhouette margin, as the components
    /// drift within a phase.
    pub const BASELINE: Self = Self {
        weighting: Weighting::Equal,
        recentre: false,
        margin: phyvae_imaging::pick::SILHOUETTE_MARGIN,
    };

    /// Clusters the low-passed `maps` (one per usable candidate) into
    /// `classes` classes or as many as the silhouette prefers, with interiors
    /// `interior_radius` cells wide; with a `refiner` (a VAE's), its boundary
    /// cells are then re-assigned by the model's decoded class templates
    /// ([`phyvae_model::refine`]), and what that did comes back with them.
    pub(crate) fn run(
        self,
        lowpassed: &[&Array2<f32>],
        classes: Option<usize>,
        interior_radius: usize,
        seed: u64,
        refiner: Option<&BoundaryRefiner<'_>>,
    ) -> Result<(Clustered, Option<BoundaryRefinement>)> {
        let weighted: Vec<Array2<f32>> =
            lowpassed.iter().map(|m| self.weighting.apply(m)).collect();
        let maps: Vec<ArrayView2<'_, f32>> = weighted.iter().map(|m| m.view()).collect();
        let mut clustered = cluster_maps(&maps, classes, Some(interior_radius), self.margin, seed)?;
        if self.recentre {
            clustered.labels =
                refine_by_interiors(&maps, clustered.labels.view(), interior_radius)?;
        }
        let refinement = match refiner {
            Some(r) => {
                let (labels, done) = r.refine(clustered.labels.view())?;
                clustered.labels = labels;
                Some(done)
            }
            None => None,
        };
        Ok((clustered, refinement))
    }
}

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
/// `labels.png`, and returns metrics.json's `"result"` with the labels. An
/// automatic class count above 2 needs an interior in every class (cells at
/// least `interior_radius` grid cells from another class, half a window;
/// [`cluster_maps`], a larger count winning by more than the `clustering`'s
/// margin in mean silhouette); the [`Clustering`] also says how the maps are
/// weighed and whether the classes are re-centred on those interiors. Without
/// candidates the result is `null` with `reason`, and nothing is written.
///
/// # Errors
/// When the clustering fails or a file cannot be written.
#[allow(clippy::too_many_arguments)]
pub fn pick(
    dir: &RunDir,
    candidates: &[MapResult<'_>],
    clustering: Clustering,
    classes: Option<usize>,
    interior_radius: usize,
    seed: u64,
    truth: Option<&Array2<i32>>,
    per_map: &PerMap,
    reason: &str,
    refiner: Option<&BoundaryRefiner<'_>>,
) -> Result<(ResultMetrics, Option<Array2<i32>>)> {
    let usable: Vec<&MapResult<'_>> = candidates.iter().filter(|c| !c.seg.flat).collect();
    if usable.is_empty() {
        let none = ResultMetrics {
            criterion: Some(CRITERION.to_owned()),
            oracle: truth.and_then(|_| oracle(per_map, None)),
            ..ResultMetrics::none(reason)
        };
        return Ok((none, None));
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
    let lowpassed: Vec<&Array2<f32>> = usable.iter().map(|c| &c.seg.lowpassed).collect();
    let (clustered, boundary_refinement) =
        clustering.run(&lowpassed, classes, interior_radius, seed, refiner)?;
    create_dir(&dir.file(files::RESULT_DIR))?;
    let labels_path = dir.result_labels();
    io::write_npy_i32(&labels_path, clustered.labels.view())?;
    render::write_labels_png(
        &labels_path.with_extension("png"),
        clustered.labels.view(),
        upscale_for(lowpassed[0].view()),
    )?;
    let mut r = ResultMetrics {
        map: best.map(|(_, n)| n.to_owned()),
        segmentation: Some("cluster".to_owned()),
        maps_clustered: Some(usable.iter().map(|c| c.name.to_owned()).collect()),
        classes: Some(clustered.classes),
        classes_chosen: Some(clustered.chosen),
        silhouette: Some(clustered.silhouette),
        classes_without_interior: clustered.chosen.then(|| clustered.without_interior.clone()),
        classes_gradual: clustered.chosen.then(|| clustered.gradual.clone()),
        separability: Some(eta),
        criterion: Some(CRITERION.to_owned()),
        labels: Some(format!("{}/{}", files::RESULT_DIR, files::RESULT_LABELS)),
        boundary_refinement,
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
    Ok((r, Some(clustered.labels)))
}

/// The candidates of [`pick`] among a VAE's latent `maps`, Otsu-split as
/// [`pick`] splits them, before anything is written: the run loop measures
/// an attempt on them (whether its maps show regions, how far its result
/// agrees with the classical baseline) before it keeps the attempt.
#[derive(Debug, Clone)]
pub struct CandidateSplits(Vec<(String, OtsuSplit)>);

impl CandidateSplits {
    /// The content latents `diagnosis` found active among `maps` (grid rows x
    /// columns x latents, in the order of `diagnosis.latents`), each
    /// Otsu-split with `params`; a flat map is left out.
    ///
    /// # Errors
    /// When a map holds a non-finite value.
    pub fn new(
        diagnosis: &Diagnosis,
        maps: ArrayView3<'_, f32>,
        params: &VisualizeParams,
    ) -> Result<Self> {
        let mut splits = Vec::new();
        for (latent, map) in diagnosis.latents.iter().zip(maps.axis_iter(Axis(2))) {
            if !(latent.content && latent.active) {
                continue;
            }
            if let Some(split) = otsu_split(map, params)? {
                splits.push((latent.name.clone(), split));
            }
        }
        Ok(Self(splits))
    }

    /// The separability `eta` of each candidate, as [`pick`] measures it (an
    /// attempt whose maps show no regions, [`Diagnosis::check_separation`],
    /// can then train again).
    ///
    /// # Errors
    /// When a split's shapes disagree.
    pub fn separabilities(&self) -> Result<std::collections::BTreeMap<String, f64>> {
        self.0
            .iter()
            .map(|(name, split)| {
                Ok((
                    name.clone(),
                    separability(split.denoised.view(), split.otsu.view())?,
                ))
            })
            .collect()
    }

    /// The labels [`pick`] gives these candidates with [`Clustering::VAE`]
    /// (`classes`, `interior_radius`, `seed` and `refiner` as [`pick`] takes them),
    /// without writing anything. `None` when there is no candidate.
    ///
    /// # Errors
    /// When the clustering fails.
    pub fn vae_labels(
        &self,
        classes: Option<usize>,
        interior_radius: usize,
        seed: u64,
        refiner: Option<&BoundaryRefiner<'_>>,
    ) -> Result<Option<Array2<i32>>> {
        if self.0.is_empty() {
            return Ok(None);
        }
        let lowpassed: Vec<&Array2<f32>> = self.0.iter().map(|(_, s)| &s.lowpassed).collect();
        Ok(Some(
            Clustering::VAE
                .run(&lowpassed, classes, interior_radius, seed, refiner)?
                .0
                .labels,
        ))
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    use phyvae_imaging::pipeline::{VisualizeParams, segment_map};

    #[test]
    fn weighting_keeps_or_equalises_the_spreads() {
        // Two maps, one spanning 2 units and one 0.2 (a latent the model
        // barely uses); no low-pass, so `lowpassed` is the map itself.
        let params = VisualizeParams::default();
        let wide = segment_map(array![[-1.0_f32, 1.0], [1.0, -1.0]].view(), &params).unwrap();
        let narrow = segment_map(array![[0.1_f32, -0.1], [0.1, 0.1]].view(), &params).unwrap();
        let a = MapResult {
            name: "z1",
            seg: &wide,
        };
        let b = MapResult {
            name: "z2",
            seg: &narrow,
        };
        let spread = |m: &Array2<f32>| {
            let (lo, hi) = m.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
            hi - lo
        };
        let own: Vec<_> = [&a, &b]
            .iter()
            .map(|c| Weighting::OwnUnits.apply(&c.seg.lowpassed))
            .collect();
        assert_eq!(own[0], array![[-1.0_f32, 1.0], [1.0, -1.0]]);
        assert!((spread(&own[1]) - 0.2).abs() < 1e-6);
        let equal: Vec<_> = [&a, &b]
            .iter()
            .map(|c| Weighting::Equal.apply(&c.seg.lowpassed))
            .collect();
        assert_eq!(equal[0], array![[0.0_f32, 1.0], [1.0, 0.0]]);
        assert_eq!(equal[1], array![[1.0_f32, 0.0], [1.0, 1.0]]);
    }

    #[test]
    fn separabilities_measure_only_the_active_content_maps_that_vary() {
        use phyvae_run::diagnose::LatentFacts;
        let latent = |name: &str, content: bool, active: bool| LatentFacts {
            name: name.into(),
            content,
            kl: None,
            variance: 0.0,
            range: 0.0,
            active,
        };
        // dx: a shift latent (two halves, but never a candidate); z1: two
        // halves; z2: the same halves, but the diagnosis found it inactive;
        // z3: active but flat.
        let diagnosis = Diagnosis {
            latents: vec![
                latent("dx", false, true),
                latent("z1", true, true),
                latent("z2", true, false),
                latent("z3", true, true),
            ],
            ..Diagnosis::default()
        };
        let maps = ndarray::Array3::from_shape_fn((8, 8, 4), |(_, j, c)| match c {
            3 => 0.5_f32,
            _ => {
                if j < 4 {
                    -1.0
                } else {
                    1.0
                }
            }
        });
        let eta = CandidateSplits::new(&diagnosis, maps.view(), &VisualizeParams::default())
            .unwrap()
            .separabilities()
            .unwrap();
        assert_eq!(eta.keys().collect::<Vec<_>>(), vec!["z1"]);
        // Two halves of one value each: the Otsu split explains (nearly) all
        // the variance, whatever the bilateral step does at the edge.
        assert!(eta["z1"] > 0.9, "{eta:?}");
    }
}
