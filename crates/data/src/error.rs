//! The typed error of the data crate.

use std::path::PathBuf;
use thiserror::Error;

/// Why data could not be read, written, cut or generated.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// File concerned.
        path: PathBuf,
        /// Underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An output file could not be written ([`crate::atomic`]).
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file that was to be written.
        path: PathBuf,
        /// Underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file's format was not recognised from its magic bytes or extension.
    #[error("{path}: unrecognised image format ({reason})")]
    UnknownFormat {
        /// File concerned.
        path: PathBuf,
        /// What was seen.
        reason: String,
    },
    /// The file is recognised but broken (truncated, bad header, ...).
    #[error("{path}: malformed {format} file: {reason}")]
    Malformed {
        /// File concerned.
        path: PathBuf,
        /// Format name, e.g. "NPY".
        format: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The file is valid but holds something this reader does not support
    /// (a data type, a layout, a compression).
    #[error("{path}: unsupported {format} content: {reason}")]
    Unsupported {
        /// File concerned.
        path: PathBuf,
        /// Format name.
        format: &'static str,
        /// What is unsupported.
        reason: String,
    },
    /// The data is not a 2-D image (or a stack of them).
    #[error(
        "{path}: expected a 2-D image (or a 3-D stack with a frame index), found shape {shape:?}"
    )]
    NotAnImage {
        /// File concerned.
        path: PathBuf,
        /// Shape found.
        shape: Vec<usize>,
    },
    /// A requested frame or page does not exist.
    #[error("{path}: frame {frame} requested, but the file holds {frames}")]
    NoSuchFrame {
        /// File concerned.
        path: PathBuf,
        /// Frame requested (0-based).
        frame: usize,
        /// Frames available.
        frames: usize,
    },
    /// A parameter is outside its allowed range.
    #[error("parameter `{name}` = {value} is invalid: {rule}")]
    InvalidParameter {
        /// Parameter name as it appears in the API.
        name: &'static str,
        /// The value given, rendered as text.
        value: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// The image is smaller than one patch window.
    #[error("image of {rows} x {cols} px is smaller than the {window} x {window} px patch window")]
    ImageSmallerThanWindow {
        /// Image rows.
        rows: usize,
        /// Image columns.
        cols: usize,
        /// Window size.
        window: usize,
    },
    /// A pixel is NaN or infinite.
    #[error("pixel (row {row}, col {col}) is not finite ({value})")]
    NonFinitePixel {
        /// Row of the first non-finite pixel.
        row: usize,
        /// Column.
        col: usize,
        /// Its value.
        value: f32,
    },
    /// A finite `f64` pixel is too large in magnitude for `f32` (it would
    /// round to infinity): the readers hold images as `f32`.
    #[error(
        "{path}: pixel (row {row}, col {col}) = {value:e} is beyond the float32 range \
         (largest magnitude about 3.4e38); rescale the data (e.g. to smaller units) before using it"
    )]
    BeyondFloat32 {
        /// File concerned.
        path: PathBuf,
        /// Row of the first such pixel, in the image as read.
        row: usize,
        /// Column.
        col: usize,
        /// Its value as stored.
        value: f64,
    },
    /// Every pixel has the same value, so min-max scaling is undefined.
    #[error("image is constant (every pixel = {value}); nothing to learn from")]
    ConstantImage {
        /// The value.
        value: f32,
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
    /// A patch index is not below the number of patches.
    #[error("patch {index} requested, but the grid holds {len} patches")]
    PatchIndexOutOfRange {
        /// Index requested.
        index: usize,
        /// Number of patches.
        len: usize,
    },
    /// An image-processing step (e.g. background levelling) failed.
    #[error("image processing failed: {0}")]
    Imaging(#[from] phyvae_imaging::ImagingError),
}
