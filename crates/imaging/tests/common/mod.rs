//! Loading the golden reference arrays (scikit-image and the authors' loss
//! functions, see `testdata/golden/README.md`).
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]
#![allow(dead_code)]

use ndarray::{Array2, ArrayD, IxDyn};
use std::path::PathBuf;

/// Path of a golden file by stem, e.g. `golden_path("in_r16__scharr")`.
pub fn golden_path(stem: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/golden")
        .join(format!("{stem}.npy"))
}

/// Reads any golden array (float, int or uint; any dimension) as `f64`.
pub fn load(stem: &str) -> ArrayD<f64> {
    let path = golden_path(stem);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    // npyz renders the dtype as in the header, quoted: `'<f8'`.
    let descr = npy.header().dtype().descr().trim_matches('\'').to_string();
    let data: Vec<f64> = match descr.as_str() {
        "<f8" => npy.into_vec::<f64>().unwrap(),
        "<f4" => npy
            .into_vec::<f32>()
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect(),
        "<i8" => npy
            .into_vec::<i64>()
            .unwrap()
            .into_iter()
            .map(|v| v as f64)
            .collect(),
        "|u1" => npy
            .into_vec::<u8>()
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect(),
        other => panic!("{}: unexpected dtype {other}", path.display()),
    };
    ArrayD::from_shape_vec(IxDyn(&shape), data).unwrap()
}

/// Reads a 2-D golden array as `f64`.
pub fn load2(stem: &str) -> Array2<f64> {
    load(stem).into_dimensionality().unwrap()
}

/// Reads a 2-D golden `float32` array as `f32` (exactly).
pub fn load2_f32(stem: &str) -> Array2<f32> {
    load2(stem).mapv(|v| v as f32)
}

/// Reads a golden scalar (0-d array).
pub fn scalar(stem: &str) -> f64 {
    let a = load(stem);
    assert_eq!(a.len(), 1, "{stem} is not a scalar");
    a.iter().copied().next().unwrap()
}

/// Reads a 1-D golden array.
pub fn vector(stem: &str) -> Vec<f64> {
    load(stem).iter().copied().collect()
}

/// Largest absolute difference between two equally shaped arrays.
pub fn max_abs_diff<T: Into<f64> + Copy>(a: &Array2<T>, b: &Array2<f64>) -> f64 {
    assert_eq!(a.dim(), b.dim(), "shape mismatch");
    a.iter()
        .zip(b.iter())
        .map(|(&x, &y)| (x.into() - y).abs())
        .fold(0.0, f64::max)
}
