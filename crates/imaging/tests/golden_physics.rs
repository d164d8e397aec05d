//! The phy-VAE physics losses against the authors' code and scikit-image 0.26
//! (`testdata/golden`, see its README):
//! - `lat8x8__*`, `lat10x10__*`: a `float32` batch `z_mean` (`B x 4`, B = 64 / 100)
//!   and the intermediate maps of the authors' loss on columns 2 (z1) and 3 (z2):
//!   torch `float32` min-max (`z*_minmax`), `denoise_bilateral(sigma_color=None,
//!   sigma_spatial=5)` of it (`z*_bilateral`), `skimage.filters.scharr` of that
//!   (`z*_scharr`), and `np.log(abs(fftpack.fftshift(fftpack.fft2(z))) + 1)` of the
//!   un-normalised map (`z*_logfft`); `SL1_authors` / `SL2_authors` are the values
//!   returned by the authors' `CustomTrace_ELBO.add_loss` / `add_loss2`;
//! - `in_*__harness_sl1_map` / `harness_sl2_map`: SL1 / SL2 of one map, computed by
//!   the Python reference on the `float32` cast of `in_*`;
//! - `lat_B50__SL1_authors`: the authors' SL1 for a batch of 50 (not a square) = 0.

mod common;

use ndarray::Array2;
use phyvae_imaging::ImagingError;
use phyvae_imaging::fft::log_magnitude_spectrum;
use phyvae_imaging::filters::{BilateralParams, denoise_bilateral, scharr};
use phyvae_imaging::physics::{
    PAPER_ALPHA, PAPER_LATENT_COLUMNS, latent_map, min_max_normalise, sl1_batch, sl1_map,
    sl2_batch, sl2_map,
};

/// Promised relative agreement of `float32` results.
const TOL_REL_F32: f64 = 1e-4;

const LATENTS: [&str; 2] = ["lat8x8", "lat10x10"];
const MAPS: [(&str, usize); 2] = [("z1", 2), ("z2", 3)];

fn assert_rel(got: f32, stem: &str) {
    let want = common::scalar(stem);
    let err = (f64::from(got) - want).abs() / want.abs().max(f64::MIN_POSITIVE);
    assert!(
        err <= TOL_REL_F32,
        "{stem}: {got} vs {want} (relative error {err:e})"
    );
}

/// Largest difference relative to `max(1, |want|)`.
fn assert_maps(got: &Array2<f32>, stem: &str) {
    let want = common::load2(stem);
    assert_eq!(got.dim(), want.dim(), "{stem}: shape");
    for (&g, &w) in got.iter().zip(want.iter()) {
        let err = (f64::from(g) - w).abs() / w.abs().max(1.0);
        assert!(err <= TOL_REL_F32, "{stem}: {g} vs {w}");
    }
}

#[test]
fn latent_maps_pipeline_matches_authors() {
    let params = BilateralParams::paper();
    for lat in LATENTS {
        let z = common::load2_f32(&format!("{lat}__z_mean"));
        for (name, column) in MAPS {
            let stem = format!("{lat}__{name}");
            let map = latent_map(z.view(), column).unwrap();
            assert_maps(
                &min_max_normalise(map.view()).unwrap(),
                &format!("{stem}_minmax"),
            );
            // Each stage from the golden input of that stage.
            let minmax = common::load2_f32(&format!("{stem}_minmax"));
            let den = denoise_bilateral(minmax.view(), &params).unwrap();
            assert_maps(&den, &format!("{stem}_bilateral"));
            let bil = common::load2_f32(&format!("{stem}_bilateral"));
            assert_maps(&scharr(bil.view()).unwrap(), &format!("{stem}_scharr"));
            assert_maps(
                &log_magnitude_spectrum(map.view()).unwrap(),
                &format!("{stem}_logfft"),
            );
        }
    }
}

#[test]
fn batch_losses_match_authors() {
    for lat in LATENTS {
        let z = common::load2_f32(&format!("{lat}__z_mean"));
        assert_rel(
            sl1_batch(z.view(), &PAPER_LATENT_COLUMNS).unwrap(),
            &format!("{lat}__SL1_authors"),
        );
        assert_rel(
            sl2_batch(z.view(), &PAPER_LATENT_COLUMNS, PAPER_ALPHA).unwrap(),
            &format!("{lat}__SL2_authors"),
        );
    }
}

#[test]
fn single_map_losses_match_reference() {
    for name in ["in_r16", "in_r33x47", "in_step24", "in_r16_f32"] {
        // The reference casts its input to float32 first.
        let x = common::load2(name).mapv(|v| v as f32);
        assert_rel(
            sl1_map(x.view()).unwrap(),
            &format!("{name}__harness_sl1_map"),
        );
        assert_rel(
            sl2_map(x.view(), PAPER_ALPHA).unwrap(),
            &format!("{name}__harness_sl2_map"),
        );
    }
}

#[test]
fn non_square_batch_is_an_error() {
    // The authors' add_loss returned 0 for B = 50; we refuse the batch instead.
    assert_eq!(common::scalar("lat_B50__SL1_authors"), 0.0);
    let z = Array2::from_shape_fn((50, 4), |(b, k)| (b * 4 + k) as f32 * 0.01);
    assert_eq!(
        sl1_batch(z.view(), &PAPER_LATENT_COLUMNS),
        Err(ImagingError::NotSquareBatch { batch: 50 })
    );
    assert_eq!(
        sl2_batch(z.view(), &PAPER_LATENT_COLUMNS, PAPER_ALPHA),
        Err(ImagingError::NotSquareBatch { batch: 50 })
    );
}
