//! The files of a run folder, written by `phyvae train` and `phyvae encode`
//! and read by `phyvae report` and `phyvae encode --model`; and the names of
//! a run's latent channels.
//!
//! | file | type that owns it |
//! |---|---|
//! | `config.toml` | [`crate::config::RunConfig`] |
//! | `metrics.json` | [`crate::metrics::Metrics`] |
//! | `history.csv` | [`crate::history::EpochRecord`], one row per epoch |
//! | `model.safetensors`, `model.json` | the model crate's `save_model` / `load_model` ([`crate::config::DataConfig`] inside) |
//! | `latents.npy`, `latents_sd.npy` | `rows x cols x L` f32, channels named by [`latent_names`] |
//! | `segmentation/<latent>/` | the imaging crate's segmentation pipeline |
//! | `result/labels.npy` | the result segmentation ([`crate::metrics::ResultMetrics`]) |
//! | `manifold.npy`/`.png`, `latent_hist.npy` | decoded manifold, latent histogram |
//! | `input.png`, `truth_grid.npy` | the image as the model saw it, the truth at the grid cells |
//! | `snapshots/latents_epoch_NNNN.npy` | latents during training |
//! | `checkpoint/checkpoint.safetensors` | the trainer's last epoch |
//! | `report.html`, `figures/` | the report |

use std::path::{Path, PathBuf};

use crate::RunError;

/// `config.toml`.
pub const CONFIG: &str = "config.toml";
/// `metrics.json`.
pub const METRICS: &str = "metrics.json";
/// `history.csv`.
pub const HISTORY: &str = "history.csv";
/// `model.safetensors`: the trained weights.
pub const MODEL: &str = "model.safetensors";
/// `model.json`: the model's settings and how it cuts patches.
pub const MODEL_JSON: &str = "model.json";
/// `latents.npy`: encoder means.
pub const LATENTS: &str = "latents.npy";
/// `latents_sd.npy`: encoder standard deviations.
pub const LATENTS_SD: &str = "latents_sd.npy";
/// `truth_grid.npy`: the truth labels at the patch centres.
pub const TRUTH_GRID: &str = "truth_grid.npy";
/// `input.png`: the image as the model saw it (levelled and scaled).
pub const INPUT_PNG: &str = "input.png";
/// `manifold.npy`: decoded patches on a grid of content latents.
pub const MANIFOLD: &str = "manifold.npy";
/// `manifold.png`.
pub const MANIFOLD_PNG: &str = "manifold.png";
/// `latent_hist.npy`: the 2-D histogram of the first two content latents.
pub const LATENT_HIST: &str = "latent_hist.npy";
/// `segmentation/`: one folder per latent map.
pub const SEGMENTATION_DIR: &str = "segmentation";
/// `denoised.npy` inside a latent's segmentation folder.
pub const DENOISED: &str = "denoised.npy";
/// `result/`: the result segmentation.
pub const RESULT_DIR: &str = "result";
/// `labels.npy` inside `result/`.
pub const RESULT_LABELS: &str = "labels.npy";
/// `snapshots/`: latents recorded during training.
pub const SNAPSHOTS_DIR: &str = "snapshots";
/// `checkpoint/`: the last epoch's trainer state.
pub const CHECKPOINT_DIR: &str = "checkpoint";
/// `checkpoint.safetensors` inside `checkpoint/`.
pub const CHECKPOINT: &str = "checkpoint.safetensors";
/// `held.safetensors` inside `checkpoint/`: the checkpoint of an attempt held
/// against the next one (it returns to [`CHECKPOINT`] when that attempt is
/// kept, so that `--resume` continues the model the run kept).
pub const HELD_CHECKPOINT: &str = "held.safetensors";
/// `report.html`.
pub const REPORT: &str = "report.html";
/// `figures/`: the report's PNG figures.
pub const FIGURES_DIR: &str = "figures";
/// `.phyvae.lock`: held by the process writing the run (its pid inside).
pub const LOCK: &str = ".phyvae.lock";

