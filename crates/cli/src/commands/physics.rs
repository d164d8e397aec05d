//! `phyvae physics sl1|sl2`.

use crate::cli::{PhysicsArgs, PhysicsLossArg};
use crate::commands::print_json;
use crate::input::{self, Pixels};
use anyhow::Result;
use phyvae_imaging::physics;
use serde_json::json;

/// Prints `{"psi": value}` for a B x C array of latent means, computed in f32 as the authors did.
pub fn run(a: &PhysicsArgs) -> Result<()> {
    #[allow(clippy::cast_possible_truncation)]
    let z = match input::pixels(&a.z_mean)? {
        Pixels::F32(x) => x,
        Pixels::F64(x) => x.mapv(|v| v as f32),
    };
    let psi = match a.loss {
        PhysicsLossArg::Sl1 => physics::sl1_batch(z.view(), &a.columns)?,
        PhysicsLossArg::Sl2 => physics::sl2_batch(z.view(), &a.columns, a.alpha)?,
    };
    print_json(&json!({ "psi": psi }))
}
