//! Global intensity thresholds: Otsu, multi-Otsu, and turning thresholds into labels.
//!
//! Both threshold functions reproduce scikit-image 0.26 (`skimage.filters.threshold_otsu`
//! and `skimage.filters.threshold_multiotsu` with `nbins = 256`) exactly, including the
//! floating-point types of every intermediate:
//!
//! - the histogram is `numpy.histogram(img, bins = 256)` over `[min, max]` of the image,
//!   computed in the image's element type (bin edges `min + i * ((max - min) / 256)`, the
//!   last edge set to `max`; bin index by scaling, corrected against the edges; the last
//!   bin closed on the right), and each bin is represented by its centre
//!   `(edge[i] + edge[i + 1]) / 2`, so every threshold returned is a bin centre;
//! - Otsu works on `float32` counts and on class means in the element type;
//! - multi-Otsu works entirely in `float32` on the normalised histogram (Liao, Chen &
//!   Chung 2001 lookup table of between-class variances), exactly as scikit-image's
//!   Cython code does, including its quirks (see [`multiotsu`]).
//!
//! Labels follow scikit-image's usage: `img > t` for a single Otsu threshold
//! ([`binarize`]) and `numpy.digitize(img, bins = thresholds)` for several ([`digitize`]).
//!
//! References: N. Otsu, "A threshold selection method from gray-level histograms",
//! IEEE Trans. SMC 9 (1979) 62-66; P.-S. Liao, T.-S. Chen, P.-C. Chung, "A fast algorithm
//! for multilevel thresholding", J. Inf. Sci. Eng. 17 (2001) 713-727.

use crate::error::check_finite;
use crate::{ImagingError, Real, Result};
use ndarray::{Array2, ArrayView2};

/// Number of histogram bins, as scikit-image's default `nbins = 256`.
pub const NBINS: usize = 256;

/// Pixels binned per block by the histogram.
const HIST_BLOCK: usize = 1024;

/// Smallest number of classes [`multiotsu`] accepts.
pub const MIN_CLASSES: usize = 2;

/// Largest number of classes [`multiotsu`] accepts.
pub const MAX_CLASSES: usize = 5;

/// Relative margin that covers the rounding of a `float32` sum of at most
/// [`MAX_CLASSES`] non-negative terms (at most `4 * 2^-24 ~ 2.4e-7`), used to prune the
/// multi-Otsu search without ever discarding a combination scikit-image could pick.
const PRUNE_MARGIN: f64 = 1e-6;

/// Lanes of the minimum/maximum scan (independent accumulators, so the loop vectorises).
const SCAN_LANES: usize = 8;

/// Smallest and largest pixel of `img`, checking in the same pass that it is non-empty
/// and finite (the errors are those of [`check_finite`]).
fn finite_min_max<T: Real>(img: ArrayView2<'_, T>) -> Result<(T, T)> {
    if img.is_empty() {
        return check_finite(img).map(|()| (T::zero(), T::zero()));
    }
    let mut lo = [T::infinity(); SCAN_LANES];
    let mut hi = [T::neg_infinity(); SCAN_LANES];
    let mut finite = [true; SCAN_LANES];
    let mut scan = |s: &[T]| {
        let mut chunks = s.chunks_exact(SCAN_LANES);
        for c in &mut chunks {
            for k in 0..SCAN_LANES {
                let v = c[k];
                lo[k] = if v < lo[k] { v } else { lo[k] };
                hi[k] = if v > hi[k] { v } else { hi[k] };
                finite[k] &= v.is_finite();
            }
        }
        for &v in chunks.remainder() {
            lo[0] = if v < lo[0] { v } else { lo[0] };
            hi[0] = if v > hi[0] { v } else { hi[0] };
            finite[0] &= v.is_finite();
        }
    };
    match img.as_slice() {
        Some(all) => scan(all),
        None => {
            for row in img.rows() {
                match row.as_slice() {
                    Some(r) => scan(r),
                    None => scan(&row.to_vec()),
                }
            }
        }
    }
    if finite.contains(&false) {
        return check_finite(img).map(|()| (T::zero(), T::zero()));
    }
    let lo = lo.iter().fold(T::infinity(), |m, &v| m.min(v));
    let hi = hi.iter().fold(T::neg_infinity(), |m, &v| m.max(v));
    Ok((lo, hi))
}

