//! Models and training for phyvae.
//!
//! - [`decoder`]: the spatial (coordinate) decoder of the shift-invariant VAE
//!   (pyroVED `sDecoderNet`, docs/METHOD.md section 2) as a fused CPU kernel with an
//!   explicit backward pass: the hot path of training.

pub mod decoder;
mod error;

pub use error::ModelError;

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, ModelError>;
