//! Scores of a predicted label map against a truth label map.
//!
//! Label values are arbitrary `i32`s (only equality matters), and the two maps may use
//! different numbers of labels. All scores are in `f64`:
//! - [`adjusted_rand_index`]: agreement of the two partitions, corrected for chance
//!   (Hubert & Arabie 1985), as `sklearn.metrics.adjusted_rand_score`;
//! - [`best_permutation_accuracy`]: fraction of pixels correct under the best one-to-one
//!   renaming of predicted labels to truth labels (Hungarian algorithm);
//! - [`boundary_f1`]: F1 score of boundary pixels matched within a tolerance;
//! - [`score`]: all three at once ([`Scores`]).
//!
//! Every function checks that the maps have the same, non-empty shape.

use crate::{ImagingError, Result};
use ndarray::{Array2, ArrayView2};

/// Checks that both maps have the same non-empty shape.
fn check_shapes(pred: &ArrayView2<'_, i32>, truth: &ArrayView2<'_, i32>) -> Result<()> {
    if pred.dim() != truth.dim() {
        return Err(ImagingError::ShapeMismatch {
            what: "predicted vs truth label map",
            expected: truth.shape().to_vec(),
            found: pred.shape().to_vec(),
        });
    }
    if pred.is_empty() {
        let (rows, cols) = pred.dim();
        return Err(ImagingError::EmptyImage { rows, cols });
    }
    Ok(())
}

/// Contingency table `n[i][j]` = number of pixels with the i-th predicted label and the
/// j-th truth label (labels in increasing order), row-major with `cols` = #truth labels.
struct Contingency {
    rows: usize,
    cols: usize,
    counts: Vec<u64>,
}

impl Contingency {
    fn new(pred: &ArrayView2<'_, i32>, truth: &ArrayView2<'_, i32>) -> Self {
        let labels = |m: &ArrayView2<'_, i32>| {
            let mut v: Vec<i32> = m.iter().copied().collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        let (lp, lt) = (labels(pred), labels(truth));
        let (rows, cols) = (lp.len(), lt.len());
        let mut counts = vec![0_u64; rows * cols];
        // Both label lists contain every value of their map, so the searches succeed.
        let index = |l: &[i32], v: i32| l.binary_search(&v).unwrap_or(0);
        for (&p, &t) in pred.iter().zip(truth.iter()) {
            counts[index(&lp, p) * cols + index(&lt, t)] += 1;
        }
        Self { rows, cols, counts }
    }
}