/// The 256-bin histogram of an image as `skimage.exposure.histogram(img.ravel(), 256,
/// source_range='image')` computes it for a float image.
struct Histogram<T> {
    /// Pixel count per bin.
    counts: Vec<u64>,
    /// Bin centres, in the image's element type.
    centers: Vec<T>,
}

impl<T: Real> Histogram<T> {
    /// Builds the histogram of a finite, non-empty image with minimum `lo` and
    /// maximum `hi`.
    ///
    /// # Errors
    /// [`ImagingError::RangeTooNarrow`] if the 257 edges are not strictly increasing in
    /// `T` (NumPy raises "Too many bins for data range").
    fn of(img: ArrayView2<'_, T>, (mut lo, mut hi): (T, T)) -> Result<Self> {
        // numpy widens an empty range to [v - 0.5, v + 0.5].
        if lo == hi {
            lo -= T::c(0.5);
            hi += T::c(0.5);
        }
        let nbins_t = T::c(NBINS as f64);
        // numpy.linspace(lo, hi, 257) in the element type. (A zero step, where numpy
        // switches formula, always yields repeated edges and so the error below.)
        let delta = hi - lo;
        let step = delta / nbins_t;
        let mut edges = [T::zero(); NBINS + 1];
        for (i, e) in edges.iter_mut().enumerate() {
            *e = T::c(i as f64) * step + lo;
        }
        edges[NBINS] = hi;
        if edges.windows(2).any(|w| w[0] >= w[1]) {
            return Err(ImagingError::RangeTooNarrow {
                min: lo.f64(),
                max: hi.f64(),
                bins: NBINS,
            });
        }

        // Bin estimate as numpy computes it, `trunc((v - lo) / delta * 256)` (at most
        // 255), then the same corrections against the edges. Estimates are made a block
        // at a time (a loop that vectorises); counts go to four interleaved tables so
        // that runs of equal bins do not serialise on one counter.
        let mut counts4 = [[0_u32; NBINS]; 4];
        let mut estimate = [0_u8; HIST_BLOCK];
        let last = T::c((NBINS - 1) as f64);
        let mut fill = |block: &[T], counts4: &mut [[u32; NBINS]; 4]| {
            let estimate = &mut estimate[..block.len()];
            for (e, &v) in estimate.iter_mut().zip(block) {
                let f = ((v - lo) / delta * nbins_t).min(last).f64();
                // f is in [0, 255]; `as` truncates toward zero.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let idx = f as u8;
                *e = idx;
            }
            for (k, (&e, &v)) in estimate.iter().zip(block).enumerate() {
                let mut idx = e;
                if idx > 0 && v < edges[usize::from(idx)] {
                    idx -= 1;
                }
                if idx != u8::MAX && v >= edges[usize::from(idx) + 1] {
                    idx += 1;
                }
                counts4[k % 4][usize::from(idx)] += 1;
            }
        };
        match img.as_slice() {
            Some(all) => all.chunks(HIST_BLOCK).for_each(|b| fill(b, &mut counts4)),
            None => img.rows().into_iter().for_each(|row| match row.as_slice() {
                Some(r) => r.chunks(HIST_BLOCK).for_each(|b| fill(b, &mut counts4)),
                None => {
                    let r: Vec<T> = row.iter().copied().collect();
                    r.chunks(HIST_BLOCK).for_each(|b| fill(b, &mut counts4));
                }
            }),
        }
        let counts: Vec<u64> = (0..NBINS)
            .map(|i| counts4.iter().map(|c| u64::from(c[i])).sum())
            .collect();
        let two = T::c(2.0);
        let centers = edges.windows(2).map(|w| (w[0] + w[1]) / two).collect();
        Ok(Self { counts, centers })
    }
}