/// Every file and folder a run writes at the top of its folder.
pub const RUN_ENTRIES: [&str; 18] = [
    CONFIG,
    METRICS,
    HISTORY,
    MODEL,
    MODEL_JSON,
    LATENTS,
    LATENTS_SD,
    TRUTH_GRID,
    INPUT_PNG,
    MANIFOLD,
    MANIFOLD_PNG,
    LATENT_HIST,
    SEGMENTATION_DIR,
    RESULT_DIR,
    SNAPSHOTS_DIR,
    CHECKPOINT_DIR,
    REPORT,
    FIGURES_DIR,
];

/// The exclusive hold of one process on a run folder, released when dropped
/// (or when the process ends, however it ends).
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
}

/// A run folder: the path of each of its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// The run folder at `root` (nothing is read or created).
    #[must_use]
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The folder itself.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `root/name`, for a name of this module.
    #[must_use]
    pub fn file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// `segmentation/<latent>/`.
    #[must_use]
    pub fn segmentation(&self, latent: &str) -> PathBuf {
        self.root.join(SEGMENTATION_DIR).join(latent)
    }

    /// `result/labels.npy`.
    #[must_use]
    pub fn result_labels(&self) -> PathBuf {
        self.root.join(RESULT_DIR).join(RESULT_LABELS)
    }

    /// `snapshots/latents_epoch_NNNN.npy` of `epoch`.
    #[must_use]
    pub fn snapshot(&self, epoch: usize) -> PathBuf {
        self.root
            .join(SNAPSHOTS_DIR)
            .join(format!("latents_epoch_{epoch:04}.npy"))
    }

    /// Takes the folder's lock ([`LOCK`]), so that no other phyvae process
    /// writes into it while this one does. The folder must exist.
    ///
    /// # Errors
    /// [`RunError::Busy`] when another process holds it (naming that
    /// process), [`RunError::Write`] when the lock file cannot be made.
    pub fn lock(&self) -> crate::Result<RunLock> {
        use std::io::{Read, Seek, Write};
        let path = self.file(LOCK);
        let write_err = |source: std::io::Error| {
            RunError::Write(phyvae_data::DataError::Write {
                path: path.clone(),
                source,
            })
        };
        let mut file = std::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(write_err)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(RunError::Busy {
                    dir: self.root.clone(),
                    holder: holder.trim().to_owned(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(write_err(e)),
        }
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| write!(file, "pid {}", std::process::id()))
            .map_err(write_err)?;
        Ok(RunLock { _file: file })
    }

    /// Whether the folder holds (part of) a run: any file or folder a run
    /// writes, other than the lock.
    #[must_use]
    pub fn holds_run(&self) -> bool {
        RUN_ENTRIES.iter().any(|name| self.file(name).exists())
    }

    /// Removes every file and folder a run writes (and nothing else) from
    /// the folder; returns how many entries went.
    ///
    /// # Errors
    /// [`RunError::Write`] naming the entry that could not be removed.
    pub fn remove_run(&self) -> crate::Result<usize> {
        let mut removed = 0;
        for name in RUN_ENTRIES {
            let p = self.file(name);
            let gone = match std::fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => std::fs::remove_dir_all(&p),
                Ok(_) => std::fs::remove_file(&p),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => Err(e),
            };
            gone.map_err(|source| {
                RunError::Write(phyvae_data::DataError::Write {
                    path: p.clone(),
                    source,
                })
            })?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Removes the temporary files a killed writer left in the folder and in
    /// the run's subfolders (`segmentation/<latent>/`, `checkpoint/`,
    /// `figures/`, ...), and nowhere else; returns how many.
    ///
    /// # Errors
    /// [`RunError::Write`] naming the folder that could not be listed or the
    /// file that could not be removed.
    pub fn remove_stale_temps(&self) -> crate::Result<usize> {
        use phyvae_data::atomic::{remove_stale_temps, remove_stale_temps_below};
        let as_run_error = |e: phyvae_data::atomic::AtomicWriteError| {
            RunError::Write(phyvae_data::DataError::from(e))
        };
        let mut removed = remove_stale_temps(&self.root).map_err(as_run_error)?;
        for name in RUN_ENTRIES {
            let p = self.file(name);
            if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
                removed += remove_stale_temps_below(&p).map_err(as_run_error)?;
            }
        }
        Ok(removed)
    }

    /// The epoch of a snapshot file name (`latents_epoch_0012.npy` gives 12).
    #[must_use]
    pub fn snapshot_epoch(file_name: &str) -> Option<usize> {
        file_name
            .strip_prefix("latents_epoch_")?
            .strip_suffix(".npy")?
            .parse()
            .ok()
    }
}

