//! The unsupervised pick: which map and which segmentation a run presents as
//! its result, chosen without any truth.
//!
//! - [`separability`]: Otsu's criterion `eta = sigma_B^2 / sigma_T^2`, the
//!   between-class variance of a labelling over the total variance of the
//!   values (Otsu 1979, "A threshold selection method from gray-level
//!   histograms", IEEE Trans. SMC 9(1), eq. 12). It is 1 for a map made of
//!   flat regions and near 0.64 (= 2/pi) for a Gaussian cut at its mean, so it
//!   says how clearly a map splits into phases.
//! - [`cluster_maps`]: the result segmentation, a clustering of one or more
//!   co-registered maps (the content latents, or the principal components of
//!   the classical baseline) by k-means; the number of classes is given, or
//!   chosen between 2 and [`MAX_AUTO_CLASSES`] by the mean silhouette
//!   (Rousseeuw 1987, "Silhouettes: a graphical aid to the interpretation and
//!   validation of cluster analysis", J. Comput. Appl. Math. 20, 53-65) on at
//!   most [`SILHOUETTE_SAMPLES`] cells taken at a fixed stride. (The BIC of a
//!   Gaussian mixture over-splits here: a phase's latent values are not
//!   Gaussian, and BIC then adds components to describe one phase's shape.)
//!   Given an interior radius (half a window, in grid cells), a count above 2
//!   is only eligible when every class has an interior, cells whose whole
//!   neighbourhood of that radius carries their class, making up at least
//!   [`MIN_INTERIOR_SHARE`] of the class: a class without one is a band of
//!   patches straddling a boundary, not a phase. And every two classes that
//!   touch must meet at a step, not along a gradient ([`boundary_jump`]): a
//!   map that drifts across a phase (scan drift, a dose or strain gradient)
//!   cut into bands is not several phases.

use ndarray::{Array2, ArrayView2};

use crate::cluster::{assign, canonical_order, kmeans};
use crate::error::ImagingError;
use crate::{Real, Result};

/// The most classes the automatic choice considers.
pub const MAX_AUTO_CLASSES: usize = 4;
/// k-means restarts of the result clustering.
const N_INIT: usize = 8;
/// Smallest share of a class's cells that must be interior for an automatic
/// count above 2 (besides [`MIN_INTERIOR_CELLS`]). A phase band `w` cells
/// wide has `(w - 2 radius) / w` of its cells interior, at least
/// `1 / (2 radius + 1)` (0.2 at radius 2, 0.14 at 3) once it is a window
/// wide; a band of patches straddling a boundary has none, except where the
/// grid's edge clips the neighbourhood of its cells (a boundary running close
/// to the edge), which gives it a few.
pub const MIN_INTERIOR_SHARE: f64 = 0.1;
/// Smallest [`boundary_jump`] between two touching classes for an automatic
/// count above 2: at least half the distance between their centroids must
/// be a step at the boundary rather than a gradient that runs on into both
/// classes. Halfway between the two cases it separates: on the stored runs
/// of the benchmark suite the classes of real phases meet at jumps of 0.8 to
/// 1.9, and the bands a 90-degree domain image with scan drift was cut into
/// at 0.28 to 0.47 (domains-90-1503).
pub const MIN_BOUNDARY_JUMP: f64 = 0.5;
/// Fewest cells on each side of a boundary that [`boundary_jump`] fits a
/// line to.
const MIN_JUMP_CELLS: usize = 5;
/// Most cells the silhouette is computed on (it costs `O(n^2)`).
pub const SILHOUETTE_SAMPLES: usize = 2000;
/// The lead in mean silhouette a larger class count needs over a smaller
/// one, for maps whose values drift within a phase: the classical baseline's
/// principal components follow the dose, the drift and the strain across a
/// phase, and on a large phase a split along such a gradient gains a little
/// silhouette and has interiors (period-905 of the benchmark suite: 0.585
/// against 0.577). A VAE's latents are trained to code what tells patches
/// apart, and are given no margin: two of three phases can lie close in
/// them (three-phase-605: 0.812 against 0.807).
pub const SILHOUETTE_MARGIN: f64 = 0.02;

/// Otsu's separability `eta` of `labels` on `values` (same shape): the
/// between-class variance over the total variance, in `[0, 1]`; 0 for a
/// constant map or a single class.
///
/// # Errors
/// [`ImagingError::ShapeMismatch`] when the shapes differ.
pub fn separability<T: Real>(
    values: ArrayView2<'_, T>,
    labels: ArrayView2<'_, i32>,
) -> Result<f64> {
    if values.dim() != labels.dim() {
        return Err(ImagingError::ShapeMismatch {
            what: "values vs labels",
            expected: vec![values.nrows(), values.ncols()],
            found: vec![labels.nrows(), labels.ncols()],
        });
    }
    let n = values.len();
    if n == 0 {
        return Ok(0.0);
    }
    let mut sums: Vec<(i32, f64, usize)> = Vec::new();
    let (mut total, mut total_sq) = (0.0f64, 0.0f64);
    for (&v, &l) in values.iter().zip(labels.iter()) {
        let v = v.f64();
        total += v;
        total_sq += v * v;
        match sums.iter_mut().find(|(k, _, _)| *k == l) {
            Some(e) => {
                e.1 += v;
                e.2 += 1;
            }
            None => sums.push((l, v, 1)),
        }
    }
    let nf = n as f64;
    let mean = total / nf;
    let var_t = total_sq / nf - mean * mean;
    if var_t <= f64::EPSILON * mean.abs().max(1.0) || sums.len() < 2 {
        return Ok(0.0);
    }
    let var_b: f64 = sums
        .iter()
        .map(|&(_, s, c)| {
            let m = s / c as f64;
            c as f64 / nf * (m - mean) * (m - mean)
        })
        .sum();
    Ok((var_b / var_t).clamp(0.0, 1.0))
}