/// Otsu's threshold of an image, as `skimage.filters.threshold_otsu(img)` (nbins = 256).
///
/// Pixels with a value strictly greater than the threshold are the foreground
/// ([`binarize`]). The threshold is the centre of the histogram bin `k` that maximises the
/// between-class variance `w1[k] * w2[k+1] * (m1[k] - m2[k+1])^2`; the weights are
/// cumulative `float32` counts (their product is rounded to `float32`, as in scikit-image)
/// and the class means are in the element type `T`. Among equal maxima the lowest bin
/// wins (`numpy.argmax`). An image with a single value returns that value.
///
/// # Errors
/// [`ImagingError::EmptyImage`] for an empty image, [`ImagingError::NonFinite`] for a NaN
/// or infinite pixel, [`ImagingError::RangeTooNarrow`] if the range of a non-constant
/// image is under about 256 units in the last place of `T` (scikit-image raises
/// `ValueError` there too).
///
/// # Example
/// ```
/// use ndarray::array;
/// use phyvae_imaging::threshold::{binarize, otsu};
///
/// let img = array![[0.0_f64, 0.0, 1.0], [0.0, 1.0, 1.0]];
/// let t = otsu(img.view())?;
/// // Every split between the two occupied bins ties; the first, bin 0 (centre 1/512), wins.
/// assert_eq!(t, 1.0 / 512.0);
/// assert_eq!(binarize(img.view(), t), array![[0, 0, 1], [0, 1, 1]]);
/// # Ok::<(), phyvae_imaging::ImagingError>(())
/// ```
pub fn otsu<T: Real>(img: ArrayView2<'_, T>) -> Result<T> {
    let (lo, hi) = finite_min_max(img)?;
    // All pixels equal (scikit-image compares them with the first one).
    if lo == hi {
        return Ok(lo);
    }
    let hist = Histogram::of(img, (lo, hi))?;
    // Counts as float32, as `_validate_image_histogram` returns them.
    #[allow(clippy::cast_precision_loss)]
    let counts: Vec<f32> = hist.counts.iter().map(|&c| c as f32).collect();
    let n = counts.len();

    let mut weight1 = vec![0.0_f32; n];
    let mut mean1 = vec![T::zero(); n];
    let (mut w, mut s) = (0.0_f32, T::zero());
    for i in 0..n {
        w += counts[i];
        s += T::c(f64::from(counts[i])) * hist.centers[i];
        weight1[i] = w;
        mean1[i] = s / T::c(f64::from(w));
    }
    let mut weight2 = vec![0.0_f32; n];
    let mut mean2 = vec![T::zero(); n];
    let (mut w, mut s) = (0.0_f32, T::zero());
    for i in (0..n).rev() {
        w += counts[i];
        s += T::c(f64::from(counts[i])) * hist.centers[i];
        weight2[i] = w;
        mean2[i] = s / T::c(f64::from(w));
    }

    let mut best_idx = 0;
    let mut best = T::neg_infinity();
    for k in 0..n - 1 {
        let ww = T::c(f64::from(weight1[k] * weight2[k + 1]));
        let d = mean1[k] - mean2[k + 1];
        let var = ww * (d * d);
        if var > best {
            best = var;
            best_idx = k;
        }
    }
    Ok(hist.centers[best_idx])
}

