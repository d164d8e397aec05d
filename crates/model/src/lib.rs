//! Models and training for phyvae (docs/METHOD.md sections 2, 3 and 5).
//!
//! The settings they take ([`phyvae_run::config`]), the history they record
//! ([`phyvae_run::history`]) and the diagnosis of a run ([`phyvae_run::diagnose`])
//! live in the `phyvae-run` crate, which needs no deep-learning framework.
//!
//! - [`params`]: named trainable parameters, seeded initialisation, safetensors.
//! - [`encoder`]: `q(z|x)`, an MLP with a mean and a softplus standard deviation.
//! - [`decoder`]: the spatial (coordinate) decoder of the invariant VAEs: its
//!   parameters and coordinate grid, a plain candle implementation (reference,
//!   any device), a fused CPU kernel with an explicit backward pass (its
//!   workspace, the hot path of training) and the same kernel as a candle op,
//!   the Bernoulli loss on logits.
//! - [`vae`]: the models (vanilla, shift, rotation, scale and combinations) and
//!   their loss.
//! - [`physics`]: the phy-VAE physics loss `Psi` (SL1, SL2): faithful (a plain
//!   number) and differentiable (a candle graph), the latent maps of a batch,
//!   the ways to combine `Psi` with the loss.
//! - [`optim`]: Adam with checkpointable state.
//! - [`train`]: the trainer (batch order, one step per batch in each physics
//!   mode, per-epoch records, events, checkpoints, resume).
//! - [`infer`]: latent maps, manifold, latent histogram, saving and loading models.
//! - [`memory`]: the memory a run will need, estimated before it allocates,
//!   and what the machine has available.
//! - `batch` (inside the crate): a batch of patches copied into one tensor, for
//!   the trainer and [`infer`].

mod batch;
pub mod decoder;
pub mod encoder;
mod error;
pub mod infer;
pub mod memory;
pub mod optim;
pub mod params;
pub mod physics;
pub mod refine;
pub mod train;
pub mod vae;

pub use error::ModelError;

/// The device type of the deep-learning framework (candle), re-exported so
/// that callers need not depend on candle themselves.
pub use candle_core::Device;

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, ModelError>;
