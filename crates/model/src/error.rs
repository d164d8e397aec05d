//! The typed error of the model crate.

use std::path::PathBuf;

use thiserror::Error;

/// Why a model computation, a training run or a model file could not proceed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A parameter is outside its allowed range.
    #[error("parameter `{name}` = {value} is invalid: {rule}")]
    InvalidParameter {
        /// Parameter name as it appears in the API (and in `config.toml`).
        name: &'static str,
        /// The value given, rendered as text.
        value: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// An input array does not have the shape the model expects.
    #[error("shape mismatch: {what}: expected {expected:?}, found {found:?}")]
    ShapeMismatch {
        /// Which array.
        what: &'static str,
        /// Expected shape.
        expected: Vec<usize>,
        /// Shape found.
        found: Vec<usize>,
    },
    /// The deep-learning framework (candle) reported an error.
    #[error("{context}: {source}")]
    Framework {
        /// What phyvae was doing.
        context: &'static str,
        /// The framework's error.
        #[source]
        source: candle_core::Error,
    },
    /// Reading or writing a file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// "reading", "writing", "renaming", ...
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },
    /// The run would need more memory than the machine has available
    /// ([`crate::memory::MemoryEstimate::check`]).
    #[error(
        "these settings need an estimated {needed} of memory (an upper bound), more than the \
         {available} available: {drivers}"
    )]
    OutOfMemory {
        /// The estimate, in decimal units.
        needed: String,
        /// What the machine has available, in decimal units.
        available: String,
        /// Which settings drive the estimate, and what to lower.
        drivers: String,
    },
    /// A model, checkpoint or configuration file is not what it should be.
    #[error("{path}: {reason}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Training produced a non-finite loss or parameter; the epoch in which
    /// it happened wrote no checkpoint.
    #[error(
        "training diverged at epoch {epoch}, batch {batch}: {what} is not finite; {}",
        kept_note(.epochs_done, .checkpoint)
    )]
    Diverged {
        /// Epoch (1-based) in which it happened.
        epoch: usize,
        /// Batch (0-based) within the epoch.
        batch: usize,
        /// Which quantity: "loss", "Psi", or a parameter name.
        what: String,
        /// Whole epochs trained before it (and held by `checkpoint`).
        epochs_done: usize,
        /// The checkpoint of the last good epoch, when one was written.
        checkpoint: Option<PathBuf>,
    },
    /// Training ran away while its values were still finite (encoder means
    /// far outside the prior, or a reconstruction term far above its best:
    /// `phyvae_run::diagnose::RunawayWatch`); the epoch in which it happened
    /// wrote no checkpoint.
    #[error(
        "training ran away at epoch {epoch}, batch {batch}: {what}; {}",
        kept_note(.epochs_done, .checkpoint)
    )]
    RanAway {
        /// Epoch (1-based) in which it happened.
        epoch: usize,
        /// Batch (0-based) within the epoch.
        batch: usize,
        /// What was seen, in words.
        what: String,
        /// Whole epochs trained before it (and held by `checkpoint`).
        epochs_done: usize,
        /// The checkpoint of the last good epoch, when one was written.
        checkpoint: Option<PathBuf>,
    },
    /// Training was asked to stop (e.g. Ctrl-C) and stopped after a batch;
    /// the checkpoint of the last whole epoch is kept.
    #[error("interrupted after {epochs_done} whole epochs")]
    Interrupted {
        /// Epochs completed and checkpointed.
        epochs_done: usize,
    },
    /// Image processing (physics loss, segmentation) failed.
    #[error(transparent)]
    Imaging(#[from] phyvae_imaging::ImagingError),
    /// A run setting or run file is not usable ([`phyvae_run::RunError`];
    /// a broken rule becomes [`ModelError::InvalidParameter`]).
    #[error(transparent)]
    Settings(phyvae_run::RunError),
    /// Patch extraction or data handling failed.
    #[error(transparent)]
    Data(#[from] phyvae_data::DataError),
}

impl From<phyvae_run::RunError> for ModelError {
    fn from(e: phyvae_run::RunError) -> Self {
        match e {
            phyvae_run::RunError::InvalidParameter { name, value, rule } => {
                ModelError::InvalidParameter { name, value, rule }
            }
            other => ModelError::Settings(other),
        }
    }
}

/// What a run stopped by [`ModelError::Diverged`] or [`ModelError::RanAway`]
/// left to continue from, in words.
fn kept_note(epochs_done: &usize, checkpoint: &Option<PathBuf>) -> String {
    match checkpoint {
        Some(path) if *epochs_done > 0 => format!(
            "the checkpoint of epoch {epochs_done}, the last good one, is kept in {}; \
             continue from it with a lower learning rate (--resume --lr)",
            path.display()
        ),
        _ => "no checkpoint was written; start again with a lower --lr".to_string(),
    }
}

/// Attaches a context to a framework error: `tensor_op().ctx("encoder forward")?`.
pub(crate) trait FrameworkContext<T> {
    /// Maps a candle error to [`ModelError::Framework`] with `context`.
    fn ctx(self, context: &'static str) -> Result<T, ModelError>;
}

impl From<phyvae_data::atomic::AtomicWriteError> for ModelError {
    fn from(e: phyvae_data::atomic::AtomicWriteError) -> Self {
        ModelError::Io {
            action: "writing",
            path: e.path,
            source: e.source,
        }
    }
}

impl<T> FrameworkContext<T> for candle_core::Result<T> {
    fn ctx(self, context: &'static str) -> Result<T, ModelError> {
        self.map_err(|source| ModelError::Framework { context, source })
    }
}
