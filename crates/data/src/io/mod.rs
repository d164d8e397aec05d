//! Image readers (NPY, TIFF, PNG, SPIEPy raw, DigitalMicrograph DM3/DM4,
//! TIA SER, and through HDF5 Velox EMD, Berkeley EMD and hyperspy) and NPY
//! writers.
//!
//! [`read_image`] recognises a file by its magic bytes first (NPY
//! `\x93NUMPY`, TIFF `II*\0` / `MM\0*` and their BigTIFF forms, PNG
//! `\x89PNG\r\n\x1a\n`, TIA SER `II` `0x0197`, HDF5 `\x89HDF\r\n\x1a\n`
//! at offset 0, 512, 1024, ..., DigitalMicrograph's version 3 or 4 followed by
//! a byte-order flag) and only then by extension, for formats without magic
//! (the SPIEPy raw `.dat`). Every reader returns an [`Image`] of `f32` raw values
//! (no normalisation), the pixel size when the file records one, and the source
//! path. Every error names the file and the reason; malformed input (truncated,
//! random bytes, absurd header sizes) gives an error, never a panic, and no
//! allocation larger than what the file can actually hold (see each reader).
//! [`file_info`] lists every image of a file (`phyvae info`).
//!
//! Pixel sizes are always reported in nanometres (`unit = "nm"`). When a file
//! holds no usable calibration, [`read_image`] looks for a JSON sidecar (see
//! [`read_sidecar_pixel_size`]).

mod bounded;
pub mod dm;
pub mod hdf5;
mod npy;
mod png;
mod raw;
pub mod ser;
mod tiff;
mod util;

pub use npy::{
    read_npy, read_npy_array, read_npy_f64, write_npy_f32, write_npy_f32_3d, write_npy_f64,
    write_npy_i32, write_npy_u8,
};
pub use png::read_png;
pub use raw::read_spiepy_dat;
pub use tiff::read_tiff;
pub use util::{ImageInfo, LUMA_B, LUMA_G, LUMA_R, narrow_pixels};

use crate::{DataError, Image, PixelSize, Result};
use std::fs::File;
use std::io::Read;
use std::path::Path;
use util::{io_error, malformed, nm, unit_in_nm};

/// The image file formats [`read_image`] understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// NumPy `.npy` (magic `\x93NUMPY`).
    Npy,
    /// TIFF or BigTIFF (magic `II*\0`, `MM\0*`, `II+\0`, `MM\0+`).
    Tiff,
    /// PNG (magic `\x89PNG\r\n\x1a\n`).
    Png,
    /// SPIEPy raw `.dat` (no magic; recognised by extension): two little-endian
    /// `u32` (rows, cols), then `rows * cols` little-endian `f64`, row-major.
    SpiepyDat,
    /// FEI/Thermo Fisher TIA series `.ser` (magic `II` `0x0197`), see [`ser`].
    Ser,
    /// Gatan DigitalMicrograph `.dm3` (big-endian `u32` version 3 first), see [`dm`].
    Dm3,
    /// Gatan DigitalMicrograph `.dm4` (big-endian `u32` version 4 first), see [`dm`].
    Dm4,
    /// HDF5 (signature `\x89HDF\r\n\x1a\n` at offset 0, 512, 1024, ...):
    /// Velox EMD, Berkeley EMD or hyperspy `.hspy`, see [`hdf5`].
    Hdf5,
}

impl Format {
    /// Short name used in messages, e.g. `"NPY"`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Format::Npy => "NPY",
            Format::Tiff => "TIFF",
            Format::Png => "PNG",
            Format::SpiepyDat => "SPIEPy raw",
            Format::Ser => "TIA SER",
            Format::Dm3 => "DM3",
            Format::Dm4 => "DM4",
            Format::Hdf5 => "HDF5",
        }
    }
}

/// Leading bytes an "unknown format" error shows (detection reads more: an
/// HDF5 signature may sit after a user block).
const SHOWN_BYTES: usize = 8;

