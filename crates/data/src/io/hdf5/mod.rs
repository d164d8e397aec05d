//! HDF5-based microscopy formats: Velox EMD (Thermo Fisher), Berkeley EMD
//! (NCEM) and hyperspy `.hspy` / `.hdf5`.
//!
//! The three formats share the HDF5 container (signature
//! [`HDF5_MAGIC`], possibly behind a user block, see [`is_hdf5`]) and differ in
//! the layout of groups inside it; [`list_hdf5`] tells them apart:
//!
//! - **hyperspy** ([`Hdf5Kind::Hyperspy`]): a root group `Experiments` holding
//!   one group per signal, `/Experiments/<title>`, with the array `data` and
//!   one group `axis-<i>` per array axis `i` (attributes `scale`, `offset`,
//!   `units`, `navigate`, `size`). Layout from hyperspy's `hspy` writer and
//!   rosettasciio's `rsciio.hspy` reader.
//! - **Velox EMD** ([`Hdf5Kind::VeloxEmd`]): `/Data/Image/<id>/Data` (images),
//!   `/Data/Spectrum`, `/Data/SpectrumImage`, `/Data/SpectrumStream`
//!   (spectra, listed as not usable). Layout from rosettasciio's
//!   `rsciio.emd` Velox reader (`_emd_velox.py`).
//! - **Berkeley EMD** ([`Hdf5Kind::BerkeleyEmd`]): any group carrying the
//!   attribute `emd_group_type = 1`, holding the array (`data`, or `realslice`,
//!   `diffractionslice`, `datacube` in Prismatic/py4DSTEM files) and one
//!   vector `dim<k>` per axis with attributes `name` and `units`. Layout from
//!   the EMD 0.2 specification (emdatasets) and rosettasciio's `rsciio.emd`
//!   NCEM reader (`_emd_ncem.py`).
//!
//! Each format module documents its axis order and calibration. Every entry
//! of a file is listed as an [`ImageInfo`] whose `name` is the path of its
//! group inside the file (`/Data/Image/<id>`, `/Experiments/<title>`,
//! `/signals/<title>`): that is what [`read_hdf5_image`]'s `dataset` argument
//! takes (the path of the array inside that group is accepted too).
//!
//! Decoding uses the pure-Rust `hdf5-reader` crate (no HDF5 C library), behind
//! the cargo feature `hdf5` (on by default). Built without it, [`list_hdf5`]
//! and [`read_hdf5_image`] give [`DataError::Unsupported`] saying so.
//!
//! Malformed files give [`DataError::Malformed`], never a panic: sizes are
//! checked against the file length before anything is read (the decoded size
//! of one frame is bounded like every other reader's, see
//! `decode_budget`), tree walks are bounded in depth and breadth, and the
//! decoder itself refuses reads past its limits.

#[cfg(feature = "hdf5")]
mod berkeley;
#[cfg(feature = "hdf5")]
mod common;
#[cfg(feature = "hdf5")]
mod hspy;
#[cfg(feature = "hdf5")]
mod velox;

use super::ImageInfo;
// Named by the documentation links; used by the build without `hdf5`.
#[allow(unused_imports)]
use crate::DataError;
use crate::{Image, Result};
use std::path::Path;

/// The 8-byte HDF5 format signature (HDF5 File Format Specification, section
/// II.A "Superblock").
pub const HDF5_MAGIC: &[u8; 8] = b"\x89HDF\r\n\x1a\n";

/// Offset of the first place after 0 where the signature may sit: HDF5 lets a
/// file start with a user block of 512, 1024, 2048, ... bytes (a power of two
/// times 512), and the superblock follows it.
pub const HDF5_FIRST_USER_BLOCK: usize = 512;

/// How many leading bytes of a file [`is_hdf5`] needs to see the signature
/// behind a user block of up to 4096 bytes (the signature at 0, 512, 1024,
/// 2048 or 4096). Reading the first 8 bytes only finds files without a user
/// block, which is every Velox, Berkeley EMD and hyperspy file seen so far.
pub const HDF5_HEAD_LEN: usize = 4096 + HDF5_MAGIC.len();

