//! The bilateral filter with its weights frozen at an image, as a dense linear
//! operator (to differentiate the phy-VAE SL1 loss with constant weights).

use super::skimage::{SkimageTables, color_bin};
use super::{BilateralMode, BilateralParams, colour_variance};
use crate::error::check_finite;
use crate::numeric::min_max;
use crate::{ImagingError, Real, Result};
use ndarray::{Array2, ArrayView2};

/// The bilateral filter of `image`, with its weights frozen at `image`, as a
/// dense linear operator: the `n x n` matrix `W` (`n = h * w`; row `p` is output
/// pixel `p`, column `q` input pixel `q`, both row-major) with
/// `W . vec(image) = vec(denoise_bilateral(image, params))` (to rounding).
///
/// Row `p` holds the normalised weights `w_pq / S_p` of the in-image
/// neighbours `q` of `p`, where `S_p` sums the weights of every window position
/// (the same weights as the filter; the sums in another order, so the result
/// agrees with [`denoise_bilateral`](super::denoise_bilateral) to rounding, not
/// bit for bit):
/// - [`BilateralMode::Skimage`]: `S_p` includes the zero-padding neighbours
///   (scikit-image's `mode='constant', cval=0`), so a row sums to less than 1
///   where the window leaves the image; the padding contributes weight but no
///   value. All padding positions have the value 0, hence one colour weight;
///   their spatial weights are summed in `f64` from a summed-area table, so
///   the cost is `O(n^2 + win^2)` rather than `O(n win^2)`. If the image has a negative minimum `lo`, scikit-image shifts the
///   image to start at 0 and shifts the output back, which is the affine map
///   `out_p = sum_q (w_pq / S_p) v_q + lo * P_p / S_p` (`P_p`: the padding
///   weight of `p`). Since `lo` is itself the value of a pixel (the first
///   minimum in row-major order), `P_p / S_p` is added to that pixel's column,
///   so that the identity above holds exactly at `image`;
/// - [`BilateralMode::Gaussian`]: the in-image neighbours only; rows sum to 1.
///
/// A constant image gives the identity (both modes return it unchanged).
///
/// This is the linearisation used to differentiate the phy-VAE SL1 loss
/// (Biswas et al. 2023, eq. 4) with the bilateral weights held constant: for a
/// nearby image `v`, `W . vec(v)` filters `v` with the weights of `image`. The
/// matrix has `n^2` entries (4096 for an 8 x 8 latent map): meant for small maps.
///
/// ```
/// use ndarray::{Array1, Array2};
/// use phyvae_imaging::filters::{BilateralParams, bilateral_operator, denoise_bilateral};
///
/// let img = Array2::from_shape_fn((4, 4), |(r, c)| ((r * 3 + c * 5) % 7) as f64 / 6.0);
/// let w = bilateral_operator(img.view(), &BilateralParams::paper())?;
/// let flat = Array1::from_iter(img.iter().copied());
/// let filtered = denoise_bilateral(img.view(), &BilateralParams::paper())?;
/// for (a, b) in w.dot(&flat).iter().zip(filtered.iter()) {
///     assert!((a - b).abs() < 1e-12);
/// }
/// # Ok::<(), phyvae_imaging::ImagingError>(())
/// ```
///
/// # Errors
/// As [`denoise_bilateral`](super::denoise_bilateral), and
/// [`ImagingError::InvalidParameter`] on `image` if `n^2` overflows `usize`.
#[must_use = "the operator is returned; the input is not modified"]
pub fn bilateral_operator<T: Real>(
    image: ArrayView2<'_, T>,
    params: &BilateralParams,
) -> Result<Array2<T>> {
    check_finite(image)?;
    let (h, w) = image.dim();
    let n = h * w;
    if n.checked_mul(n).is_none() {
        return Err(ImagingError::InvalidParameter {
            name: "image",
            value: format!("{h} x {w}"),
            rule: "too large for a dense (h w) x (h w) operator",
        });
    }
    let (lo, hi) = min_max(image);
    if lo == hi {
        return Ok(Array2::eye(n));
    }
    let sigma_color_sq = colour_variance(image, params)?;
    match params.mode {
        BilateralMode::Skimage => skimage_operator(image, params, (lo, hi), sigma_color_sq),
        BilateralMode::Gaussian => Ok(gaussian_operator(image, params, sigma_color_sq)),
    }
}

