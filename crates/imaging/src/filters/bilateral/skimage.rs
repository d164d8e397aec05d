//! The kernel of [`BilateralMode::Skimage`](super::BilateralMode::Skimage):
//! scikit-image 0.26 `denoise_bilateral` on a 2-D grayscale image, with its
//! colour table, its spatial table as the Cython loop reads it, and its
//! zero-padded loop (`restoration/_denoise_cy.pyx`).

use super::BilateralParams;
use crate::{ImagingError, Real, Result};
use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

/// Number of neighbouring output pixels filtered together in scikit-image
/// mode; their accumulators are independent, which lets the processor overlap
/// them while each pixel keeps scikit-image's summation order.
const LANES: usize = 4;

/// scikit-image's colour table: `np.exp(-0.5 * (values**2 / sigma_sq), dtype=T)`
/// with `values = np.linspace(0, max_value, bins, endpoint=False)` in `T`
/// (`step = max_value / bins`, `values[b] = b * step`; NumPy's zero-step branch
/// `b / bins * max_value` when the step underflows to 0).
struct ColorTable<T> {
    bins: T,
    step: T,
    max_value: T,
    sigma_sq: T,
}

impl<T: Real> ColorTable<T> {
    fn new(bins: usize, sigma_sq: T, max_value: T) -> Self {
        #[allow(clippy::cast_precision_loss)]
        let bins = T::c(bins as f64);
        Self {
            bins,
            step: max_value / bins,
            max_value,
            sigma_sq,
        }
    }

    /// Entry `b` of the table.
    fn entry(&self, b: usize) -> T {
        #[allow(clippy::cast_precision_loss)]
        let bt = T::c(b as f64);
        let v = if self.step == T::zero() {
            bt / self.bins * self.max_value
        } else {
            bt * self.step
        };
        (T::c(-0.5) * (v * v / self.sigma_sq)).exp()
    }
}

/// The whole colour table.
fn skimage_color_lut<T: Real>(bins: usize, sigma_sq: T, max_value: T) -> Vec<T> {
    let table = ColorTable::new(bins, sigma_sq, max_value);
    (0..bins).map(|b| table.entry(b)).collect()
}

/// scikit-image's colour bin of a pixel difference `t`:
/// `min(<Py_ssize_t>(sqrt(t * t) * dist_scale), bins - 1)`.
pub(super) fn color_bin<T: Real>(t: T, dist_scale: T, max_bin: usize) -> usize {
    ((t * t).sqrt() * dist_scale)
        .to_usize()
        .map_or(max_bin, |b| b.min(max_bin))
}

/// The colour table as the filter reads it. For a small image, whose
/// `n (n + 1)` (centre, neighbour-or-padding) value pairs are fewer than the
/// bins, only the entries some pair falls into are evaluated (the others stay
/// 0 and are never read); each evaluated entry is the same number as in the
/// full table.
pub(super) fn color_lut_for<T: Real>(
    pixels: &[T],
    bins: usize,
    sigma_sq: T,
    max_value: T,
    dist_scale: T,
) -> Vec<T> {
    let n = pixels.len();
    if n.saturating_mul(n + 1) >= bins {
        return skimage_color_lut(bins, sigma_sq, max_value);
    }
    let table = ColorTable::new(bins, sigma_sq, max_value);
    let mut lut = vec![T::zero(); bins];
    let mut done = vec![false; bins];
    for &c in pixels {
        for &v in pixels.iter().chain(std::iter::once(&T::zero())) {
            let b = color_bin(c - v, dist_scale, bins - 1);
            if !done[b] {
                done[b] = true;
                lut[b] = table.entry(b);
            }
        }
    }
    lut
}

/// scikit-image's spatial weights as its loop reads them: entry `kr * win + kc`
/// of the `(win + 1)^2` table `exp(-0.5 * (hypot(i, j)**2 / sigma^2))` over
/// `i, j` in `np.arange(-win//2, win//2 + 1)`; argument in `f64`, exponential
/// in `T` (NumPy's `np.exp(..., dtype=T)`).
pub(super) fn skimage_spatial_weights<T: Real>(win: usize, sigma_spatial: f64) -> Vec<T> {
    let side = win + 1;
    // -win // 2 in Python (floor division) for odd win.
    #[allow(clippy::cast_precision_loss)]
    let first = -(side as f64 / 2.0);
    let sigma_sq = sigma_spatial * sigma_spatial;
    (0..win * win)
        .map(|flat| {
            #[allow(clippy::cast_precision_loss)]
            let (i, j) = ((flat / side) as f64 + first, (flat % side) as f64 + first);
            let d = i.hypot(j);
            T::c(-0.5 * (d * d / sigma_sq)).exp()
        })
        .collect()
}