/// Multi-Otsu thresholds of an image, as `skimage.filters.threshold_multiotsu(img,
/// classes)` (nbins = 256): `classes - 1` increasing bin centres.
///
/// The thresholds maximise the sum over classes of `S^2 / P` (P: probability mass,
/// S: first moment in bin-index units of the class), evaluated in `float32` from a lookup
/// table exactly as scikit-image does, including:
/// - the first moment starts at `prob[0]` rather than `0 * prob[0]`, and the table entry
///   of the one-bin class `[0, 0]` is left at 0;
/// - the objective is summed as `(H[0,t0] + H[t_last+1, 255]) + H[t0+1, t1] + ...`, and
///   among equal `float32` maxima the lexicographically first threshold tuple wins;
/// - if exactly `classes` bins are occupied, the thresholds are the centres of the first
///   `classes - 1` occupied bins.
///
/// The search is exact but pruned: a dynamic programme over the same table gives an upper
/// bound on the objective of every partial tuple, and branches whose bound is (by more
/// than the `float32` rounding of the sum) below a value already reached are skipped, so
/// the result is identical to scikit-image's exhaustive search.
///
/// # Errors
/// [`ImagingError::InvalidParameter`] if `classes` is outside 2..=5;
/// [`ImagingError::EmptyImage`] / [`ImagingError::NonFinite`] for an empty or non-finite
/// image; [`ImagingError::RangeTooNarrow`] if the 256 bins cannot have distinct edges
/// in `T` (a range under about 256 units in the last place, or a constant image of
/// magnitude of 2^16 or more in `f32`); [`ImagingError::TooFewLevels`] if fewer than
/// `classes` histogram bins are occupied. scikit-image raises `ValueError` in all these
/// cases.
///
/// # Example
/// ```
/// use ndarray::array;
/// use phyvae_imaging::threshold::{digitize, multiotsu};
///
/// let img = array![[0.0_f32, 0.0, 0.5], [0.5, 1.0, 1.0]];
/// // Exactly three occupied bins: the thresholds are the centres of the first two.
/// let t = multiotsu(img.view(), 3)?;
/// assert_eq!(t, vec![1.0 / 512.0, 0.5 + 1.0 / 512.0]);
/// assert_eq!(digitize(img.view(), &t), array![[0, 0, 1], [1, 2, 2]]);
/// # Ok::<(), phyvae_imaging::ImagingError>(())
/// ```
pub fn multiotsu<T: Real>(img: ArrayView2<'_, T>, classes: usize) -> Result<Vec<T>> {
    if !(MIN_CLASSES..=MAX_CLASSES).contains(&classes) {
        return Err(ImagingError::InvalidParameter {
            name: "classes",
            value: classes.to_string(),
            rule: "must be in 2..=5",
        });
    }
    let hist = Histogram::of(img, finite_min_max(img)?)?;
    let total: u64 = hist.counts.iter().sum();
    // `hist / hist.sum()` in float64, then cast to float32.
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
    let prob: Vec<f32> = hist
        .counts
        .iter()
        .map(|&c| (c as f64 / total as f64) as f32)
        .collect();
    let occupied: Vec<usize> = (0..prob.len()).filter(|&i| prob[i] != 0.0).collect();
    let indices = if occupied.len() < classes {
        return Err(ImagingError::TooFewLevels {
            classes,
            needed: classes,
            found: occupied.len(),
        });
    } else if occupied.len() == classes {
        occupied[..classes - 1].to_vec()
    } else {
        let lut = VarLut::new(&prob);
        pruned_search(&lut, classes - 1)
    };
    Ok(indices.into_iter().map(|i| hist.centers[i]).collect())
}

/// Labels by a list of thresholds, as `numpy.digitize(img, bins = thresholds)` for
/// increasing thresholds: the label of a pixel is the number of thresholds `<= x`
/// (0 below the first threshold, `thresholds.len()` at or above the last). A NaN pixel
/// gets `thresholds.len()`, as in numpy.
///
/// # Example
/// ```
/// use ndarray::array;
/// use phyvae_imaging::threshold::digitize;
///
/// let img = array![[0.1_f64, 0.3, 0.5, 0.9]];
/// assert_eq!(digitize(img.view(), &[0.3, 0.6]), array![[0, 1, 1, 2]]);
/// ```
#[must_use]
pub fn digitize<T: Real>(img: ArrayView2<'_, T>, thresholds: &[T]) -> Array2<i32> {
    let top = i32::try_from(thresholds.len()).unwrap_or(i32::MAX);
    img.mapv(|x| {
        if x.is_nan() {
            top
        } else {
            // At most a handful of thresholds: a linear count beats a binary search.
            thresholds.iter().fold(0_i32, |n, &t| n + i32::from(t <= x))
        }
    })
}

/// Binary labels `(x > t)` as 0/1, scikit-image's convention for an Otsu threshold
/// (`img > threshold_otsu(img)`). NaN pixels get 0.
///
/// # Example
/// ```
/// use ndarray::array;
/// use phyvae_imaging::threshold::binarize;
///
/// let img = array![[0.2_f32, 0.5, 0.7]];
/// assert_eq!(binarize(img.view(), 0.5), array![[0, 0, 1]]);
/// ```
#[must_use]
pub fn binarize<T: Real>(img: ArrayView2<'_, T>, threshold: T) -> Array2<i32> {
    img.mapv(|x| i32::from(x > threshold))
}

/// The multi-Otsu lookup table `H[i, j] = S_ij^2 / P_ij` of scikit-image's
/// `_set_var_btwcls_lut`, stored as a full `nbins x nbins` matrix (upper triangle used).
struct VarLut {
    nbins: usize,
    h: Vec<f32>,
}

