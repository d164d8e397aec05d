//! Principal component analysis, k-means and Gaussian mixtures: the reduction and
//! clustering steps of the classical sliding-window baseline (see
//! [`crate::fft_features`]).
//!
//! Data matrices are `samples x features` (one sample per row). Everything is
//! deterministic for a given `seed` (a `ChaCha8Rng` seeded with `seed_from_u64`) and
//! does not depend on the number of rayon threads: parallel loops compute each
//! sample independently, and parallel sums add fixed chunks in a fixed order.
//!
//! The three algorithms are written here rather than taken from `linfa`: its PCA
//! and GMM need `ndarray-linalg` (a LAPACK/BLAS binding) or pull a large dependency
//! tree, for a few hundred lines of small dense algebra (the mixture models work
//! on at most [`GMM_MAX_FEATURES`] features, after PCA).

use crate::error::check_data;
use crate::{ImagingError, Real, Result};
use ndarray::{Array1, Array2, Array3, ArrayView1, ArrayView2, Axis};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::ops::RangeInclusive;

/// Largest number of subspace iterations of [`pca`].
pub const PCA_MAX_ITER: usize = 100;
/// [`pca`] stops when no leading Ritz vector moves by more than this (Euclidean
/// norm of the change of a unit vector) between two iterations.
pub const PCA_TOL: f64 = 1e-10;
/// Extra directions carried by the subspace iteration of [`pca`] beyond the `k`
/// requested: convergence of component `j` goes as `(lambda_{k+p+1} /
/// lambda_j)^iterations` (Saad, *Numerical Methods for Large Eigenvalue Problems*,
/// 2nd ed. 2011, ch. 5), so oversampling speeds it up.
pub const PCA_OVERSAMPLE: usize = 10;
/// Largest number of Lloyd iterations of one [`kmeans`] run.
pub const KMEANS_MAX_ITER: usize = 300;
/// Largest number of EM iterations of [`gmm`].
pub const GMM_MAX_ITER: usize = 200;
/// [`gmm`] stops when the mean log-likelihood per sample changes by less than this.
pub const GMM_TOL: f64 = 1e-6;
/// Covariance regulariser of [`gmm`], relative to the data's mean variance.
pub const GMM_REG_COVAR: f64 = 1e-6;
/// Largest number of features [`gmm`] accepts (full covariances by hand-written
/// Cholesky factorisations).
pub const GMM_MAX_FEATURES: usize = 8;
/// Number of k-means runs that initialise [`gmm`].
pub const GMM_KMEANS_INIT: usize = 3;
/// Rows per chunk of the parallel sums (at least; see [`chunk_len`]).
const MIN_CHUNK: usize = 256;

/// Rejects `k = 0`.
fn check_k(k: usize) -> Result<()> {
    if k == 0 {
        return Err(ImagingError::InvalidParameter {
            name: "k",
            value: k.to_string(),
            rule: "must be at least 1",
        });
    }
    Ok(())
}

/// Rows per chunk of a parallel sum over `n` rows: at least [`MIN_CHUNK`], at most
/// 64 chunks. Depends only on `n`, so sums do not depend on the thread count.
fn chunk_len(n: usize) -> usize {
    MIN_CHUNK.max(n.div_ceil(64))
}

/// Squared Euclidean distance.
fn sq_dist(a: ArrayView1<'_, f64>, b: ArrayView1<'_, f64>) -> f64 {
    a.iter().zip(b).map(|(&u, &v)| (u - v) * (u - v)).sum()
}

// ---------------------------------------------------------------------------------
// PCA
// ---------------------------------------------------------------------------------

/// A principal component analysis (Pearson 1901; Hotelling 1933) of a data matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Pca {
    /// Mean of each feature, length `d`.
    pub mean: Array1<f64>,
    /// Principal axes, `k x d`, orthonormal rows, in decreasing order of explained
    /// variance. Sign convention: the entry of largest magnitude of each row is
    /// positive (the first such entry on ties).
    pub components: Array2<f64>,
    /// Variance of the data along each component (eigenvalues of the sample
    /// covariance, divided by `n - 1` as `sklearn.decomposition.PCA`), length `k`.
    pub explained_variance: Array1<f64>,
    /// Total variance: the trace of the sample covariance (divided by `n - 1`).
    pub total_variance: f64,
}

