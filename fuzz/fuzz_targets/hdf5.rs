//! Fuzzes the HDF5 readers (Velox EMD, Berkeley EMD, hyperspy): the bytes are
//! written to a file in the temporary folder, listed, and the first frames of
//! every listed entry read. Any result is fine; a panic or abort is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phyvae_data::io::hdf5::{list_hdf5, read_hdf5_image};
use std::path::PathBuf;
use std::sync::OnceLock;

/// Frames read per entry (a stack may claim millions).
const FRAMES_PER_ENTRY: usize = 4;

/// The file the input is written to, one per fuzzing process.
fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::temp_dir().join(format!("phyvae-fuzz-hdf5-{}.h5", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let path = scratch();
    if std::fs::write(path, data).is_err() {
        return;
    }
    if let Ok((_, list)) = list_hdf5(path) {
        for info in &list {
            let name = info.name.as_deref();
            let frames = info
                .shape
                .iter()
                .copied()
                .max()
                .unwrap_or(1)
                .min(FRAMES_PER_ENTRY);
            for k in 0..frames {
                let _ = read_hdf5_image(path, Some(k), name);
            }
        }
    }
    let _ = read_hdf5_image(path, None, None);
});