/// A clustering of maps into classes.
#[derive(Debug, Clone, PartialEq)]
pub struct Clustered {
    /// Labels `0..classes` on the maps' grid (0 the largest class).
    pub labels: Array2<i32>,
    /// Number of classes.
    pub classes: usize,
    /// Whether `classes` was chosen by the silhouette (false: given).
    pub chosen: bool,
    /// Mean silhouette of the result (on the sampled cells), in `[-1, 1]`.
    pub silhouette: f64,
    /// Class counts the automatic choice set aside because one of their
    /// classes had too small an interior (fewer than [`MIN_INTERIOR_CELLS`]
    /// cells, or under [`MIN_INTERIOR_SHARE`] of the class, whose
    /// neighbourhood of the interior radius carries their class), in
    /// increasing order; empty when the count was given or without a radius.
    pub without_interior: Vec<usize>,
    /// Class counts set aside because two of their classes that touch meet
    /// along a gradient ([`boundary_jump`] below [`MIN_BOUNDARY_JUMP`]), in
    /// increasing order; empty when the count was given or without a radius.
    pub gradual: Vec<usize>,
}

/// Clusters the cells of `maps` (each `gh x gw`, at least one) into `classes`
/// classes by k-means on the per-cell vectors of map values, as they are (the
/// caller chooses their units and so their weights). A constant map is left
/// out.
///
/// With `classes = None` the number is the eligible one in
/// `2..=MAX_AUTO_CLASSES` with the highest mean silhouette, a larger count
/// winning only by more than `margin` (0, or [`SILHOUETTE_MARGIN`]; a tie
/// goes to the smaller count). With `interior_radius` (half the patch window, in
/// grid cells), a count above 2 is eligible only when each of its classes has
/// at least [`MIN_INTERIOR_CELLS`] interior cells, and at least
/// [`MIN_INTERIOR_SHARE`] of its cells interior: cells whose every
/// neighbour within that radius (Chebyshev distance, inside the grid) is of
/// their class, and when every two classes that touch meet at a
/// [`boundary_jump`] of at least [`MIN_BOUNDARY_JUMP`]. Why: the map values of a
/// patch that straddles a boundary lie between the two phases', and the
/// straddling patches of a long boundary form a cluster of their own, as
/// compact as a phase, that the silhouette rewards; but they lie in a band
/// about a window wide along the boundary, so no cell of theirs is half a
/// window from both phases. A phase narrower than about a window cannot be
/// told from such a band (its patches all hold a neighbour too) and is not
/// counted. The interior, not the margin, is what keeps such a band from
/// being counted. Deterministic for a given `seed`.
///
/// # Errors
/// [`ImagingError::EmptyImage`] without maps or cells,
/// [`ImagingError::ShapeMismatch`] when the maps differ in shape,
/// [`ImagingError::InvalidParameter`] for `classes` below 2 or a `margin`
/// that is negative or not finite, and the errors of [`kmeans`].
pub fn cluster_maps(
    maps: &[ArrayView2<'_, f32>],
    classes: Option<usize>,
    interior_radius: Option<usize>,
    margin: f64,
    seed: u64,
) -> Result<Clustered> {
    let first = maps
        .first()
        .ok_or(ImagingError::EmptyImage { rows: 0, cols: 0 })?;
    let (gh, gw) = first.dim();
    if gh * gw == 0 {
        return Err(ImagingError::EmptyImage { rows: gh, cols: gw });
    }
    check_shapes(maps, (gh, gw), "maps to cluster")?;
    if let Some(k) = classes
        && k < 2
    {
        return Err(ImagingError::InvalidParameter {
            name: "classes",
            value: k.to_string(),
            rule: "at least 2",
        });
    }
    if !(margin.is_finite() && margin >= 0.0) {
        return Err(ImagingError::InvalidParameter {
            name: "margin",
            value: margin.to_string(),
            rule: "finite and at least 0",
        });
    }
    let n = gh * gw;
    let columns: Vec<Vec<f64>> = maps
        .iter()
        .map(|m| m.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>())
        .filter(|v| {
            let (lo, hi) = v
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
                    (lo.min(x), hi.max(x))
                });
            hi - lo > 0.0
        })
        .collect();
    if columns.is_empty() {
        return Ok(Clustered {
            labels: Array2::zeros((gh, gw)),
            classes: 1,
            chosen: false,
            silhouette: 0.0,
            without_interior: Vec::new(),
            gradual: Vec::new(),
        });
    }
    let d = columns.len();
    let x = Array2::from_shape_fn((n, d), |(i, j)| columns[j][i]);
    let stride = n.div_ceil(SILHOUETTE_SAMPLES).max(1);
    let sample: Vec<usize> = (0..n).step_by(stride).collect();
    // One clustering: its labels, its mean silhouette, and whether every
    // class has an interior.
    let fit = |k: usize| -> Result<(Vec<usize>, f64, bool)> {
        let km = kmeans(x.view(), k.min(n), N_INIT, seed)?;
        let s = mean_silhouette(&x, &km.labels, &sample);
        let wide = interior_radius.is_none_or(|radius| {
            let mut interior = vec![0usize; k.min(n)];
            let mut size = vec![0usize; k.min(n)];
            for (&l, inside) in km
                .labels
                .iter()
                .zip(interior_mask(&km.labels, (gh, gw), radius))
            {
                interior[l] += usize::from(inside);
                size[l] += 1;
            }
            interior.iter().zip(&size).all(|(&c, &s)| {
                c >= MIN_INTERIOR_CELLS && c as f64 >= MIN_INTERIOR_SHARE * s as f64
            })
        });
        Ok((km.labels, s, wide))
    };
    // Whether two touching classes of a clustering meet along a gradient
    // (checked only for an automatic count above 2 with interiors).
    let gradient = |labels: &[usize]| {
        interior_radius.is_some_and(|radius| {
            boundary_jump(x.view(), labels, (gh, gw), radius).is_some_and(|j| j < MIN_BOUNDARY_JUMP)
        })
    };
    let mut without_interior = Vec::new();
    let mut gradual = Vec::new();
    let (k, (labels, silhouette, _), chosen) = match classes {
        Some(k) => (k.min(n), fit(k)?, false),
        None => {
            let mut best = (2, fit(2)?);
            for k in 3..=MAX_AUTO_CLASSES.min(n) {
                let f = fit(k)?;
                if !f.2 {
                    without_interior.push(k);
                } else if gradient(&f.0) {
                    gradual.push(k);
                } else if f.1 > best.1.1 + margin {
                    best = (k, f);
                }
            }
            (best.0, best.1, true)
        }
    };
    let labels = Array2::from_shape_fn((gh, gw), |(r, c)| labels[r * gw + c] as i32);
    Ok(Clustered {
        labels,
        classes: k,
        chosen,
        silhouette,
        without_interior,
        gradual,
    })
}

