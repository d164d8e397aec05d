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
    /// A figure could not be drawn.
    #[error("figure `{figure}`: {reason}")]
    Plot {
        /// Name of the figure.
        figure: String,
        /// What went wrong.
        reason: String,
    },
    /// A run folder lacks a file the report needs, or holds one it cannot read.
    #[error("{path}: {reason}")]
    RunFile {
        /// File concerned.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading an array of the run failed.
    #[error(transparent)]
    Data(#[from] phyvae_data::DataError),
    /// Segmenting a map for the report failed.
    #[error(transparent)]
    Imaging(#[from] phyvae_imaging::ImagingError),
    /// The map to draw is empty.
    #[error("cannot draw an empty map ({rows} x {cols})")]
    EmptyMap {
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
    },
}

impl From<phyvae_run::RunError> for ReportError {
    /// A run file that is malformed or missing is a [`ReportError::RunFile`]
    /// naming it.
    fn from(e: phyvae_run::RunError) -> Self {
        use phyvae_run::RunError as R;
        match e {
            R::BadFile { path, reason } => ReportError::RunFile { path, reason },
            R::Read { path, source } => ReportError::RunFile {
                path,
                reason: source.to_string(),
            },
            R::Imaging(e) => ReportError::Imaging(e),
            R::Write(e) => ReportError::Data(e),
            other => ReportError::RunFile {
                path: PathBuf::new(),
                reason: other.to_string(),
            },
        }
    }
}

impl From<phyvae_data::atomic::AtomicWriteError> for ReportError {
    fn from(e: phyvae_data::atomic::AtomicWriteError) -> Self {
        ReportError::Io {
            path: e.path,
            source: e.source,
        }
    }
}
