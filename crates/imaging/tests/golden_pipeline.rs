//! The visualisation pipeline against the reference (`testdata/golden/README.md`,
//! `in_*__vb_*`, produced by `phyvae_ref.segment` with scikit-image 0.26):
//! `zn = (x - min) / (max - min)` in float32, `den = denoise_bilateral(zn,
//! sigma_color=0.3, sigma_spatial=5)`, `(den > threshold_otsu(den))`,
//! `np.digitize(den, threshold_multiotsu(den))` (3 classes) and `chan_vese(den)`.

mod common;

use phyvae_imaging::pipeline::{VisualizeParams, segment_map};
use phyvae_imaging::threshold::digitize;

const INPUTS: [&str; 4] = ["in_r16", "in_r33x47", "in_r16_f32", "in_step24"];

/// The denoised map is float32; scikit-image's and this crate's bilateral filters differ
/// by at most an ulp or so.
const TOL_DENOISED: f64 = 1e-4;

#[test]
fn pipeline_matches_reference() {
    for name in INPUTS {
        // The reference casts its (float64 or float32) input to float32 first.
        let map = common::load2_f32(name);
        let seg = segment_map(map.view(), &VisualizeParams::default()).unwrap();
        assert!(!seg.flat, "{name}");

        let want = common::load2(&format!("{name}__vb_denoised"));
        let d = common::max_abs_diff(&seg.denoised, &want);
        assert!(d <= TOL_DENOISED, "{name}: denoised differs by {d}");

        let otsu = common::load2(&format!("{name}__vb_otsu_labels"));
        assert_eq!(seg.otsu.mapv(f64::from), otsu, "{name}: Otsu labels");

        let multi = common::load2(&format!("{name}__vb_multiotsu_labels"));
        let got = seg.multiotsu_labels(3).unwrap();
        assert_eq!(got.mapv(f64::from), multi, "{name}: multi-Otsu labels");

        let cv = common::load2(&format!("{name}__vb_chanvese_labels"));
        assert_eq!(seg.chanvese.mapv(f64::from), cv, "{name}: Chan-Vese labels");
    }
}

#[test]
fn four_class_labels_digitize_the_reference_map() {
    // `np.digitize(den, skimage.filters.threshold_multiotsu(den, classes=4))` with
    // `den = np.load("in_r33x47__vb_denoised.npy")`: thresholds [0.23114453,
    // 0.41264319, 0.59414196] (scikit-image 0.26).
    let thresholds = [0.231_144_53_f32, 0.412_643_2, 0.594_141_96];
    let den = common::load2_f32("in_r33x47__vb_denoised");
    let want = digitize(den.view(), &thresholds);
    let map = common::load2_f32("in_r33x47");
    let seg = segment_map(map.view(), &VisualizeParams::default()).unwrap();
    assert_eq!(seg.multiotsu_labels(4).unwrap(), &want);
    assert!((0..4).all(|c| want.iter().any(|&v| v == c)));
}
