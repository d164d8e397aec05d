//! Progress output on stderr: bars with rate and time left on a terminal,
//! plain lines when stderr is not a terminal (logs, CI), nothing with
//! `--quiet`. Results always go to stdout (JSON) and files, never here.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use phyvae_data::io;
use phyvae_model::train::{TrainEvent, Trainer};
use phyvae_run::files::RunDir;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Bars,
    Lines,
    Quiet,
}

/// Progress reporting for one command.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    mode: Mode,
}

/// Template of a bar: what, bar, count, rate, time left.
const BAR: &str = "{prefix:>12} [{bar:30}] {pos}/{len} {per_sec} ETA {eta} {msg}";
/// Template of a step without a known length.
const SPIN: &str = "{spinner} {prefix} {msg} ({elapsed})";

impl Progress {
    /// Runs the trainer with progress bars, writing its snapshots.
    pub fn train(self, trainer: &mut Trainer<'_>, dir: &RunDir) -> phyvae_model::Result<()> {
        let progress = self;
        let mut bar: Option<Step> = None;
        let mut snap_err: Option<phyvae_data::DataError> = None;
        let outcome = trainer.run(&mut |e| match e {
            TrainEvent::EpochStarted {
                epoch,
                epochs,
                batches,
            } => {
                bar = Some(progress.bar(&format!("epoch {epoch}/{epochs}"), batches as u64));
            }
            TrainEvent::BatchDone { loss, .. } => {
                if let Some(b) = &bar {
                    b.bar().inc(1);
                    b.message(format!("loss {loss:.2}"));
                }
            }
            TrainEvent::EpochFinished(r) => {
                if let Some(b) = bar.take() {
                    b.bar().finish_and_clear();
                }
                progress.line(&format!(
                    "epoch {:>3}: elbo {:.3} psi {:.4} total {:.3} ({:.1} s)",
                    r.epoch, r.elbo, r.psi, r.total, r.seconds
                ));
            }
            TrainEvent::Snapshot { epoch, maps } => {
                if let Err(err) = io::write_npy_f32_3d(&dir.snapshot(epoch), maps.mean.view()) {
                    snap_err.get_or_insert(err);
                }
            }
            TrainEvent::CheckpointWritten { .. } => {}
        });
        if let Some(b) = bar.take() {
            b.bar().finish_and_clear();
        }
        outcome?;
        snap_err.map_or(Ok(()), |e| Err(e.into()))
    }

    /// Bars on a terminal, lines otherwise, nothing when `quiet`.
    #[must_use]
    pub fn new(quiet: bool) -> Self {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bars
        } else {
            Mode::Lines
        };
        Self { mode }
    }

    /// A bar of `len` units named `what` (`unit` e.g. "batches"). In line
    /// mode the bar is hidden; [`Step::done`] prints one line.
    #[must_use]
    pub fn bar(&self, what: &str, len: u64) -> Step {
        let bar = match self.mode {
            Mode::Bars => {
                let b = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
                b.set_style(
                    ProgressStyle::with_template(BAR)
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                b.set_prefix(what.to_owned());
                b.enable_steady_tick(Duration::from_millis(200));
                b
            }
            Mode::Lines | Mode::Quiet => ProgressBar::hidden(),
        };
        Step::new(self.mode, what, bar)
    }

    /// A step of unknown length named `what` (a spinner with elapsed time).
    #[must_use]
    pub fn step(&self, what: &str) -> Step {
        let bar = match self.mode {
            Mode::Bars => {
                let b = ProgressBar::new_spinner();
                b.set_style(
                    ProgressStyle::with_template(SPIN)
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                b.set_prefix(what.to_owned());
                b.enable_steady_tick(Duration::from_millis(120));
                b
            }
            Mode::Lines | Mode::Quiet => ProgressBar::hidden(),
        };
        if self.mode == Mode::Lines {
            eprintln!("{what} ...");
        }
        Step::new(self.mode, what, bar)
    }

    /// Prints a line (above a running bar on a terminal).
    pub fn line(&self, text: &str) {
        if self.mode != Mode::Quiet {
            eprintln!("{text}");
        }
    }
}

/// One running step or bar.
#[derive(Debug)]
pub struct Step {
    mode: Mode,
    what: String,
    bar: ProgressBar,
    start: Instant,
}

impl Step {
    fn new(mode: Mode, what: &str, bar: ProgressBar) -> Self {
        Self {
            mode,
            what: what.to_owned(),
            bar,
            start: Instant::now(),
        }
    }

    /// The underlying bar (hidden outside a terminal).
    #[must_use]
    pub fn bar(&self) -> &ProgressBar {
        &self.bar
    }

    /// Sets the message shown after the bar (line mode: ignored).
    pub fn message(&self, msg: String) {
        self.bar.set_message(msg);
    }

    /// Finishes the step: clears the bar and prints `what: done in N s`.
    pub fn done(self) {
        self.bar.finish_and_clear();
        if self.mode != Mode::Quiet {
            eprintln!(
                "{}: done in {:.1} s",
                self.what,
                self.start.elapsed().as_secs_f64()
            );
        }
    }
}
