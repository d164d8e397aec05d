//! The typed error of the run crate.

use std::path::PathBuf;

use thiserror::Error;

/// Why a run's settings, or one of its files, are not usable.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RunError {
    /// A setting is outside its allowed range (one variant for every rule of
    /// [`crate::config`]; `name` is the setting's name in `config.toml`).
    #[error("parameter `{name}` = {value} is invalid: {rule}")]
    InvalidParameter {
        /// Parameter name as it appears in the API (and in `config.toml`).
        name: &'static str,
        /// The value given, rendered as text.
        value: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// A file of the run folder could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },
    /// A file of the run folder is not what it should be.
    #[error("{path}: {reason}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The output folder already holds a run, and the command was not told
    /// to continue it or to replace it.
    #[error(
        "{dir} already holds a run: continue it with --resume, replace it with --overwrite, or choose another --out"
    )]
    Occupied {
        /// The run folder.
        dir: PathBuf,
    },
    /// Another process is writing into the run folder.
    #[error(
        "{dir} is in use by another phyvae process ({holder}): wait for it, or choose another --out"
    )]
    Busy {
        /// The run folder.
        dir: PathBuf,
        /// What the lock file says of its holder (`pid N`).
        holder: String,
    },
    /// Writing a file of the run folder failed.
    #[error(transparent)]
    Write(phyvae_data::DataError),
    /// Measuring the image (for settings chosen from it) failed.
    #[error(transparent)]
    Imaging(#[from] phyvae_imaging::ImagingError),
}

/// Result type of the run crate.
pub type Result<T> = std::result::Result<T, RunError>;
