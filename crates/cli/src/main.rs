//! The `phyvae` command-line tool: a thin shell over the phyvae library crates.
//!
//! Every command prints JSON on stdout or writes NPY/PNG files; errors go to
//! stderr as one message with its causes, and the process exits with a code
//! that says what kind of failure it was (see [`phyvae_cli::exit_code`]).

use clap::Parser;
use phyvae_cli::{cli, commands, exit_code, message};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match commands::dispatch(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", message(&err));
            ExitCode::from(exit_code(&err))
        }
    }
}
