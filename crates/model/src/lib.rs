//! Models and training for phyvae (docs/METHOD.md sections 2, 3 and 5).
//!
//! - [`decoder`]: the spatial (coordinate) decoder of the invariant VAEs: a
//!   plain candle implementation (reference, any device) and a fused CPU kernel
//!   with an explicit backward pass (the hot path of training).
//! - [`params`]: named trainable parameters, seeded initialisation, safetensors.
//! - [`physics`]: the phy-VAE physics loss `Psi` (SL1, SL2), faithful and
//!   differentiable.

pub mod decoder;
mod error;
pub mod params;
pub mod physics;

pub use error::ModelError;

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, ModelError>;
