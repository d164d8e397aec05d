//! The `phyvae` command-line tool: a thin shell over the phyvae library crates.
//!
//! Every command prints JSON on stdout or writes NPY/PNG files; errors go to
//! stderr as one message with its causes, and the process exits with a code
//! that says what kind of failure it was (see [`phyvae_cli::exit_code`]).

use clap::Parser;
use phyvae_cli::{cli, commands, exit_code, message};
use std::process::ExitCode;

fn main() -> ExitCode {
    one_candle_thread();
    rayon_threads_named();
    let args = cli::Cli::parse();
    match commands::dispatch(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", message(&err));
            ExitCode::from(exit_code(&err))
        }
    }
}

/// Runs candle's element-wise operations on the calling thread, unless
/// `CANDLE_NUM_THREADS` is set. Candle keeps its own pool of workers for them,
/// which spin while they wait; beside rayon's pool, which runs the decoder
/// kernel (the hot path), they compete for the same cores. A default run on
/// the bundled 512 px image took 64.9 s with candle's pool and 57.2 s without
/// it, with identical latents (BENCHMARKS.md).
#[allow(unsafe_code)]
fn one_candle_thread() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // SAFETY: the first statement of `main`: no other thread exists yet
        // that could read or write the environment at the same time.
        unsafe { std::env::set_var("CANDLE_NUM_THREADS", "1") };
    }
}

/// Sets `RAYON_NUM_THREADS` to the number of processors this process may
/// use (rayon's own default, so its pool is unchanged), unless it is set.
/// Without it, candle works out the thread count of every matrix product
/// again by reading and parsing `/proc/cpuinfo` (candle-core 0.11
/// `utils::get_num_threads`): about 5 % of a default run's time (BENCHMARKS.md).
#[allow(unsafe_code)]
fn rayon_threads_named() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let n = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        // SAFETY: called from `main` before anything has started a thread
        // that could read or write the environment at the same time.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", n.to_string()) };
    }
}
