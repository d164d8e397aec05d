//! Progress output on stderr: bars with rate and time left on a terminal,
//! plain lines when stderr is not a terminal (logs, CI), nothing with
//! `--quiet`. Results always go to stdout (JSON) and files, never here.
//!
//! A library caller (the Python package) drives a run through [`Hooks`]
//! instead: its own stop flag, the command line recorded in the run, and the
//! training events; the results are then read from the run folder, not
//! printed.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
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

/// What a library caller gives a run instead of the process's Ctrl-C
/// handler, command line and stdout.
pub struct Hooks {
    /// Set to stop training after the current batch (the last whole epoch's
    /// checkpoint is kept), as the first Ctrl-C does on the command line.
    pub stop: Arc<AtomicBool>,
    /// The command line recorded in metrics.json and the checkpoint (the
    /// `phyvae` command that reproduces the run).
    pub command: Vec<String>,
    /// Called on the training thread with every training event.
    pub on_event: Box<dyn Fn(&TrainEvent<'_>) + Send + Sync>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("stop", &self.stop)
            .field("command", &self.command)
            .finish_non_exhaustive()
    }
}

/// Progress reporting for one command, and the [`Hooks`] of a library caller.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'h> {
    mode: Mode,
    hooks: Option<&'h Hooks>,
}

/// Template of a bar: what, bar, count, rate, time left.
const BAR: &str = "{prefix:>12} [{bar:30}] {pos}/{len} {per_sec} ETA {eta} {msg}";
/// Template of a step without a known length.
const SPIN: &str = "{spinner} {prefix} {msg} ({elapsed})";

impl<'h> Progress<'h> {
    /// Runs the trainer with progress bars, writing its snapshots.
    pub fn train(self, trainer: &mut Trainer<'_>, dir: &RunDir) -> phyvae_model::Result<()> {
        let progress = self;
        let mut bar: Option<Step> = None;
        let mut snap_err: Option<phyvae_data::DataError> = None;
        let outcome = trainer.run(&mut |e| {
            if let Some(h) = progress.hooks {
                (h.on_event)(&e);
            }
            progress.show(e, &mut bar, dir, &mut snap_err);
        });
        if let Some(b) = bar.take() {
            b.bar().finish_and_clear();
        }
        outcome?;
        snap_err.map_or(Ok(()), |e| Err(e.into()))
    }

    /// Shows one training event (and writes the snapshot it carries).
    fn show(
        self,
        e: TrainEvent<'_>,
        bar: &mut Option<Step>,
        dir: &RunDir,
        snap_err: &mut Option<phyvae_data::DataError>,
    ) {
        let progress = self;
        match e {
            TrainEvent::EpochStarted {
                epoch,
                epochs,
                batches,
            } => {
                *bar = Some(progress.bar(&format!("epoch {epoch}/{epochs}"), batches as u64));
            }
            TrainEvent::BatchDone { loss, .. } => {
                if let Some(b) = bar.as_ref() {
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
        }
    }

    /// Progress driven by a library caller's `hooks`: shown on stderr as
    /// [`Progress::new`] does, or not at all when `quiet`.
    #[must_use]
    pub fn with_hooks(quiet: bool, hooks: &'h Hooks) -> Self {
        Self {
            hooks: Some(hooks),
            ..Self::new(quiet)
        }
    }

    /// The flag that stops training: the library caller's, or the Ctrl-C
    /// handler's (installed now).
    #[must_use]
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.hooks
            .map_or_else(crate::interrupt::flag, |h| Arc::clone(&h.stop))
    }

    /// The command line recorded in the run: the library caller's, or this
    /// process's arguments.
    #[must_use]
    pub fn command(&self) -> Vec<String> {
        self.hooks
            .map_or_else(|| std::env::args().collect(), |h| h.command.clone())
    }

    /// Whether results are printed on stdout (not for a library caller, who
    /// reads them from the run folder).
    #[must_use]
    pub fn prints_results(&self) -> bool {
        self.hooks.is_none()
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
        Self { mode, hooks: None }
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
