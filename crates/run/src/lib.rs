//! The typed contract of a phyvae run, shared by training, encoding and the
//! report (no deep-learning framework here).
//!
//! - [`config`]: everything that defines a run ([`config::RunConfig`],
//!   written as `config.toml`): patch cutting, the model, training, the
//!   physics term, the result; checked once by `validate`.
//! - [`auto`]: settings chosen from the image (lattice periods and noise
//!   measured on it), each with its reason.
//! - [`history`]: one row per epoch ([`history::EpochRecord`], `history.csv`).
//! - [`diagnose`]: whether the latents learned anything.
//! - [`metrics`]: what a run measured ([`metrics::Metrics`], `metrics.json`).
//! - [`files`]: the names of the run folder's files, and which latents are
//!   content latents.
//!
//! Renaming a field here is a compile error in every crate that writes or
//! reads it, never a silently missing value.

pub mod auto;
pub mod config;
pub mod diagnose;
mod error;
pub mod files;
pub mod history;
pub mod metrics;

pub use error::{Result, RunError};