const NPY_MAGIC: &[u8] = b"\x93NUMPY";
const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";
const TIFF_MAGICS: [&[u8]; 4] = [b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"];

/// Identifies a format from the first bytes of a file, if they hold a known magic.
fn format_from_magic(head: &[u8]) -> Option<Format> {
    if head.starts_with(NPY_MAGIC) {
        Some(Format::Npy)
    } else if head.starts_with(PNG_MAGIC) {
        Some(Format::Png)
    } else if TIFF_MAGICS.iter().any(|m| head.starts_with(m)) {
        Some(Format::Tiff)
    } else if head.starts_with(&ser::SER_MAGIC) {
        Some(Format::Ser)
    } else if hdf5::is_hdf5(head) {
        Some(Format::Hdf5)
    } else if dm::is_dm_header(head) {
        match head.get(3) {
            Some(3) => Some(Format::Dm3),
            _ => Some(Format::Dm4),
        }
    } else {
        None
    }
}

/// Lower-case extension of `path`, or `""`.
fn extension(path: &Path) -> String {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Detects the format of the file at `path`: by magic bytes first, then by
/// extension for formats without magic (`.dat` -> [`Format::SpiepyDat`]).
///
/// # Errors
/// [`DataError::Io`] if the file cannot be opened or read;
/// [`DataError::UnknownFormat`] naming the first bytes and the extension seen
/// when neither identifies a format (a `.npy`/`.tif`/`.png` file without the
/// matching magic is reported here too, since its content is not that format).
pub fn detect_format(path: &Path) -> Result<Format> {
    let mut file = File::open(path).map_err(|e| io_error(path, e))?;
    let mut head = [0_u8; hdf5::HDF5_HEAD_LEN];
    let mut got = 0;
    while got < head.len() {
        match file.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error(path, e)),
        }
    }
    let head = &head[..got];
    if let Some(f) = format_from_magic(head) {
        return Ok(f);
    }
    let ext = extension(path);
    if ext == "dat" {
        return Ok(Format::SpiepyDat);
    }
    let seen = if head.is_empty() {
        "the file is empty".to_owned()
    } else {
        let hex: Vec<String> = head
            .iter()
            .take(SHOWN_BYTES)
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("first bytes {}", hex.join(" "))
    };
    let hint = match ext.as_str() {
        "npy" => " (extension .npy, but no NPY magic \\x93NUMPY)",
        "tif" | "tiff" => " (extension .tif, but no TIFF magic II*\\0 or MM\\0*)",
        "png" => " (extension .png, but no PNG signature)",
        "ser" => " (extension .ser, but no TIA SER magic II 97 01)",
        "dm3" | "dm4" => {
            " (extension .dm3/.dm4, but no DigitalMicrograph header: version 3 or 4, byte-order flag 0 or 1)"
        }
        "emd" | "hspy" | "hdf5" | "h5" => " (an HDF5 extension, but no HDF5 signature)",
        "emi" => " (a TIA .emi file holds only metadata: open the matching <name>_1.ser)",
        "" => " and no extension",
        _ => "",
    };
    let ext_note = if ext.is_empty() || hint.contains("extension") {
        String::new()
    } else {
        format!(", extension .{ext}")
    };
    Err(DataError::UnknownFormat {
        path: path.to_path_buf(),
        reason: format!("{seen}{ext_note}{hint}"),
    })
}

/// Reads a 2-D image from `path`, whatever its format ([`detect_format`]).
///
/// `frame` selects a page of a multi-page TIFF or a frame of a 3-D
/// `(frames, rows, cols)` NPY stack (default 0); single-image formats accept
/// only `None` or `Some(0)`. Pixel values are the raw stored values as `f32`
/// (see the format readers [`read_npy`], [`read_tiff`], [`read_png`],
/// [`read_spiepy_dat`] for conversions). When the file itself records no pixel
/// size, a JSON sidecar with the same stem is consulted
/// ([`read_sidecar_pixel_size`]).
///
/// # Errors
/// [`DataError::Io`] (missing/unreadable file), [`DataError::UnknownFormat`],
/// [`DataError::Malformed`], [`DataError::Unsupported`],
/// [`DataError::NotAnImage`], [`DataError::NoSuchFrame`]; each names `path`.
///
/// # Example
/// ```
/// use ndarray::array;
/// use phyvae_data::io::{read_image, write_npy_f32};
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("img.npy");
/// write_npy_f32(&path, array![[1.0_f32, 2.0], [3.0, 4.5]].view()).unwrap();
/// let img = read_image(&path, None).unwrap();
/// assert_eq!(img.pixels, array![[1.0_f32, 2.0], [3.0, 4.5]]);
/// assert_eq!(img.source.as_deref(), Some(path.as_path()));
/// ```
pub fn read_image(path: &Path, frame: Option<usize>) -> Result<Image> {
    read_image_in(path, frame, None)
}