/// The smallest jump at a boundary between two classes of `labels` (on a
/// `gh x gw` grid, row-major, `0..k`) that touch, over the cell vectors `x`
/// (`gh gw x d`); `None` when no touching pair has [`MIN_JUMP_CELLS`] cells
/// to fit on each side.
///
/// For classes `a` and `b` with centroids `c_a`, `c_b`, each cell's position
/// between them is `t = (x - c_a) . (c_b - c_a) / |c_b - c_a|^2` (0 at `c_a`,
/// 1 at `c_b`). On each side, the cells at Chebyshev distance `radius + 1`
/// to `3 radius + 1` from the other class (beyond the patches that straddle
/// the boundary, within two more half windows) get a least-squares line of
/// `t` against that distance, and the line's value at distance 0 is where
/// the side's values lead at the boundary. The jump is `b`'s minus `a`'s:
/// about 1 where two flat phases meet (a step the size of the centroid gap),
/// about 0 where one map drifting smoothly was cut in two (both sides lead to
/// the same value at the cut). Written here: a regression on a distance
/// transform, no crate for it.
#[must_use]
pub fn boundary_jump(
    x: ArrayView2<'_, f64>,
    labels: &[usize],
    (gh, gw): (usize, usize),
    radius: usize,
) -> Option<f64> {
    let k = labels.iter().copied().max().map_or(0, |m| m + 1);
    let d = x.ncols();
    if k < 2 || labels.len() != gh * gw || x.nrows() != labels.len() {
        return None;
    }
    let mut centroids = vec![vec![0.0f64; d]; k];
    let mut counts = vec![0usize; k];
    for (row, &l) in x.rows().into_iter().zip(labels) {
        counts[l] += 1;
        for (c, &v) in centroids[l].iter_mut().zip(row.iter()) {
            *c += v;
        }
    }
    for (c, &n) in centroids.iter_mut().zip(&counts) {
        c.iter_mut().for_each(|v| *v /= n.max(1) as f64);
    }
    let dist: Vec<Vec<usize>> = (0..k)
        .map(|c| chessboard_distance(labels, (gh, gw), c))
        .collect();
    let (near, far) = (radius + 1, 3 * radius + 1);
    let mut smallest: Option<f64> = None;
    for a in 0..k {
        for b in a + 1..k {
            let touch = labels
                .iter()
                .zip(&dist[b])
                .any(|(&l, &db)| l == a && db == 1);
            let u: Vec<f64> = centroids[b]
                .iter()
                .zip(&centroids[a])
                .map(|(p, q)| p - q)
                .collect();
            let uu: f64 = u.iter().map(|v| v * v).sum();
            if !touch || uu <= 0.0 {
                continue;
            }
            // The value at the boundary of the line fitted to one side.
            let lead = |side: usize, other: usize| -> Option<f64> {
                let (mut n, mut sx, mut st, mut sxx, mut sxt) = (0usize, 0.0, 0.0, 0.0, 0.0);
                for (i, (&l, &dd)) in labels.iter().zip(&dist[other]).enumerate() {
                    if l != side || dd < near || dd > far {
                        continue;
                    }
                    let t = x
                        .row(i)
                        .iter()
                        .zip(&centroids[a])
                        .zip(&u)
                        .map(|((v, c), w)| (v - c) * w)
                        .sum::<f64>()
                        / uu;
                    let s = dd as f64;
                    n += 1;
                    sx += s;
                    st += t;
                    sxx += s * s;
                    sxt += s * t;
                }
                if n < MIN_JUMP_CELLS {
                    return None;
                }
                let nf = n as f64;
                let var = sxx - sx * sx / nf;
                if var <= 1e-12 {
                    // One distance only: no slope to fit, the mean leads.
                    return Some(st / nf);
                }
                let slope = (sxt - sx * st / nf) / var;
                Some(st / nf - slope * sx / nf)
            };
            if let (Some(la), Some(lb)) = (lead(a, b), lead(b, a)) {
                let jump = lb - la;
                smallest = Some(smallest.map_or(jump, |s: f64| s.min(jump)));
            }
        }
    }
    smallest
}