/// [`bilateral_operator`] in [`BilateralMode::Skimage`] for a finite,
/// non-constant image: the weights of
/// [`skimage_bilateral`](super::skimage::skimage_bilateral), from the same
/// tables; the zero-padding positions of a pixel are summed at once.
fn skimage_operator<T: Real>(
    img: ArrayView2<'_, T>,
    params: &BilateralParams,
    (lo, hi): (T, T),
    sigma_color_sq: T,
) -> Result<Array2<T>> {
    let (h, w) = img.dim();
    let n = h * w;
    let win = params.window();
    let ext = (win - 1) / 2;
    win.checked_mul(win)
        .ok_or_else(|| ImagingError::InvalidParameter {
            name: "win_size",
            value: win.to_string(),
            rule: "window too large to pad the image",
        })?;
    let SkimageTables {
        spatial,
        shift,
        dist_scale,
        shifted,
        color,
        ..
    } = SkimageTables::new(img, params, (lo, hi), sigma_color_sq);
    let max_bin = params.bins - 1;
    // The first minimum, row-major: the pixel whose value scikit-image shifts by.
    let argmin = img.iter().position(|&v| v == lo).unwrap_or(0);
    // Summed-area table of the spatial weights (in f64): the padding positions
    // of a pixel are the window minus a rectangle, and all have the value 0, so
    // they share one colour weight and their spatial weights can be summed at once.
    let side = win + 1;
    let mut area = vec![0.0_f64; side * side];
    for kr in 0..win {
        for kc in 0..win {
            area[(kr + 1) * side + kc + 1] = spatial[kr * win + kc].f64()
                + area[kr * side + kc + 1]
                + area[(kr + 1) * side + kc]
                - area[kr * side + kc];
        }
    }
    let rect = |(r0, r1): (usize, usize), (c0, c1): (usize, usize)| {
        area[r1 * side + c1] - area[r0 * side + c1] - area[r1 * side + c0] + area[r0 * side + c0]
    };

    let mut op = Array2::zeros((n, n));
    for (p, mut row) in op.outer_iter_mut().enumerate() {
        let (r, c) = (p / w, p % w);
        let centre = shifted[p];
        // Window rows kr (and columns kc) whose neighbour r + kr - ext lies in the image.
        let rows = (ext.saturating_sub(r), (ext + h - r).min(win));
        let cols = (ext.saturating_sub(c), (ext + w - c).min(win));
        let mut total = T::zero();
        for kr in rows.0..rows.1 {
            let rr = r + kr - ext;
            for kc in cols.0..cols.1 {
                let q = rr * w + c + kc - ext;
                let weight = spatial[kr * win + kc]
                    * color[color_bin(centre - shifted[q], dist_scale, max_bin)];
                row[q] = weight;
                total += weight;
            }
        }
        let padding_spatial = rect((0, win), (0, win)) - rect(rows, cols);
        let padding = T::c(padding_spatial) * color[color_bin(centre, dist_scale, max_bin)];
        total += padding;
        row.mapv_inplace(|v| v / total);
        if shift {
            row[argmin] += padding / total;
        }
    }
    Ok(op)
}

