//! The typed error of the image-processing crate.

use thiserror::Error;

/// Why an image-processing call could not run.
///
/// Each variant names the rule that was broken and carries the offending
/// value(s), so that a caller can report it without guessing.
#[derive(Debug, Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum ImagingError {
    /// The image has no pixels (one of its dimensions is zero).
    #[error("image is empty (shape {rows} x {cols})")]
    EmptyImage {
        /// Number of rows.
        rows: usize,
        /// Number of columns.
        cols: usize,
    },
    /// A pixel is NaN or infinite.
    #[error("pixel ({row}, {col}) is not finite ({value})")]
    NonFinite {
        /// Row of the first non-finite pixel (row-major scan).
        row: usize,
        /// Column of the first non-finite pixel.
        col: usize,
        /// Its value, as `f64`.
        value: f64,
    },
    /// A parameter is outside its allowed range.
    #[error("parameter `{name}` = {value} is invalid: {rule}")]
    InvalidParameter {
        /// Parameter name as it appears in the API.
        name: &'static str,
        /// The value given, rendered as text.
        value: String,
        /// The rule it breaks, e.g. "must be > 0".
        rule: &'static str,
    },
    /// Two arrays that must have the same shape do not.
    #[error("shape mismatch: {what}: expected {expected:?}, found {found:?}")]
    ShapeMismatch {
        /// Which arrays were compared.
        what: &'static str,
        /// Expected shape.
        expected: Vec<usize>,
        /// Shape found.
        found: Vec<usize>,
    },
    /// A batch of latent vectors cannot be arranged as a square map.
    #[error(
        "batch of {batch} latent vectors is not a perfect square, so it cannot form a d x d latent map"
    )]
    NotSquareBatch {
        /// Number of rows (batch size) of the latent array.
        batch: usize,
    },
    /// A column index is outside the latent array.
    #[error("latent column {column} does not exist (array has {columns} columns)")]
    NoSuchColumn {
        /// Requested column.
        column: usize,
        /// Number of columns.
        columns: usize,
    },
    /// The image holds too few distinct values for the requested number of classes.
    #[error(
        "image has {found} distinct histogram levels, fewer than the {needed} needed for {classes} classes"
    )]
    TooFewLevels {
        /// Requested number of classes.
        classes: usize,
        /// Levels needed.
        needed: usize,
        /// Levels found.
        found: usize,
    },
    /// The image's value range is too narrow to be cut into the requested number of
    /// histogram bins with strictly increasing edges in its precision (NumPy raises
    /// "Too many bins for data range").
    #[error("value range [{min}, {max}] is too narrow for {bins} distinct histogram bins")]
    RangeTooNarrow {
        /// Smallest pixel value (or the lower histogram edge), as `f64`.
        min: f64,
        /// Largest pixel value (or the upper histogram edge), as `f64`.
        max: f64,
        /// Number of bins requested.
        bins: usize,
    },
}

/// Returns an error for the first non-finite pixel of `img`, scanning row-major.
pub(crate) fn check_finite<T: crate::Real>(img: ndarray::ArrayView2<'_, T>) -> crate::Result<()> {
    if img.is_empty() {
        let (rows, cols) = img.dim();
        return Err(ImagingError::EmptyImage { rows, cols });
    }
    for ((row, col), &v) in img.indexed_iter() {
        if !v.is_finite() {
            return Err(ImagingError::NonFinite {
                row,
                col,
                value: v.f64(),
            });
        }
    }
    Ok(())
}