/// Chebyshev (chessboard) distance of every cell of a `gh x gw` grid to the
/// nearest cell labelled `class` (`usize::MAX` without one): the two-pass
/// chamfer transform with unit steps to the 8 neighbours, exact for this
/// metric (Rosenfeld & Pfaltz 1966, "Sequential operations in digital
/// picture processing", J. ACM 13(4)).
fn chessboard_distance(labels: &[usize], (gh, gw): (usize, usize), class: usize) -> Vec<usize> {
    let inf = usize::MAX / 2;
    let mut d: Vec<usize> = labels
        .iter()
        .map(|&l| if l == class { 0 } else { inf })
        .collect();
    for r in 0..gh {
        for c in 0..gw {
            let mut v = d[r * gw + c];
            if c > 0 {
                v = v.min(d[r * gw + c - 1] + 1);
            }
            if r > 0 {
                for cc in c.saturating_sub(1)..(c + 2).min(gw) {
                    v = v.min(d[(r - 1) * gw + cc] + 1);
                }
            }
            d[r * gw + c] = v;
        }
    }
    for r in (0..gh).rev() {
        for c in (0..gw).rev() {
            let mut v = d[r * gw + c];
            if c + 1 < gw {
                v = v.min(d[r * gw + c + 1] + 1);
            }
            if r + 1 < gh {
                for cc in c.saturating_sub(1)..(c + 2).min(gw) {
                    v = v.min(d[(r + 1) * gw + cc] + 1);
                }
            }
            d[r * gw + c] = v;
        }
    }
    d.into_iter()
        .map(|v| if v >= inf { usize::MAX } else { v })
        .collect()
}

/// Times [`refine_by_interiors`] re-centres the classes at most.
pub const INTERIOR_ITERATIONS: usize = 5;
/// Fewest interior cells from which [`refine_by_interiors`] takes a class's
/// centroid; a class with fewer keeps the mean over all its cells.
pub const MIN_INTERIOR_CELLS: usize = 5;

/// `labels` (classes `0..k` on the grid of `maps`) re-centred on the classes'
/// interiors: each class's centroid is the mean of the map values over its
/// interior cells, those whose every neighbour within `radius` cells
/// (Chebyshev distance, inside the grid) carries the same label; every cell
/// then takes the class of the nearest centroid (Euclidean), until the labels
/// settle or [`INTERIOR_ITERATIONS`] passes. The classes are renumbered as
/// k-means numbers them: 0 the largest, ties by the first cell.
///
/// Why: k-means puts a centroid at the mean of all the cells of its class,
/// boundary cells included. A patch that straddles a boundary holds both
/// phases, and its map values lie between theirs. The smaller a region, the
/// larger the share of such cells in its class, so its centroid moves towards
/// the other class, the midpoint between the centroids follows, and the small
/// region grows by about a grid cell along its whole boundary. An interior at
/// least half a window from every other class holds no straddling patch.
///
/// A class with fewer than [`MIN_INTERIOR_CELLS`] interior cells uses all its
/// cells. A pass that would leave a class empty is not taken. The
/// nearest-centroid step and the numbering are k-means' own.
///
/// # Errors
/// [`ImagingError::EmptyImage`] without maps or cells,
/// [`ImagingError::ShapeMismatch`] when a map or `labels` differs in shape,
/// and [`ImagingError::InvalidParameter`] (`labels`) for a negative label.
pub fn refine_by_interiors(
    maps: &[ArrayView2<'_, f32>],
    labels: ArrayView2<'_, i32>,
    radius: usize,
) -> Result<Array2<i32>> {
    let (gh, gw) = labels.dim();
    if maps.is_empty() || gh * gw == 0 {
        return Err(ImagingError::EmptyImage { rows: gh, cols: gw });
    }
    check_shapes(maps, (gh, gw), "maps and labels to refine")?;
    let mut current: Vec<usize> = labels
        .iter()
        .map(|&l| usize::try_from(l))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| ImagingError::InvalidParameter {
            name: "labels",
            value: labels.iter().min().copied().unwrap_or(0).to_string(),
            rule: "class numbers from 0",
        })?;
    let k = current.iter().max().map_or(0, |&m| m + 1);
    if k < 2 {
        return Ok(labels.to_owned());
    }
    let x = Array2::from_shape_fn((gh * gw, maps.len()), |(i, j)| {
        f64::from(maps[j][[i / gw, i % gw]])
    });
    for _ in 0..INTERIOR_ITERATIONS {
        let centroids = interior_centroids(&x, &current, k, (gh, gw), radius);
        let (next, _) = assign(x.view(), &centroids);
        let mut counts = vec![0usize; k];
        for &l in &next {
            counts[l] += 1;
        }
        if counts.contains(&0) || next == current {
            break;
        }
        current = next;
    }
    let new_of_old = canonical_order(&current, k);
    Ok(Array2::from_shape_fn((gh, gw), |(r, c)| {
        new_of_old[current[r * gw + c]] as i32
    }))
}

