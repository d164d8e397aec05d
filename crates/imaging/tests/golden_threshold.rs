//! Otsu and multi-Otsu thresholds against scikit-image 0.26 (`testdata/golden`:
//! `in_*__otsu` = `skimage.filters.threshold_otsu(in_*)`, `in_*__multiotsu3` =
//! `skimage.filters.threshold_multiotsu(in_*, classes=3)`).

mod common;

use phyvae_imaging::threshold::{multiotsu, otsu};

const F64_INPUTS: [&str; 3] = ["in_r16", "in_r33x47", "in_step24"];

/// The thresholds are bin centres, so agreement is expected to the last bit; the
/// tolerances are the ones the port promises.
const TOL_F64: f64 = 1e-5;
const TOL_F32: f64 = 1e-4;

#[test]
fn otsu_f64_matches_skimage() {
    for name in F64_INPUTS {
        let img = common::load2(name);
        let t = otsu(img.view()).unwrap();
        let want = common::scalar(&format!("{name}__otsu"));
        assert!((t - want).abs() <= TOL_F64, "{name}: {t} vs {want}");
        assert_eq!(t, want, "{name}: bin centre differs");
    }
}

#[test]
fn otsu_f32_matches_skimage() {
    let img = common::load2_f32("in_r16_f32");
    let t = otsu(img.view()).unwrap();
    let want = common::scalar("in_r16_f32__otsu");
    assert!((f64::from(t) - want).abs() <= TOL_F32, "{t} vs {want}");
    assert_eq!(f64::from(t), want, "bin centre differs");
}

#[test]
fn multiotsu3_f64_matches_skimage() {
    for name in F64_INPUTS {
        let img = common::load2(name);
        let t = multiotsu(img.view(), 3).unwrap();
        let want = common::vector(&format!("{name}__multiotsu3"));
        assert_eq!(t.len(), want.len(), "{name}");
        for (a, b) in t.iter().zip(&want) {
            assert!((a - b).abs() <= TOL_F64, "{name}: {t:?} vs {want:?}");
        }
        assert_eq!(t, want, "{name}: bin centres differ");
    }
}

#[test]
fn multiotsu3_f32_matches_skimage() {
    let img = common::load2_f32("in_r16_f32");
    let t = multiotsu(img.view(), 3).unwrap();
    let want = common::vector("in_r16_f32__multiotsu3");
    let got: Vec<f64> = t.iter().map(|&v| f64::from(v)).collect();
    assert_eq!(got.len(), want.len());
    for (a, b) in got.iter().zip(&want) {
        assert!((a - b).abs() <= TOL_F32, "{got:?} vs {want:?}");
    }
    assert_eq!(got, want, "bin centres differ");
}

/// `skimage.filters.threshold_multiotsu(np.load(f"{name}__vb_denoised.npy"), classes=c)`
/// for c = 4 and 5, scikit-image 0.26 (float32 maps in [0, 1], the visualisation case).
const DENOISED_4_5: [(&str, [f32; 3], [f32; 4]); 3] = [
    (
        "in_r16",
        [0.138_139_7, 0.322_177_77, 0.559_646_25],
        [0.093_614_34, 0.209_380_24, 0.363_734_72, 0.559_646_25],
    ),
    (
        "in_r33x47",
        [0.231_144_53, 0.412_643_2, 0.594_141_96],
        [0.180_562_94, 0.317_430_8, 0.466_200_2, 0.620_920_4],
    ),
    (
        "in_step24",
        [0.196_897_95, 0.357_272_42, 0.550_827_86],
        [0.185_837_63, 0.315_796_26, 0.465_110_42, 0.592_304],
    ),
];

#[test]
fn multiotsu_4_and_5_classes_on_denoised_maps() {
    for (name, want4, want5) in DENOISED_4_5 {
        let den = common::load2_f32(&format!("{name}__vb_denoised"));
        assert_eq!(
            multiotsu(den.view(), 4).unwrap(),
            want4,
            "{name}: 4 classes"
        );
        assert_eq!(
            multiotsu(den.view(), 5).unwrap(),
            want5,
            "{name}: 5 classes"
        );
    }
}