/// The padded image and tables of scikit-image mode.
struct SkimageKernel<'a, T> {
    /// Shifted image surrounded by `(win - 1) / 2` pixels of `cval = 0`, row-major.
    padded: &'a [T],
    /// Row length of `padded`.
    stride: usize,
    /// Window side.
    win: usize,
    /// `win * win` spatial weights in window order.
    spatial: &'a [T],
    /// Colour weights by bin.
    color: &'a [T],
    /// `bins - 1`.
    max_bin: usize,
    /// `bins / max` (shifted maximum), in `T`.
    dist_scale: T,
}

impl<T: Real> SkimageKernel<'_, T> {
    /// Filters the `L` pixels `(r, c) .. (r, c + L)` of the unpadded image.
    /// Each accumulates in scikit-image's order (window rows, then columns);
    /// the `L` independent sums run interleaved.
    ///
    /// scikit-image computes the colour distance as `sqrt(t * t)`; with
    /// `SQRT = false` it is taken as `|t|`, which is the same number whenever
    /// `t * t` neither underflows nor overflows (IEEE binary arithmetic,
    /// round-to-nearest). [`Self::exact_with_abs`] says when that holds for
    /// every bin that matters.
    #[inline(always)]
    fn pixels<const L: usize, const SQRT: bool>(&self, r: usize, c: usize) -> [T; L] {
        let ext = (self.win - 1) / 2;
        let mut centre = [T::zero(); L];
        let start = (r + ext) * self.stride + c + ext;
        centre.copy_from_slice(&self.padded[start..start + L]);
        let mut values = [T::zero(); L];
        let mut weights = [T::zero(); L];
        // Length max_bin + 1, so that indexing with a bin <= max_bin needs no check.
        let color = &self.color[..=self.max_bin];
        for (kr, spatial_row) in self.spatial.chunks_exact(self.win).enumerate() {
            let start = (r + kr) * self.stride + c;
            let row = &self.padded[start..start + self.win + L - 1];
            for (&s, v) in spatial_row.iter().zip(row.windows(L)) {
                for j in 0..L {
                    let value = v[j];
                    let t = centre[j] - value;
                    let bin = if SQRT {
                        color_bin(t, self.dist_scale, self.max_bin)
                    } else {
                        // 32-bit conversion (one instruction); values beyond
                        // i32::MAX exceed max_bin (see exact_with_abs).
                        (t.abs() * self.dist_scale)
                            .to_i32()
                            .map_or(self.max_bin, |b| (b as usize).min(self.max_bin))
                    };
                    let weight = s * color[bin];
                    values[j] += value * weight;
                    weights[j] += weight;
                }
            }
        }
        let mut out = [T::zero(); L];
        for j in 0..L {
            out[j] = values[j] / weights[j];
        }
        out
    }

    /// Whether the fast bin computation gives scikit-image's bins: `|t|` equals
    /// `sqrt(t * t)` because `t * t` cannot overflow (`|t| <= max_value <=
    /// sqrt(MAX) / 2`), and where it underflows (`|t| < sqrt(MIN_POSITIVE)`) both
    /// distances fall in bin 0; and `max_bin` fits the 32-bit conversion.
    fn exact_with_abs(&self, max_value: T) -> bool {
        let tiny = T::min_positive_value().sqrt();
        tiny * self.dist_scale < T::c(0.25)
            && max_value <= T::max_value().sqrt() * T::c(0.5)
            && i32::try_from(self.max_bin).is_ok()
    }

    /// Filters every pixel into `out`, the row-major `h x w` unpadded image.
    /// Rows are independent, so they run in parallel (rayon); each pixel's sum
    /// is computed by one thread in a fixed order, so the result does not
    /// depend on the number of threads.
    fn filter<const SQRT: bool>(&self, out: &mut [T], w: usize) {
        out.par_chunks_mut(w).enumerate().for_each(|(r, line)| {
            let mut chunks = line.chunks_exact_mut(LANES);
            for (k, chunk) in chunks.by_ref().enumerate() {
                chunk.copy_from_slice(&self.pixels::<LANES, SQRT>(r, k * LANES));
            }
            let rest = chunks.into_remainder();
            let first = w - rest.len();
            for (k, o) in rest.iter_mut().enumerate() {
                *o = self.pixels::<1, SQRT>(r, first + k)[0];
            }
        });
    }
}