/// The centroid (row `l`, over the columns of `x`) of each of the `k` classes
/// of `labels` on a `gh x gw` grid, taken over its interior cells as
/// [`refine_by_interiors`] says, or over all its cells when it has fewer
/// than [`MIN_INTERIOR_CELLS`] interior ones.
fn interior_centroids(
    x: &Array2<f64>,
    labels: &[usize],
    k: usize,
    (gh, gw): (usize, usize),
    radius: usize,
) -> Array2<f64> {
    let d = x.ncols();
    let mut sum_in = Array2::<f64>::zeros((k, d));
    let mut sum_all = Array2::<f64>::zeros((k, d));
    let mut n_in = vec![0usize; k];
    let mut n_all = vec![0usize; k];
    let mask = interior_mask(labels, (gh, gw), radius);
    for (i, (&l, interior)) in labels.iter().zip(mask).enumerate() {
        sum_all.row_mut(l).scaled_add(1.0, &x.row(i));
        n_all[l] += 1;
        if interior {
            sum_in.row_mut(l).scaled_add(1.0, &x.row(i));
            n_in[l] += 1;
        }
    }
    let mut centroids = Array2::<f64>::zeros((k, d));
    for l in 0..k {
        let (sum, n) = if n_in[l] >= MIN_INTERIOR_CELLS {
            (sum_in.row(l), n_in[l])
        } else {
            (sum_all.row(l), n_all[l])
        };
        centroids.row_mut(l).assign(&(&sum / n.max(1) as f64));
    }
    centroids
}

/// Whether each cell of `labels` (row-major on a `gh x gw` grid) is interior:
/// every cell within Chebyshev distance `radius` of it, inside the grid,
/// carries its label. The erosion by a square is written here (a grid of at
/// most a few ten thousand cells).
fn interior_mask(labels: &[usize], (gh, gw): (usize, usize), radius: usize) -> Vec<bool> {
    labels
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            let (r, c) = (i / gw, i % gw);
            let (r0, r1) = (r.saturating_sub(radius), (r + radius + 1).min(gh));
            let (c0, c1) = (c.saturating_sub(radius), (c + radius + 1).min(gw));
            (r0..r1).all(|a| (c0..c1).all(|b| labels[a * gw + b] == l))
        })
        .collect()
}