/// [`read_image`], with `dataset` naming the entry of an HDF5 file (EMD or
/// hyperspy) to read: its group or dataset path as `phyvae info` lists it
/// (`frame` then counts within that entry). Other formats accept only
/// `dataset = None`.
///
/// # Errors
/// As [`read_image`]; [`DataError::InvalidParameter`] for a `dataset` given
/// with a format that has none; [`DataError::Unsupported`] (listing the
/// entries) for an HDF5 entry that does not exist.
pub fn read_image_in(path: &Path, frame: Option<usize>, dataset: Option<&str>) -> Result<Image> {
    let format = detect_format(path)?;
    if let (Some(d), false) = (dataset, format == Format::Hdf5) {
        return Err(DataError::InvalidParameter {
            name: "dataset",
            value: d.to_owned(),
            rule: "only HDF5 files (Velox or Berkeley EMD, hyperspy) have datasets; use --frame",
        });
    }
    let mut img = match format {
        Format::Npy => read_npy(path, frame)?,
        Format::Tiff => read_tiff(path, frame)?,
        Format::Png => read_png(path, frame)?,
        Format::SpiepyDat => read_spiepy_dat(path, frame)?,
        Format::Ser => ser::read_ser(path, frame)?,
        Format::Dm3 | Format::Dm4 => dm::read_dm(path, frame)?,
        Format::Hdf5 => hdf5::read_hdf5_image(path, frame, dataset)?,
    };
    if img.pixel_size.is_none() {
        img.pixel_size = read_sidecar_pixel_size(path, img.rows(), img.cols())?;
    }
    Ok(img)
}

/// Pixel size (nm) from a JSON sidecar `<stem>.json` next to `image_path`, for
/// an image of `rows x cols` px.
///
/// Recognised keys, tried in this order:
/// 1. top-level `"pixel_size_nm"`: a positive number (same size along x and y);
/// 2. a `"spatial_info"` object, either top-level or inside
///    `"experimental_details"` (the SciLink metadata layout), with
///    `"field_of_view_x"` (positive number), optional `"field_of_view_y"`
///    (defaults to x) and `"field_of_view_units"` (default `"nm"`): the pixel
///    size is `field_of_view_x / cols` along x and `field_of_view_y / rows`
///    along y, converted to nm. Units understood: `nm`, `pm`, `A`/`Å`/`angstrom`,
///    `um`/`µm`/`micron`, `mm`, `cm`, `m` (and spelled-out forms such as
///    `nanometer(s)`); any other unit gives `None`.
///
/// Returns `Ok(None)` when no sidecar exists or it holds none of these keys.
///
/// # Errors
/// [`DataError::Io`] if the sidecar exists but cannot be read;
/// [`DataError::Malformed`] (format `"JSON sidecar"`, naming the sidecar path)
/// if it is not valid JSON or a recognised key holds a non-positive,
/// non-finite or non-numeric value.
pub fn read_sidecar_pixel_size(
    image_path: &Path,
    rows: usize,
    cols: usize,
) -> Result<Option<PixelSize>> {
    let sidecar = image_path.with_extension("json");
    if sidecar == image_path || !sidecar.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&sidecar).map_err(|e| io_error(&sidecar, e))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| malformed(&sidecar, "JSON sidecar", e))?;
    let bad = |key: &str| {
        malformed(
            &sidecar,
            "JSON sidecar",
            format!("`{key}` must be a positive finite number"),
        )
    };
    let positive = |v: &serde_json::Value, key: &str| -> Result<f64> {
        v.as_f64()
            .filter(|x| x.is_finite() && *x > 0.0)
            .ok_or_else(|| bad(key))
    };
    if let Some(v) = json.get("pixel_size_nm") {
        let s = positive(v, "pixel_size_nm")?;
        return Ok(Some(nm(s, s)));
    }
    let spatial = json
        .get("spatial_info")
        .or_else(|| json.get("experimental_details")?.get("spatial_info"));
    let Some(spatial) = spatial else {
        return Ok(None);
    };
    let Some(fx) = spatial.get("field_of_view_x") else {
        return Ok(None);
    };
    let fx = positive(fx, "field_of_view_x")?;
    let fy = match spatial.get("field_of_view_y") {
        Some(v) => positive(v, "field_of_view_y")?,
        None => fx,
    };
    let unit = match spatial.get("field_of_view_units") {
        None => "nm",
        Some(u) => u.as_str().ok_or_else(|| {
            malformed(
                &sidecar,
                "JSON sidecar",
                "`field_of_view_units` must be a string",
            )
        })?,
    };
    let Some(scale) = unit_in_nm(unit) else {
        return Ok(None);
    };
    #[allow(clippy::cast_precision_loss)]
    let (c, r) = (cols as f64, rows as f64);
    Ok(Some(nm(fx * scale / c, fy * scale / r)))
}

