//! What every reader shares: the entry type of a file's list ([`ImageInfo`]),
//! the errors naming the file, unit conversion to nanometres, the luminance of
//! RGB samples and the decoded-size budget.
//!
//! Readers import from here, never from the `io` front door that dispatches
//! to them.

use crate::{DataError, PixelSize, Result};
use std::fs::File;
use std::path::Path;

/// One image (or stack of images) held in a file, as `phyvae info` lists it.
///
/// Multi-image readers number the 2-D images a command can use in the order
/// they list them, a stack of shape `(n, rows, cols)` counting as `n`
/// consecutive frames; `--frame k` selects the k-th of these (0-based).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ImageInfo {
    /// Position in the file's list of entries (0-based).
    pub index: usize,
    /// The entry's name or path inside the file (DM image name, HDF5
    /// dataset path, ...), if it has one.
    pub name: Option<String>,
    /// Shape as stored, slowest axis first: `[rows, cols]` for an image,
    /// `[frames, rows, cols]` for a stack, more axes for spectra and 4-D data.
    pub shape: Vec<usize>,
    /// Element type as stored, numpy's names: `uint8`, `int16`, `float32`,
    /// `complex64`, `rgb8`, `bool`, ...
    pub dtype: String,
    /// Pixel size in nm along x (columns) and y (rows), when the file records
    /// a length calibration for the image axes.
    pub pixel_size: Option<PixelSize>,
    /// Why commands cannot read it as 2-D images (a spectrum, complex data,
    /// a thumbnail, ...); `None` when they can.
    pub unusable: Option<String>,
}

/// Weight of red in the luminance `Y = 0.2125 R + 0.7154 G + 0.0721 B`
/// (ITU-R BT.709 primaries as used by scikit-image `color.rgb2gray`).
pub const LUMA_R: f64 = 0.2125;
/// Weight of green in the luminance (see [`LUMA_R`]).
pub const LUMA_G: f64 = 0.7154;
/// Weight of blue in the luminance (see [`LUMA_R`]).
pub const LUMA_B: f64 = 0.0721;

/// Luminance of one RGB sample triple, in `f64`.
pub(crate) fn luma(r: f64, g: f64, b: f64) -> f64 {
    LUMA_R * r + LUMA_G * g + LUMA_B * b
}

/// Luminance of one RGB sample triple, computed in `f64`, rounded to `f32`
/// (for integer samples, whose luminance always fits).
#[allow(clippy::cast_possible_truncation)]
pub(crate) fn luminance(r: f64, g: f64, b: f64) -> f32 {
    luma(r, g, b) as f32
}

/// The nearest `f32` of `v`, or `None` when `v` is finite but rounds to an
/// infinite `f32` (`|v| >= f32::MAX + half an ulp`, about 3.4028236e38).
/// NaN and infinities pass through unchanged (later checks report them).
#[allow(clippy::cast_possible_truncation)]
pub(crate) fn f64_to_f32(v: f64) -> Option<f32> {
    let x = v as f32;
    (x.is_finite() || !v.is_finite()).then_some(x)
}

/// Rounds the `f64` pixels of an image, given in row-major order with `cols`
/// columns, to `f32`, refusing the first finite value beyond the `f32` range
/// ([`DataError::BeyondFloat32`] naming `path`, its row, column and value).
pub fn narrow_pixels(
    path: &Path,
    values: impl IntoIterator<Item = f64>,
    cols: usize,
) -> Result<Vec<f32>> {
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            f64_to_f32(v).ok_or_else(|| DataError::BeyondFloat32 {
                path: path.to_path_buf(),
                row: i.checked_div(cols).unwrap_or(0),
                col: i.checked_rem(cols).unwrap_or(i),
                value: v,
            })
        })
        .collect()
}

/// Length of one `unit` in nanometres, for the unit spellings found in
/// microscopy metadata (ImageJ, SciLink, Gwyddion). `None` if unknown.
pub(crate) fn unit_in_nm(unit: &str) -> Option<f64> {
    let u = unit.trim().trim_matches('"').to_lowercase();
    let scale = match u.as_str() {
        "nm" | "nanometer" | "nanometers" | "nanometre" | "nanometres" => 1.0,
        "pm" | "picometer" | "picometers" | "picometre" | "picometres" => 1e-3,
        "a" | "å" | "\u{212b}" | "angstrom" | "angstroms" | "ångström" => 0.1,
        "um" | "µm" | "\u{3bc}m" | "\\u00b5m" | "micron" | "microns" | "micrometer"
        | "micrometers" | "micrometre" | "micrometres" => 1e3,
        "mm" | "millimeter" | "millimeters" | "millimetre" | "millimetres" => 1e6,
        "cm" | "centimeter" | "centimeters" | "centimetre" | "centimetres" => 1e7,
        "m" | "meter" | "meters" | "metre" | "metres" => 1e9,
        "inch" | "inches" | "in" => 2.54e7,
        _ => return None,
    };
    Some(scale)
}

/// A pixel size in nanometres.
pub(crate) fn nm(x: f64, y: f64) -> PixelSize {
    PixelSize {
        x,
        y,
        unit: "nm".to_owned(),
    }
}