impl VarLut {
    #[allow(clippy::cast_precision_loss)]
    fn new(prob: &[f32]) -> Self {
        let nbins = prob.len();
        let mut h = vec![0.0_f32; nbins * nbins];
        let mut zeroth = vec![0.0_f32; nbins];
        let mut first = vec![0.0_f32; nbins];
        zeroth[0] = prob[0];
        first[0] = prob[0];
        for i in 1..nbins {
            zeroth[i] = zeroth[i - 1] + prob[i];
            first[i] = first[i - 1] + (i as f32) * prob[i];
            if zeroth[i] > 0.0 {
                h[i] = first[i] * first[i] / zeroth[i];
            }
        }
        for i in 1..nbins {
            let (z0, f0) = (zeroth[i - 1], first[i - 1]);
            let row = &mut h[i * nbins..(i + 1) * nbins];
            for j in i..nbins {
                let z = zeroth[j] - z0;
                if z > 0.0 {
                    let f = first[j] - f0;
                    row[j] = f * f / z;
                }
            }
        }
        Self { nbins, h }
    }

    #[inline]
    fn get(&self, i: usize, j: usize) -> f32 {
        self.h[i * self.nbins + j]
    }

    /// The objective of scikit-image's `_set_thresh_indices_lut`, summed in its order.
    fn sigma(&self, t: &[usize]) -> f32 {
        let m = t.len();
        let mut sigma = self.get(0, t[0]) + self.get(t[m - 1] + 1, self.nbins - 1);
        for k in 0..m - 1 {
            sigma += self.get(t[k] + 1, t[k + 1]);
        }
        sigma
    }
}

/// Exhaustive search in scikit-image's order (lexicographic, strict improvement): the
/// reference the pruned search is tested against.
#[cfg(test)]
fn brute_force_search(lut: &VarLut, thresh_count: usize) -> Vec<usize> {
    fn recurse(
        lut: &VarLut,
        start: usize,
        k: usize,
        cur: &mut Vec<usize>,
        best: &mut (f32, Vec<usize>),
    ) {
        let m = cur.len();
        if k == m {
            let s = lut.sigma(cur);
            if s > best.0 {
                best.0 = s;
                best.1.copy_from_slice(cur);
            }
            return;
        }
        for idx in start..lut.nbins - m + k {
            cur[k] = idx;
            recurse(lut, idx + 1, k + 1, cur, best);
        }
    }
    let mut cur = vec![0; thresh_count];
    let mut best = (0.0_f32, vec![0; thresh_count]);
    recurse(lut, 0, 0, &mut cur, &mut best);
    best.1
}

/// Upper bounds for the pruned search: `best[r][s]` is the largest (exact, `f64`) sum of
/// table entries over all ways to split bins `s..nbins` into `r + 1` non-empty classes.
struct Bounds {
    nbins: usize,
    best: Vec<f64>,
    /// Argmax split point for reconstructing the dynamic-programming optimum.
    arg: Vec<usize>,
}

impl Bounds {
    fn new(lut: &VarLut, thresh_count: usize) -> Self {
        let n = lut.nbins;
        let mut best = vec![f64::NEG_INFINITY; (thresh_count + 1) * n];
        let mut arg = vec![0; (thresh_count + 1) * n];
        for (s, b) in best[..n].iter_mut().enumerate() {
            *b = f64::from(lut.get(s, n - 1));
        }
        for r in 1..=thresh_count {
            for s in 0..n.saturating_sub(r) {
                let mut b = f64::NEG_INFINITY;
                let mut a = s;
                for t in s..n - r {
                    let v = f64::from(lut.get(s, t)) + best[(r - 1) * n + t + 1];
                    if v > b {
                        b = v;
                        a = t;
                    }
                }
                best[r * n + s] = b;
                arg[r * n + s] = a;
            }
        }
        Self {
            nbins: n,
            best,
            arg,
        }
    }

    #[inline]
    fn get(&self, r: usize, s: usize) -> f64 {
        self.best[r * self.nbins + s]
    }

    /// The threshold tuple achieving the dynamic-programming optimum.
    fn argmax(&self, thresh_count: usize) -> Vec<usize> {
        let mut t = Vec::with_capacity(thresh_count);
        let mut s = 0;
        for r in (1..=thresh_count).rev() {
            let a = self.arg[r * self.nbins + s];
            t.push(a);
            s = a + 1;
        }
        t
    }
}