/// [`bilateral_operator`] in [`BilateralMode::Gaussian`] for a finite,
/// non-constant image: the weights of
/// [`gaussian_bilateral`](super::gaussian::gaussian_bilateral).
fn gaussian_operator<T: Real>(
    img: ArrayView2<'_, T>,
    params: &BilateralParams,
    sigma_color_sq: T,
) -> Array2<T> {
    let (h, w) = img.dim();
    let n = h * w;
    let ext = (params.window() - 1) / 2;
    let (er, ec) = (ext.min(h - 1), ext.min(w - 1));
    let sigma_sq = params.sigma_spatial * params.sigma_spatial;
    let colour_factor = (T::c(-0.5) / sigma_color_sq).max(T::min_value());
    let data: Vec<T> = img.iter().copied().collect();
    let mut op = Array2::zeros((n, n));
    for (p, mut row) in op.outer_iter_mut().enumerate() {
        let (r, c) = (p / w, p % w);
        let centre = data[p];
        let mut total = T::zero();
        for rr in r.saturating_sub(er)..(r + er + 1).min(h) {
            for cc in c.saturating_sub(ec)..(c + ec + 1).min(w) {
                #[allow(clippy::cast_precision_loss)]
                let (dr, dc) = (rr as f64 - r as f64, cc as f64 - c as f64);
                let s = T::c((-(dr * dr + dc * dc) / (2.0 * sigma_sq)).exp());
                let d = centre - data[rr * w + cc];
                let weight = s * (d * d * colour_factor).exp();
                row[rr * w + cc] = weight;
                total += weight;
            }
        }
        row.mapv_inplace(|v| v / total);
    }
    op
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::bilateral::tests::{invalid_name, params, win3_weights};
    use crate::filters::bilateral::{PAPER_SIGMA_SPATIAL, SigmaColor, denoise_bilateral};
    use ndarray::array;

    #[test]
    fn operator_skimage_hand_computed() {
        // [[0, 1]] as in skimage_mode_hand_computed, window order k = kr * 3 + kc;
        // colour weight q = e^-0.405 at distance 1, 1 at distance 0.
        // Pixel 0 (centre 0): itself at k = 4 (weight s4), pixel 1 at k = 5 (s5 q);
        //   the other 7 positions are padding of value 0 (distance 0, weight s_k).
        // Pixel 1 (centre 1): itself at k = 4 (s4), pixel 0 at k = 3 (s3 q);
        //   padding at distance 1 (s_k q).
        let s = win3_weights();
        let total: f64 = s.iter().sum();
        let q = (-0.405_f64).exp();
        let d0 = total - s[5] + s[5] * q;
        let d1 = s[4] + q * (total - s[4]);
        let want = array![[s[4] / d0, s[5] * q / d0], [s[3] * q / d1, s[4] / d1]];
        let op = bilateral_operator(
            array![[0.0_f64, 1.0]].view(),
            &params(BilateralMode::Skimage),
        )
        .unwrap();
        for (g, w) in op.iter().zip(want.iter()) {
            assert!((g - w).abs() < 1e-15, "{op} vs {want}");
        }
    }

    #[test]
    fn operator_gaussian_hand_computed() {
        // [[0, 1]], sigma 1 / 1: w(0, 0) = 1, w(0, 1) = e^-1/2 e^-1/2 = e^-1, rows
        // normalised over the two pixels.
        let e = (-1.0_f64).exp();
        let op = bilateral_operator(
            array![[0.0_f64, 1.0]].view(),
            &params(BilateralMode::Gaussian),
        )
        .unwrap();
        let want = array![[1.0, e], [e, 1.0]] / (1.0 + e);
        for (g, w) in op.iter().zip(want.iter()) {
            assert!((g - w).abs() < 1e-15, "{op} vs {want}");
        }
    }

    #[test]
    fn operator_of_constant_image_is_identity() {
        let img = Array2::from_elem((3, 2), -0.7_f64);
        for mode in [BilateralMode::Skimage, BilateralMode::Gaussian] {
            let op = bilateral_operator(
                img.view(),
                &BilateralParams::new().mode(mode).build().unwrap(),
            )
            .unwrap();
            assert_eq!(op, Array2::eye(6));
        }
    }

    /// `W . vec(img)` as an image.
    fn apply<T: Real>(op: &Array2<T>, img: &Array2<T>) -> Array2<T> {
        let flat = ndarray::Array1::from_iter(img.iter().copied());
        op.dot(&flat).into_shape_with_order(img.dim()).unwrap()
    }

    #[test]
    fn operator_reproduces_filter_on_random_images() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let settings = [
            BilateralParams::paper(),
            params(BilateralMode::Skimage),
            BilateralParams::new()
                .sigma_spatial(2.0)
                .sigma_color(SigmaColor::Value(0.3))
                .bins(50)
                .build()
                .unwrap(),
            params(BilateralMode::Gaussian),
            BilateralParams::new()
                .sigma_spatial(PAPER_SIGMA_SPATIAL)
                .mode(BilateralMode::Gaussian)
                .build()
                .unwrap(),
        ];
        // Sizes below and above the window; values in [0, 1] and (shift quirk) in [-1, 1].
        for (h, w) in [(1, 5), (3, 4), (8, 8), (7, 10)] {
            for lo in [0.0, -1.0] {
                let img = Array2::from_shape_simple_fn((h, w), || rng.random_range(lo..1.0_f64));
                for p in &settings {
                    let op = bilateral_operator(img.view(), p).unwrap();
                    let want = denoise_bilateral(img.view(), p).unwrap();
                    let got = apply(&op, &img);
                    for (g, x) in got.iter().zip(want.iter()) {
                        assert!((g - x).abs() <= 1e-12, "{h}x{w} lo {lo} {p:?}: {g} vs {x}");
                    }
                    if p.mode() == BilateralMode::Gaussian {
                        for row in op.rows() {
                            assert!((row.sum() - 1.0).abs() < 1e-12);
                        }
                    }
                    // f32: same weights up to the rounding of f32 arithmetic.
                    let img32 = img.mapv(|v| v as f32);
                    let got = apply(&bilateral_operator(img32.view(), p).unwrap(), &img32);
                    let want = denoise_bilateral(img32.view(), p).unwrap();
                    for (g, x) in got.iter().zip(want.iter()) {
                        assert!((g - x).abs() <= 1e-5, "f32 {h}x{w}: {g} vs {x}");
                    }
                }
            }
        }
    }

    #[test]
    fn operator_rejects_what_the_filter_rejects() {
        let bad = array![[0.0_f32, f32::INFINITY]];
        assert!(matches!(
            bilateral_operator(bad.view(), &BilateralParams::paper()),
            Err(ImagingError::NonFinite { row: 0, col: 1, .. })
        ));
        let img = array![[0.0_f32, 1.0]];
        let p = BilateralParams::new()
            .sigma_color(SigmaColor::Value(1e-30))
            .build()
            .unwrap();
        assert_eq!(
            invalid_name(bilateral_operator(img.view(), &p).map(|_| p.clone())),
            "sigma_color"
        );
    }
}