/// Adjusted Rand index of two label maps, as `sklearn.metrics.adjusted_rand_score(truth,
/// pred)` (Hubert & Arabie, "Comparing partitions", J. Classification 2 (1985) 193-218).
///
/// With `n_ij` the contingency table, `a_i`, `b_j` its row and column sums and `n` the
/// number of pixels: `ARI = (sum C(n_ij,2) - E) / ((sum C(a_i,2) + sum C(b_j,2))/2 - E)`,
/// `E = sum C(a_i,2) * sum C(b_j,2) / C(n,2)`. It is 1 for identical partitions (whatever
/// the label values), about 0 for independent ones, and negative below chance (e.g.
/// -1/2 for `[0, 0, 1, 1]` against `[0, 1, 0, 1]`). The counts are exact integers. Convention (scikit-learn's):
/// when no pair of pixels is split by one map and joined by the other (both maps a single
/// region, both all-distinct, or identical up to renaming) the score is 1.0. Symmetric in
/// its arguments.
///
/// # Errors
/// [`ImagingError::ShapeMismatch`] if the shapes differ, [`ImagingError::EmptyImage`] if
/// the maps are empty.
///
/// # Example
/// ```
/// use ndarray::array;
/// use phyvae_imaging::metrics::adjusted_rand_index;
///
/// // scikit-learn's documentation example: adjusted_rand_score([0, 0, 1, 1], [0, 0, 1, 2]).
/// let truth = array![[0, 0, 1, 1]];
/// let pred = array![[0, 0, 1, 2]];
/// let ari = adjusted_rand_index(pred.view(), truth.view())?;
/// assert!((ari - 4.0 / 7.0).abs() < 1e-15);
/// # Ok::<(), phyvae_imaging::ImagingError>(())
/// ```
pub fn adjusted_rand_index(pred: ArrayView2<'_, i32>, truth: ArrayView2<'_, i32>) -> Result<f64> {
    check_shapes(&pred, &truth)?;
    let table = Contingency::new(&pred, &truth);
    let pairs = |k: u64| u128::from(k) * u128::from(k.saturating_sub(1)) / 2;
    let mut row_sums = vec![0_u64; table.rows];
    let mut col_sums = vec![0_u64; table.cols];
    let mut index = 0_u128;
    for (row, rs) in table.counts.chunks_exact(table.cols).zip(&mut row_sums) {
        for (&c, cs) in row.iter().zip(&mut col_sums) {
            *rs += c;
            *cs += c;
            index += pairs(c);
        }
    }
    let n = row_sums.iter().sum::<u64>();
    let sum_a: u128 = row_sums.iter().map(|&a| pairs(a)).sum();
    let sum_b: u128 = col_sums.iter().map(|&b| pairs(b)).sum();
    // Pairs joined in one map and split in the other: sum_a - index and sum_b - index.
    if sum_a == index && sum_b == index {
        return Ok(1.0);
    }
    let total = pairs(n);
    // ARI = (index - sum_a*sum_b/total) / ((sum_a+sum_b)/2 - sum_a*sum_b/total), scaled
    // by 2*total to stay in exact integers: (2 t I - 2 A B) / (t (A + B) - 2 A B). Every
    // term is below n^4 / 2, well inside i128 for maps of up to 10^9 pixels.
    let as_i = |v: u128| i128::try_from(v).unwrap_or(i128::MAX);
    let (t, i, a, b) = (as_i(total), as_i(index), as_i(sum_a), as_i(sum_b));
    #[allow(clippy::cast_precision_loss)]
    let (num, den) = (
        (2 * t * i - 2 * a * b) as f64,
        (t * (a + b) - 2 * a * b) as f64,
    );
    Ok(num / den)
}

