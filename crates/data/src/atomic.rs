//! Atomic file writes: the one writer of every file phyvae writes (NPY
//! arrays, model parameters and JSON, report pictures and pages).
//!
//! A write fills a fresh temporary file beside the target,
//! `.<name>.<pid>.<n>.tmp` (`n` counting this process's writes, the file
//! created with `create_new`, so two writes never share one), flushes it to
//! disk (`fsync`), then renames it over the target. A reader, or a run killed
//! mid-write, sees either the old file or the whole new one. On any error the
//! temporary file is removed and the target is left untouched; the error
//! ([`AtomicWriteError`]) names the target. Each write passes four fault
//! points (the hidden `fault` module): the temporary file created, filled,
//! synced, and renamed.
//!
//! - [`write_atomic`]: the content comes from a closure writing to a buffered
//!   writer;
//! - [`write_bytes_atomic`]: the content is a byte slice;
//! - [`write_atomic_with`]: the content is written by a function that takes a
//!   path (a library's `save(path)`), given the temporary path.
//!
//! # Example
//! ```
//! use phyvae_data::atomic::{write_atomic, write_bytes_atomic};
//! use std::io::Write;
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("out.txt");
//! write_bytes_atomic(&path, b"first").unwrap();
//! write_atomic(&path, |w| w.write_all(b"second")).unwrap();
//! assert_eq!(std::fs::read(&path).unwrap(), b"second");
//! ```

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::fault;

/// A failed atomic write of `path` (the target, not the temporary file).
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct AtomicWriteError {
    /// The file that was to be written.
    pub path: PathBuf,
    /// The operating-system error (or the error the content closure gave).
    #[source]
    pub source: std::io::Error,
}

impl From<AtomicWriteError> for crate::DataError {
    fn from(e: AtomicWriteError) -> Self {
        crate::DataError::Write {
            path: e.path,
            source: e.source,
        }
    }
}

/// Writes `path` atomically with the content `write` puts into a buffered
/// writer over the temporary file (see the [module docs](self)).
///
/// # Errors
/// [`AtomicWriteError`] naming `path` when the temporary file cannot be
/// created, `write` fails (its error is kept), or flushing, syncing or
/// renaming fails. The temporary file is removed and `path` left as it was.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<(), AtomicWriteError> {
    let tmp = temp_sibling(path);
    let filled = (|| -> std::io::Result<()> {
        let file = File::options().write(true).create_new(true).open(&tmp)?;
        fault::point_file("write.created", path);
        let mut w = BufWriter::new(file);
        write(&mut w)?;
        w.flush()?;
        fault::point_file("write.filled", path);
        let file = w
            .into_inner()
            .map_err(std::io::IntoInnerError::into_error)?;
        file.sync_all()
    })();
    commit(path, &tmp, filled)
}

/// Writes `bytes` to `path` atomically (see the [module docs](self)).
///
/// # Errors
/// As [`write_atomic`].
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<(), AtomicWriteError> {
    write_atomic(path, |w| w.write_all(bytes))
}

/// Writes `path` atomically through `save`, a function that writes a file at
/// the path it is given (a library's `save(path)`): `save` gets the path of
/// the temporary file, already created empty (it may truncate and rewrite
/// it). The file `save` leaves is then synced and renamed over `path`.
///
/// # Errors
/// As [`write_atomic`]; `save`'s error is kept as the source.
pub fn write_atomic_with(
    path: &Path,
    save: impl FnOnce(&Path) -> std::io::Result<()>,
) -> Result<(), AtomicWriteError> {
    let tmp = temp_sibling(path);
    let filled = (|| -> std::io::Result<()> {
        drop(File::options().write(true).create_new(true).open(&tmp)?);
        fault::point_file("write.created", path);
        save(&tmp)?;
        fault::point_file("write.filled", path);
        File::options().write(true).open(&tmp)?.sync_all()
    })();
    commit(path, &tmp, filled)
}