/// Whether `head` (the first bytes of a file) holds the HDF5 signature at
/// offset 0 or at 512, 1024, 2048, ... (after a user block), as far as `head`
/// reaches. Pass [`HDF5_HEAD_LEN`] bytes to see user blocks up to 4096 bytes.
///
/// Reference: HDF5 File Format Specification 3.0, section II.A: "the
/// superblock may begin at certain predefined offsets within the HDF5 file,
/// ... at location 0, 512, 1024, 2048, and so on".
///
/// # Example
/// ```
/// use phyvae_data::io::hdf5::{HDF5_MAGIC, is_hdf5};
/// assert!(is_hdf5(HDF5_MAGIC));
/// let mut with_user_block = vec![0_u8; 512];
/// with_user_block.extend_from_slice(HDF5_MAGIC);
/// assert!(is_hdf5(&with_user_block));
/// assert!(!is_hdf5(b"\x89PNG\r\n\x1a\n"));
/// ```
#[must_use]
pub fn is_hdf5(head: &[u8]) -> bool {
    signature_offset(head).is_some()
}

/// Offset of the HDF5 signature in `head` (0, 512, 1024, ...), if any.
fn signature_offset(head: &[u8]) -> Option<usize> {
    let mut offset = 0_usize;
    loop {
        let end = offset.checked_add(HDF5_MAGIC.len())?;
        if head.get(offset..end)? == HDF5_MAGIC {
            return Some(offset);
        }
        offset = if offset == 0 {
            HDF5_FIRST_USER_BLOCK
        } else {
            offset.checked_mul(2)?
        };
    }
}

/// The HDF5-based formats [`list_hdf5`] recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hdf5Kind {
    /// Velox EMD (Thermo Fisher Scientific), `/Data/Image/<id>/Data`.
    VeloxEmd,
    /// Berkeley EMD (NCEM), groups with `emd_group_type = 1`.
    BerkeleyEmd,
    /// hyperspy `.hspy` / `.hdf5`, `/Experiments/<title>/data`.
    Hyperspy,
}

impl Hdf5Kind {
    /// Name used in messages: `"Velox EMD"`, `"Berkeley EMD"`, `"hyperspy HDF5"`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Hdf5Kind::VeloxEmd => "Velox EMD",
            Hdf5Kind::BerkeleyEmd => "Berkeley EMD",
            Hdf5Kind::Hyperspy => "hyperspy HDF5",
        }
    }
}

/// Format name used in errors before the layout is known.
const FORMAT: &str = "HDF5";

/// Lists the entries (images, stacks, spectra) of a Velox EMD, Berkeley EMD or
/// hyperspy file, with the kind of file.
///
/// Entries come in the order [`read_hdf5_image`] numbers frames: hyperspy
/// signals by title, Velox images then spectra by group id, Berkeley EMD
/// groups in depth-first order of their paths (names sorted at each level).
/// `ImageInfo::name` is the entry's group path; `shape` and `dtype` are the
/// array's as stored; `pixel_size` is the image calibration in nm when the
/// file records a length unit for both image axes; `unusable` says why an
/// entry cannot be read as 2-D images (a spectrum, complex data, more than
/// one navigation axis, an element type without a grey value).
///
/// # Errors
/// [`DataError::Io`]; [`DataError::Malformed`] (not HDF5, truncated, corrupt
/// structures); [`DataError::Unsupported`] (an HDF5 file of another layout, a
/// feature the decoder lacks, or a build without the `hdf5` feature).
pub fn list_hdf5(path: &Path) -> Result<(Hdf5Kind, Vec<ImageInfo>)> {
    #[cfg(feature = "hdf5")]
    {
        common::guarded(path, || {
            let file = common::Source::open(path)?;
            let (kind, entries) = common::entries(&file)?;
            Ok((kind, entries.into_iter().map(|e| e.info).collect()))
        })
    }
    #[cfg(not(feature = "hdf5"))]
    {
        Err(no_hdf5_support(path))
    }
}