// ------------------------------------------------------------ what a file holds
//
// What a file holds: its format and the list of images in it, with shape,
// element type and pixel size, and which one commands use by default
// (`phyvae info FILE` prints this as JSON).

/// The format of a file and the images it holds.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FileInfo {
    /// Format name, e.g. `"TIFF"`, `"DM4"`, `"Velox EMD"`.
    pub format: String,
    /// Every entry of the file, usable or not.
    pub images: Vec<ImageInfo>,
    /// Index in `images` of the entry commands read without `--frame` /
    /// `--dataset` (the first usable one); `None` when none is usable.
    pub default: Option<usize>,
}

impl FileInfo {
    fn new(format: &str, images: Vec<ImageInfo>) -> Self {
        let default = images.iter().position(|i| i.unusable.is_none());
        Self {
            format: format.to_owned(),
            images,
            default,
        }
    }
}

/// One usable entry from an image that was read in full.
fn entry(index: usize, shape: Vec<usize>, dtype: &str, img: &Image) -> ImageInfo {
    ImageInfo {
        index,
        name: None,
        shape,
        dtype: dtype.to_owned(),
        pixel_size: img.pixel_size.clone(),
        unusable: None,
    }
}

/// Lists the images of the file at `path` ([`detect_format`] decides how).
///
/// NPY: one entry (a 2-D image or a 3-D stack of frames), TIFF: one entry per
/// page, PNG and SPIEPy raw: one entry.
///
/// # Errors
/// As [`read_image`] for a file that cannot be read.
///
/// # Example
/// ```
/// use phyvae_data::io::{file_info, write_npy_f32};
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("a.npy");
/// write_npy_f32(&path, ndarray::Array2::<f32>::zeros((3, 4)).view()).unwrap();
/// let info = file_info(&path).unwrap();
/// assert_eq!(info.format, "NPY");
/// assert_eq!(info.images[0].shape, vec![3, 4]);
/// assert_eq!(info.images[0].dtype, "float32");
/// assert_eq!(info.default, Some(0));
/// ```
pub fn file_info(path: &Path) -> Result<FileInfo> {
    let format = detect_format(path)?;
    let images = match format {
        Format::Npy => {
            let (shape, dtype) = npy::shape_and_dtype(path)?;
            let img = read_image(path, None)?;
            vec![entry(0, shape, &dtype, &img)]
        }
        Format::Tiff => {
            let mut out = Vec::new();
            for (page, dtype) in tiff::page_types(path)?.into_iter().enumerate() {
                match read_image(path, Some(page)) {
                    Ok(img) => {
                        let shape = vec![img.rows(), img.cols()];
                        out.push(entry(page, shape, &dtype, &img));
                    }
                    Err(e @ (DataError::Unsupported { .. } | DataError::NotAnImage { .. })) => {
                        out.push(ImageInfo {
                            index: page,
                            name: None,
                            shape: Vec::new(),
                            dtype,
                            pixel_size: None,
                            unusable: Some(e.to_string()),
                        });
                    }
                    Err(e) => return Err(e),
                }
            }
            out
        }
        Format::Png => {
            let img = read_image(path, None)?;
            let shape = vec![img.rows(), img.cols()];
            vec![entry(0, shape, &png::stored_dtype(path)?, &img)]
        }
        Format::Ser => ser::list_ser(path)?,
        Format::Dm3 | Format::Dm4 => dm::list_dm(path)?,
        Format::Hdf5 => {
            let (kind, images) = hdf5::list_hdf5(path)?;
            return Ok(FileInfo::new(kind.name(), images));
        }
        Format::SpiepyDat => {
            let img = read_image(path, None)?;
            let shape = vec![img.rows(), img.cols()];
            vec![entry(0, shape, "float64", &img)]
        }
    };
    Ok(FileInfo::new(format.name(), images))
}

