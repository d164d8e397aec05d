//! What a file holds: its format and the list of images in it, with shape,
//! element type and pixel size, and which one commands use by default
//! (`phyvae info FILE` prints this as JSON).

use std::path::Path;

use super::util::ImageInfo;
use super::{Format, detect_format, npy, png, read_image, tiff};
use crate::{DataError, Result};

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
fn entry(index: usize, shape: Vec<usize>, dtype: &str, img: &crate::Image) -> ImageInfo {
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
        Format::Ser => super::ser::list_ser(path)?,
        Format::Dm3 | Format::Dm4 => super::dm::list_dm(path)?,
        Format::Hdf5 => {
            let (kind, images) = super::hdf5::list_hdf5(path)?;
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