/// Reads one 2-D image from a Velox EMD, Berkeley EMD or hyperspy file.
///
/// `dataset` selects an entry by the path [`list_hdf5`] gives as its `name`
/// (e.g. `"/Data/Image/<id>"`, `"/Experiments/<title>"`), or by the path of
/// its array (`"/Data/Image/<id>/Data"`); the leading `/` is optional.
/// `frame` (default 0) is then the frame inside that entry. Without
/// `dataset`, `frame` counts the 2-D images of all usable entries in list
/// order (a stack of `n` frames counts `n`), so the default is the first
/// frame of the first usable entry.
///
/// Pixel values are the stored values as `f32`: integers exactly where
/// representable, `float64` rounded, `float16` exactly; hyperspy RGB(A)
/// elements (`rgb8`, `rgba16`, ...) become the luminance
/// `Y = 0.2125 R + 0.7154 G + 0.0721 B` of the raw samples (alpha dropped), as
/// the PNG reader does. `pixel_size` is in nm when the file records a length
/// unit for both image axes, else `None`. The array orientation of each
/// format is documented in its module (rows = the image's y axis).
///
/// # Errors
/// As [`list_hdf5`]; [`DataError::NoSuchFrame`]; [`DataError::NotAnImage`]
/// (a spectrum or N-D data); [`DataError::Unsupported`] (complex data, with a
/// hint to export the modulus or phase; an unknown `dataset`, listing the
/// entries; element types without a grey value).
pub fn read_hdf5_image(path: &Path, frame: Option<usize>, dataset: Option<&str>) -> Result<Image> {
    #[cfg(feature = "hdf5")]
    {
        common::guarded(path, || common::read(path, frame, dataset))
    }
    #[cfg(not(feature = "hdf5"))]
    {
        let _ = (frame, dataset);
        Err(no_hdf5_support(path))
    }
}

/// The error of a build without the `hdf5` feature: an I/O error if the file
/// cannot be opened, else [`DataError::Unsupported`] saying so.
#[cfg(not(feature = "hdf5"))]
fn no_hdf5_support(path: &Path) -> DataError {
    if let Err(e) = std::fs::File::open(path) {
        return super::io_error(path, e);
    }
    super::unsupported(
        path,
        FORMAT,
        "this build lacks HDF5 support (phyvae-data was built without its `hdf5` \
         feature); rebuild with default features to read Velox EMD, Berkeley EMD \
         and hyperspy files",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_at_user_block_offsets() {
        assert!(is_hdf5(HDF5_MAGIC));
        assert!(!is_hdf5(&HDF5_MAGIC[..7]));
        assert!(!is_hdf5(b""));
        for offset in [512_usize, 1024, 2048, 4096] {
            let mut head = vec![0_u8; offset];
            head.extend_from_slice(HDF5_MAGIC);
            assert_eq!(signature_offset(&head), Some(offset));
            assert_eq!(head.len(), offset + 8);
        }
        // Not a power of two times 512.
        let mut head = vec![0_u8; 700];
        head.extend_from_slice(HDF5_MAGIC);
        assert!(!is_hdf5(&head));
        assert_eq!(HDF5_HEAD_LEN, 4104);
    }

    #[test]
    fn kind_names() {
        assert_eq!(Hdf5Kind::VeloxEmd.name(), "Velox EMD");
        assert_eq!(Hdf5Kind::BerkeleyEmd.name(), "Berkeley EMD");
        assert_eq!(Hdf5Kind::Hyperspy.name(), "hyperspy HDF5");
    }

    #[cfg(not(feature = "hdf5"))]
    #[test]
    fn without_the_feature_the_formats_are_unsupported() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.emd");
        std::fs::write(&p, HDF5_MAGIC).unwrap();
        let err = read_hdf5_image(&p, None, None).unwrap_err();
        assert!(matches!(err, DataError::Unsupported { .. }), "{err}");
        assert!(err.to_string().contains("lacks HDF5 support"), "{err}");
        assert!(matches!(list_hdf5(&p), Err(DataError::Unsupported { .. })));
        assert!(matches!(
            list_hdf5(&dir.path().join("missing.emd")),
            Err(DataError::Io { .. })
        ));
    }
}