#[cfg(test)]
mod tests {

    #[test]
    fn unknown_format_error_shows_only_the_first_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("noise.bin");
        std::fs::write(&path, vec![0xAB_u8; 5000]).unwrap();
        let msg = detect_format(&path).unwrap_err().to_string();
        assert!(msg.contains("first bytes ab ab ab ab ab ab ab ab"), "{msg}");
        let shown = msg.split("first bytes ").nth(1).unwrap();
        let bytes = shown.split([' ', ',']).filter(|t| *t == "ab").count();
        assert_eq!(bytes, SHOWN_BYTES, "{msg}");
    }

    use super::*;

    #[test]
    fn magic_bytes_identify_formats() {
        assert_eq!(format_from_magic(b"\x93NUMPY\x01\x00"), Some(Format::Npy));
        assert_eq!(format_from_magic(b"II*\0\x08\0\0\0"), Some(Format::Tiff));
        assert_eq!(format_from_magic(b"MM\0*\0\0\0\x08"), Some(Format::Tiff));
        assert_eq!(format_from_magic(b"II+\0\x08\0\0\0"), Some(Format::Tiff));
        assert_eq!(format_from_magic(b"\x89PNG\r\n\x1a\n"), Some(Format::Png));
        assert_eq!(format_from_magic(b"\x89PNG"), None);
        assert_eq!(format_from_magic(b""), None);
    }

    #[test]
    fn sidecar_keys() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("a.tif");
        // No sidecar.
        assert_eq!(read_sidecar_pixel_size(&img, 10, 20).unwrap(), None);
        // SciLink layout: 15 nm over 20 columns = 0.75 nm/px; y defaults to x: 15 / 10 = 1.5.
        std::fs::write(
            dir.path().join("a.json"),
            r#"{"experimental_details": {"spatial_info": {"field_of_view_x": 15, "field_of_view_units": "nm"}}}"#,
        )
        .unwrap();
        assert_eq!(
            read_sidecar_pixel_size(&img, 10, 20).unwrap(),
            Some(nm(0.75, 1.5))
        );
        // Top-level spatial_info in Å: 20 Å = 2 nm over 4 px = 0.5 nm/px.
        std::fs::write(
            dir.path().join("a.json"),
            r#"{"spatial_info": {"field_of_view_x": 20, "field_of_view_y": 40, "field_of_view_units": "A"}}"#,
        )
        .unwrap();
        assert_eq!(
            read_sidecar_pixel_size(&img, 8, 4).unwrap(),
            Some(nm(0.5, 0.5))
        );
        std::fs::write(dir.path().join("a.json"), r#"{"pixel_size_nm": 0.25}"#).unwrap();
        assert_eq!(
            read_sidecar_pixel_size(&img, 8, 4).unwrap(),
            Some(nm(0.25, 0.25))
        );
        std::fs::write(dir.path().join("a.json"), r#"{"other": 1}"#).unwrap();
        assert_eq!(read_sidecar_pixel_size(&img, 8, 4).unwrap(), None);
        std::fs::write(
            dir.path().join("a.json"),
            r#"{"spatial_info": {"field_of_view_x": 3, "field_of_view_units": "pixels"}}"#,
        )
        .unwrap();
        assert_eq!(read_sidecar_pixel_size(&img, 8, 4).unwrap(), None);
        std::fs::write(dir.path().join("a.json"), r#"{"pixel_size_nm": -1}"#).unwrap();
        assert!(matches!(
            read_sidecar_pixel_size(&img, 8, 4),
            Err(DataError::Malformed {
                format: "JSON sidecar",
                ..
            })
        ));
        std::fs::write(dir.path().join("a.json"), "{not json").unwrap();
        assert!(matches!(
            read_sidecar_pixel_size(&img, 8, 4),
            Err(DataError::Malformed {
                format: "JSON sidecar",
                ..
            })
        ));
    }
}
