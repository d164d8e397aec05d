//! The image type every reader returns.

use ndarray::Array2;
use std::path::PathBuf;

/// Physical size of one pixel, as stored in the file it was read from.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PixelSize {
    /// Size of one pixel along x (columns), in `unit`.
    pub x: f64,
    /// Size of one pixel along y (rows), in `unit`.
    pub y: f64,
    /// Unit of `x` and `y`, e.g. `"nm"`.
    pub unit: String,
}

/// A 2-D image of `f32` values, row-major `(rows, cols)`, raw values as stored
/// in the file (no normalisation).
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// Pixel values, shape `(rows, cols)`.
    pub pixels: Array2<f32>,
    /// Pixel size when the file records one.
    pub pixel_size: Option<PixelSize>,
    /// File the image was read from, if any.
    pub source: Option<PathBuf>,
}

impl Image {
    /// Wraps an array with no calibration and no source file.
    #[must_use]
    pub fn new(pixels: Array2<f32>) -> Self {
        Self {
            pixels,
            pixel_size: None,
            source: None,
        }
    }

    /// Number of rows (image height).
    #[must_use]
    pub fn rows(&self) -> usize {
        self.pixels.nrows()
    }

    /// Number of columns (image width).
    #[must_use]
    pub fn cols(&self) -> usize {
        self.pixels.ncols()
    }
}
