//! The typed error of the report crate.

use std::path::PathBuf;
use thiserror::Error;

/// Why a picture could not be made or written.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// File concerned.
        path: PathBuf,
        /// Underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// PNG encoding failed.
    #[error("{path}: PNG encoding failed: {reason}")]
    Png {
        /// File concerned.
        path: PathBuf,
        /// Encoder message.
        reason: String,
    },
    /// A drawing parameter is outside its allowed range.
    #[error("parameter `{name}` = {value} is invalid: {rule}")]
    InvalidParameter {
        /// Parameter name as it appears in the API.
        name: &'static str,
        /// The value given, rendered as text.
        value: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// The map to draw is empty.
    #[error("cannot draw an empty map ({rows} x {cols})")]
    EmptyMap {
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
    },
}