/// Checks that every map is `gh x gw`.
fn check_shapes(
    maps: &[ArrayView2<'_, f32>],
    (gh, gw): (usize, usize),
    what: &'static str,
) -> Result<()> {
    for m in maps {
        if m.dim() != (gh, gw) {
            return Err(ImagingError::ShapeMismatch {
                what,
                expected: vec![gh, gw],
                found: vec![m.nrows(), m.ncols()],
            });
        }
    }
    Ok(())
}

/// Mean silhouette over the `sample` rows of `x` (Euclidean distances, only
/// sampled points as neighbours); a point alone in its class scores 0.
fn mean_silhouette(x: &Array2<f64>, labels: &[usize], sample: &[usize]) -> f64 {
    let k = labels.iter().copied().max().map_or(0, |m| m + 1);
    if k < 2 || sample.is_empty() {
        return 0.0;
    }
    let mut total = 0.0;
    let mut sums = vec![0.0f64; k];
    let mut counts = vec![0usize; k];
    for &i in sample {
        sums.iter_mut().for_each(|s| *s = 0.0);
        counts.iter_mut().for_each(|c| *c = 0);
        let xi = x.row(i);
        for &j in sample {
            if j == i {
                continue;
            }
            let dist = xi
                .iter()
                .zip(x.row(j).iter())
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f64>()
                .sqrt();
            sums[labels[j]] += dist;
            counts[labels[j]] += 1;
        }
        let own = labels[i];
        if counts[own] == 0 {
            continue;
        }
        let a = sums[own] / counts[own] as f64;
        let b = (0..k)
            .filter(|&c| c != own && counts[c] > 0)
            .map(|c| sums[c] / counts[c] as f64)
            .fold(f64::INFINITY, f64::min);
        if b.is_finite() {
            let m = a.max(b);
            if m > 0.0 {
                total += (b - a) / m;
            }
        }
    }
    total / sample.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn separability_of_two_flat_regions_is_one() {
        let v = array![[0.0f32, 0.0, 1.0, 1.0]];
        let l = array![[0, 0, 1, 1]];
        assert!((separability(v.view(), l.view()).unwrap() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn separability_by_hand() {
        // Values 0, 1, 2, 3 split {0, 1} | {2, 3}: class means 0.5 and 2.5,
        // overall 1.5: sigma_B^2 = 1; sigma_T^2 = (2.25 + 0.25) * 2 / 4 = 1.25.
        let v = array![[0.0f32, 1.0, 2.0, 3.0]];
        let l = array![[0, 0, 1, 1]];
        assert!((separability(v.view(), l.view()).unwrap() - 0.8).abs() < 1e-12);
        // One class, or a constant map: 0.
        let one = array![[0, 0, 0, 0]];
        assert_eq!(separability(v.view(), one.view()).unwrap(), 0.0);
        let flat = array![[2.0f32, 2.0, 2.0, 2.0]];
        assert_eq!(separability(flat.view(), l.view()).unwrap(), 0.0);
    }

    #[test]
    fn silhouette_by_hand() {
        // Points 0, 1, 10, 11 in two classes. Point 0: a = 1, b = (10 + 11) / 2
        // = 10.5, s = 9.5 / 10.5; point 1: a = 1, b = (9 + 10) / 2 = 9.5,
        // s = 8.5 / 9.5; points 10 and 11 mirror them.
        let x = Array2::from_shape_vec((4, 1), vec![0.0, 1.0, 10.0, 11.0]).unwrap();
        let s = mean_silhouette(&x, &[0, 0, 1, 1], &[0, 1, 2, 3]);
        let expected = (9.5 / 10.5 + 8.5 / 9.5) / 2.0;
        assert!((s - expected).abs() < 1e-12, "{s} vs {expected}");
        // One class: 0.
        assert_eq!(mean_silhouette(&x, &[0, 0, 0, 0], &[0, 1, 2, 3]), 0.0);
    }

    #[test]
    fn separability_checks_shapes() {
        let v = array![[0.0f32, 1.0]];
        let l = array![[0], [1]];
        assert!(matches!(
            separability(v.view(), l.view()),
            Err(ImagingError::ShapeMismatch { .. })
        ));
    }

    #[test]
    fn interiors_move_a_straddling_cell_to_the_phase_it_mostly_holds() {
        // One row of 20 cells: a large phase at 0 (cells 0 to 12), a small
        // one at 10 (cells 14 to 19), and cell 13 straddling them, 48 % of
        // the small phase (4.8). K-means' centroids are 0 and
        // (4.8 + 6 * 10) / 7 = 9.26, midpoint 4.63: cell 13 goes to the small
        // phase. The interiors (radius 1) leave cell 13 and its neighbours
        // out: centroids 0 and 10, midpoint 5, so cell 13 joins the large one.
        let m = Array2::from_shape_fn((1, 20), |(_, c)| match c {
            0..=12 => 0.0f32,
            13 => 4.8,
            _ => 10.0,
        });
        let kmeans_labels = Array2::from_shape_fn((1, 20), |(_, c)| i32::from(c >= 13));
        let refined = refine_by_interiors(&[m.view()], kmeans_labels.view(), 1).unwrap();
        let expected = Array2::from_shape_fn((1, 20), |(_, c)| i32::from(c >= 14));
        assert_eq!(refined, expected);
        // The classes are renumbered, 0 the largest.
        let swapped = kmeans_labels.mapv(|l| 1 - l);
        assert_eq!(
            refine_by_interiors(&[m.view()], swapped.view(), 1).unwrap(),
            expected
        );
    }

    #[test]
    fn interiors_leave_one_class_and_check_shapes() {
        let m = bands(2);
        let one = Array2::<i32>::zeros((16, 16));
        assert_eq!(
            refine_by_interiors(&[m.view()], one.view(), 2).unwrap(),
            one
        );
        let small = Array2::<i32>::zeros((4, 4));
        assert!(matches!(
            refine_by_interiors(&[m.view()], small.view(), 2),
            Err(ImagingError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            refine_by_interiors(&[], one.view(), 2),
            Err(ImagingError::EmptyImage { .. })
        ));
        let negative = one.mapv(|_| -1);
        assert!(matches!(
            refine_by_interiors(&[m.view()], negative.view(), 2),
            Err(ImagingError::InvalidParameter { name: "labels", .. })
        ));
    }

    /// A `16 x 16` map with `k` vertical bands of values `0, 10, 20, ...` plus
    /// a small deterministic ripple.
    fn bands(k: usize) -> Array2<f32> {
        Array2::from_shape_fn((16, 16), |(r, c)| {
            (c * k / 16) as f32 * 10.0 + 0.3 * ((r * 7 + c * 3) % 5) as f32
        })
    }

    #[test]
    fn clustering_recovers_bands_and_the_silhouette_counts_them() {
        for k in [2, 3] {
            let m = bands(k);
            let given = cluster_maps(&[m.view()], Some(k), None, 0.0, 1).unwrap();
            let chosen = cluster_maps(&[m.view()], None, None, 0.0, 1).unwrap();
            assert!(chosen.chosen);
            assert_eq!(chosen.classes, k);
            for c in [given, chosen] {
                // Cells of one band share a label; different bands differ.
                for r in 0..16 {
                    for col in 0..16 {
                        let band = col * k / 16;
                        let other = (0..16).find(|&x| x * k / 16 == band).unwrap_or(0);
                        assert_eq!(c.labels[[r, col]], c.labels[[0, other]]);
                    }
                }
                let distinct: std::collections::BTreeSet<i32> = c.labels.iter().copied().collect();
                assert_eq!(distinct.len(), k);
            }
        }
    }

    /// A `16 x 24` map: a phase at 0 (columns before `from`), a phase at 10
    /// (columns from `to`), and between them a band of value `mid` (plus the
    /// ripple of [`bands`], from 0 to 1.2).
    fn phases_and_a_band(from: usize, to: usize, mid: f32) -> Array2<f32> {
        Array2::from_shape_fn((16, 24), |(r, c)| {
            let v = if c < from {
                0.0
            } else if c < to {
                mid
            } else {
                10.0
            };
            v + 0.3 * ((r * 7 + c * 3) % 5) as f32
        })
    }

    #[test]
    fn a_class_without_an_interior_is_not_counted() {
        // A band 3 columns wide (8 to 10): at radius 2 no cell of it has all
        // its neighbours within 2 columns in the band (that takes 5 columns).
        // The silhouette alone counts it as a third class: its values form a
        // cluster as compact as the phases'.
        let narrow = phases_and_a_band(8, 11, 5.0);
        let alone = cluster_maps(&[narrow.view()], None, None, 0.0, 1).unwrap();
        assert_eq!(alone.classes, 3);
        assert!(alone.without_interior.is_empty());
        let ruled = cluster_maps(&[narrow.view()], None, Some(2), 0.0, 1).unwrap();
        assert_eq!(ruled.classes, 2);
        assert_eq!(ruled.without_interior, vec![3, 4]);
        // A band 8 columns wide (8 to 15) has 4 interior columns of 16 cells:
        // a third phase.
        let wide = phases_and_a_band(8, 16, 5.0);
        let counted = cluster_maps(&[wide.view()], None, Some(2), 0.0, 1).unwrap();
        assert_eq!(counted.classes, 3);
        assert_eq!(counted.without_interior, vec![4]);
        for (c, band) in [(8, 5.0), (15, 5.0), (16, 10.0), (7, 0.0)] {
            let same_as = |col: usize| counted.labels[[0, col]];
            let expected = match band {
                b if b < 1.0 => same_as(0),
                b if b > 9.0 => same_as(23),
                _ => same_as(12),
            };
            assert_eq!(counted.labels[[3, c]], expected, "column {c}");
        }
        // A given count is not checked.
        let given = cluster_maps(&[narrow.view()], Some(3), Some(2), 0.0, 1).unwrap();
        assert_eq!(given.classes, 3);
        assert!(!given.chosen && given.without_interior.is_empty());
    }

    #[test]
    fn a_third_phase_with_an_interior_is_counted_on_a_small_gain() {
        // Bands 8 columns wide at 0, 2.8 and 10: the first two are close, so
        // merging them (2 classes) is nearly as compact as keeping them apart.
        // By hand (every cell, |a - b| distances): silhouette 0.859 with the
        // three bands, 0.849 with the first two merged.
        let m = phases_and_a_band(8, 16, 2.8);
        let two = cluster_maps(&[m.view()], Some(2), None, 0.0, 1).unwrap();
        let three = cluster_maps(&[m.view()], Some(3), None, 0.0, 1).unwrap();
        assert!((two.silhouette - 0.849).abs() < 1e-3, "{}", two.silhouette);
        assert!(
            (three.silhouette - 0.859).abs() < 1e-3,
            "{}",
            three.silhouette
        );
        // Each band has interior cells at radius 2, so 3 is eligible. With
        // no margin it wins on the higher silhouette however small the gain;
        // with SILHOUETTE_MARGIN (0.02 > 0.010) the two classes stay.
        let chosen = cluster_maps(&[m.view()], None, Some(2), 0.0, 1).unwrap();
        assert_eq!(chosen.classes, 3);
        assert_eq!(chosen.labels, three.labels);
        let held = cluster_maps(&[m.view()], None, Some(2), SILHOUETTE_MARGIN, 1).unwrap();
        assert_eq!(held.classes, 2);
        assert!(!held.without_interior.contains(&3));
    }

    #[test]
    fn a_band_with_interior_only_at_the_edge_is_not_counted() {
        // 32 x 24: a phase at 0 on the left, one at 10 on the right, and
        // between them a straddling band at 5, 3 columns wide (8 to 10),
        // that widens to 8 columns (6 to 13) over its first 4 rows, against
        // the grid's top edge. There the clipped neighbourhood of radius 2
        // of rows 0 and 1, columns 8 to 11, holds only band: 8 interior cells
        // (at least MIN_INTERIOR_CELLS) of 4 * 8 + 28 * 3 = 116, a share of
        // 0.069.
        let m = Array2::from_shape_fn((32, 24), |(r, c)| {
            let (lo, hi) = if r < 4 { (6, 14) } else { (8, 11) };
            let v = if c < lo {
                0.0
            } else if c < hi {
                5.0
            } else {
                10.0
            };
            v + 0.3 * ((r * 7 + c * 3) % 5) as f32
        });
        let given = cluster_maps(&[m.view()], Some(3), None, 0.0, 1).unwrap();
        let band = given.labels[[10, 9]];
        let labels: Vec<usize> = given.labels.iter().map(|&l| l as usize).collect();
        let mask = interior_mask(&labels, (32, 24), 2);
        let cells = labels.iter().filter(|&&l| l == band as usize).count();
        let inside = labels
            .iter()
            .zip(&mask)
            .filter(|&(&l, &i)| i && l == band as usize)
            .count();
        assert_eq!((inside, cells), (8, 116));
        assert!(inside >= MIN_INTERIOR_CELLS);
        assert!((inside as f64) < MIN_INTERIOR_SHARE * cells as f64);
        // The silhouette alone counts the band; its small share of interior
        // cells sets the count aside.
        let alone = cluster_maps(&[m.view()], None, None, 0.0, 1).unwrap();
        assert_eq!(alone.classes, 3);
        let ruled = cluster_maps(&[m.view()], None, Some(2), 0.0, 1).unwrap();
        assert_eq!(ruled.classes, 2);
        assert!(ruled.without_interior.contains(&3));
    }

    #[test]
    fn constant_maps_give_one_class_and_bad_input_errors() {
        let flat = Array2::<f32>::zeros((4, 4));
        let c = cluster_maps(&[flat.view()], None, None, 0.0, 0).unwrap();
        assert_eq!(c.classes, 1);
        assert!(c.labels.iter().all(|&l| l == 0));
        assert!(matches!(
            cluster_maps(&[], None, None, 0.0, 0),
            Err(ImagingError::EmptyImage { .. })
        ));
        let other = Array2::<f32>::zeros((3, 4));
        assert!(matches!(
            cluster_maps(&[flat.view(), other.view()], None, None, 0.0, 0),
            Err(ImagingError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            cluster_maps(&[flat.view()], Some(1), None, 0.0, 0),
            Err(ImagingError::InvalidParameter {
                name: "classes",
                ..
            })
        ));
        for margin in [-0.01, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                cluster_maps(&[flat.view()], None, None, margin, 0),
                Err(ImagingError::InvalidParameter { name: "margin", .. })
            ));
        }
    }

    #[test]
    fn chessboard_distance_by_hand() {
        // 3 x 4 grid, class 1 only at (0, 0) and (2, 3).
        let labels = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let d = chessboard_distance(&labels, (3, 4), 1);
        assert_eq!(d, vec![0, 1, 2, 2, 1, 1, 1, 1, 2, 2, 1, 0]);
        assert!(
            chessboard_distance(&labels, (3, 4), 2)
                .iter()
                .all(|&v| v == usize::MAX)
        );
    }

    /// Labels of a `rows x cols` grid: 0 left of column `cut`, 1 from it.
    fn halves(rows: usize, cols: usize, cut: usize) -> Vec<usize> {
        (0..rows * cols)
            .map(|i| usize::from(i % cols >= cut))
            .collect()
    }

    #[test]
    fn jump_is_one_at_a_step_and_slightly_negative_on_a_ramp() {
        let (rows, cols) = (6, 16);
        let labels = halves(rows, cols, 8);
        // Two flat phases at 0 and 10: every cell sits on its centroid.
        let step = Array2::from_shape_fn(
            (rows * cols, 1),
            |(i, _)| {
                if i % cols >= 8 { 10.0 } else { 0.0 }
            },
        );
        let j = boundary_jump(step.view(), &labels, (rows, cols), 2).unwrap();
        assert!((j - 1.0).abs() < 1e-12, "{j}");
        // A ramp v = column, cut at 8: centroids 3.5 and 11.5, t = (v - 3.5) / 8.
        // Side 0 at distance s from side 1 is column 8 - s: its line reaches
        // t(8) = 4.5 / 8 at s = 0; side 1 at distance s is column 7 + s,
        // reaching t(7) = 3.5 / 8. The jump is -1 / 8.
        let ramp = Array2::from_shape_fn((rows * cols, 1), |(i, _)| (i % cols) as f64);
        let j = boundary_jump(ramp.view(), &labels, (rows, cols), 2).unwrap();
        assert!((j + 0.125).abs() < 1e-12, "{j}");
        // Radius 4 needs cells at distance 5 to 13: only 4 columns on each
        // side are at 5 or more, 24 cells, still enough; at radius 8 none.
        assert!(boundary_jump(ramp.view(), &labels, (rows, cols), 4).is_some());
        assert!(boundary_jump(ramp.view(), &labels, (rows, cols), 8).is_none());
        // One class: nothing to measure.
        assert!(boundary_jump(ramp.view(), &vec![0; rows * cols], (rows, cols), 2).is_none());
    }

    #[test]
    fn phases_cut_along_a_drift_are_not_counted() {
        // Two phases side by side (map 1: 0 and 1.5), and a drift across the
        // whole image (map 2: a cosine down the rows, amplitude 1, one
        // period). The silhouette alone splits each phase where the drift is
        // high from where it is low (by scikit-learn on these cells: 0.547
        // with 2 classes, 0.687 with 4); every class has an interior, but
        // the bands meet along the drift, with no step.
        let (rows, cols) = (40, 40);
        let phase = Array2::from_shape_fn((rows, cols), |(_, c)| if c < 20 { 0.0f32 } else { 1.5 });
        let drift = Array2::from_shape_fn((rows, cols), |(r, _)| {
            (2.0 * std::f32::consts::PI * r as f32 / rows as f32).cos()
        });
        let maps = [phase.view(), drift.view()];
        let alone = cluster_maps(&maps, None, None, 0.0, 1).unwrap();
        assert!(alone.classes > 2, "{}", alone.classes);
        let ruled = cluster_maps(&maps, None, Some(2), 0.0, 1).unwrap();
        assert_eq!(ruled.classes, 2);
        assert!(!ruled.gradual.is_empty() && ruled.without_interior.is_empty());
        assert!(
            ruled
                .labels
                .column(0)
                .iter()
                .all(|&l| l == ruled.labels[[0, 0]])
        );
        assert!(
            ruled
                .labels
                .column(39)
                .iter()
                .all(|&l| l != ruled.labels[[0, 0]])
        );
    }
}
