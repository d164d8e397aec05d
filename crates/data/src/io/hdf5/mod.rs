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

#[cfg(feature = "hdf5")]
use common::{Entry, FORMAT, Source, Why};
// Named by the documentation links; used by the build without `hdf5`.
#[allow(unused_imports)]
use crate::DataError;
use crate::io::util::{ImageInfo, unsupported};
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
            let file = Source::open(path)?;
            let (kind, entries) = entries(&file)?;
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
        common::guarded(path, || read(path, frame, dataset))
    }
    #[cfg(not(feature = "hdf5"))]
    {
        let _ = (frame, dataset);
        Err(no_hdf5_support(path))
    }
}

// ------------------------------------------------------------------ dispatch

/// The layout of the file and its entries, numbered in list order.
#[cfg(feature = "hdf5")]
fn entries(src: &Source) -> Result<(Hdf5Kind, Vec<Entry>)> {
    let root = src.file.root_group().map_err(|e| src.err(FORMAT, e))?;
    let (groups, _) = src.children(FORMAT, &root)?;
    let (kind, mut list) = if groups.iter().any(|g| g == hspy::EXPERIMENTS) {
        (Hdf5Kind::Hyperspy, hspy::list(src, &root)?)
    } else if let Some(data) = velox::data_group(src, &root, &groups)? {
        (Hdf5Kind::VeloxEmd, velox::list(src, &data)?)
    } else {
        let list = berkeley::list(src, &root)?;
        if list.is_empty() {
            return Err(unsupported(
                src.path,
                FORMAT,
                "an HDF5 file with none of the layouts read here: hyperspy \
                 (/Experiments/<title>/data), Velox EMD (/Data/Image/<id>/Data) or \
                 Berkeley EMD (a group with the attribute emd_group_type = 1)",
            ));
        }
        (Hdf5Kind::BerkeleyEmd, list)
    };
    for (i, e) in list.iter_mut().enumerate() {
        e.info.index = i;
    }
    Ok((kind, list))
}

/// [`read_hdf5_image`].
#[cfg(feature = "hdf5")]
fn read(path: &Path, frame: Option<usize>, dataset: Option<&str>) -> Result<Image> {
    let src = Source::open(path)?;
    let (kind, entries) = entries(&src)?;
    let format = kind.name();
    let (entry, k) = match dataset {
        Some(wanted) => {
            let Some(e) = entries.iter().find(|e| e.is_named(wanted)) else {
                let names: Vec<&str> = entries
                    .iter()
                    .filter_map(|e| e.info.name.as_deref())
                    .collect();
                return Err(unsupported(
                    path,
                    format,
                    format!(
                        "no entry `{wanted}` in this file; its entries are: {}",
                        if names.is_empty() {
                            "none".to_owned()
                        } else {
                            names.join(", ")
                        }
                    ),
                ));
            };
            (e, frame.unwrap_or(0))
        }
        None => nth_frame(path, format, &entries, frame.unwrap_or(0))?,
    };
    let plan = match &entry.plan {
        Ok(plan) => plan,
        Err(why) => return Err(unusable_error(path, format, entry, *why)),
    };
    let (frames, _, _) = plan.dims();
    if k >= frames {
        return Err(DataError::NoSuchFrame {
            path: path.to_path_buf(),
            frame: k,
            frames,
        });
    }
    Ok(Image {
        pixels: common::read_frame(&src, format, plan, k)?,
        pixel_size: entry.info.pixel_size.clone(),
        source: Some(path.to_path_buf()),
    })
}

/// The entry holding the `k`-th 2-D image of all usable entries, and the
/// frame inside it.
#[cfg(feature = "hdf5")]
fn nth_frame<'e>(
    path: &Path,
    format: &'static str,
    entries: &'e [Entry],
    k: usize,
) -> Result<(&'e Entry, usize)> {
    let mut seen = 0_usize;
    for e in entries {
        if let Ok(plan) = &e.plan {
            let (n, _, _) = plan.dims();
            if k < seen.saturating_add(n) {
                return Ok((e, k - seen));
            }
            seen = seen.saturating_add(n);
        }
    }
    if seen > 0 {
        return Err(DataError::NoSuchFrame {
            path: path.to_path_buf(),
            frame: k,
            frames: seen,
        });
    }
    match entries.first() {
        Some(e) => Err(unusable_error(
            path,
            format,
            e,
            e.plan.as_ref().err().copied().unwrap_or(Why::NotAnImage),
        )),
        None => Err(unsupported(path, format, "the file holds no image")),
    }
}

