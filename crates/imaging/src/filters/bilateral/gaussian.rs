//! The kernel of [`BilateralMode::Gaussian`](super::BilateralMode::Gaussian):
//! the textbook bilateral filter of Tomasi & Manduchi (1998), renormalised over
//! the in-image neighbours.

use super::BilateralParams;
use crate::{ImagingError, Real, Result};
use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

/// [`BilateralMode::Gaussian`](super::BilateralMode::Gaussian) on a finite, non-constant image.
pub(super) fn gaussian_bilateral<T: Real>(
    img: ArrayView2<'_, T>,
    params: &BilateralParams,
    (lo, hi): (T, T),
    sigma_color_sq: T,
) -> Result<Array2<T>> {
    let (h, w) = img.dim();
    let ext = (params.window() - 1) / 2;
    // Offsets beyond the image never meet a valid neighbour: clip the table.
    let (er, ec) = (ext.min(h - 1), ext.min(w - 1));
    let side = 2 * ec + 1;
    let sigma_sq = params.sigma_spatial * params.sigma_spatial;
    let spatial: Vec<T> = (0..(2 * er + 1) * side)
        .map(|k| {
            #[allow(clippy::cast_precision_loss)]
            let (dr, dc) = ((k / side) as f64 - er as f64, (k % side) as f64 - ec as f64);
            T::c((-(dr * dr + dc * dc) / (2.0 * sigma_sq)).exp())
        })
        .collect();
    // Finite even for a subnormal sigma_color^2, so that a zero difference gets weight 1.
    let colour_factor = (T::c(-0.5) / sigma_color_sq).max(T::min_value());
    let data: Vec<T> = img.iter().copied().collect();

    let mut out = vec![T::zero(); h * w];
    out.par_chunks_mut(w).enumerate().for_each(|(r, line)| {
        for (c, o) in line.iter_mut().enumerate() {
            let centre = data[r * w + c];
            let (r0, r1) = (r.saturating_sub(er), (r + er + 1).min(h));
            let (c0, c1) = (c.saturating_sub(ec), (c + ec + 1).min(w));
            let mut value = T::zero();
            let mut weight = T::zero();
            for rr in r0..r1 {
                let s0 = (rr + er - r) * side + (c0 + ec - c);
                let spatial_row = &spatial[s0..s0 + (c1 - c0)];
                let data_row = &data[rr * w + c0..rr * w + c1];
                for (&s, &v) in spatial_row.iter().zip(data_row) {
                    let d = centre - v;
                    let wgt = s * (d * d * colour_factor).exp();
                    value += v * wgt;
                    weight += wgt;
                }
            }
            *o = (value / weight).max(lo).min(hi);
        }
    });
    Array2::from_shape_vec((h, w), out).map_err(|_| ImagingError::ShapeMismatch {
        what: "bilateral output",
        expected: vec![h, w],
        found: vec![h * w],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filters::bilateral::tests::params;
    use crate::filters::bilateral::{BilateralMode, SigmaColor, denoise_bilateral};
    use crate::numeric::min_max;
    use ndarray::array;
    use proptest::prelude::*;

    #[test]
    fn gaussian_mode_hand_computed() {
        // [[0, 1]], sigma 1 / 1, win 3, renormalised over the two pixels:
        // (0,0): (0 * 1 + 1 * e^-1/2 e^-1/2) / (1 + e^-1); (0,1): (1 * 1 + 0) / (1 + e^-1).
        let e = (-1.0_f64).exp();
        let out = denoise_bilateral(
            array![[0.0_f64, 1.0]].view(),
            &params(BilateralMode::Gaussian),
        )
        .unwrap();
        assert!((out[[0, 0]] - e / (1.0 + e)).abs() < 1e-15);
        assert!((out[[0, 1]] - 1.0 / (1.0 + e)).abs() < 1e-15);
    }

    proptest! {
        #[test]
        fn gaussian_mode_textbook_properties(
            (h, w, data) in (1usize..7, 1usize..7).prop_flat_map(|(h, w)| {
                (Just(h), Just(w), proptest::collection::vec(-2.0f64..2.0, h * w))
            }),
            sigma_spatial in 0.5f64..3.0,
            sigma_color in 0.05f64..2.0,
        ) {
            let img = Array2::from_shape_vec((h, w), data).unwrap();
            let p = BilateralParams::new()
                .sigma_spatial(sigma_spatial)
                .sigma_color(SigmaColor::Value(sigma_color))
                .mode(BilateralMode::Gaussian)
                .build()
                .unwrap();
            let out = denoise_bilateral(img.view(), &p).unwrap();
            let (lo, hi) = min_max(img.view());
            prop_assert!(out.iter().all(|&v| lo <= v && v <= hi));
            let out_t = denoise_bilateral(img.t(), &p).unwrap();
            for ((r, c), &v) in out.indexed_iter() {
                prop_assert!((out_t[[c, r]] - v).abs() <= 1e-12);
            }
        }
    }
}