/// State of the pruned search.
struct Search<'a> {
    lut: &'a VarLut,
    bounds: Bounds,
    /// The `float32` objective of the dynamic-programming optimum: the global maximum is
    /// at least this, so a branch that cannot reach it cannot hold the answer.
    floor: f32,
    best_sigma: f32,
    best: Vec<usize>,
    cur: Vec<usize>,
}

impl Search<'_> {
    /// Places threshold `k` at `start..`, `partial` being the exact sum of the table
    /// entries of the classes fixed so far.
    fn recurse(&mut self, start: usize, k: usize, partial: f64) {
        let m = self.cur.len();
        let n = self.lut.nbins;
        if k == m {
            let s = self.lut.sigma(&self.cur);
            if s > self.best_sigma {
                self.best_sigma = s;
                self.best.copy_from_slice(&self.cur);
            }
            return;
        }
        for idx in start..n - m + k {
            let seg = f64::from(self.lut.get(start, idx));
            let bound = partial + seg + self.bounds.get(m - k - 1, idx + 1);
            let target = f64::from(self.floor.max(self.best_sigma));
            if bound * (1.0 + PRUNE_MARGIN) < target {
                continue;
            }
            self.cur[k] = idx;
            self.recurse(idx + 1, k + 1, partial + seg);
        }
    }
}

