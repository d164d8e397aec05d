//! `phyvae physics none|sl1|sl2`.

use crate::cli::PhysicsArgs;
use crate::commands::output::print_json;
use crate::input;
use anyhow::Result;
use phyvae_imaging::physics;
use phyvae_run::config::PhysicsKind;
use serde_json::json;

/// Prints `{"psi": value}` for a B x C array of latent means, computed in f32 as the authors did.
pub fn run(a: &PhysicsArgs) -> Result<()> {
    // Computed in f32 (the authors' latent maps are float32); any input is read as f32.
    let z = input::image(&a.z_mean, None)?.pixels;
    let psi = match a.loss {
        PhysicsKind::None => 0.0,
        PhysicsKind::Sl1 => physics::sl1_batch(z.view(), &a.columns)?,
        PhysicsKind::Sl2 { .. } => physics::sl2_batch(z.view(), &a.columns, a.alpha)?,
    };
    print_json(&json!({ "psi": psi }))
}