/// Renames the filled temporary file `tmp` over `path`, or removes it if
/// filling or renaming failed.
fn commit(path: &Path, tmp: &Path, filled: std::io::Result<()>) -> Result<(), AtomicWriteError> {
    let renamed = filled.and_then(|()| {
        fault::point_file("write.synced", path);
        std::fs::rename(tmp, path)
    });
    if renamed.is_ok() {
        fault::point_file("write.renamed", path);
    }
    renamed.map_err(|source| {
        // Best effort: the temporary file may not exist if creating it failed.
        let _ = std::fs::remove_file(tmp);
        AtomicWriteError {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// A fresh temporary name beside `path`: `.<name>.<pid>.<n>.tmp`.
fn temp_sibling(path: &Path) -> PathBuf {
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let n = WRITES.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp_name = format!(".{name}.{}.{n}.tmp", std::process::id());
    match path.parent() {
        Some(dir) => dir.join(tmp_name),
        None => PathBuf::from(tmp_name),
    }
}

/// Whether `name` is a temporary name of [`temp_sibling`]:
/// `.<name>.<pid>.<n>.tmp`.
fn is_temp_name(name: &str) -> bool {
    let Some(inner) = name.strip_prefix('.').and_then(|s| s.strip_suffix(".tmp")) else {
        return false;
    };
    let mut parts = inner.rsplitn(3, '.');
    let (n, pid, target) = (parts.next(), parts.next(), parts.next());
    let digits =
        |s: Option<&str>| s.is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
    digits(n) && digits(pid) && target.is_some_and(|t| !t.is_empty())
}

/// Removes the temporary files an interrupted writer left in `dir` (not in
/// its subfolders); returns how many. A missing `dir` has none.
///
/// # Errors
/// When `dir` cannot be listed or a temporary file cannot be removed.
pub fn remove_stale_temps(dir: &Path) -> Result<usize, AtomicWriteError> {
    remove_temps(dir, false)
}

/// As [`remove_stale_temps`], in `dir` and every folder below it (symbolic
/// links are not followed).
///
/// # Errors
/// As [`remove_stale_temps`].
pub fn remove_stale_temps_below(dir: &Path) -> Result<usize, AtomicWriteError> {
    remove_temps(dir, true)
}

fn remove_temps(dir: &Path, below: bool) -> Result<usize, AtomicWriteError> {
    let err = |source| AtomicWriteError {
        path: dir.to_path_buf(),
        source,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(err(e)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(err)?;
        let name = entry.file_name();
        let kind = entry.file_type().map_err(err)?;
        if below && kind.is_dir() {
            removed += remove_temps(&entry.path(), true)?;
        } else if kind.is_file() && is_temp_name(&name.to_string_lossy()) {
            std::fs::remove_file(entry.path()).map_err(|source| AtomicWriteError {
                path: entry.path(),
                source,
            })?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names of the entries of `dir`, sorted.
    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_failed_write_leaves_no_partial_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        let err = write_atomic(&path, |w| {
            w.write_all(b"partial")?;
            Err(std::io::Error::other("boom"))
        })
        .unwrap_err();
        assert_eq!(err.path, path);
        assert_eq!(err.source.to_string(), "boom");
        assert!(err.to_string().contains("out.bin"), "{err}");
        assert!(!path.exists());
        assert!(listing(dir.path()).is_empty());
        let e = write_atomic_with(&path, |_| Err(std::io::Error::other("no"))).unwrap_err();
        assert_eq!(e.path, path);
        assert!(listing(dir.path()).is_empty());
    }

    #[test]
    fn a_failed_write_keeps_the_old_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keep.txt");
        write_bytes_atomic(&path, b"old").unwrap();
        let _ = write_atomic(&path, |w| {
            w.write_all(b"new but broken")?;
            Err(std::io::Error::other("boom"))
        })
        .unwrap_err();
        let _ = write_atomic_with(&path, |tmp| {
            std::fs::write(tmp, b"new")?;
            Err(std::io::Error::other("boom"))
        })
        .unwrap_err();
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(listing(dir.path()), ["keep.txt"]);
    }

    #[test]
    fn overwrite_works_and_leaves_only_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        write_bytes_atomic(&path, b"a much longer first version").unwrap();
        write_atomic(&path, |w| w.write_all(b"whole")).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"whole");
        write_atomic_with(&path, |tmp| std::fs::write(tmp, b"by path")).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"by path");
        assert_eq!(listing(dir.path()), ["out.bin"]);
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/dir/out.bin");
        let err = write_bytes_atomic(&path, b"x").unwrap_err();
        assert_eq!(err.path, path);
        assert_eq!(err.source.kind(), std::io::ErrorKind::NotFound);
        assert!(matches!(
            crate::DataError::from(err),
            crate::DataError::Write { .. }
        ));
    }

    #[test]
    fn temporary_names_are_hidden_siblings_and_unique() {
        let path = Path::new("/some/dir/a.npy");
        let (a, b) = (temp_sibling(path), temp_sibling(path));
        assert_ne!(a, b);
        assert_eq!(a.parent(), path.parent());
        let name = a.file_name().unwrap().to_string_lossy().into_owned();
        let prefix = format!(".a.npy.{}.", std::process::id());
        assert!(
            name.starts_with(&prefix) && name.ends_with(".tmp"),
            "{name}"
        );
        assert_eq!(temp_sibling(Path::new("b")).parent(), Some(Path::new("")));
    }

    #[test]
    fn stale_temporary_files_are_found_by_name_and_removed() {
        assert!(is_temp_name(".latents.npy.1234.0.tmp"));
        assert!(is_temp_name(".checkpoint.safetensors.99.17.tmp"));
        assert!(!is_temp_name("latents.npy.1234.0.tmp"));
        assert!(!is_temp_name(".latents.npy.12a.0.tmp"));
        assert!(!is_temp_name(".npy.1.tmp"));
        assert!(!is_temp_name(".hidden"));
        let dir = tempfile::tempdir().unwrap();
        let keep = ["latents.npy", ".hidden", "x.tmp"];
        for name in keep
            .iter()
            .chain(&[".latents.npy.1234.0.tmp", ".a.json.1.2.tmp"])
        {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        assert_eq!(remove_stale_temps(dir.path()).unwrap(), 2);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [".hidden", "latents.npy", "x.tmp"]);
        assert_eq!(remove_stale_temps(&dir.path().join("absent")).unwrap(), 0);
    }

    #[test]
    fn stale_temporary_files_below_a_folder_are_removed_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("segmentation/z1");
        std::fs::create_dir_all(&sub).unwrap();
        for f in [
            dir.path().join(".a.npy.1.0.tmp"),
            sub.join(".otsu.npy.1.1.tmp"),
            sub.join("otsu.npy"),
        ] {
            std::fs::write(f, b"x").unwrap();
        }
        assert_eq!(remove_stale_temps(dir.path()).unwrap(), 1);
        assert_eq!(listing(&sub), [".otsu.npy.1.1.tmp", "otsu.npy"]);
        assert_eq!(remove_stale_temps_below(dir.path()).unwrap(), 1);
        assert_eq!(listing(&sub), ["otsu.npy"]);
        assert_eq!(
            remove_stale_temps_below(&dir.path().join("absent")).unwrap(),
            0
        );
    }
}