/// Maximum-weight perfect matching on a square `n x n` weight matrix (Hungarian
/// algorithm with potentials, O(n^3); Kuhn 1955, Munkres 1957). Returns the total weight.
fn max_weight_matching(n: usize, weight: &[u64]) -> u64 {
    let max_w = weight.iter().copied().max().unwrap_or(0);
    // Minimise cost = max_w - weight (non-negative). 1-based arrays, 0 is a sentinel.
    let cost = |i: usize, j: usize| i128::from(max_w) - i128::from(weight[(i - 1) * n + (j - 1)]);
    let inf = i128::MAX / 4;
    let mut u = vec![0_i128; n + 1];
    let mut v = vec![0_i128; n + 1];
    // p[j]: row matched to column j; way[j]: previous column on the augmenting path.
    let mut p = vec![0_usize; n + 1];
    let mut way = vec![0_usize; n + 1];
    let mut minv = vec![inf; n + 1];
    let mut used = vec![false; n + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0;
        minv.fill(inf);
        used.fill(false);
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = inf;
            let mut j1 = 0;
            for j in 1..=n {
                if !used[j] {
                    let cur = cost(i0, j) - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=n {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    (1..=n).map(|j| weight[(p[j] - 1) * n + (j - 1)]).sum()
}

/// Best-permutation accuracy: the largest fraction of pixels whose predicted label equals
/// the truth label under a one-to-one renaming of predicted labels to truth labels.
///
/// The renaming is the maximum-weight matching of the contingency table (Hungarian
/// algorithm, exact). When the maps have different numbers of labels, only
/// `min(#pred labels, #truth labels)` pairs can be matched: pixels of an unmatched label
/// count as wrong (so over-segmenting a region costs accuracy). Invariant to renaming
/// the labels of either map; 1.0 for identical partitions.
///
/// # Errors
/// [`ImagingError::ShapeMismatch`] if the shapes differ, [`ImagingError::EmptyImage`] if
/// the maps are empty.
///
/// # Example
/// ```
/// use ndarray::array;
/// use phyvae_imaging::metrics::best_permutation_accuracy;
///
/// let truth = array![[0, 0, 0, 1, 1, 1]];
/// let pred = array![[5, 5, 7, 7, 7, 7]]; // 5 -> 0, 7 -> 1: one pixel wrong
/// let acc = best_permutation_accuracy(pred.view(), truth.view())?;
/// assert!((acc - 5.0 / 6.0).abs() < 1e-15);
/// # Ok::<(), phyvae_imaging::ImagingError>(())
/// ```
pub fn best_permutation_accuracy(
    pred: ArrayView2<'_, i32>,
    truth: ArrayView2<'_, i32>,
) -> Result<f64> {
    check_shapes(&pred, &truth)?;
    let table = Contingency::new(&pred, &truth);
    let k = table.rows.max(table.cols);
    // Square weight matrix, zero-padded: a padded row or column is "no partner".
    let mut weight = vec![0_u64; k * k];
    for i in 0..table.rows {
        for j in 0..table.cols {
            weight[i * k + j] = table.counts[i * table.cols + j];
        }
    }
    let matched = max_weight_matching(k, &weight);
    #[allow(clippy::cast_precision_loss)]
    Ok(matched as f64 / pred.len() as f64)
}

/// Boundary pixels of a label map: pixels with at least one 4-neighbour (inside the
/// image) of a different label. Both pixels on either side of a label change are
/// boundary pixels.
fn boundary_mask(labels: &ArrayView2<'_, i32>) -> Array2<bool> {
    let (rows, cols) = labels.dim();
    Array2::from_shape_fn((rows, cols), |(i, j)| {
        let v = labels[[i, j]];
        (i > 0 && labels[[i - 1, j]] != v)
            || (i + 1 < rows && labels[[i + 1, j]] != v)
            || (j > 0 && labels[[i, j - 1]] != v)
            || (j + 1 < cols && labels[[i, j + 1]] != v)
    })
}

/// Summed-area table of a mask, `(rows + 1) x (cols + 1)`, for O(1) window counts.
fn integral(mask: &Array2<bool>) -> Array2<u32> {
    let (rows, cols) = mask.dim();
    let mut s = Array2::<u32>::zeros((rows + 1, cols + 1));
    for i in 0..rows {
        for j in 0..cols {
            s[[i + 1, j + 1]] = u32::from(mask[[i, j]]) + s[[i, j + 1]] + s[[i + 1, j]] - s[[i, j]];
        }
    }
    s
}

/// Number of pixels of `mask` that have a pixel of `other` (given by its summed-area
/// table) within Chebyshev distance `tol`, and the number of pixels of `mask`.
fn matched_within(mask: &Array2<bool>, other: &Array2<u32>, tol: usize) -> (u64, u64) {
    let (rows, cols) = mask.dim();
    let (mut hit, mut total) = (0_u64, 0_u64);
    for ((i, j), &m) in mask.indexed_iter() {
        if !m {
            continue;
        }
        total += 1;
        let (r0, r1) = (i.saturating_sub(tol), (i + tol + 1).min(rows));
        let (c0, c1) = (j.saturating_sub(tol), (j + tol + 1).min(cols));
        let count = other[[r1, c1]] + other[[r0, c0]] - other[[r0, c1]] - other[[r1, c0]];
        hit += u64::from(count > 0);
    }
    (hit, total)
}

/// Boundary F1 score with a distance tolerance.
///
/// Boundary pixels are those with a 4-neighbour of a different label (both sides of a
/// label change). A predicted boundary pixel is a true positive if a truth boundary pixel
/// lies within Chebyshev distance `tolerance` (a `(2 tolerance + 1)`-pixel square
/// centred on it); precision `P` is the fraction of predicted boundary pixels that are
/// true positives, recall `R` the fraction of truth boundary pixels with a predicted
/// boundary pixel within the same distance, and `F1 = 2PR / (P + R)` (0 when
/// `P + R = 0`). Conventions: if neither map has a boundary the score is 1.0 (both agree
/// there is a single region); if only one has, it is 0.0. Symmetric in its arguments.
/// In the spirit of the BSDS boundary benchmark (Martin, Fowlkes & Malik, IEEE TPAMI 26
/// (2004) 530-549) without its one-to-one matching.
///
/// # Errors
/// [`ImagingError::ShapeMismatch`] if the shapes differ, [`ImagingError::EmptyImage`] if
/// the maps are empty.
///
/// # Example
/// ```
/// use ndarray::array;
/// use phyvae_imaging::metrics::boundary_f1;
///
/// let truth = array![[0, 0, 1, 1, 1], [0, 0, 1, 1, 1]];
/// let pred = array![[0, 0, 0, 1, 1], [0, 0, 0, 1, 1]]; // boundary one column right
/// assert_eq!(boundary_f1(pred.view(), truth.view(), 1)?, 1.0);
/// assert!((boundary_f1(pred.view(), truth.view(), 0)? - 0.5).abs() < 1e-15);
/// # Ok::<(), phyvae_imaging::ImagingError>(())
/// ```
pub fn boundary_f1(
    pred: ArrayView2<'_, i32>,
    truth: ArrayView2<'_, i32>,
    tolerance: usize,
) -> Result<f64> {
    check_shapes(&pred, &truth)?;
    let (bp, bt) = (boundary_mask(&pred), boundary_mask(&truth));
    let (tp_pred, n_pred) = matched_within(&bp, &integral(&bt), tolerance);
    let (tp_truth, n_truth) = matched_within(&bt, &integral(&bp), tolerance);
    match (n_pred, n_truth) {
        (0, 0) => return Ok(1.0),
        (0, _) | (_, 0) => return Ok(0.0),
        _ => {}
    }
    #[allow(clippy::cast_precision_loss)]
    let (p, r) = (
        tp_pred as f64 / n_pred as f64,
        tp_truth as f64 / n_truth as f64,
    );
    if p + r == 0.0 {
        return Ok(0.0);
    }
    Ok(2.0 * p * r / (p + r))
}

/// The three scores of a predicted label map against the truth.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scores {
    /// [`adjusted_rand_index`]: at most 1, about 0 for chance agreement, negative below.
    pub ari: f64,
    /// [`best_permutation_accuracy`], in `[0, 1]`.
    pub accuracy: f64,
    /// [`boundary_f1`] at the given tolerance, in `[0, 1]`.
    pub boundary_f1: f64,
}

/// All three scores of `pred` against `truth`; `tolerance` is the boundary tolerance of
/// [`boundary_f1`] in pixels (Chebyshev distance).
///
/// # Errors
/// [`ImagingError::ShapeMismatch`] if the shapes differ, [`ImagingError::EmptyImage`] if
/// the maps are empty.
///
/// # Example
/// ```
/// use ndarray::array;
/// use phyvae_imaging::metrics::score;
///
/// let truth = array![[0, 0, 1], [0, 1, 1]];
/// let pred = array![[3, 3, 9], [3, 9, 9]];
/// let s = score(pred.view(), truth.view(), 1)?;
/// assert_eq!((s.ari, s.accuracy, s.boundary_f1), (1.0, 1.0, 1.0));
/// # Ok::<(), phyvae_imaging::ImagingError>(())
/// ```
pub fn score(
    pred: ArrayView2<'_, i32>,
    truth: ArrayView2<'_, i32>,
    tolerance: usize,
) -> Result<Scores> {
    Ok(Scores {
        ari: adjusted_rand_index(pred, truth)?,
        accuracy: best_permutation_accuracy(pred, truth)?,
        boundary_f1: boundary_f1(pred, truth, tolerance)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    use proptest::prelude::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn identical_maps_score_one() {
        let m = array![[0, 0, 1, 2], [0, 1, 1, 2], [3, 3, 1, 2]];
        let s = score(m.view(), m.view(), 0).unwrap();
        assert_eq!(
            s,
            Scores {
                ari: 1.0,
                accuracy: 1.0,
                boundary_f1: 1.0
            }
        );
    }

    #[test]
    fn relabelled_maps_score_one() {
        let truth = array![[0, 0, 1, 2], [0, 1, 1, 2]];
        let pred = truth.mapv(|v| [17, -4, 8][v as usize]);
        assert_eq!(adjusted_rand_index(pred.view(), truth.view()).unwrap(), 1.0);
        assert_eq!(
            best_permutation_accuracy(pred.view(), truth.view()).unwrap(),
            1.0
        );
        assert_eq!(boundary_f1(pred.view(), truth.view(), 0).unwrap(), 1.0);
    }

    #[test]
    fn ari_hand_computed_table() {
        // truth [0,0,0,1,1,1], pred [0,0,1,1,2,2]. Contingency (truth x pred):
        //   t0: 2 1 0 | 3        t1: 0 1 2 | 3;     column sums 2 2 2.
        // index = C(2,2) + C(1,2) + C(1,2) + C(2,2) = 1 + 0 + 0 + 1 = 2;
        // sum_a = C(3,2) + C(3,2) = 6; sum_b = 3 * C(2,2) = 3; C(6,2) = 15;
        // expected = 6 * 3 / 15 = 1.2; max = (6 + 3) / 2 = 4.5;
        // ARI = (2 - 1.2) / (4.5 - 1.2) = 0.8 / 3.3 = 8/33.
        let truth = array![[0, 0, 0], [1, 1, 1]];
        let pred = array![[0, 0, 1], [1, 2, 2]];
        let ari = adjusted_rand_index(pred.view(), truth.view()).unwrap();
        assert!(close(ari, 8.0 / 33.0), "{ari}");
    }

    #[test]
    fn ari_sklearn_doc_examples() {
        // scikit-learn docs: adjusted_rand_score([0, 0, 1, 1], [0, 1, 0, 1]) = -0.5.
        // By hand: table [[1,1],[1,1]]: index 0, sum_a = sum_b = 2, C(4,2) = 6,
        // expected 4/6, max 2 -> (0 - 2/3) / (2 - 2/3) = -1/2.
        let a = array![[0, 0, 1, 1]];
        let b = array![[0, 1, 0, 1]];
        assert!(close(
            adjusted_rand_index(b.view(), a.view()).unwrap(),
            -0.5
        ));
        // adjusted_rand_score([0, 0, 1, 2], [0, 0, 1, 1]) = 0.57 (= 4/7, see the doc
        // example of `adjusted_rand_index`).
        let c = array![[0, 0, 1, 2]];
        assert!(close(
            adjusted_rand_index(a.view(), c.view()).unwrap(),
            4.0 / 7.0
        ));
    }

    #[test]
    fn ari_trivial_conventions() {
        // Both single cluster -> 1 (scikit-learn's special case).
        let one = array![[4, 4], [4, 4]];
        let other = array![[9, 9], [9, 9]];
        assert_eq!(adjusted_rand_index(one.view(), other.view()).unwrap(), 1.0);
        // Both all-distinct -> 1.
        let a = array![[0, 1], [2, 3]];
        let b = array![[5, 6], [7, 8]];
        assert_eq!(adjusted_rand_index(a.view(), b.view()).unwrap(), 1.0);
        // One cluster vs all distinct: index 0, sum_a = 6, sum_b = 0, expected 0,
        // max 3 -> 0.
        assert_eq!(adjusted_rand_index(one.view(), a.view()).unwrap(), 0.0);
    }

    #[test]
    fn accuracy_with_unequal_label_counts() {
        // Same table as `ari_hand_computed_table`: the best matching is t0 <-> p0 (2),
        // t1 <-> p2 (2); pred label 1 has no partner, so its 2 pixels count as wrong:
        // 4/6.
        let truth = array![[0, 0, 0], [1, 1, 1]];
        let pred = array![[0, 0, 1], [1, 2, 2]];
        let acc = best_permutation_accuracy(pred.view(), truth.view()).unwrap();
        assert!(close(acc, 4.0 / 6.0));
        // Swapped roles: truth label 1 of `pred` now unmatched, same 4/6.
        let acc2 = best_permutation_accuracy(truth.view(), pred.view()).unwrap();
        assert!(close(acc2, 4.0 / 6.0));
    }

    #[test]
    fn accuracy_needs_a_global_matching() {
        // Table (pred x truth) [[3, 2, 0], [2, 0, 0], [0, 0, 1]]: greedy takes 3 for
        // (p0, t0) and then only (p2, t2) = 1 -> 4; the optimum is (p0, t1) = 2,
        // (p1, t0) = 2, (p2, t2) = 1 -> 5 of 8 pixels.
        let pred = array![[0, 0, 0, 0, 0, 1, 1, 2]];
        let truth = array![[0, 0, 0, 1, 1, 0, 0, 2]];
        let acc = best_permutation_accuracy(pred.view(), truth.view()).unwrap();
        assert!(close(acc, 5.0 / 8.0), "{acc}");
    }

    #[test]
    fn boundary_f1_shift_inside_and_outside_tolerance() {
        // 4 x 10 maps. Truth: columns 0..3 are 0, 3..10 are 1 -> boundary columns 2, 3.
        // Pred: split at 6 -> boundary columns 5, 6.
        let truth = Array2::from_shape_fn((4, 10), |(_, j)| i32::from(j >= 3));
        let pred = Array2::from_shape_fn((4, 10), |(_, j)| i32::from(j >= 6));
        // tol 1: nearest distance is 2 (col 5 to col 3) -> no match: F1 = 0.
        assert_eq!(boundary_f1(pred.view(), truth.view(), 1).unwrap(), 0.0);
        // tol 2: pred col 5 matches (col 3), col 6 does not -> P = 1/2; truth col 3
        // matches, col 2 does not -> R = 1/2; F1 = 1/2.
        let f = boundary_f1(pred.view(), truth.view(), 2).unwrap();
        assert!(close(f, 0.5));
        // tol 3: everything matches.
        assert_eq!(boundary_f1(pred.view(), truth.view(), 3).unwrap(), 1.0);
        // Pred split at 4 (boundary cols 3, 4), tol 0: col 3 shared -> P = R = 1/2.
        let near = Array2::from_shape_fn((4, 10), |(_, j)| i32::from(j >= 4));
        let f0 = boundary_f1(near.view(), truth.view(), 0).unwrap();
        assert!(close(f0, 0.5));
    }

    #[test]
    fn boundary_f1_conventions() {
        let flat = array![[1, 1], [1, 1]];
        let flat2 = array![[2, 2], [2, 2]];
        let split = array![[1, 2], [1, 2]];
        assert_eq!(boundary_f1(flat.view(), flat2.view(), 0).unwrap(), 1.0);
        assert_eq!(boundary_f1(flat.view(), split.view(), 5).unwrap(), 0.0);
        assert_eq!(boundary_f1(split.view(), flat.view(), 5).unwrap(), 0.0);
    }

    #[test]
    fn boundary_mask_marks_both_sides() {
        let m = array![[0, 0, 1], [0, 0, 0]];
        let b = boundary_mask(&m.view());
        assert_eq!(b, array![[false, true, true], [false, false, true]]);
    }

    #[test]
    fn shape_and_empty_errors() {
        let a = array![[0, 1]];
        let b = array![[0], [1]];
        assert!(matches!(
            score(a.view(), b.view(), 1),
            Err(ImagingError::ShapeMismatch { .. })
        ));
        let e = Array2::<i32>::zeros((0, 2));
        assert!(matches!(
            adjusted_rand_index(e.view(), e.view()),
            Err(ImagingError::EmptyImage { .. })
        ));
    }

    /// Two label maps of the same random shape with up to `k` labels.
    fn map_pair() -> impl Strategy<Value = (Array2<i32>, Array2<i32>)> {
        (1_usize..8, 1_usize..8, 1_i32..6).prop_flat_map(|(r, c, k)| {
            let cell = 0..k;
            (
                prop::collection::vec(cell.clone(), r * c),
                prop::collection::vec(cell, r * c),
            )
                .prop_map(move |(a, b)| {
                    (
                        Array2::from_shape_vec((r, c), a).unwrap(),
                        Array2::from_shape_vec((r, c), b).unwrap(),
                    )
                })
        })
    }

    proptest! {
        #[test]
        fn ari_is_symmetric((a, b) in map_pair()) {
            let ab = adjusted_rand_index(a.view(), b.view()).unwrap();
            let ba = adjusted_rand_index(b.view(), a.view()).unwrap();
            prop_assert!((ab - ba).abs() < 1e-12);
        }

        #[test]
        fn scores_invariant_to_relabelling((a, b) in map_pair(), shift in -50_i32..50) {
            // A bijection on labels: reverse the order and shift.
            let relabel = a.mapv(|v| shift - 3 * v);
            let s1 = score(a.view(), b.view(), 1).unwrap();
            let s2 = score(relabel.view(), b.view(), 1).unwrap();
            prop_assert!((s1.ari - s2.ari).abs() < 1e-12);
            prop_assert!((s1.accuracy - s2.accuracy).abs() < 1e-12);
            prop_assert_eq!(s1.boundary_f1, s2.boundary_f1);
        }

        #[test]
        fn scores_within_ranges((a, b) in map_pair(), tol in 0_usize..3) {
            let s = score(a.view(), b.view(), tol).unwrap();
            prop_assert!((-1.0..=1.0).contains(&s.ari), "{}", s.ari);
            prop_assert!((0.0..=1.0).contains(&s.accuracy));
            prop_assert!((0.0..=1.0).contains(&s.boundary_f1));
            // At least the largest single overlap is matched.
            let self_s = score(a.view(), a.view(), tol).unwrap();
            prop_assert_eq!(self_s.ari, 1.0);
            prop_assert_eq!(self_s.accuracy, 1.0);
        }

        #[test]
        fn accuracy_equals_exhaustive_permutations((a, b) in map_pair()) {
            // Exhaustive check of the Hungarian matching for up to 5 x 5 labels.
            let t = Contingency::new(&a.view(), &b.view());
            let k = t.rows.max(t.cols);
            let mut perm: Vec<usize> = (0..k).collect();
            let mut best = 0_u64;
            permute(&mut perm, 0, &mut |p| {
                let s = (0..t.rows)
                    .filter(|&i| p[i] < t.cols)
                    .map(|i| t.counts[i * t.cols + p[i]])
                    .sum::<u64>();
                best = best.max(s);
            });
            let acc = best_permutation_accuracy(a.view(), b.view()).unwrap();
            prop_assert!((acc - best as f64 / a.len() as f64).abs() < 1e-12);
        }
    }

    fn permute(p: &mut Vec<usize>, k: usize, f: &mut impl FnMut(&[usize])) {
        if k == p.len() {
            f(p);
            return;
        }
        for i in k..p.len() {
            p.swap(k, i);
            permute(p, k + 1, f);
            p.swap(k, i);
        }
    }
}