/// The error for reading an unusable entry.
#[cfg(feature = "hdf5")]
fn unusable_error(path: &Path, format: &'static str, e: &Entry, why: Why) -> DataError {
    let name = e.info.name.as_deref().unwrap_or("?");
    let reason = e.info.unusable.as_deref().unwrap_or("not an image");
    match why {
        Why::NotAnImage => DataError::NotAnImage {
            path: path.to_path_buf(),
            shape: e.info.shape.clone(),
        },
        Why::Complex | Why::Unsupported => {
            unsupported(path, format, format!("{name} ({}): {reason}", e.info.dtype))
        }
    }
}

/// The error of a build without the `hdf5` feature: an I/O error if the file
/// cannot be opened, else [`DataError::Unsupported`] saying so.
#[cfg(not(feature = "hdf5"))]
fn no_hdf5_support(path: &Path) -> DataError {
    if let Err(e) = std::fs::File::open(path) {
        return crate::io::util::io_error(path, e);
    }
    unsupported(
        path,
        "HDF5",
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

/// Small files of each layout, written with the `hdf5-writer` crate (an HDF5
/// encoder independent of the layouts read here), then read back; and
/// corrupt, truncated and random files, which must give errors, not panics.
#[cfg(test)]
#[cfg(feature = "hdf5")]
mod file_tests {
    use super::*;
    use hdf5_writer::{
        AttributeBuilder, ByteOrder, CompoundField, DatasetBuilder, Datatype, EnumMember,
        FILTER_DEFLATE, FilterDescription, Hdf5Builder, WriteOptions,
    };
    use ndarray::array;
    use rand::{RngExt, SeedableRng};
    use std::path::PathBuf;

    fn encode(b: Hdf5Builder) -> Vec<u8> {
        b.into_plan()
            .unwrap()
            .encode(WriteOptions::default())
            .unwrap()
    }

    fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    /// numpy's bool as h5py writes it: an enum over a signed byte.
    fn np_bool(name: &str, v: bool) -> AttributeBuilder {
        let dt = Datatype::Enum {
            base: Box::new(Datatype::FixedPoint {
                size: 1,
                signed: true,
                byte_order: ByteOrder::LittleEndian,
            }),
            members: vec![
                EnumMember {
                    name: "FALSE".into(),
                    value: vec![0],
                },
                EnumMember {
                    name: "TRUE".into(),
                    value: vec![1],
                },
            ],
        };
        AttributeBuilder::new(name, dt, Vec::<u64>::new(), vec![u8::from(v)])
    }

    const VELOX_ID: &str = "0a1b";
    const VELOX_IMAGE: &str = "/Data/Image/0a1b";

    /// A Velox file: a (2, 3, 2) uint16 stack chunked per frame and
    /// deflated, values 0..12 in storage order; JSON metadata in column 0 of
    /// a (n, 2) byte array; a complex FFT image; a spectrum stream.
    fn velox() -> Vec<u8> {
        let values: Vec<u16> = (0..12).collect();
        let data = DatasetBuilder::typed_data(
            format!("Data/Image/{VELOX_ID}/Data"),
            vec![2, 3, 2],
            &values,
        )
        .unwrap()
        .chunked(vec![2, 3, 1])
        .filter(FilterDescription {
            id: FILTER_DEFLATE,
            name: None,
            client_data: vec![4],
        });
        let json = br#"{"BinaryResult": {"PixelSize": {"width": "2e-10", "height": "3e-10"}, "PixelUnitX": "m", "PixelUnitY": "m"}}"#;
        let n = json.len() + 8;
        let mut meta = vec![0_u8; n * 2];
        for (i, &b) in json.iter().enumerate() {
            meta[2 * i] = b;
            meta[2 * i + 1] = b'x'; // column 1: the second frame's document
        }
        let metadata = DatasetBuilder::typed_data(
            format!("Data/Image/{VELOX_ID}/Metadata"),
            vec![n as u64, 2],
            &meta,
        )
        .unwrap();
        let f4 = Datatype::FloatingPoint {
            size: 4,
            byte_order: ByteOrder::LittleEndian,
        };
        let complex = Datatype::Compound {
            size: 8,
            fields: vec![
                CompoundField {
                    name: "realFloat".into(),
                    byte_offset: 0,
                    datatype: f4.clone(),
                },
                CompoundField {
                    name: "imagFloat".into(),
                    byte_offset: 4,
                    datatype: f4,
                },
            ],
        };
        let fft = DatasetBuilder::new("Data/Image/ffff/Data", complex, vec![1, 2, 1])
            .raw_data(vec![0_u8; 16]);
        let stream = DatasetBuilder::typed_data(
            "Data/SpectrumStream/5555/Data",
            vec![4, 1],
            &[1_u16, 2, 3, 4],
        )
        .unwrap();
        encode(
            Hdf5Builder::new()
                .dataset(data)
                .dataset(metadata)
                .dataset(fft)
                .dataset(stream),
        )
    }

    #[test]
    fn velox_frames_are_the_last_stored_axis() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "v.emd", &velox());
        let (kind, list) = list_hdf5(&p).unwrap();
        assert_eq!(kind, Hdf5Kind::VeloxEmd);
        let names: Vec<_> = list.iter().map(|i| i.name.clone().unwrap()).collect();
        assert_eq!(
            names,
            [VELOX_IMAGE, "/Data/Image/ffff", "/Data/SpectrumStream/5555"]
        );
        assert_eq!(list.iter().map(|i| i.index).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(list[0].shape, vec![2, 3, 2]);
        assert_eq!(list[0].dtype, "uint16");
        assert_eq!(list[0].unusable, None);
        let ps = list[0].pixel_size.clone().unwrap();
        assert!((ps.x - 0.2).abs() < 1e-12 && (ps.y - 0.3).abs() < 1e-12);
        assert_eq!(list[1].dtype, "complex64");
        assert!(list[1].unusable.is_some() && list[2].unusable.is_some());
        // Element (r, c, k) holds 6 r + 2 c + k.
        let f0 = read_hdf5_image(&p, None, None).unwrap();
        assert_eq!(f0.pixels, array![[0.0_f32, 2.0, 4.0], [6.0, 8.0, 10.0]]);
        assert_eq!(f0.pixel_size, Some(ps));
        let f1 = read_hdf5_image(&p, Some(1), Some(VELOX_IMAGE)).unwrap();
        assert_eq!(f1.pixels, array![[1.0_f32, 3.0, 5.0], [7.0, 9.0, 11.0]]);
        assert_eq!(
            read_hdf5_image(&p, Some(1), None).unwrap().pixels,
            f1.pixels
        );
        assert!(matches!(
            read_hdf5_image(&p, Some(2), None),
            Err(DataError::NoSuchFrame {
                frame: 2,
                frames: 2,
                ..
            })
        ));
        let err = read_hdf5_image(&p, None, Some("/Data/Image/ffff")).unwrap_err();
        assert!(matches!(err, DataError::Unsupported { .. }), "{err}");
        assert!(err.to_string().contains("complex"), "{err}");
        assert!(matches!(
            read_hdf5_image(&p, None, Some("Data/SpectrumStream/5555")),
            Err(DataError::NotAnImage { .. })
        ));
    }

    /// A Berkeley EMD file written big-endian: a (3, 2) int16 array (the
    /// transpose of a 2 x 3 image) with dim1 in nm and dim2 in Å.
    fn berkeley() -> Vec<u8> {
        let i2_be = Datatype::FixedPoint {
            size: 2,
            signed: true,
            byte_order: ByteOrder::BigEndian,
        };
        let stored: [i16; 6] = [-1, 2, 3, 4, 5, 600];
        let raw: Vec<u8> = stored.iter().flat_map(|v| v.to_be_bytes()).collect();
        berkeley_with(i2_be, raw)
    }

    /// As [`berkeley`], with a (3, 2) array of element type `dtype` whose
    /// big-endian bytes are `raw`.
    fn berkeley_with(dtype: Datatype, raw: Vec<u8>) -> Vec<u8> {
        let be = ByteOrder::BigEndian;
        let data = DatasetBuilder::new("signals/img/data", dtype, vec![3, 2]).raw_data(raw);
        let dim1 = DatasetBuilder::typed_with_order::<f64>("signals/img/dim1", vec![3], be)
            .data(&[1.0_f64, 1.5, 2.0])
            .unwrap()
            .attribute(AttributeBuilder::fixed_string("name", "x"))
            .attribute(AttributeBuilder::fixed_string("units", "[n_m]"));
        let dim2 = DatasetBuilder::typed_with_order::<f32>("signals/img/dim2", vec![2], be)
            .data(&[0.0_f32, 2.0])
            .unwrap()
            .attribute(AttributeBuilder::fixed_string("name", "y"))
            .attribute(AttributeBuilder::fixed_string("units", "[Å]"));
        let i4_be = Datatype::FixedPoint {
            size: 4,
            signed: true,
            byte_order: be,
        };
        let group_type = AttributeBuilder::new(
            "emd_group_type",
            i4_be,
            Vec::<u64>::new(),
            1_i32.to_be_bytes(),
        );
        let b = Hdf5Builder::new()
            .dataset(data)
            .dataset(dim1)
            .dataset(dim2)
            .group_attribute("signals/img", group_type);
        b.into_plan()
            .unwrap()
            .encode(WriteOptions {
                byte_order: be,
                ..WriteOptions::default()
            })
            .unwrap()
    }

    #[test]
    fn berkeley_images_are_transposed() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "b.emd", &berkeley());
        let (kind, list) = list_hdf5(&p).unwrap();
        assert_eq!(kind, Hdf5Kind::BerkeleyEmd);
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].name.as_deref(), Some("/signals/img"));
        assert_eq!(list[0].shape, vec![3, 2]);
        assert_eq!(list[0].dtype, "int16");
        let img = read_hdf5_image(&p, None, None).unwrap();
        // Stored [[-1, 2], [3, 4], [5, 600]]: the image is its transpose.
        assert_eq!(img.pixels, array![[-1.0_f32, 3.0, 5.0], [2.0, 4.0, 600.0]]);
        // x: dim1 step 0.5 nm; y: dim2 step 2 Å = 0.2 nm.
        let ps = img.pixel_size.unwrap();
        assert!(
            (ps.x - 0.5).abs() < 1e-12 && (ps.y - 0.2).abs() < 1e-12,
            "{ps:?}"
        );
        assert_eq!(
            read_hdf5_image(&p, None, Some("/signals/img/data"))
                .unwrap()
                .pixels,
            img.pixels
        );
    }

    #[test]
    fn float64_beyond_the_float32_range_is_refused() {
        let f8_be = Datatype::FloatingPoint {
            size: 8,
            byte_order: ByteOrder::BigEndian,
        };
        let file = |stored: [f64; 6]| {
            let raw: Vec<u8> = stored.iter().flat_map(|v| v.to_be_bytes()).collect();
            berkeley_with(f8_be.clone(), raw)
        };
        let dir = tempfile::tempdir().unwrap();
        // Stored (3, 2), the image its transpose: stored (2, 0) is image (row 0, col 2).
        let p = write(&dir, "big.emd", &file([0.0, 0.0, 0.0, 0.0, 1e300, 0.0]));
        let err = read_hdf5_image(&p, None, None).unwrap_err();
        assert!(
            matches!(err, DataError::BeyondFloat32 { row: 0, col: 2, value, .. } if value == 1e300),
            "{err}"
        );
        assert!(err.to_string().contains("big.emd"), "{err}");
        let max = f64::from(f32::MAX);
        let p = write(&dir, "max.emd", &file([max, 0.5, 0.0, 0.0, -max, 0.0]));
        let img = read_hdf5_image(&p, None, None).unwrap();
        assert_eq!(
            img.pixels,
            array![[f32::MAX, 0.0, f32::MIN], [0.5, 0.0, 0.0]]
        );
    }

    /// A hyperspy file: a (2, 2, 3) float32 stack (one navigation axis), y
    /// scale 0.2 nm, x scale 1 Å; and a spectrum.
    fn hyperspy() -> Vec<u8> {
        let values: Vec<f32> = (0..12_u8).map(|v| f32::from(v) * 0.5).collect();
        let mut b = Hdf5Builder::new()
            .attribute(AttributeBuilder::fixed_string("file_format", "HyperSpy"))
            .dataset(
                DatasetBuilder::typed_data("Experiments/stack/data", vec![2, 2, 3], &values)
                    .unwrap(),
            )
            .dataset(
                DatasetBuilder::typed_data(
                    "Experiments/z_spectrum/data",
                    vec![4],
                    &[1_u8, 2, 3, 4],
                )
                .unwrap(),
            )
            .group_attribute("Experiments/z_spectrum/axis-0", np_bool("navigate", false));
        let axes = [(true, 1.0, "s"), (false, 0.2, "nm"), (false, 1.0, "Å")];
        for (i, (nav, scale, units)) in axes.into_iter().enumerate() {
            let g = format!("Experiments/stack/axis-{i}");
            b = b
                .group_attribute(&g, np_bool("navigate", nav))
                .group_attribute(&g, AttributeBuilder::scalar("scale", scale).unwrap())
                .group_attribute(&g, AttributeBuilder::fixed_string("units", units));
        }
        encode(b)
    }

    #[test]
    fn hyperspy_stacks_have_navigation_first() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "h.hspy", &hyperspy());
        let (kind, list) = list_hdf5(&p).unwrap();
        assert_eq!(kind, Hdf5Kind::Hyperspy);
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].name.as_deref(), Some("/Experiments/stack"));
        assert_eq!(list[0].dtype, "float32");
        let ps = list[0].pixel_size.clone().unwrap();
        assert!(
            (ps.x - 0.1).abs() < 1e-12 && (ps.y - 0.2).abs() < 1e-12,
            "{ps:?}"
        );
        assert!(list[1].unusable.as_deref().unwrap().contains("spectrum"));
        let f1 = read_hdf5_image(&p, Some(1), None).unwrap();
        assert_eq!(f1.pixels, array![[3.0_f32, 3.5, 4.0], [4.5, 5.0, 5.5]]);
        assert!(matches!(
            read_hdf5_image(&p, None, Some("/Experiments/z_spectrum")),
            Err(DataError::NotAnImage { .. })
        ));
        let err = read_hdf5_image(&p, None, Some("nope")).unwrap_err();
        assert!(err.to_string().contains("/Experiments/stack"), "{err}");
    }

    #[test]
    fn a_user_block_before_the_superblock_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = vec![0_u8; HDF5_FIRST_USER_BLOCK];
        bytes.extend_from_slice(&hyperspy());
        assert!(is_hdf5(&bytes[..HDF5_HEAD_LEN.min(bytes.len())]));
        let p = write(&dir, "ub.hspy", &bytes);
        let f1 = read_hdf5_image(&p, Some(1), None).unwrap();
        assert_eq!(f1.pixels, array![[3.0_f32, 3.5, 4.0], [4.5, 5.0, 5.5]]);
    }

    #[test]
    fn other_hdf5_and_other_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let plain = encode(
            Hdf5Builder::new()
                .dataset(DatasetBuilder::typed_data("x/y", vec![2], &[1_u8, 2]).unwrap()),
        );
        let p = write(&dir, "plain.h5", &plain);
        assert!(matches!(list_hdf5(&p), Err(DataError::Unsupported { .. })));
        for (name, bytes) in [
            ("empty.h5", &b""[..]),
            ("png.h5", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            ("magic.h5", &HDF5_MAGIC[..]),
        ] {
            let p = write(&dir, name, bytes);
            let err = list_hdf5(&p).unwrap_err();
            assert!(matches!(err, DataError::Malformed { .. }), "{name}: {err}");
            assert!(err.to_string().contains(name), "{err}");
        }
        assert!(matches!(
            read_hdf5_image(&dir.path().join("missing.h5"), None, None),
            Err(DataError::Io { .. })
        ));
    }

    #[test]
    fn absurd_sizes_are_refused_before_allocation() {
        // A 3 x 5 uint8 image whose dataspace is then patched to claim
        // 2^20 x 2^20 elements (1 TiB) in a file of a few hundred bytes.
        let small =
            DatasetBuilder::typed_data("Experiments/huge/data", vec![3, 5], &[7_u8; 15]).unwrap();
        let mut bytes = encode(Hdf5Builder::new().dataset(small));
        let dims: Vec<u8> = [3_u64, 5].iter().flat_map(|d| d.to_le_bytes()).collect();
        let at = bytes
            .windows(16)
            .position(|w| w == dims.as_slice())
            .unwrap();
        let huge: Vec<u8> = [1_u64 << 20, 1 << 20]
            .iter()
            .flat_map(|d| d.to_le_bytes())
            .collect();
        bytes[at..at + 16].copy_from_slice(&huge);
        refresh_header_checksum(&mut bytes, at);
        assert!(bytes.len() < 4096);
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "huge.hspy", &bytes);
        let (_, list) = list_hdf5(&p).unwrap();
        assert_eq!(list[0].shape, vec![1 << 20, 1 << 20]);
        let err = read_hdf5_image(&p, None, None).unwrap_err();
        assert!(matches!(err, DataError::Malformed { .. }), "{err}");
        assert!(err.to_string().contains("limit"), "{err}");
    }

    /// Recomputes the checksum of the version-2 object header ("OHDR") whose
    /// first chunk holds byte `at` (HDF5 specification IV.A.1.b: the Jenkins
    /// lookup3 hash of the chunk, stored in its last 4 bytes).
    fn refresh_header_checksum(bytes: &mut [u8], at: usize) {
        let start = bytes[..at].windows(4).rposition(|w| w == b"OHDR").unwrap();
        let flags = bytes[start + 5];
        let width = 1_usize << (flags & 0b11);
        let mut prefix = 6;
        if flags & 0x20 != 0 {
            prefix += 16; // times
        }
        if flags & 0x10 != 0 {
            prefix += 4; // attribute phase change
        }
        let mut size = [0_u8; 8];
        size[..width].copy_from_slice(&bytes[start + prefix..start + prefix + width]);
        let end = start + prefix + width + usize::try_from(u64::from_le_bytes(size)).unwrap();
        assert!(at < end);
        let sum = hdf5_writer::jenkins_lookup3(&bytes[start..end]);
        bytes[end..end + 4].copy_from_slice(&sum.to_le_bytes());
    }

    /// Reads everything `path` lists; the results do not matter.
    fn exercise(path: &std::path::Path) {
        if let Ok((_, list)) = list_hdf5(path) {
            for i in &list {
                for k in 0..2 {
                    let _ = read_hdf5_image(path, Some(k), i.name.as_deref());
                }
            }
        }
        let _ = read_hdf5_image(path, None, None);
    }

    /// Every prefix of each small file, and every copy with one byte
    /// inverted: an error or a read, never a panic. (The file is cut and
    /// patched in place: rewriting it whole each time is what would be slow.)
    #[test]
    fn prefixes_and_byte_flips_give_errors_or_reads() {
        use std::io::{Seek, SeekFrom, Write};
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cut.h5");
        for bytes in [velox(), berkeley(), hyperspy()] {
            assert!(bytes.len() < 8192, "{}", bytes.len());
            let mut f = std::fs::File::create(&p).unwrap();
            f.write_all(&bytes).unwrap();
            for len in (0..bytes.len()).rev() {
                f.set_len(len as u64).unwrap();
                exercise(&p);
            }
            f.seek(SeekFrom::Start(0)).unwrap();
            f.write_all(&bytes).unwrap();
            let mut put = |i: usize, b: u8| {
                f.seek(SeekFrom::Start(i as u64)).unwrap();
                f.write_all(&[b]).unwrap();
            };
            for (i, &b) in bytes.iter().enumerate() {
                put(i, b ^ 0xff);
                exercise(&p);
                put(i, b);
            }
            assert_eq!(std::fs::read(&p).unwrap(), bytes);
        }
    }

    /// Writes the small files above into `$PHYVAE_HDF5_SEEDS`, as seeds for
    /// the fuzz target (run with `--ignored`).
    #[test]
    #[ignore = "writes fuzzing seeds"]
    fn write_fuzz_seeds() {
        let out = PathBuf::from(std::env::var("PHYVAE_HDF5_SEEDS").unwrap());
        std::fs::create_dir_all(&out).unwrap();
        for (name, bytes) in [
            ("velox.emd", velox()),
            ("berkeley.emd", berkeley()),
            ("hyperspy.hspy", hyperspy()),
        ] {
            std::fs::write(out.join(name), bytes).unwrap();
        }
    }

    #[test]
    fn random_bytes_after_the_signature_give_errors() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("random.h5");
        for _ in 0..200 {
            let len = rng.random_range(0..2048);
            let mut bytes = HDF5_MAGIC.to_vec();
            bytes.extend((0..len).map(|_| rng.random::<u8>()));
            std::fs::write(&p, &bytes).unwrap();
            assert!(list_hdf5(&p).is_err());
            assert!(read_hdf5_image(&p, None, None).is_err());
        }
    }
}
