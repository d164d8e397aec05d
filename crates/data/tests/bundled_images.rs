//! The bundled example images load from their original files, match the
//! float32 `image.npy` copies and `meta.json`, and cut into the documented grids.
// Test helpers outside `#[test]` functions unwrap too (clippy.toml allows it in tests).
#![allow(clippy::unwrap_used, clippy::panic)]

use ndarray::Array2;
use phyvae_data::Image;
use phyvae_data::io::{Format, detect_format, read_image, read_tiff};
use phyvae_data::patches::{Levelling, PatchGrid, PatchSet, Scaling};
use phyvae_imaging::background::level_plane;
use std::path::Path;

const AU_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../data/au_grain_boundary_png"
);
const GO_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../data/rgo_cafm_graphene_lattice"
);
const STM_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../data/stm_spiepy_step_edge_atoms"
);

/// The paper's patch geometry.
const WINDOW: usize = 48;
const STEP: usize = 8;

fn meta(dir: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(Path::new(dir).join("meta.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Loads the original file named in meta.json and the sibling image.npy.
fn load(dir: &str) -> (Image, Image, serde_json::Value) {
    let m = meta(dir);
    let original = Path::new(dir).join(m["original_file"].as_str().unwrap());
    let img = read_image(&original, None).unwrap();
    assert_eq!(img.source.as_deref(), Some(original.as_path()));
    let npy = read_image(&Path::new(dir).join("image.npy"), None).unwrap();
    (img, npy, m)
}

fn check_shape_and_range(img: &Image, m: &serde_json::Value) {
    let shape: Vec<usize> = m["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(vec![img.rows(), img.cols()], shape);
    let (lo, hi) = img
        .pixels
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    assert_eq!(lo, m["min"].as_f64().unwrap() as f32);
    assert_eq!(hi, m["max"].as_f64().unwrap() as f32);
}

fn std_dev(a: &Array2<f32>) -> f64 {
    let n = a.len() as f64;
    let mean = a.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    (a.iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n)
        .sqrt()
}

#[test]
fn au_grain_boundary_png() {
    let (img, npy, m) = load(AU_DIR);
    assert_eq!(
        detect_format(img.source.as_deref().unwrap()).unwrap(),
        Format::Png
    );
    assert_eq!(img.pixels, npy.pixels);
    check_shape_and_range(&img, &m);
    // meta.json: "pixel_size_nm": null (an uncalibrated 8-bit export).
    assert!(m["pixel_size_nm"].is_null());
    assert_eq!(img.pixel_size, None);
    // (512 - 48) / 8 + 1 = 59.
    let grid = PatchGrid::new(img.rows(), img.cols(), WINDOW, STEP).unwrap();
    assert_eq!((grid.gh(), grid.gw(), grid.len()), (59, 59, 3481));
    let set = PatchSet::from_image(&img, grid, Scaling::GlobalMinMax, Levelling::None).unwrap();
    assert_eq!(set.len(), 3481);
    assert_eq!(set.value_range(), (42.0, 255.0));
}

#[test]
fn rgo_cafm_tiff_with_json_sidecar() {
    let (img, npy, m) = load(GO_DIR);
    assert_eq!(
        detect_format(img.source.as_deref().unwrap()).unwrap(),
        Format::Tiff
    );
    // uint16 samples, exact in f32.
    assert_eq!(img.pixels, npy.pixels);
    check_shape_and_range(&img, &m);
    // The TIFF has no resolution tags (its IFD holds only the image layout), so
    // the TIFF reader alone finds no pixel size...
    let tiff_only = read_tiff(img.source.as_deref().unwrap(), None).unwrap();
    assert_eq!(tiff_only.pixel_size, None);
    assert_eq!(tiff_only.pixels, img.pixels);
    // ...and read_image takes it from GO_cafm.json: a 15 nm field of view
    // over 915 px: 15 / 915 = 0.016393442622950821 nm/px (meta.json 0.01639344262295082).
    let expect = m["pixel_size_nm"].as_f64().unwrap();
    let ps = img.pixel_size.clone().unwrap();
    assert_eq!(ps.unit, "nm");
    assert!(
        (ps.x - expect).abs() < 1e-15 && (ps.y - expect).abs() < 1e-15,
        "{ps:?}"
    );
    // (915 - 48) / 8 + 1 = 109 (integer division of 867 / 8 = 108): the paper's
    // 11 881 graphene patches.
    let grid = PatchGrid::new(img.rows(), img.cols(), WINDOW, STEP).unwrap();
    assert_eq!((grid.gh(), grid.gw(), grid.len()), (109, 109, 11_881));
    let set = PatchSet::from_image(&img, grid, Scaling::GlobalMinMax, Levelling::None).unwrap();
    assert_eq!(set.len(), 11_881);
    assert_eq!(set.stored_values(), 915 * 915);
}

#[test]
fn stm_spiepy_dat_and_plane_levelling() {
    let (img, npy, m) = load(STM_DIR);
    assert_eq!(
        detect_format(img.source.as_deref().unwrap()).unwrap(),
        Format::SpiepyDat
    );
    // image.npy is the float64 data cast to float32 (round to nearest), which
    // is also what the reader does: equal bit for bit.
    assert_eq!(img.pixels, npy.pixels);
    check_shape_and_range(&img, &m);
    assert!(m["pixel_size_nm"].is_null());
    assert_eq!(img.pixel_size, None);
    let grid = PatchGrid::new(img.rows(), img.cols(), WINDOW, STEP).unwrap();
    assert_eq!((grid.gh(), grid.gw(), grid.len()), (59, 59, 3481));

    // Residual spread. numpy on the float64 .dat: std 8.4838e-10 m (meta.json
    // 8.483763136446498e-10); after subtracting the least-squares plane
    // (numpy.linalg.lstsq on [1, row, col], coefficients -1.6314e-9,
    // 4.0002e-12 / row, 3.9978e-12 / col) std 1.4502e-10 m, and the range
    // (ptp) drops from 4.4263e-9 to 9.3964e-10 m.
    let raw_std = std_dev(&img.pixels);
    assert!((raw_std - 8.4838e-10).abs() < 1e-13, "{raw_std:e}");
    let levelled = level_plane(img.pixels.view()).unwrap();
    let lev_std = std_dev(&levelled);
    assert!((lev_std - 1.4502e-10).abs() < 1e-13, "{lev_std:e}");
    assert!(lev_std < raw_std / 5.0);

    let plain = PatchSet::from_image(&img, grid, Scaling::GlobalMinMax, Levelling::None).unwrap();
    let flat = PatchSet::from_image(&img, grid, Scaling::GlobalMinMax, Levelling::Plane).unwrap();
    let (a, b) = plain.value_range();
    let (c, d) = flat.value_range();
    assert!(((b - a) - 4.4263e-9).abs() < 1e-12, "{:e}", b - a);
    assert!(((d - c) - 9.3964e-10).abs() < 1e-12, "{:e}", d - c);
    assert!((d - c) < (b - a) / 4.0);
}