impl Pca {
    /// The scores `(x - mean) components^T`, shape `n x k`.
    ///
    /// # Errors
    /// [`ImagingError::EmptyData`], [`ImagingError::NonFiniteData`], or
    /// [`ImagingError::ShapeMismatch`] if `x` does not have `d` columns.
    pub fn transform(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f64>> {
        check_data(x)?;
        let d = self.mean.len();
        if x.ncols() != d {
            return Err(ImagingError::ShapeMismatch {
                what: "PCA input features vs fitted features",
                expected: vec![x.nrows(), d],
                found: x.shape().to_vec(),
            });
        }
        Ok(centred_times(
            x,
            &self.mean,
            &self.components.t().to_owned(),
        ))
    }

    /// Fraction of the total variance carried by each component (all zeros when the
    /// data has no variance).
    #[must_use]
    pub fn explained_variance_ratio(&self) -> Array1<f64> {
        if self.total_variance > 0.0 {
            &self.explained_variance / self.total_variance
        } else {
            Array1::zeros(self.explained_variance.len())
        }
    }
}

/// The first `k` principal components of `x` (`n x d`, samples in rows), by
/// subspace iteration on the sample covariance `C = Xc^T Xc / (n - 1)` (`Xc` the
/// centred data) without forming `C`: each iteration computes `Z = Xc^T (Xc V) / (n -
/// 1)` for an orthonormal `d x p` block `V` (`p = min(d, k + PCA_OVERSAMPLE)`), takes
/// the Rayleigh-Ritz pairs of `V^T Z` (cyclic Jacobi on the `p x p` matrix), and
/// re-orthonormalises `Z` (modified Gram-Schmidt, applied twice). The start block is
/// uniform in `[-1, 1]` from `seed`. It stops after [`PCA_MAX_ITER`] iterations or
/// when the `k` leading Ritz vectors move less than [`PCA_TOL`]; components of
/// (nearly) equal variance are then an arbitrary orthonormal basis of their
/// eigenspace. Cost per iteration: `4 n d p` flops.
///
/// # Errors
/// [`ImagingError::EmptyData`], [`ImagingError::NonFiniteData`];
/// [`ImagingError::InvalidParameter`] if `k = 0`; [`ImagingError::TooManyComponents`]
/// if `k > d`; [`ImagingError::TooFewSamples`] if `k > n` or `n < 2`.
///
/// # Example
/// ```
/// use ndarray::array;
/// use phyvae_imaging::cluster::pca;
///
/// // Points on the line y = x: one component along (1, 1) / sqrt(2).
/// let x = array![[0.0_f32, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]];
/// let p = pca(x.view(), 1, 0)?;
/// let h = 0.5_f64.sqrt();
/// assert!((p.components[[0, 0]] - h).abs() < 1e-12 && (p.components[[0, 1]] - h).abs() < 1e-12);
/// // Scores along it: (i - 1.5) * sqrt(2); variance = 2 * 5 / 3.
/// assert!((p.explained_variance[0] - 10.0 / 3.0).abs() < 1e-12);
/// # Ok::<(), phyvae_imaging::ImagingError>(())
/// ```
pub fn pca(x: ArrayView2<'_, f32>, k: usize, seed: u64) -> Result<Pca> {
    check_data(x)?;
    check_k(k)?;
    let (n, d) = x.dim();
    if k > d {
        return Err(ImagingError::TooManyComponents { k, features: d });
    }
    if k > n || n < 2 {
        return Err(ImagingError::TooFewSamples {
            k,
            samples: n,
            what: "principal components (a covariance needs at least 2 samples)",
        });
    }
    #[allow(clippy::cast_precision_loss)]
    let nf = n as f64;
    let mean = column_means(x);
    let total_variance = centred_square_sums(x, &mean).sum() / (nf - 1.0);
    let p = d.min(k + PCA_OVERSAMPLE);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let start = Array2::from_shape_fn((d, p), |_| rng.random_range(-1.0..1.0));
    let mut v = orthonormalise(&start);
    let mut previous: Option<Array2<f64>> = None;
    let mut ritz_vectors = v.clone();
    let mut ritz_values = Array1::<f64>::zeros(p);
    for _ in 0..PCA_MAX_ITER {
        let w = centred_times(x, &mean, &v);
        let mut z = centred_transpose_times(x, &mean, &w);
        z.mapv_inplace(|e| e / (nf - 1.0));
        let mut h = v.t().dot(&z);
        let ht = h.t().to_owned();
        h = (&h + &ht) * 0.5;
        let (values, q) = symmetric_eigen(&h);
        ritz_vectors = v.dot(&q);
        ritz_values = values;
        let converged = previous.as_ref().is_some_and(|prev| {
            (0..k).all(|j| {
                let (a, b) = (ritz_vectors.column(j), prev.column(j));
                let sign = if a.dot(&b) < 0.0 { -1.0 } else { 1.0 };
                let change: f64 = a.iter().zip(b).map(|(&u, &w)| (u - sign * w).powi(2)).sum();
                change.sqrt() < PCA_TOL
            })
        });
        if converged {
            break;
        }
        previous = Some(ritz_vectors.clone());
        v = orthonormalise(&z.dot(&q));
    }
    let mut components = Array2::<f64>::zeros((k, d));
    for j in 0..k {
        let col = ritz_vectors.column(j);
        let (mut best, mut best_abs) = (0.0, -1.0);
        for &e in col {
            if e.abs() > best_abs {
                best_abs = e.abs();
                best = e;
            }
        }
        let sign = if best < 0.0 { -1.0 } else { 1.0 };
        components.row_mut(j).assign(&col.mapv(|e| sign * e));
    }
    let explained_variance = ritz_values
        .iter()
        .take(k)
        .map(|&l| l.max(0.0))
        .collect::<Array1<f64>>();
    Ok(Pca {
        mean,
        components,
        explained_variance,
        total_variance,
    })
}

/// Column means of `x` in `f64` (chunked sums, thread-count independent).
fn column_means<T: Real>(x: ArrayView2<'_, T>) -> Array1<f64> {
    let (n, d) = x.dim();
    let sums = chunked_sum(n, d, |rows, acc| {
        for i in rows {
            for (a, &v) in acc.iter_mut().zip(x.row(i)) {
                *a += v.f64();
            }
        }
    });
    #[allow(clippy::cast_precision_loss)]
    let nf = n as f64;
    Array1::from_vec(sums) / nf
}

/// Per-column sums of squared deviations from `mean`.
fn centred_square_sums<T: Real>(x: ArrayView2<'_, T>, mean: &Array1<f64>) -> Array1<f64> {
    let (n, d) = x.dim();
    Array1::from_vec(chunked_sum(n, d, |rows, acc| {
        for i in rows {
            for ((a, &v), &m) in acc.iter_mut().zip(x.row(i)).zip(mean) {
                let c = v.f64() - m;
                *a += c * c;
            }
        }
    }))
}

/// Sums a `len`-long vector over the rows `0..n`, in fixed chunks of
/// [`chunk_len`] rows computed in parallel and added in order.
fn chunked_sum(
    n: usize,
    len: usize,
    add_rows: impl Fn(std::ops::Range<usize>, &mut [f64]) + Sync,
) -> Vec<f64> {
    let chunk = chunk_len(n);
    let partials: Vec<Vec<f64>> = (0..n.div_ceil(chunk))
        .into_par_iter()
        .map(|c| {
            let mut acc = vec![0.0; len];
            add_rows(c * chunk..((c + 1) * chunk).min(n), &mut acc);
            acc
        })
        .collect();
    let mut total = vec![0.0; len];
    for part in &partials {
        for (t, &v) in total.iter_mut().zip(part) {
            *t += v;
        }
    }
    total
}

/// `(x - mean) m` for `x` of `n x d` and `m` of `d x p`: `n x p`, rows in parallel.
fn centred_times<T: Real>(
    x: ArrayView2<'_, T>,
    mean: &Array1<f64>,
    m: &Array2<f64>,
) -> Array2<f64> {
    let (n, d) = x.dim();
    let p = m.ncols();
    let mut out = vec![0.0; n * p];
    out.par_chunks_mut(p.max(1)).enumerate().for_each_init(
        || vec![0.0; d],
        |centred, (i, row)| {
            for ((c, &v), &mu) in centred.iter_mut().zip(x.row(i)).zip(mean) {
                *c = v.f64() - mu;
            }
            for (&c, m_row) in centred.iter().zip(m.rows()) {
                for (o, &e) in row.iter_mut().zip(m_row) {
                    *o += c * e;
                }
            }
        },
    );
    Array2::from_shape_vec((n, p), out).unwrap_or_else(|_| Array2::zeros((n, p)))
}

/// `(x - mean)^T w` for `x` of `n x d` and `w` of `n x p`: `d x p`.
fn centred_transpose_times<T: Real>(
    x: ArrayView2<'_, T>,
    mean: &Array1<f64>,
    w: &Array2<f64>,
) -> Array2<f64> {
    let (n, d) = x.dim();
    let p = w.ncols();
    let sums = chunked_sum(n, d * p, |rows, acc| {
        for i in rows {
            let w_row = w.row(i);
            for ((acc_row, &v), &mu) in acc.chunks_exact_mut(p).zip(x.row(i)).zip(mean) {
                let c = v.f64() - mu;
                for (a, &e) in acc_row.iter_mut().zip(w_row) {
                    *a += c * e;
                }
            }
        }
    });
    Array2::from_shape_vec((d, p), sums).unwrap_or_else(|_| Array2::zeros((d, p)))
}

/// Orthonormal columns spanning the columns of `z` (modified Gram-Schmidt, twice).
/// A column that is (numerically) in the span of the previous ones is replaced by
/// the first unit vector `e_m` that is not, so the result always has orthonormal
/// columns (`z` must have at most as many columns as rows).
fn orthonormalise(z: &Array2<f64>) -> Array2<f64> {
    let (d, p) = z.dim();
    let scale = z
        .columns()
        .into_iter()
        .map(|c| c.dot(&c).sqrt())
        .fold(0.0, f64::max);
    let mut q = Array2::<f64>::zeros((d, p));
    let project_out = |v: &mut Array1<f64>, q: &Array2<f64>, j: usize| {
        for _ in 0..2 {
            for i in 0..j {
                let qi = q.column(i);
                let r = qi.dot(v);
                v.scaled_add(-r, &qi);
            }
        }
    };
    for j in 0..p {
        let mut v = z.column(j).to_owned();
        project_out(&mut v, &q, j);
        let mut norm = v.dot(&v).sqrt();
        if norm <= 1e-12 * scale || norm == 0.0 {
            for m in 0..d {
                let mut e = Array1::<f64>::zeros(d);
                e[m] = 1.0;
                project_out(&mut e, &q, j);
                let en = e.dot(&e).sqrt();
                if en > 0.5 {
                    v = e;
                    norm = en;
                    break;
                }
            }
        }
        q.column_mut(j).assign(&(v / norm));
    }
    q
}

/// Eigen-decomposition of a small symmetric matrix by cyclic Jacobi rotations
/// (Golub & Van Loan, *Matrix Computations*, 4th ed., sec. 8.5): eigenvalues in
/// decreasing order and the matching eigenvectors as columns.
fn symmetric_eigen(h: &Array2<f64>) -> (Array1<f64>, Array2<f64>) {
    let p = h.nrows();
    let mut a = h.clone();
    let mut v = Array2::<f64>::eye(p);
    let total: f64 = a.iter().map(|e| e * e).sum();
    for _ in 0..100 {
        let off: f64 = (0..p)
            .flat_map(|i| (0..p).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[[i, j]] * a[[i, j]])
            .sum();
        if off <= 1e-30 * total || off == 0.0 {
            break;
        }
        for i in 0..p {
            for j in i + 1..p {
                let aij = a[[i, j]];
                if aij == 0.0 {
                    continue;
                }
                let theta = (a[[j, j]] - a[[i, i]]) / (2.0 * aij);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for m in 0..p {
                    let (ami, amj) = (a[[m, i]], a[[m, j]]);
                    a[[m, i]] = c * ami - s * amj;
                    a[[m, j]] = s * ami + c * amj;
                }
                for m in 0..p {
                    let (aim, ajm) = (a[[i, m]], a[[j, m]]);
                    a[[i, m]] = c * aim - s * ajm;
                    a[[j, m]] = s * aim + c * ajm;
                }
                for m in 0..p {
                    let (vmi, vmj) = (v[[m, i]], v[[m, j]]);
                    v[[m, i]] = c * vmi - s * vmj;
                    v[[m, j]] = s * vmi + c * vmj;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..p).collect();
    order.sort_by(|&i, &j| a[[j, j]].total_cmp(&a[[i, i]]));
    let values = order.iter().map(|&i| a[[i, i]]).collect();
    let mut vectors = Array2::<f64>::zeros((p, p));
    for (new, &old) in order.iter().enumerate() {
        vectors.column_mut(new).assign(&v.column(old));
    }
    (values, vectors)
}

// ---------------------------------------------------------------------------------
// k-means
// ---------------------------------------------------------------------------------

/// A k-means clustering.
#[derive(Debug, Clone, PartialEq)]
pub struct KMeans {
    /// Cluster centres, `k x d`, row `j` for label `j`.
    pub centroids: Array2<f64>,
    /// Label of each sample, in `0..k`. Canonical order: label 0 is the largest
    /// cluster, then by decreasing size, ties broken by the smallest sample index in
    /// the cluster; so equal partitions get equal labels whatever the seed.
    pub labels: Vec<usize>,
    /// Sum of squared distances of the samples to their centroid.
    pub inertia: f64,
}

/// k-means clustering of `x` (`n x d`) into `k` clusters: `n_init` runs, each
/// initialised by k-means++ (Arthur & Vassilvitskii, "k-means++: the advantages of
/// careful seeding", SODA 2007: first centre uniform, then each next one drawn with
/// probability proportional to the squared distance to the nearest chosen centre)
/// and refined by Lloyd iterations (Lloyd 1982) until the labels stop changing or
/// [`KMEANS_MAX_ITER`] iterations; the run of lowest inertia is kept (the first on
/// ties). A cluster that empties is re-seeded at the sample farthest from its own
/// centroid (taken from a cluster with at least two samples); only with fewer
/// distinct samples than `k` can a cluster end up empty. Ties in the
/// assignment go to the lowest centroid index. Labels are then renumbered
/// canonically (see [`KMeans::labels`]).
///
/// # Errors
/// [`ImagingError::EmptyData`], [`ImagingError::NonFiniteData`];
/// [`ImagingError::InvalidParameter`] if `k = 0` or `n_init = 0`;
/// [`ImagingError::TooFewSamples`] if `k > n`.
///
/// # Example
/// ```
/// use ndarray::array;
/// use phyvae_imaging::cluster::kmeans;
///
/// let x = array![[0.0], [1.0], [10.0], [11.0], [12.0]];
/// let km = kmeans(x.view(), 2, 4, 7)?;
/// assert_eq!(km.labels, vec![1, 1, 0, 0, 0]);
/// // (0.5^2 * 2) + (1^2 + 0 + 1^2) = 2.5
/// assert!((km.inertia - 2.5).abs() < 1e-12);
/// # Ok::<(), phyvae_imaging::ImagingError>(())
/// ```
pub fn kmeans(x: ArrayView2<'_, f64>, k: usize, n_init: usize, seed: u64) -> Result<KMeans> {
    check_data(x)?;
    check_k(k)?;
    if n_init == 0 {
        return Err(ImagingError::InvalidParameter {
            name: "n_init",
            value: n_init.to_string(),
            rule: "must be at least 1",
        });
    }
    let n = x.nrows();
    if k > n {
        return Err(ImagingError::TooFewSamples {
            k,
            samples: n,
            what: "clusters",
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut best: Option<KMeans> = None;
    for _ in 0..n_init {
        let run = lloyd(x, kmeans_plus_plus(x, k, &mut rng));
        if best.as_ref().is_none_or(|b| run.inertia < b.inertia) {
            best = Some(run);
        }
    }
    let best = best.ok_or(ImagingError::InvalidParameter {
        name: "n_init",
        value: n_init.to_string(),
        rule: "must be at least 1",
    })?;
    Ok(canonical(best))
}

/// k-means++ seeding: `k` distinct-as-possible centres drawn from the samples.
fn kmeans_plus_plus(x: ArrayView2<'_, f64>, k: usize, rng: &mut ChaCha8Rng) -> Array2<f64> {
    let (n, d) = x.dim();
    let mut centres = Array2::<f64>::zeros((k, d));
    let first = rng.random_range(0..n);
    centres.row_mut(0).assign(&x.row(first));
    let mut d2: Vec<f64> = (0..n).map(|i| sq_dist(x.row(i), x.row(first))).collect();
    for c in 1..k {
        let total: f64 = d2.iter().sum();
        let pick = if total > 0.0 {
            let target = rng.random::<f64>() * total;
            let mut cumulative = 0.0;
            let mut chosen = None;
            let mut last_positive = 0;
            for (i, &w) in d2.iter().enumerate() {
                if w > 0.0 {
                    last_positive = i;
                    cumulative += w;
                    if cumulative > target {
                        chosen = Some(i);
                        break;
                    }
                }
            }
            chosen.unwrap_or(last_positive)
        } else {
            rng.random_range(0..n)
        };
        centres.row_mut(c).assign(&x.row(pick));
        for (i, w) in d2.iter_mut().enumerate() {
            *w = w.min(sq_dist(x.row(i), x.row(pick)));
        }
    }
    centres
}

/// Nearest centroid of every sample (lowest index on ties) and the squared distance.
pub(crate) fn assign(x: ArrayView2<'_, f64>, centroids: &Array2<f64>) -> (Vec<usize>, Vec<f64>) {
    (0..x.nrows())
        .into_par_iter()
        .map(|i| {
            let row = x.row(i);
            let mut best = (0, f64::INFINITY);
            for (j, c) in centroids.rows().into_iter().enumerate() {
                let dist = sq_dist(row, c);
                if dist < best.1 {
                    best = (j, dist);
                }
            }
            best
        })
        .unzip()
}

/// Centroids as the means of their samples; an empty cluster takes the sample
/// farthest from its own centroid (from a cluster of two or more), whose label
/// changes accordingly.
fn update_centroids(x: ArrayView2<'_, f64>, labels: &mut [usize], k: usize) -> Array2<f64> {
    let d = x.ncols();
    let mut sums = Array2::<f64>::zeros((k, d));
    let mut counts = vec![0_usize; k];
    for (i, &l) in labels.iter().enumerate() {
        sums.row_mut(l).scaled_add(1.0, &x.row(i));
        counts[l] += 1;
    }
    #[allow(clippy::cast_precision_loss)]
    let mean_of = |sums: &Array2<f64>, counts: &[usize], j: usize| {
        sums.row(j).mapv(|s| s / counts[j].max(1) as f64)
    };
    let mut centroids = Array2::<f64>::zeros((k, d));
    for j in 0..k {
        centroids.row_mut(j).assign(&mean_of(&sums, &counts, j));
    }
    for j in 0..k {
        if counts[j] > 0 {
            continue;
        }
        let mut far = None;
        let mut far_dist = f64::NEG_INFINITY;
        for (i, &l) in labels.iter().enumerate() {
            if counts[l] > 1 {
                let dist = sq_dist(x.row(i), centroids.row(l));
                if dist > far_dist {
                    far_dist = dist;
                    far = Some(i);
                }
            }
        }
        // k <= n guarantees a cluster of two or more while one is empty.
        if let Some(i) = far {
            let donor = labels[i];
            sums.row_mut(donor).scaled_add(-1.0, &x.row(i));
            counts[donor] -= 1;
            centroids
                .row_mut(donor)
                .assign(&mean_of(&sums, &counts, donor));
            labels[i] = j;
            counts[j] = 1;
            sums.row_mut(j).assign(&x.row(i));
            centroids.row_mut(j).assign(&x.row(i));
        }
    }
    centroids
}

/// Lloyd iterations from `centroids`; the labels returned are the nearest centroids.
fn lloyd(x: ArrayView2<'_, f64>, mut centroids: Array2<f64>) -> KMeans {
    let k = centroids.nrows();
    let (mut labels, mut d2) = assign(x, &centroids);
    for _ in 0..KMEANS_MAX_ITER {
        centroids = update_centroids(x, &mut labels, k);
        let (new_labels, new_d2) = assign(x, &centroids);
        let changed = new_labels != labels;
        labels = new_labels;
        d2 = new_d2;
        if !changed {
            break;
        }
    }
    KMeans {
        centroids,
        labels,
        inertia: d2.iter().sum(),
    }
}

/// The canonical number of each of `k` labels (labels in `0..k`): by
/// decreasing size, ties by smallest sample index. Returns `new_of_old`.
pub(crate) fn canonical_order(labels: &[usize], k: usize) -> Vec<usize> {
    let mut size = vec![0_usize; k];
    let mut first = vec![labels.len(); k];
    for (i, &l) in labels.iter().enumerate() {
        size[l] += 1;
        first[l] = first[l].min(i);
    }
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&a, &b| size[b].cmp(&size[a]).then(first[a].cmp(&first[b])));
    let mut new_of_old = vec![0; k];
    for (new, &old) in order.iter().enumerate() {
        new_of_old[old] = new;
    }
    new_of_old
}

/// Renumbers clusters by decreasing size, ties by smallest sample index.
fn canonical(km: KMeans) -> KMeans {
    let k = km.centroids.nrows();
    let new_of_old = canonical_order(&km.labels, k);
    let mut order = vec![0; k];
    for (old, &new) in new_of_old.iter().enumerate() {
        order[new] = old;
    }
    let mut centroids = Array2::<f64>::zeros(km.centroids.dim());
    for (new, &old) in order.iter().enumerate() {
        centroids.row_mut(new).assign(&km.centroids.row(old));
    }
    KMeans {
        centroids,
        labels: km.labels.iter().map(|&l| new_of_old[l]).collect(),
        inertia: km.inertia,
    }
}

// ---------------------------------------------------------------------------------
// Gaussian mixture
// ---------------------------------------------------------------------------------

/// A Gaussian mixture model with full covariances, fitted by EM.
#[derive(Debug, Clone, PartialEq)]
pub struct Gmm {
    /// Mixing weights, length `k`, summing to 1.
    pub weights: Array1<f64>,
    /// Component means, `k x d`.
    pub means: Array2<f64>,
    /// Component covariances, `k x d x d` (regularised, see [`gmm`]).
    pub covariances: Array3<f64>,
    /// Most probable component of each sample.
    pub labels: Vec<usize>,
    /// Total log-likelihood `sum_i ln p(x_i)` of the data under the returned
    /// parameters (natural log).
    pub log_likelihood: f64,
    /// Bayesian information criterion `-2 ln L + p ln n` (Schwarz, "Estimating the
    /// dimension of a model", *Ann. Stat.* 6(2) (1978) 461-464) with `p = (k - 1) +
    /// k d + k d (d + 1) / 2` free parameters; lower is better.
    pub bic: f64,
    /// Whether EM met [`GMM_TOL`] before [`GMM_MAX_ITER`] iterations.
    pub converged: bool,
}

/// Fits a `k`-component Gaussian mixture with full covariances to `x` (`n x d`,
/// `d <= 8`) by expectation-maximisation (Dempster, Laird & Rubin, *J. R. Stat. Soc.
/// B* 39 (1977) 1-38), as `sklearn.mixture.GaussianMixture(covariance_type="full")`:
/// - initial responsibilities: the hard labels of [`kmeans`] (with
///   [`GMM_KMEANS_INIT`] runs and the same `seed`);
/// - every covariance gets `reg I` added, `reg` = [`GMM_REG_COVAR`] times the
///   data's mean per-feature variance (scikit-learn adds an absolute `reg_covar =
///   1e-6`; scaling by the data makes the result independent of the units), or `1e-6`
///   if the data has no variance; component masses get `10 eps` added, as
///   scikit-learn, so an emptied component stays finite;
/// - at most [`GMM_MAX_ITER`] iterations, stopping when the mean log-likelihood per
///   sample changes by less than [`GMM_TOL`].
///
/// The labels, log-likelihood and BIC are those of the returned parameters (one
/// last E-step). Labels are the component indices, which follow the canonical
/// order of the initialising k-means (largest cluster first).
///
/// # Errors
/// [`ImagingError::EmptyData`], [`ImagingError::NonFiniteData`];
/// [`ImagingError::InvalidParameter`] if `k = 0`; [`ImagingError::TooFewSamples`] if
/// `k > n`; [`ImagingError::TooManyFeatures`] if `d > 8`;
/// [`ImagingError::NotPositiveDefinite`] if a covariance cannot be factorised
/// despite the regulariser.
pub fn gmm(x: ArrayView2<'_, f64>, k: usize, seed: u64) -> Result<Gmm> {
    check_data(x)?;
    check_k(k)?;
    let (n, d) = x.dim();
    if d > GMM_MAX_FEATURES {
        return Err(ImagingError::TooManyFeatures {
            features: d,
            max: GMM_MAX_FEATURES,
            what: "a Gaussian mixture with full covariances",
        });
    }
    if k > n {
        return Err(ImagingError::TooFewSamples {
            k,
            samples: n,
            what: "mixture components",
        });
    }
    #[allow(clippy::cast_precision_loss)]
    let nf = n as f64;
    let mean = column_means(x);
    #[allow(clippy::cast_precision_loss)]
    let mean_variance = centred_square_sums(x, &mean).sum() / (nf * d as f64);
    let reg = if mean_variance > 0.0 {
        GMM_REG_COVAR * mean_variance
    } else {
        GMM_REG_COVAR
    };
    let init = kmeans(x, k, GMM_KMEANS_INIT, seed)?;
    let mut resp = Array2::<f64>::zeros((n, k));
    for (i, &l) in init.labels.iter().enumerate() {
        resp[[i, l]] = 1.0;
    }
    let mut params = m_step(x, &resp, reg);
    let mut previous = f64::NEG_INFINITY;
    let mut converged = false;
    for _ in 0..GMM_MAX_ITER {
        let (log_resp, mean_ll) = e_step(x, &params)?;
        if (mean_ll - previous).abs() < GMM_TOL {
            converged = true;
            break;
        }
        previous = mean_ll;
        resp = log_resp.mapv(f64::exp);
        params = m_step(x, &resp, reg);
    }
    let (log_resp, mean_ll) = e_step(x, &params)?;
    let labels = log_resp
        .rows()
        .into_iter()
        .map(|r| {
            r.iter()
                .enumerate()
                .fold((0, f64::NEG_INFINITY), |best, (j, &v)| {
                    if v > best.1 { (j, v) } else { best }
                })
                .0
        })
        .collect();
    let log_likelihood = mean_ll * nf;
    #[allow(clippy::cast_precision_loss)]
    let free = ((k - 1) + k * d + k * d * (d + 1) / 2) as f64;
    Ok(Gmm {
        weights: params.weights,
        means: params.means,
        covariances: params.covariances,
        labels,
        log_likelihood,
        bic: -2.0 * log_likelihood + free * nf.ln(),
        converged,
    })
}

/// Fits [`gmm`] for every `k` of `k_range` (same `seed`) and returns the model of
/// lowest BIC (the smallest `k` on ties).
///
/// # Errors
/// [`ImagingError::InvalidParameter`] if the range is empty; any error of [`gmm`].
pub fn choose_k_by_bic(
    x: ArrayView2<'_, f64>,
    k_range: RangeInclusive<usize>,
    seed: u64,
) -> Result<Gmm> {
    let mut best: Option<Gmm> = None;
    for k in k_range.clone() {
        let model = gmm(x, k, seed)?;
        if best.as_ref().is_none_or(|b| model.bic < b.bic) {
            best = Some(model);
        }
    }
    best.ok_or_else(|| ImagingError::InvalidParameter {
        name: "k_range",
        value: format!("{k_range:?}"),
        rule: "must not be empty",
    })
}

/// Mixture parameters during EM.
struct Params {
    weights: Array1<f64>,
    means: Array2<f64>,
    covariances: Array3<f64>,
}

/// M-step: weights, means and regularised covariances from responsibilities.
fn m_step(x: ArrayView2<'_, f64>, resp: &Array2<f64>, reg: f64) -> Params {
    let (n, d) = x.dim();
    let k = resp.ncols();
    let mass: Array1<f64> = resp.sum_axis(Axis(0)).mapv(|m| m + 10.0 * f64::EPSILON);
    let mut means = Array2::<f64>::zeros((k, d));
    for i in 0..n {
        for j in 0..k {
            means.row_mut(j).scaled_add(resp[[i, j]], &x.row(i));
        }
    }
    for j in 0..k {
        let m = mass[j];
        means.row_mut(j).mapv_inplace(|v| v / m);
    }
    let mut covariances = Array3::<f64>::zeros((k, d, d));
    let mut diff = vec![0.0; d];
    for i in 0..n {
        for j in 0..k {
            let r = resp[[i, j]];
            if r == 0.0 {
                continue;
            }
            for (a, df) in diff.iter_mut().enumerate() {
                *df = x[[i, a]] - means[[j, a]];
            }
            for a in 0..d {
                for b in 0..=a {
                    covariances[[j, a, b]] += r * diff[a] * diff[b];
                }
            }
        }
    }
    for j in 0..k {
        for a in 0..d {
            for b in 0..=a {
                let v = covariances[[j, a, b]] / mass[j] + if a == b { reg } else { 0.0 };
                covariances[[j, a, b]] = v;
                covariances[[j, b, a]] = v;
            }
        }
    }
    let total = mass.sum();
    Params {
        weights: mass / total,
        means,
        covariances,
    }
}

/// Lower Cholesky factor of a symmetric positive-definite `d x d` matrix
/// (row-major `d * d` vector), or `None` at a non-positive pivot.
fn cholesky(a: ArrayView2<'_, f64>) -> Option<Vec<f64>> {
    let d = a.nrows();
    let mut l = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..=i {
            let mut s = a[[i, j]];
            for m in 0..j {
                s -= l[i * d + m] * l[j * d + m];
            }
            if i == j {
                if s <= 0.0 || !s.is_finite() {
                    return None;
                }
                l[i * d + i] = s.sqrt();
            } else {
                l[i * d + j] = s / l[j * d + j];
            }
        }
    }
    Some(l)
}

/// E-step: log-responsibilities (`n x k`) and mean log-likelihood per sample.
fn e_step(x: ArrayView2<'_, f64>, params: &Params) -> Result<(Array2<f64>, f64)> {
    let (n, d) = x.dim();
    let k = params.weights.len();
    #[allow(clippy::cast_precision_loss)]
    let log_2pi_d = d as f64 * (2.0 * std::f64::consts::PI).ln();
    let mut factors = Vec::with_capacity(k);
    for j in 0..k {
        let l = cholesky(params.covariances.index_axis(Axis(0), j))
            .ok_or(ImagingError::NotPositiveDefinite { component: j })?;
        let log_det: f64 = (0..d).map(|a| l[a * d + a].ln()).sum::<f64>() * 2.0;
        let constant = params.weights[j].ln() - 0.5 * (log_2pi_d + log_det);
        factors.push((l, constant));
    }
    let rows: Vec<(Vec<f64>, f64)> = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut y = vec![0.0; d];
            let log_p: Vec<f64> = factors
                .iter()
                .enumerate()
                .map(|(j, (l, constant))| {
                    // Solve L y = x - mu; the Mahalanobis distance is |y|^2.
                    for a in 0..d {
                        let mut s = x[[i, a]] - params.means[[j, a]];
                        for b in 0..a {
                            s -= l[a * d + b] * y[b];
                        }
                        y[a] = s / l[a * d + a];
                    }
                    constant - 0.5 * y.iter().map(|v| v * v).sum::<f64>()
                })
                .collect();
            let top = log_p.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lse = top + log_p.iter().map(|&v| (v - top).exp()).sum::<f64>().ln();
            (log_p.iter().map(|&v| v - lse).collect(), lse)
        })
        .collect();
    let mut log_resp = Array2::<f64>::zeros((n, k));
    let mut total = 0.0;
    for (i, (r, lse)) in rows.into_iter().enumerate() {
        for (j, v) in r.into_iter().enumerate() {
            log_resp[[i, j]] = v;
        }
        total += lse;
    }
    #[allow(clippy::cast_precision_loss)]
    let mean_ll = total / n as f64;
    Ok((log_resp, mean_ll))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    use rand_distr::{Distribution, StandardNormal};

    fn normal(rng: &mut ChaCha8Rng) -> f64 {
        <StandardNormal as Distribution<f64>>::sample(&StandardNormal, rng)
    }

    /// `n` samples of a 2-D Gaussian with mean `mu` and covariance `L L^T`.
    fn blob(rng: &mut ChaCha8Rng, n: usize, mu: [f64; 2], l: [[f64; 2]; 2]) -> Vec<[f64; 2]> {
        (0..n)
            .map(|_| {
                let (u, v) = (normal(rng), normal(rng));
                [
                    mu[0] + l[0][0] * u + l[0][1] * v,
                    mu[1] + l[1][0] * u + l[1][1] * v,
                ]
            })
            .collect()
    }

    fn to_array(points: &[[f64; 2]]) -> Array2<f64> {
        Array2::from_shape_fn((points.len(), 2), |(i, j)| points[i][j])
    }

    /// Rows of the 8 x 8 Sylvester-Hadamard matrix (entries +-1; the rows other than
    /// the first have zero mean and are mutually orthogonal).
    fn hadamard8() -> Array2<f64> {
        Array2::from_shape_fn((8, 8), |(i, j)| {
            if (i & j).count_ones() % 2 == 0 {
                1.0
            } else {
                -1.0
            }
        })
    }

    #[test]
    fn pca_recovers_known_axes_in_3d() {
        // Scores: three orthogonal zero-mean Hadamard columns scaled by 3, 2 and 0.5,
        // along an orthonormal basis u1, u2, u3 of R^3; plus an offset.
        let h = hadamard8();
        let s = 1.0 / 3.0_f64.sqrt();
        let u1 = [s, s, s];
        let t = 1.0 / 2.0_f64.sqrt();
        let u2 = [t, -t, 0.0];
        let r = 1.0 / 6.0_f64.sqrt();
        let u3 = [r, r, -2.0 * r];
        let scales = [3.0, 2.0, 0.5];
        let offset = [1.0, -2.0, 5.0];
        #[allow(clippy::cast_possible_truncation)]
        let x = Array2::from_shape_fn((8, 3), |(i, a)| {
            (offset[a]
                + scales[0] * h[[i, 1]] * u1[a]
                + scales[1] * h[[i, 2]] * u2[a]
                + scales[2] * h[[i, 4]] * u3[a]) as f32
        });
        // Variance along u_j: scale_j^2 * sum(h^2) / (n - 1) = scale_j^2 * 8 / 7.
        let expected: Vec<f64> = scales.iter().map(|s| s * s * 8.0 / 7.0).collect();
        for k in 1..=3 {
            let p = pca(x.view(), k, 5).unwrap();
            assert_eq!(p.components.dim(), (k, 3));
            for (j, u) in [u1, u2, u3].iter().enumerate().take(k) {
                let cos: f64 = p.components.row(j).iter().zip(u).map(|(a, b)| a * b).sum();
                assert!(1.0 - cos.abs() < 1e-6, "k {k} component {j}: cos {cos}");
                // f32 input: variances to single precision.
                assert!(
                    (p.explained_variance[j] - expected[j]).abs() < 1e-5 * expected[j],
                    "{} vs {}",
                    p.explained_variance[j],
                    expected[j]
                );
            }
            let total: f64 = expected.iter().sum();
            assert!((p.total_variance - total).abs() < 1e-5 * total);
            for (m, o) in p.mean.iter().zip(offset) {
                assert!((m - o).abs() < 1e-5);
            }
        }
        // Sign convention: largest-magnitude entry positive.
        let p = pca(x.view(), 3, 9).unwrap();
        for row in p.components.rows() {
            let top = row
                .iter()
                .copied()
                .fold(0.0_f64, |a, b| if b.abs() > a.abs() { b } else { a });
            assert!(top > 0.0);
        }
        // Scores along u1 are 3 * h[:, 1].
        let scores = p.transform(x.view()).unwrap();
        for i in 0..8 {
            assert!((scores[[i, 0]].abs() - 3.0).abs() < 1e-5);
        }
    }

    #[test]
    fn pca_subspace_iteration_in_high_dimension() {
        // d = 40 > k + oversampling: the iteration matters. Two known axes (unit
        // vectors along features 3 and 17 rotated by 30 degrees) with variances
        // 25 and 4 (in units of the Hadamard design), plus a small isotropic part.
        let (n, d) = (64, 40);
        let h = Array2::from_shape_fn((n, n), |(i, j)| {
            if (i & j).count_ones() % 2 == 0 {
                1.0
            } else {
                -1.0
            }
        });
        let (sn, cs) = 30.0_f64.to_radians().sin_cos();
        let mut u1 = vec![0.0; d];
        u1[3] = cs;
        u1[17] = sn;
        let mut u2 = vec![0.0; d];
        u2[3] = -sn;
        u2[17] = cs;
        #[allow(clippy::cast_possible_truncation)]
        let x = Array2::from_shape_fn((n, d), |(i, a)| {
            let small = if a < 30 { 0.1 * h[[i, 20 + a]] } else { 0.0 };
            (5.0 * h[[i, 1]] * u1[a] + 2.0 * h[[i, 2]] * u2[a] + small) as f32
        });
        let p = pca(x.view(), 2, 3).unwrap();
        for (j, u) in [&u1, &u2].into_iter().enumerate() {
            let cos: f64 = p.components.row(j).iter().zip(u).map(|(a, b)| a * b).sum();
            assert!(1.0 - cos.abs() < 1e-6, "component {j}: cos {cos}");
        }
        // Hadamard columns 1, 2 and 20..50 are orthogonal with sum of squares n, and
        // the small part is orthogonal to u1, u2 except on features 3 and 17, where
        // its columns 23 and 37 are orthogonal to columns 1 and 2 anyway.
        let nf = n as f64;
        let v1 = 25.0 * nf / (nf - 1.0);
        let v2 = 4.0 * nf / (nf - 1.0);
        // Along u1 the small part adds 0.01 * (cs^2 + sn^2) * n / (n - 1) = 0.01 n/(n-1).
        let small = 0.01 * nf / (nf - 1.0);
        assert!(
            (p.explained_variance[0] - (v1 + small)).abs() < 1e-4,
            "{}",
            p.explained_variance[0]
        );
        assert!(
            (p.explained_variance[1] - (v2 + small)).abs() < 1e-4,
            "{}",
            p.explained_variance[1]
        );
        assert!((p.total_variance - (v1 + v2 + 30.0 * small)).abs() < 1e-3);
        // Deterministic for a seed; the same axes from another seed.
        assert_eq!(p, pca(x.view(), 2, 3).unwrap());
        let q = pca(x.view(), 2, 99).unwrap();
        for j in 0..2 {
            let cos = p.components.row(j).dot(&q.components.row(j));
            assert!((cos - 1.0).abs() < 1e-6);
        }
    }

    #[test]
    fn pca_errors_and_degenerate_data() {
        let x = Array2::<f32>::zeros((4, 3));
        assert!(matches!(
            pca(x.view(), 0, 0),
            Err(ImagingError::InvalidParameter { name: "k", .. })
        ));
        assert!(matches!(
            pca(x.view(), 4, 0),
            Err(ImagingError::TooManyComponents { k: 4, features: 3 })
        ));
        assert!(matches!(
            pca(Array2::<f32>::zeros((2, 5)).view(), 3, 0),
            Err(ImagingError::TooFewSamples {
                k: 3,
                samples: 2,
                ..
            })
        ));
        assert!(matches!(
            pca(Array2::<f32>::zeros((0, 3)).view(), 1, 0),
            Err(ImagingError::EmptyData { .. })
        ));
        let mut bad = x.clone();
        bad[[2, 1]] = f32::NAN;
        assert!(matches!(
            pca(bad.view(), 1, 0),
            Err(ImagingError::NonFiniteData {
                sample: 2,
                feature: 1,
                ..
            })
        ));
        // Constant data: zero variance, still orthonormal components.
        let p = pca(Array2::from_elem((5, 3), 2.0_f32).view(), 2, 0).unwrap();
        assert_eq!(p.total_variance, 0.0);
        assert!(p.explained_variance.iter().all(|&v| v == 0.0));
        let g = p.components.dot(&p.components.t());
        assert!((g - Array2::<f64>::eye(2)).iter().all(|e| e.abs() < 1e-12));
        assert!(matches!(
            p.transform(Array2::<f32>::zeros((2, 4)).view()),
            Err(ImagingError::ShapeMismatch { .. })
        ));
    }

    #[test]
    fn kmeans_recovers_three_blobs() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let centres = [[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]];
        let sizes = [50, 40, 30];
        let mut points = Vec::new();
        let mut truth = Vec::new();
        for (c, (&mu, &m)) in centres.iter().zip(&sizes).enumerate() {
            points.extend(blob(&mut rng, m, mu, [[0.5, 0.0], [0.0, 0.5]]));
            truth.extend(std::iter::repeat_n(c, m));
        }
        let x = to_array(&points);
        let km = kmeans(x.view(), 3, 5, 42).unwrap();
        // Canonical labels: by decreasing size, so the truth labels themselves.
        assert_eq!(km.labels, truth);
        for (j, mu) in centres.iter().enumerate() {
            assert!((km.centroids[[j, 0]] - mu[0]).abs() < 0.3);
            assert!((km.centroids[[j, 1]] - mu[1]).abs() < 0.3);
        }
        // Inertia is the sum of squared distances to the centroids.
        let inertia: f64 = (0..x.nrows())
            .map(|i| sq_dist(x.row(i), km.centroids.row(km.labels[i])))
            .sum();
        assert!((km.inertia - inertia).abs() < 1e-9 * inertia);
        // Same result from another seed (canonical labels), and deterministic.
        assert_eq!(kmeans(x.view(), 3, 5, 7).unwrap().labels, truth);
        assert_eq!(kmeans(x.view(), 3, 5, 42).unwrap(), km);
    }

    #[test]
    fn kmeans_tiny_1d_inertia_by_hand() {
        // Clusters {0, 2} (mean 1) and {9, 10, 11} (mean 10): inertia 1 + 1 + 1 + 0 + 1 = 4.
        let x = array![[9.0], [0.0], [10.0], [2.0], [11.0]];
        let km = kmeans(x.view(), 2, 3, 0).unwrap();
        assert_eq!(km.labels, vec![0, 1, 0, 1, 0]);
        assert!((km.inertia - 4.0).abs() < 1e-12);
        assert_eq!(km.centroids, array![[10.0], [1.0]]);
        // k = n: every point its own cluster, inertia 0.
        let all = kmeans(x.view(), 5, 1, 0).unwrap();
        assert_eq!(all.inertia, 0.0);
        let mut labels = all.labels.clone();
        labels.sort_unstable();
        assert_eq!(labels, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn kmeans_duplicates_and_errors() {
        // Two distinct values but k = 3: the empty cluster takes a duplicate.
        let x = array![[1.0], [1.0], [1.0], [5.0]];
        let km = kmeans(x.view(), 3, 2, 3).unwrap();
        assert_eq!(km.inertia, 0.0);
        assert!(km.labels.iter().all(|&l| l < 3));
        assert!(matches!(
            kmeans(x.view(), 0, 1, 0),
            Err(ImagingError::InvalidParameter { name: "k", .. })
        ));
        assert!(matches!(
            kmeans(x.view(), 1, 0, 0),
            Err(ImagingError::InvalidParameter { name: "n_init", .. })
        ));
        assert!(matches!(
            kmeans(x.view(), 5, 1, 0),
            Err(ImagingError::TooFewSamples {
                k: 5,
                samples: 4,
                ..
            })
        ));
        assert!(matches!(
            kmeans(Array2::<f64>::zeros((3, 0)).view(), 1, 1, 0),
            Err(ImagingError::EmptyData {
                samples: 3,
                features: 0
            })
        ));
        assert!(matches!(
            kmeans(array![[1.0], [f64::INFINITY]].view(), 1, 1, 0),
            Err(ImagingError::NonFiniteData {
                sample: 1,
                feature: 0,
                ..
            })
        ));
    }

    /// Samples, true means and true covariances of a two-blob data set.
    type Blobs = (Array2<f64>, [[f64; 2]; 2], [[[f64; 2]; 2]; 2]);

    /// Two 2-D blobs with known means and covariances.
    fn two_blobs(seed: u64) -> Blobs {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Blob 0: covariance [[1, 0.5], [0.5, 1]] = L L^T with L = [[1, 0], [0.5, sqrt(0.75)]].
        // Blob 1: covariance [[0.5, 0], [0, 2]].
        let l0 = [[1.0, 0.0], [0.5, 0.75_f64.sqrt()]];
        let l1 = [[0.5_f64.sqrt(), 0.0], [0.0, 2.0_f64.sqrt()]];
        let mu = [[0.0, 0.0], [6.0, 3.0]];
        let mut points = blob(&mut rng, 500, mu[0], l0);
        points.extend(blob(&mut rng, 400, mu[1], l1));
        (
            to_array(&points),
            mu,
            [[[1.0, 0.5], [0.5, 1.0]], [[0.5, 0.0], [0.0, 2.0]]],
        )
    }

    #[test]
    fn gmm_fits_two_blobs() {
        let (x, mu, cov) = two_blobs(3);
        let g = gmm(x.view(), 2, 0).unwrap();
        assert!(g.converged);
        // Component 0 is the larger k-means cluster (500 samples).
        for j in 0..2 {
            // Standard error of a mean: sqrt(2 / 400) = 0.07; allow about 3 of them.
            for a in 0..2 {
                assert!((g.means[[j, a]] - mu[j][a]).abs() < 0.25, "{:?}", g.means);
                for (b, &c) in cov[j][a].iter().enumerate() {
                    assert!(
                        (g.covariances[[j, a, b]] - c).abs() < 0.3,
                        "{:?}",
                        g.covariances
                    );
                }
            }
        }
        assert!((g.weights[0] - 5.0 / 9.0).abs() < 0.02);
        assert!((g.weights.sum() - 1.0).abs() < 1e-12);
        assert!(g.labels.iter().take(500).filter(|&&l| l == 0).count() >= 490);
        assert!(g.labels.iter().skip(500).filter(|&&l| l == 1).count() >= 390);
        // BIC by its definition: p = 1 + 4 + 6 = 11.
        assert!((g.bic - (-2.0 * g.log_likelihood + 11.0 * 900.0_f64.ln())).abs() < 1e-9);
        assert_eq!(gmm(x.view(), 2, 0).unwrap(), g);
    }

    #[test]
    fn bic_chooses_the_number_of_components() {
        let (x, _, _) = two_blobs(4);
        let bics: Vec<f64> = (1..=3).map(|k| gmm(x.view(), k, 1).unwrap().bic).collect();
        assert!(bics[1] < bics[0] && bics[1] < bics[2], "{bics:?}");
        assert_eq!(
            choose_k_by_bic(x.view(), 1..=3, 1).unwrap().weights.len(),
            2
        );

        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let single = to_array(&blob(&mut rng, 600, [1.0, -1.0], [[1.0, 0.0], [0.3, 0.8]]));
        let best = choose_k_by_bic(single.view(), 1..=3, 1).unwrap();
        assert_eq!(best.weights.len(), 1);
        // One component: the maximum-likelihood Gaussian (population covariance).
        let m = single.mean_axis(Axis(0)).unwrap();
        assert!(
            (best.means.row(0).to_owned() - &m)
                .iter()
                .all(|e| e.abs() < 1e-9)
        );
    }

    #[test]
    fn gmm_errors() {
        let x = Array2::<f64>::zeros((5, 9));
        assert!(matches!(
            gmm(x.view(), 1, 0),
            Err(ImagingError::TooManyFeatures {
                features: 9,
                max: 8,
                ..
            })
        ));
        let y = Array2::<f64>::zeros((3, 2));
        assert!(matches!(
            gmm(y.view(), 0, 0),
            Err(ImagingError::InvalidParameter { name: "k", .. })
        ));
        assert!(matches!(
            gmm(y.view(), 4, 0),
            Err(ImagingError::TooFewSamples {
                k: 4,
                samples: 3,
                ..
            })
        ));
        assert!(matches!(
            choose_k_by_bic(y.view(), RangeInclusive::new(2, 1), 0),
            Err(ImagingError::InvalidParameter {
                name: "k_range",
                ..
            })
        ));
        // Identical samples: the regulariser keeps the covariance invertible.
        let g = gmm(Array2::from_elem((4, 2), 3.0).view(), 1, 0).unwrap();
        assert!(g.log_likelihood.is_finite());
        assert!((g.covariances[[0, 0, 0]] - GMM_REG_COVAR).abs() < 1e-18);
    }

    #[test]
    fn cholesky_and_jacobi() {
        let a = array![[4.0, 2.0, 0.4], [2.0, 5.0, 1.0], [0.4, 1.0, 3.0]];
        let l = cholesky(a.view()).unwrap();
        let l = Array2::from_shape_vec((3, 3), l).unwrap();
        assert!((l.dot(&l.t()) - &a).iter().all(|e| e.abs() < 1e-12));
        assert!(cholesky(array![[1.0, 2.0], [2.0, 1.0]].view()).is_none());
        let (values, vectors) = symmetric_eigen(&a);
        for j in 0..3 {
            let v = vectors.column(j);
            assert!((a.dot(&v) - &v * values[j]).iter().all(|e| e.abs() < 1e-12));
        }
        assert!(values[0] >= values[1] && values[1] >= values[2]);
        // Trace is preserved.
        assert!((values.sum() - 12.0).abs() < 1e-12);
    }
}