/// Names of the latent channels: the special latents (`special`, e.g.
/// `dx, dy` of a shift-invariant model), then the content latents `z1..zn`.
#[must_use]
pub fn latent_names(special: &[&str], n_content: usize) -> Vec<String> {
    let mut v: Vec<String> = special.iter().map(|s| (*s).to_string()).collect();
    v.extend((1..=n_content).map(|i| format!("z{i}")));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_names_round_trip() {
        let d = RunDir::new("r");
        let p = d.snapshot(12);
        assert_eq!(p, Path::new("r/snapshots/latents_epoch_0012.npy"));
        let name = p.file_name().and_then(|s| s.to_str()).unwrap_or_default();
        assert_eq!(RunDir::snapshot_epoch(name), Some(12));
        assert_eq!(RunDir::snapshot_epoch("latents_epoch_x.npy"), None);
        assert_eq!(RunDir::snapshot_epoch("other.npy"), None);
    }

    #[test]
    fn special_latents_come_first() {
        assert_eq!(latent_names(&["dx", "dy"], 2), ["dx", "dy", "z1", "z2"]);
        assert_eq!(latent_names(&[], 1), ["z1"]);
    }

    #[test]
    fn a_locked_folder_is_busy_until_its_lock_is_dropped() {
        let d = tempfile::tempdir().unwrap();
        let run = RunDir::new(d.path());
        let held = run.lock().unwrap();
        match run.lock() {
            Err(RunError::Busy { dir, holder }) => {
                assert_eq!(dir, d.path());
                assert_eq!(holder, format!("pid {}", std::process::id()));
            }
            other => panic!("expected Busy, got {other:?}"),
        }
        drop(held);
        run.lock().unwrap();
    }

    #[test]
    fn stale_temporaries_go_from_the_run_and_its_folders_only() {
        let d = tempfile::tempdir().unwrap();
        let run = RunDir::new(d.path());
        let seg = run.segmentation("z1");
        let mine = run.file("notes");
        for dir in [&seg, &mine] {
            std::fs::create_dir_all(dir).unwrap();
        }
        let stale = [
            run.file(".config.toml.7.0.tmp"),
            seg.join(".otsu.npy.7.1.tmp"),
            run.file(FIGURES_DIR).join(".loss.png.7.2.tmp"),
        ];
        std::fs::create_dir_all(run.file(FIGURES_DIR)).unwrap();
        let kept = mine.join(".a.txt.7.3.tmp");
        for f in stale.iter().chain([&kept]) {
            std::fs::write(f, b"x").unwrap();
        }
        assert_eq!(run.remove_stale_temps().unwrap(), 3);
        assert!(stale.iter().all(|f| !f.exists()));
        assert!(kept.is_file());
    }

    #[test]
    fn a_run_is_removed_and_nothing_else() {
        let d = tempfile::tempdir().unwrap();
        let run = RunDir::new(d.path());
        assert!(!run.holds_run());
        std::fs::write(run.file("notes.txt"), b"mine").unwrap();
        assert!(!run.holds_run());
        std::fs::write(run.file(CONFIG), b"x").unwrap();
        std::fs::create_dir_all(run.segmentation("z1")).unwrap();
        std::fs::write(run.segmentation("z1").join("otsu.npy"), b"x").unwrap();
        assert!(run.holds_run());
        assert_eq!(run.remove_run().unwrap(), 2);
        assert!(!run.holds_run());
        assert!(run.file("notes.txt").is_file());
    }
}
