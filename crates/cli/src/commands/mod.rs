//! One module per subcommand; each is a few lines over the library crates.

mod classical;
mod filter;
pub mod output;
mod physics;
pub mod report;
pub mod result;
pub mod segment;
mod simple;
pub mod train;

use crate::cli::{Cli, Command};
use crate::progress::Progress;
use anyhow::Result;
use std::path::{Path, PathBuf};

/// An output could not be written (maps to exit code 5).
#[derive(Debug, thiserror::Error)]
#[error("cannot write {path}: {source}")]
pub struct OutputError {
    /// Path concerned.
    pub path: PathBuf,
    /// Cause.
    #[source]
    pub source: std::io::Error,
}

/// Runs one parsed command line.
pub fn dispatch(cli: Cli) -> Result<()> {
    let progress = Progress::new(cli.quiet);
    match cli.command {
        Command::Train(a) => train::train(&a, progress),
        Command::Encode(a) => train::encode(&a, progress),
        Command::Report(a) => report::run(&a, progress),
        Command::Filter(f) => filter::run(f),
        Command::Threshold(t) => simple::threshold(t),
        Command::Segment(a) => segment::run(&a),
        Command::Physics(a) => physics::run(&a),
        Command::Synth(a) => simple::synth(&a),
        Command::Patches(a) => simple::patches(&a),
        Command::Score(a) => simple::score(&a),
        Command::Info(a) => simple::info(&a),
        Command::Convert(a) => simple::convert(&a),
    }
}

/// Creates an output folder (and its parents).
pub fn create_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|source| {
        OutputError {
            path: path.to_path_buf(),
            source,
        }
        .into()
    })
}

/// Prints a JSON value on stdout, pretty.
pub fn print_json(value: &serde_json::Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
