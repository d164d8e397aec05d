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
    /// The image is smaller than the method needs (a minimum size, or one window).
    #[error("image of {rows} x {cols} px is smaller than the {min_rows} x {min_cols} px {what}")]
    ImageTooSmall {
        /// Number of rows.
        rows: usize,
        /// Number of columns.
        cols: usize,
        /// Rows needed.
        min_rows: usize,
        /// Columns needed.
        min_cols: usize,
        /// What needs that size, e.g. "minimum for a lattice measurement".
        what: &'static str,
    },
    /// A data matrix (samples x features) has no samples or no features.
    #[error("data matrix is empty ({samples} samples x {features} features)")]
    EmptyData {
        /// Number of samples (rows).
        samples: usize,
        /// Number of features (columns).
        features: usize,
    },
    /// A value of a data matrix is NaN or infinite.
    #[error("feature {feature} of sample {sample} is not finite ({value})")]
    NonFiniteData {
        /// Sample (row) of the first non-finite value (row-major scan).
        sample: usize,
        /// Feature (column) of that value.
        feature: usize,
        /// Its value, as `f64`.
        value: f64,
    },
    /// More clusters or components were requested than there are samples.
    #[error("{k} {what} requested from only {samples} samples")]
    TooFewSamples {
        /// Number of clusters or components requested.
        k: usize,
        /// Number of samples available.
        samples: usize,
        /// What was requested ("clusters", "principal components", ...).
        what: &'static str,
    },
    /// More principal components were requested than the data has features.
    #[error("{k} principal components requested from data with {features} features")]
    TooManyComponents {
        /// Number of components requested.
        k: usize,
        /// Number of features (dimension) of the data.
        features: usize,
    },
    /// The data has more features than the method supports.
    #[error("{features} features exceed the maximum of {max} for {what}")]
    TooManyFeatures {
        /// Number of features of the data.
        features: usize,
        /// Largest supported number of features.
        max: usize,
        /// The method with the limit.
        what: &'static str,
    },
    /// A covariance matrix lost positive definiteness (its Cholesky factorisation
    /// met a non-positive pivot), despite the regularisation.
    #[error("covariance of mixture component {component} is not positive definite")]
    NotPositiveDefinite {
        /// Index of the mixture component.
        component: usize,
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

/// Checks that a samples x features matrix is non-empty and finite.
pub(crate) fn check_data<T: crate::Real>(x: ndarray::ArrayView2<'_, T>) -> crate::Result<()> {
    let (samples, features) = x.dim();
    if samples == 0 || features == 0 {
        return Err(ImagingError::EmptyData { samples, features });
    }
    for ((sample, feature), &v) in x.indexed_iter() {
        if !v.is_finite() {
            return Err(ImagingError::NonFiniteData {
                sample,
                feature,
                value: v.f64(),
            });
        }
    }
    Ok(())
}
