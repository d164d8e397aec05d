//! Fuzzes the TIA `.ser` parser: any bytes must give an error or a series
//! whose every frame decodes or gives an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use phyvae_data::io::ser::parse_ser;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(ser) = parse_ser(data, Path::new("fuzz.ser")) {
        let _ = ser.list();
        for frame in 0..ser.frames() {
            let _ = ser.image(Some(frame));
        }
    }
});