/// An I/O error on `path`.
pub(crate) fn io_error(path: &Path, source: std::io::Error) -> DataError {
    DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A malformed-file error on `path`.
pub(crate) fn malformed(path: &Path, format: &'static str, reason: impl ToString) -> DataError {
    DataError::Malformed {
        path: path.to_path_buf(),
        format,
        reason: reason.to_string(),
    }
}

/// An unsupported-content error on `path`.
pub(crate) fn unsupported(path: &Path, format: &'static str, reason: impl ToString) -> DataError {
    DataError::Unsupported {
        path: path.to_path_buf(),
        format,
        reason: reason.to_string(),
    }
}

/// Checks that a single-image format is asked for frame 0 (or none).
pub(crate) fn single_frame(path: &Path, frame: Option<usize>) -> Result<()> {
    match frame {
        None | Some(0) => Ok(()),
        Some(f) => Err(DataError::NoSuchFrame {
            path: path.to_path_buf(),
            frame: f,
            frames: 1,
        }),
    }
}

/// Size of the file behind `file`, as `u64`.
pub(crate) fn file_len(path: &Path, file: &File) -> Result<u64> {
    file.metadata()
        .map(|m| m.len())
        .map_err(|e| io_error(path, e))
}

/// Largest decoded size (bytes) a compressed file may claim per byte of file:
/// Deflate peaks at about 1032:1 and 12-bit LZW at about 2730:1, so 4096 bounds
/// every codec the readers accept.
const MAX_EXPANSION: u64 = 4096;
/// Decoded-size allowance below which no expansion check applies (1 MiB).
const MIN_DECODE_BUDGET: u64 = 1 << 20;
/// Hard cap on the decoded size of one image (2 GiB).
const MAX_DECODED_BYTES: u64 = 2 << 30;

/// Largest number of decoded bytes a compressed image file of `file_len` bytes
/// may legitimately produce: `clamp(file_len * 4096, 1 MiB, 2 GiB)`.
pub(crate) fn decode_budget(file_len: u64) -> u64 {
    file_len
        .saturating_mul(MAX_EXPANSION)
        .clamp(MIN_DECODE_BUDGET, MAX_DECODED_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luminance_weights_sum_to_one() {
        // BT.709: 0.2125 + 0.7154 + 0.0721 = 1, so grey stays grey.
        assert!((LUMA_R + LUMA_G + LUMA_B - 1.0).abs() < 1e-12);
        assert_eq!(luminance(200.0, 200.0, 200.0), 200.0);
        // 0.2125 * 255 = 54.1875
        assert_eq!(luminance(255.0, 0.0, 0.0), 54.1875);
    }

    #[test]
    fn f64_beyond_f32_range_is_refused() {
        // f32::MAX = (2 - 2^-23) 2^127 is representable; 3.5e38 > 2^128 ~ 3.4028237e38
        // rounds to infinity; halfway (2^128 - 2^103) rounds to even, i.e. up to 2^128.
        let max = f64::from(f32::MAX);
        assert_eq!(f64_to_f32(max), Some(f32::MAX));
        assert_eq!(f64_to_f32(-max), Some(f32::MIN));
        assert_eq!(f64_to_f32(3.5e38), None);
        assert_eq!(f64_to_f32(-3.5e38), None);
        assert_eq!(f64_to_f32(2_f64.powi(128) - 2_f64.powi(103)), None);
        // One f64 ulp (2^75 there) below that halfway point rounds down to f32::MAX.
        let below_half = 2_f64.powi(128) - 2_f64.powi(103) - 2_f64.powi(75);
        assert_eq!(f64_to_f32(below_half), Some(f32::MAX));
        assert_eq!(f64_to_f32(1e300), None);
        assert_eq!(f64_to_f32(f64::INFINITY), Some(f32::INFINITY));
        assert!(f64_to_f32(f64::NAN).is_some_and(f32::is_nan));
        assert_eq!(f64_to_f32(0.5), Some(0.5));
    }

    #[test]
    fn narrow_pixels_names_the_first_pixel_beyond_range() {
        // Row-major with 3 columns: flat index 4 is (row 1, col 1).
        let err =
            narrow_pixels(Path::new("a.dat"), [1.0, 2.0, 3.0, 4.0, -1e300, 1e300], 3).unwrap_err();
        assert!(matches!(
            err,
            DataError::BeyondFloat32 { row: 1, col: 1, value, .. } if value == -1e300
        ));
        assert_eq!(
            narrow_pixels(Path::new("a.dat"), [1.0, -2.5], 2).unwrap(),
            vec![1.0_f32, -2.5]
        );
    }

    #[test]
    fn units_convert_to_nm() {
        assert_eq!(unit_in_nm("nm"), Some(1.0));
        assert_eq!(unit_in_nm("micron"), Some(1e3));
        assert_eq!(unit_in_nm("\u{b5}m"), Some(1e3));
        assert_eq!(unit_in_nm("\\u00B5m"), Some(1e3));
        assert_eq!(unit_in_nm("Å"), Some(0.1));
        assert_eq!(unit_in_nm("pixel"), None);
    }

    #[test]
    fn decode_budget_is_clamped() {
        assert_eq!(decode_budget(0), 1 << 20);
        // 1000 B * 4096 = 4 096 000 B, between the 1 MiB floor and the 2 GiB cap.
        assert_eq!(decode_budget(1000), 4_096_000);
        assert_eq!(decode_budget(u64::MAX), 2 << 30);
    }

    #[test]
    fn frame_rule_for_single_images() {
        let p = Path::new("x.png");
        assert!(single_frame(p, None).is_ok());
        assert!(single_frame(p, Some(0)).is_ok());
        assert!(matches!(
            single_frame(p, Some(2)),
            Err(DataError::NoSuchFrame {
                frame: 2,
                frames: 1,
                ..
            })
        ));
    }
}
