//! One module per subcommand; each is a few lines over the library crates.

mod classical;
mod filter;
pub mod output;
mod physics;
pub mod report;
pub mod result;
pub mod segment;
pub mod simple;
pub mod train;

use crate::cli::{Cli, Command};
use crate::progress::Progress;
use anyhow::Result;

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