/// Exact multi-Otsu search with pruning; returns scikit-image's threshold indices.
fn pruned_search(lut: &VarLut, thresh_count: usize) -> Vec<usize> {
    let bounds = Bounds::new(lut, thresh_count);
    let dp_best = bounds.argmax(thresh_count);
    let floor = lut.sigma(&dp_best);
    let mut search = Search {
        lut,
        bounds,
        floor,
        best_sigma: 0.0,
        best: vec![0; thresh_count],
        cur: vec![0; thresh_count],
    };
    search.recurse(0, 0, 0.0);
    search.best
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    use proptest::prelude::*;

    #[test]
    fn histogram_of_two_values() {
        // [0, 1]: step 1/256, edges i/256; 0 falls in bin 0, 1 in the last (closed) bin.
        let img = array![[0.0_f64, 1.0, 1.0]];
        let h = Histogram::of(img.view(), finite_min_max(img.view()).unwrap()).unwrap();
        assert_eq!(h.counts[0], 1);
        assert_eq!(h.counts[255], 2);
        assert_eq!(h.counts.iter().sum::<u64>(), 3);
        assert_eq!(h.centers[0], 0.5 / 256.0);
        assert_eq!(h.centers[255], 255.5 / 256.0);
    }

    #[test]
    fn histogram_bins_by_edges() {
        // Range [0, 2.56]: edges i * 0.01; 0.015 -> bin 1, 0.025 -> bin 2.
        let img = array![[0.0_f64, 0.015, 0.025, 2.56]];
        let h = Histogram::of(img.view(), finite_min_max(img.view()).unwrap()).unwrap();
        assert_eq!(h.counts[0], 1);
        assert_eq!(h.counts[1], 1);
        assert_eq!(h.counts[2], 1);
        assert_eq!(h.counts[255], 1);
    }

    #[test]
    fn otsu_constant_image_returns_its_value() {
        let img = Array2::from_elem((3, 4), 0.25_f64);
        assert_eq!(otsu(img.view()).unwrap(), 0.25);
    }

    #[test]
    fn otsu_two_clusters_splits_between_them() {
        // Values 0 (x3) and 1 (x3): every split between bins 0 and 255 gives the same
        // variance 3*3*1^2, so the first bin (centre 1/512) wins.
        let img = array![[0.0_f64, 0.0, 0.0], [1.0, 1.0, 1.0]];
        assert_eq!(otsu(img.view()).unwrap(), 1.0 / 512.0);
    }

    #[test]
    fn otsu_three_values_hand_computed() {
        // Values 0, 0, 0.5, 1 over [0, 1]: bins 0 (2 px), 128 (1 px, edge 0.5 starts bin
        // 128), 255 (1 px). Splits: after bin 0: w 2*2, means 0 and 0.75 -> 4*0.5625 = 2.25;
        // after bin 128: w 3*1, means 1/6 and 1 -> 3*(5/6)^2 = 2.083. The first wins, so
        // t = centre of bin 0 = 1/512.
        let img = array![[0.0_f64, 0.0, 0.5, 1.0]];
        assert_eq!(otsu(img.view()).unwrap(), 1.0 / 512.0);
    }

    #[test]
    fn otsu_rejects_empty_and_nonfinite() {
        let empty = Array2::<f64>::zeros((0, 3));
        assert!(matches!(
            otsu(empty.view()),
            Err(ImagingError::EmptyImage { .. })
        ));
        let bad = array![[0.0_f32, f32::NAN]];
        assert!(matches!(
            otsu(bad.view()),
            Err(ImagingError::NonFinite { row: 0, col: 1, .. })
        ));
    }

    #[test]
    fn narrow_range_is_an_error() {
        // Three adjacent f32 values around 1: range 2 ulp (2.4e-7) / 256 bins is below
        // one ulp, so the edges repeat (numpy: "Too many bins for data range").
        let a = 1.0_f32;
        let img = array![[a, a.next_up(), a.next_up().next_up(), a]];
        assert!(matches!(
            otsu(img.view()),
            Err(ImagingError::RangeTooNarrow { bins: 256, .. })
        ));
        assert!(matches!(
            multiotsu(img.view(), 2),
            Err(ImagingError::RangeTooNarrow { .. })
        ));
        // The same pattern in f64 has 2^29 times finer steps... still only 2 ulp of
        // range: an error as well.
        let b = 1.0_f64;
        let img64 = array![[b, b.next_up(), b.next_up().next_up()]];
        assert!(matches!(
            otsu(img64.view()),
            Err(ImagingError::RangeTooNarrow { .. })
        ));
        // A constant f32 image of 1e9 (ulp 64): otsu returns the value, multi-Otsu
        // widens to [v - 0.5, v + 0.5], which f32 cannot split.
        let flat = Array2::from_elem((2, 2), 1e9_f32);
        assert_eq!(otsu(flat.view()).unwrap(), 1e9);
        assert!(matches!(
            multiotsu(flat.view(), 2),
            Err(ImagingError::RangeTooNarrow { .. })
        ));
    }

    #[test]
    fn strided_views_give_the_same_thresholds() {
        let img = Array2::from_shape_fn((9, 13), |(i, j)| ((i * 5 + j * 11) % 17) as f64 / 3.0);
        let t = img.t();
        let owned = t.to_owned();
        assert_eq!(otsu(t).unwrap(), otsu(owned.view()).unwrap());
        assert_eq!(
            multiotsu(t, 4).unwrap(),
            multiotsu(owned.view(), 4).unwrap()
        );
        let mut stepped = img.view();
        stepped.slice_axis_inplace(ndarray::Axis(0), ndarray::Slice::new(0, None, 2));
        stepped.slice_axis_inplace(ndarray::Axis(1), ndarray::Slice::new(1, None, 3));
        let owned = stepped.to_owned();
        assert_eq!(otsu(stepped).unwrap(), otsu(owned.view()).unwrap());
        // Rows 0, 2, .., 8 and columns 1, 4, 7, 10: (8*5 + 1*11) % 17 = 0 and
        // (8*5 + 4*11) % 17 = 16 are the extremes.
        assert_eq!(finite_min_max(stepped).unwrap(), (0.0, 16.0 / 3.0));
    }

    #[test]
    fn multiotsu_rejects_classes_out_of_range() {
        let img = array![[0.0_f64, 0.5, 1.0]];
        for classes in [0, 1, 6] {
            assert!(matches!(
                multiotsu(img.view(), classes),
                Err(ImagingError::InvalidParameter {
                    name: "classes",
                    ..
                })
            ));
        }
    }

    #[test]
    fn multiotsu_too_few_levels() {
        let img = array![[0.0_f64, 1.0, 1.0]];
        assert_eq!(
            multiotsu(img.view(), 3),
            Err(ImagingError::TooFewLevels {
                classes: 3,
                needed: 3,
                found: 2
            })
        );
        let flat = Array2::from_elem((2, 2), 3.0_f64);
        assert!(matches!(
            multiotsu(flat.view(), 2),
            Err(ImagingError::TooFewLevels { found: 1, .. })
        ));
    }

    #[test]
    fn multiotsu_two_classes_hand_computed() {
        // Values 0, 0, 0.5, 1: prob 0.5 (bin 0), 0.25 (bin 128), 0.25 (bin 255).
        // Cumulative P: 0.5 | 0.75 from bin 128 | 1 at 255; cumulative S (starting at
        // prob[0] = 0.5, scikit-image's quirk): 0.5 | 0.5 + 128*0.25 = 32.5 | 96.25.
        // H[0,0] = 0 (never set); H[0,t] = 0.5^2/0.5 = 0.5 for 1 <= t <= 127 and
        // 32.5^2/0.75 = 1408.33 for t >= 128; H[t+1,255] = 95.75^2/0.5 = 18336.125 for
        // t <= 127 and 63.75^2/0.25 = 16256.25 for t >= 128. Objective: t = 0: 18336.125;
        // 1 <= t <= 127: 18336.625; t >= 128: 17664.58. First maximum t = 1, centre
        // 1.5/256 (skimage: threshold_multiotsu([[0, 0, .5, 1.]], classes=2) = 0.00585938).
        let img = array![[0.0_f64, 0.0, 0.5, 1.0]];
        assert_eq!(multiotsu(img.view(), 2).unwrap(), vec![1.5 / 256.0]);
    }

    #[test]
    fn multiotsu_exactly_classes_levels() {
        let img = array![[0.0_f64, 0.25, 1.0, 1.0]];
        // Occupied bins 0, 64, 255 -> thresholds = centres of bins 0 and 64.
        assert_eq!(
            multiotsu(img.view(), 3).unwrap(),
            vec![0.5 / 256.0, 64.5 / 256.0]
        );
    }

    #[test]
    fn digitize_and_binarize_conventions() {
        let img = array![[0.0_f64, 0.3, 0.6, 0.7], [f64::NAN, -1.0, 1.0, 0.29]];
        assert_eq!(
            digitize(img.view(), &[0.3, 0.6]),
            array![[0, 1, 2, 2], [2, 0, 2, 0]]
        );
        assert_eq!(
            binarize(img.view(), 0.3),
            array![[0, 0, 1, 1], [0, 0, 1, 0]]
        );
        assert_eq!(digitize(img.view(), &[]), Array2::<i32>::zeros((2, 4)));
    }

    /// A histogram of `nbins` probabilities from integer counts, many of them zero.
    fn prob_from_counts(counts: &[u32]) -> Vec<f32> {
        let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
        counts
            .iter()
            .map(|&c| (f64::from(c) / total as f64) as f32)
            .collect()
    }

    fn counts_strategy(nbins: std::ops::Range<usize>) -> impl Strategy<Value = Vec<u32>> {
        prop::collection::vec(
            prop_oneof![3 => Just(0_u32), 2 => 1_u32..4, 2 => 0_u32..1000],
            nbins,
        )
        .prop_filter("need at least 6 occupied bins", |c| {
            c.iter().filter(|&&v| v > 0).count() >= 6
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn pruned_equals_brute_force_small(counts in counts_strategy(8..40), m in 1_usize..5) {
            let lut = VarLut::new(&prob_from_counts(&counts));
            prop_assume!(lut.nbins > m);
            prop_assert_eq!(pruned_search(&lut, m), brute_force_search(&lut, m));
        }

        #[test]
        fn pruned_equals_brute_force_256(counts in counts_strategy(256..257), m in 1_usize..4) {
            let lut = VarLut::new(&prob_from_counts(&counts));
            prop_assert_eq!(pruned_search(&lut, m), brute_force_search(&lut, m));
        }
    }

    #[test]
    fn pruned_equals_brute_force_256_four_thresholds() {
        // Five classes on full 256-bin histograms (the exhaustive search is ~1.7e8
        // evaluations each): a smooth bimodal histogram and a sparse one with ties.
        let smooth: Vec<u32> = (0..256)
            .map(|i| {
                let x = f64::from(i);
                let g = |m: f64, s: f64| (-(x - m).powi(2) / (2.0 * s * s)).exp();
                (1000.0 * (g(60.0, 20.0) + 0.6 * g(180.0, 30.0))).round() as u32 + 1
            })
            .collect();
        let sparse: Vec<u32> = (0..256)
            .map(|i| {
                if i % 37 == 0 || i % 53 == 0 {
                    1 + i % 5
                } else {
                    0
                }
            })
            .collect();
        for counts in [smooth, sparse] {
            let lut = VarLut::new(&prob_from_counts(&counts));
            assert_eq!(pruned_search(&lut, 4), brute_force_search(&lut, 4));
        }
    }
}
