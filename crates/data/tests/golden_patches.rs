//! Patches against the reference `phyvae_ref.extract_patches` outputs
//! (testdata/golden/patch_img_64x72__*.npy; see testdata/golden/README.md).
// Test helpers outside `#[test]` functions unwrap too (clippy.toml allows it in tests).
#![allow(clippy::unwrap_used, clippy::panic)]

use phyvae_data::io::{read_image, read_npy_array};
use phyvae_data::patches::{Levelling, PatchGrid, PatchSet, Scaling};
use std::path::PathBuf;

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/golden");

fn golden(name: &str) -> PathBuf {
    PathBuf::from(GOLDEN).join(name)
}

/// Tolerance on float32 patch values: the reference scales the float64 input
/// in float64; here the input is read as float32 first (relative rounding
/// 6e-8 of values in [0, 1]), so values agree to ~1e-7.
const TOL: f32 = 1e-6;

fn set(scaling: Scaling) -> PatchSet {
    // `np.random.default_rng(99).random((64, 72))`, float64.
    let img = read_image(&golden("patch_img_64x72.npy"), None).unwrap();
    assert_eq!((img.rows(), img.cols()), (64, 72));
    let grid = PatchGrid::new(64, 72, 48, 8).unwrap();
    PatchSet::from_image(&img, grid, scaling, Levelling::None).unwrap()
}

fn compare(set: &PatchSet, golden_file: &str) {
    let path = golden(golden_file);
    let mut buf = vec![0.0_f32; 48 * 48];
    let mut worst = 0.0_f32;
    for i in 0..12 {
        // Frame i of the (12, 48, 48) float32 stack.
        let expect = read_image(&path, Some(i)).unwrap().pixels;
        set.copy_patch_into(i, &mut buf).unwrap();
        for (a, b) in buf.iter().zip(expect.iter()) {
            worst = worst.max((a - b).abs());
        }
    }
    assert!(worst <= TOL, "{golden_file}: max |diff| = {worst:e}");
    // 12 patches only: a 13th frame does not exist.
    assert!(read_image(&path, Some(12)).is_err());
}

#[test]
fn global_minmax_patches_match() {
    let s = set(Scaling::GlobalMinMax);
    assert_eq!(s.len(), 12);
    compare(&s, "patch_img_64x72__patches.npy");
    // The views are the same values as the copies for global scaling.
    let expect = read_image(&golden("patch_img_64x72__patches.npy"), Some(5))
        .unwrap()
        .pixels;
    let view = s.patch(5).unwrap();
    let worst = view
        .iter()
        .zip(expect.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0_f32, f32::max);
    assert!(worst <= TOL, "{worst:e}");
}

#[test]
fn per_patch_patches_match() {
    let s = set(Scaling::PerPatch);
    compare(&s, "patch_img_64x72__patches_perpatch.npy");
}

#[test]
fn coords_are_top_left_row_major() {
    let coords = read_npy_array(&golden("patch_img_64x72__coords.npy")).unwrap();
    assert_eq!(coords.shape(), &[12, 2]);
    let s = set(Scaling::GlobalMinMax);
    assert_eq!((s.grid().gh(), s.grid().gw()), (3, 4));
    for i in 0..12 {
        let (y, x) = s.origin(i).unwrap();
        assert_eq!(
            (coords[[i, 0]], coords[[i, 1]]),
            (y as f64, x as f64),
            "patch {i}"
        );
    }
}