/// What scikit-image's bilateral filter derives from the image before it
/// filters: the spatial weights of the window, the shift of a negative image
/// to 0, the colour-bin scale and the colour table. The filter and its dense
/// operator both start from these.
pub(super) struct SkimageTables<T> {
    /// Spatial weights of the `win x win` window, row-major.
    pub spatial: Vec<T>,
    /// Whether the image is shifted by its minimum (it has negative values).
    pub shift: bool,
    /// The largest value after the shift.
    pub max_value: T,
    /// Colour bins per unit of value.
    pub dist_scale: T,
    /// The image after the shift, row-major.
    pub shifted: Vec<T>,
    /// Colour weight of each bin.
    pub color: Vec<T>,
}

impl<T: Real> SkimageTables<T> {
    /// The tables of `img`, whose minimum and maximum are `lo` and `hi`.
    pub(super) fn new(
        img: ArrayView2<'_, T>,
        params: &BilateralParams,
        (lo, hi): (T, T),
        sigma_color_sq: T,
    ) -> Self {
        let spatial = skimage_spatial_weights::<T>(params.window(), params.sigma_spatial);
        let shift = lo < T::zero();
        let max_value = if shift { hi - lo } else { hi };
        #[allow(clippy::cast_precision_loss)]
        let dist_scale = T::c(params.bins as f64) / max_value;
        let shifted: Vec<T> = img
            .iter()
            .map(|&v| if shift { v - lo } else { v })
            .collect();
        // The colour table uses the unshifted maximum; the bin scale the shifted one.
        let color = color_lut_for(&shifted, params.bins, sigma_color_sq, hi, dist_scale);
        Self {
            spatial,
            shift,
            max_value,
            dist_scale,
            shifted,
            color,
        }
    }
}

