//! Ctrl-C during training: the first SIGINT asks the trainer to stop after
//! the current batch (the last whole epoch's checkpoint is kept and the
//! command says how to resume); a second one ends the process at once.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Exit code of a process ended by SIGINT (128 + 2), as shells report it.
pub const EXIT_CODE: u8 = 130;

/// The flag the first SIGINT sets. Installs the handler (once per process;
/// where signals cannot be handled, the flag is simply never set).
#[must_use]
pub fn flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&flag);
    // Where no handler can be installed, Ctrl-C keeps its default effect.
    let _ = ctrlc::set_handler(move || {
        if seen.swap(true, Ordering::SeqCst) {
            eprintln!("interrupted again: stopping now");
            std::process::exit(i32::from(EXIT_CODE));
        }
        eprintln!("interrupted: stopping after the current batch (Ctrl-C again to stop now)");
    });
    flag
}

/// The error of a training interrupted after `epochs_done` whole epochs
/// (`e`), saying what was kept and how to resume.
#[must_use]
pub fn explain(
    e: phyvae_model::ModelError,
    epochs_done: usize,
    image: &Path,
    out: &Path,
) -> anyhow::Error {
    let what = if epochs_done == 0 {
        "no epoch was completed, so there is no checkpoint: start the run again".to_owned()
    } else {
        format!(
            "the checkpoint of epoch {epochs_done} is kept; continue with: \
             phyvae train {} --out {} --resume",
            image.display(),
            out.display()
        )
    };
    anyhow::Error::from(e).context(what)
}
