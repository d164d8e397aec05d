//! The SPIEPy raw `.dat` image format.
//!
//! Layout (as the SPIEPy demo files, e.g. `spiepy/demo/*.dat`): two
//! little-endian `u32`, `rows` then `cols`, followed by `rows * cols`
//! little-endian `f64` values in row-major order. There is no magic and no
//! calibration.

use super::util::{file_len, io_error, malformed, narrow_pixels, single_frame};
use crate::{DataError, Image, Result};
use std::fs::File;
use std::io::Read;
use std::path::Path;

const FORMAT: &str = "SPIEPy raw";
/// Size of the `(rows, cols)` header.
const HEADER_LEN: u64 = 8;
/// Size of one `f64` pixel.
const PIXEL_LEN: u64 = 8;

/// Reads a SPIEPy raw `.dat` image (see the module docs for the layout).
///
/// The file length must be exactly `8 + 8 * rows * cols`, checked before any
/// pixel memory is allocated. Values are rounded from `f64` to `f32`; heights in
/// metres (~`1e-9`) keep their ~7 significant digits; a finite value too large
/// for `f32` is refused rather than turned into infinity. `frame` must be `None` or
/// `Some(0)`. `pixel_size` is `None` (the format has no calibration).
///
/// # Errors
/// [`DataError::Io`]; [`DataError::Malformed`] (shorter than the header, length
/// not matching the header); [`DataError::NotAnImage`] (zero rows or columns);
/// [`DataError::NoSuchFrame`] for a frame other than 0;
/// [`DataError::BeyondFloat32`] for a finite value too large for `f32`.
///
/// # Example
/// ```
/// use phyvae_data::io::read_spiepy_dat;
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("tiny.dat");
/// let mut bytes = Vec::new();
/// bytes.extend_from_slice(&1_u32.to_le_bytes()); // rows
/// bytes.extend_from_slice(&2_u32.to_le_bytes()); // cols
/// bytes.extend_from_slice(&1.5e-9_f64.to_le_bytes());
/// bytes.extend_from_slice(&(-2.0_f64).to_le_bytes());
/// std::fs::write(&path, bytes).unwrap();
/// let img = read_spiepy_dat(&path, None).unwrap();
/// assert_eq!(img.pixels.as_slice().unwrap(), &[1.5e-9_f32, -2.0]);
/// ```
pub fn read_spiepy_dat(path: &Path, frame: Option<usize>) -> Result<Image> {
    let mut file = File::open(path).map_err(|e| io_error(path, e))?;
    let total = file_len(path, &file)?;
    if total < HEADER_LEN {
        return Err(malformed(
            path,
            FORMAT,
            format!("truncated: {total} bytes, shorter than the 8-byte (rows, cols) header"),
        ));
    }
    let mut head = [0_u8; 8];
    file.read_exact(&mut head).map_err(|e| io_error(path, e))?;
    let rows = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let cols = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    // u32 * u32 * 8 + 8 < 2^67 could overflow u64 only in the product with 8.
    let expected = u64::from(rows)
        .checked_mul(u64::from(cols))
        .and_then(|n| n.checked_mul(PIXEL_LEN))
        .and_then(|n| n.checked_add(HEADER_LEN));
    if expected != Some(total) {
        let need = expected.map_or_else(|| "more than 2^64".to_owned(), |n| n.to_string());
        return Err(malformed(
            path,
            FORMAT,
            format!(
                "header says {rows} x {cols} f64 pixels ({need} bytes), the file has {total} bytes"
            ),
        ));
    }
    let (rows, cols) = (rows as usize, cols as usize);
    if rows == 0 || cols == 0 {
        return Err(DataError::NotAnImage {
            path: path.to_path_buf(),
            shape: vec![rows, cols],
        });
    }
    single_frame(path, frame)?;
    let mut bytes = vec![0_u8; rows * cols * 8];
    file.read_exact(&mut bytes).map_err(|e| io_error(path, e))?;
    let stored = bytes.chunks_exact(8).map(|b| {
        let mut a = [0_u8; 8];
        a.copy_from_slice(b);
        f64::from_le_bytes(a)
    });
    let values = narrow_pixels(path, stored, cols)?;
    let pixels = ndarray::Array2::from_shape_vec((rows, cols), values)
        .map_err(|e| malformed(path, FORMAT, e))?;
    Ok(Image {
        pixels,
        pixel_size: None,
        source: Some(path.to_path_buf()),
    })
}