/// [`BilateralMode::Skimage`](super::BilateralMode::Skimage) on a finite, non-constant image.
pub(super) fn skimage_bilateral<T: Real>(
    img: ArrayView2<'_, T>,
    params: &BilateralParams,
    (lo, hi): (T, T),
    sigma_color_sq: T,
) -> Result<Array2<T>> {
    let (h, w) = img.dim();
    let win = params.window();
    let ext = (win - 1) / 2;
    let too_large = || ImagingError::InvalidParameter {
        name: "win_size",
        value: win.to_string(),
        rule: "window too large to pad the image",
    };
    let stride = w.checked_add(2 * ext).ok_or_else(too_large)?;
    let padded_len = h
        .checked_add(2 * ext)
        .and_then(|ph| ph.checked_mul(stride))
        .ok_or_else(too_large)?;
    win.checked_mul(win).ok_or_else(too_large)?;

    let SkimageTables {
        spatial,
        shift,
        max_value,
        dist_scale,
        shifted,
        color,
    } = SkimageTables::new(img, params, (lo, hi), sigma_color_sq);

    // cval = 0 is not shifted.
    let mut padded = vec![T::zero(); padded_len];
    for (r, row) in shifted.chunks_exact(w).enumerate() {
        let start = (r + ext) * stride + ext;
        padded[start..start + w].copy_from_slice(row);
    }
    let kernel = SkimageKernel {
        padded: &padded,
        stride,
        win,
        spatial: &spatial,
        color: &color,
        max_bin: params.bins - 1,
        dist_scale,
    };

    let mut out = vec![T::zero(); h * w];
    if kernel.exact_with_abs(max_value) {
        kernel.filter::<false>(&mut out, w);
    } else {
        kernel.filter::<true>(&mut out, w);
    }
    if shift {
        for v in &mut out {
            *v += lo;
        }
    }
    Array2::from_shape_vec((h, w), out).map_err(|_| too_large())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::bilateral::tests::{params, win3_weights};
    use crate::filters::bilateral::{BilateralMode, denoise_bilateral};
    use crate::numeric::{min_max, numpy_std};
    use ndarray::array;
    use proptest::prelude::*;

    #[test]
    fn spatial_table_is_read_with_the_wrong_stride() {
        // win 31: grid np.arange(-16, 16); flat index kr * 31 + kc of a 32-wide table.
        // Centre (15, 15): 480 -> (15, 0) -> (-1, -16), weight exp(-(1 + 256) / 50).
        // (0, 0): 0 -> (-16, -16), weight exp(-512 / 50).
        // (0, 1): 1 -> (-16, -15); (1, 0): 31 -> (0, 31) -> (-16, 15): both 481 / 50.
        // (30, 30): 960 -> (30, 0) -> (14, -16), weight exp(-452 / 50).
        let w = skimage_spatial_weights::<f64>(31, 5.0);
        assert_eq!(w.len(), 31 * 31);
        let g = |d2: f64| (-d2 / 50.0).exp();
        for (k, d2) in [
            (15 * 31 + 15, 257.0),
            (0, 512.0),
            (1, 481.0),
            (31, 481.0),
            (960, 452.0),
        ] {
            assert!((w[k] - g(d2)).abs() <= 1e-14 * g(d2), "entry {k}");
        }
    }

    #[test]
    fn color_table_is_quantised_gaussian() {
        // linspace(0, 2, 4, endpoint=False) = [0, 0.5, 1, 1.5]; sigma^2 = 1.
        let lut = skimage_color_lut(4, 1.0_f64, 2.0);
        for (b, x) in [0.0_f64, 0.5, 1.0, 1.5].iter().enumerate() {
            assert!((lut[b] - (-0.5 * x * x).exp()).abs() < 1e-16);
        }
    }

    #[test]
    fn skimage_mode_hand_computed() {
        // [[0, 1]], sigma_color 1, sigma_spatial 1, win 3, bins 10; padding 0 counts.
        // Colour table on [0, 0.1, .., 0.9]; a distance of 1 maps to bin min(10, 9) = 9,
        // weight exp(-0.405); distance 0 to bin 0, weight 1.
        // (0,0): centre 0, the only non-zero neighbour is 1 at window (1, 2) (k = 5):
        //   out = e^-1 e^-0.405 / (sum_{k != 5} s_k + e^-1 e^-0.405).
        // (0,1): centre 1, all neighbours but itself (k = 4, s = e^-2.5) are at distance 1:
        //   out = e^-2.5 / (e^-2.5 + e^-0.405 sum_{k != 4} s_k).
        // scikit-image 0.26: denoise_bilateral(np.array([[0., 1.]]), win_size=3,
        //   sigma_color=1, sigma_spatial=1, bins=10) = [[0.13980883, 0.06414867]].
        let s = win3_weights();
        let total: f64 = s.iter().sum();
        let q = (-0.405_f64).exp();
        let left = s[5] * q / (total - s[5] + s[5] * q);
        let right = s[4] / (s[4] + q * (total - s[4]));
        let out = denoise_bilateral(
            array![[0.0_f64, 1.0]].view(),
            &params(BilateralMode::Skimage),
        )
        .unwrap();
        assert!((out[[0, 0]] - left).abs() < 1e-14, "{out}");
        assert!((out[[0, 1]] - right).abs() < 1e-14, "{out}");
        assert!((left - 0.139_808_83).abs() < 1e-8 && (right - 0.064_148_67).abs() < 1e-8);
    }

    #[test]
    fn skimage_mode_negative_image_shift_quirk() {
        // [[-1, 0]]: shifted to [0, 1], padding stays 0, colour table built on
        // linspace(0, max = 0, ...) = zeros, so every colour weight is 1:
        // out = sum(s_k v_k) / sum(s_k) - 1, i.e. e^-1 / S - 1 and e^-2.5 / S - 1.
        // scikit-image 0.26 gives [[-0.80406209, -0.95628034]].
        let s = win3_weights();
        let total: f64 = s.iter().sum();
        let out = denoise_bilateral(
            array![[-1.0_f64, 0.0]].view(),
            &params(BilateralMode::Skimage),
        )
        .unwrap();
        assert!((out[[0, 0]] - (s[5] / total - 1.0)).abs() < 1e-14, "{out}");
        assert!((out[[0, 1]] - (s[4] / total - 1.0)).abs() < 1e-14, "{out}");
        assert!((out[[0, 0]] + 0.804_062_09).abs() < 1e-8);
    }

    #[test]
    fn lanes_and_remainder_match_direct_evaluation() {
        // 1 x 6 image: columns 0..4 take the 4-lane path, 4..6 the single-lane path.
        // Both must equal a direct, unpadded evaluation of scikit-image's loop
        // (same summation order, so bit-identical).
        let img = array![[0.1_f64, 0.7, 0.3, 0.9, 0.2, 0.5]];
        let out = denoise_bilateral(img.view(), &params(BilateralMode::Skimage)).unwrap();
        let s = skimage_spatial_weights::<f64>(3, 1.0);
        let lut = skimage_color_lut(10, 1.0, 0.9);
        for c in 0..6_usize {
            let (mut tv, mut tw) = (0.0, 0.0);
            for kr in 0..3 {
                for kc in 0..3_usize {
                    let cc = (c + kc).checked_sub(1).filter(|&cc| cc < 6);
                    let v = match cc {
                        Some(cc) if kr == 1 => img[[0, cc]],
                        _ => 0.0,
                    };
                    let bin = (((img[[0, c]] - v).abs() * (10.0 / 0.9)) as usize).min(9);
                    let wgt = s[kr * 3 + kc] * lut[bin];
                    tv += v * wgt;
                    tw += wgt;
                }
            }
            assert_eq!(out[[0, c]], tv / tw, "column {c}");
        }
    }

    #[test]
    fn small_image_partial_color_table_matches_full_table() {
        // 3 x 3 image, 10 000 bins: 9 * 10 pairs < 10 000, so only the reached
        // entries are evaluated. Compare with a direct evaluation of scikit-image's
        // loop using the full table (zero padding of the 3 x 3 window, win 3).
        let img = array![[0.1_f64, 0.8, 0.35], [0.6, 0.05, 0.9], [0.3, 0.7, 0.2]];
        let p = BilateralParams::new().win_size(Some(3)).build().unwrap();
        let out = denoise_bilateral(img.view(), &p).unwrap();
        let std = numpy_std(img.view());
        let lut = skimage_color_lut(10_000, std * std, 0.9);
        let s = skimage_spatial_weights::<f64>(3, 1.0);
        for ((r, c), &got) in out.indexed_iter() {
            let (mut tv, mut tw) = (0.0, 0.0);
            for kr in 0..3_usize {
                for kc in 0..3_usize {
                    let rr = (r + kr).checked_sub(1).filter(|&x| x < 3);
                    let cc = (c + kc).checked_sub(1).filter(|&x| x < 3);
                    let v = match (rr, cc) {
                        (Some(rr), Some(cc)) => img[[rr, cc]],
                        _ => 0.0,
                    };
                    let bin = (((img[[r, c]] - v).abs() * (10_000.0 / 0.9)) as usize).min(9_999);
                    let wgt = s[kr * 3 + kc] * lut[bin];
                    tv += v * wgt;
                    tw += wgt;
                }
            }
            assert_eq!(got, tv / tw, "pixel ({r}, {c})");
        }
    }

    #[test]
    fn sqrt_and_abs_distance_paths_agree() {
        // The exact sqrt(t * t) path (used for images of extreme range) and the
        // |t| path give the same output on an ordinary image.
        let img = array![[0.1_f64, 0.7, 0.3], [0.9, 0.2, 0.5]];
        let (win, stride) = (5, 7);
        let mut padded = vec![0.0; 6 * stride];
        for ((r, c), &v) in img.indexed_iter() {
            padded[(r + 2) * stride + c + 2] = v;
        }
        let spatial = skimage_spatial_weights::<f64>(win, 1.0);
        let color = skimage_color_lut(100, 0.09, 0.9);
        let kernel = SkimageKernel {
            padded: &padded,
            stride,
            win,
            spatial: &spatial,
            color: &color,
            max_bin: 99,
            dist_scale: 100.0 / 0.9,
        };
        assert!(kernel.exact_with_abs(0.9));
        let (mut a, mut b) = (vec![0.0; 6], vec![0.0; 6]);
        kernel.filter::<true>(&mut a, 3);
        kernel.filter::<false>(&mut b, 3);
        assert_eq!(a, b);
        // A range of 1e-156 makes squared differences underflow: exact path.
        let tiny = SkimageKernel {
            dist_scale: 1e160,
            ..kernel
        };
        assert!(!tiny.exact_with_abs(1e-156));
        let huge = SkimageKernel {
            dist_scale: 1e-200,
            ..tiny
        };
        assert!(!huge.exact_with_abs(1e200));
    }

    proptest! {
        #[test]
        fn skimage_mode_stays_within_range_and_zero(
            data in proptest::collection::vec(-1.0f32..1.0, 12),
        ) {
            // A convex combination of (shifted) pixels and the zero padding.
            let img = Array2::from_shape_vec((3, 4), data).unwrap();
            let out = denoise_bilateral(img.view(), &BilateralParams::paper()).unwrap();
            let (lo, hi) = min_max(img.view());
            let tol = 1e-5;
            prop_assert!(out.iter().all(|&v| lo.min(0.0) - tol <= v && v <= hi + tol));
        }
    }
}
