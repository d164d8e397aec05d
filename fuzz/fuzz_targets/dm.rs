//! Fuzzes the DigitalMicrograph DM3/DM4 reader: parsing arbitrary bytes, then
//! listing the images and reading the first frames, must give errors, never
//! panics or huge allocations.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phyvae_data::io::dm::parse_dm;
use std::path::Path;

/// Frames read per input at most (a tiny stack may declare thousands).
const MAX_FRAMES: usize = 64;

fuzz_target!(|data: &[u8]| {
    if let Ok(mut file) = parse_dm(data, Path::new("fuzz.dm3")) {
        let _ = file.images();
        for frame in 0..file.frame_count().min(MAX_FRAMES) {
            let _ = file.image(frame);
        }
        // Past the last frame, and the no-image path.
        let _ = file.image(file.frame_count());
    }
});
