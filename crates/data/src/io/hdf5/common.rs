//! What the three HDF5 layouts share: opening a file with bounded reads,
//! element types and their conversion to `f32`, attributes, the entry type of
//! the list and the reading of one frame.
//!
//! The layout modules (`berkeley`, `hspy`, `velox`) import from here; the
//! dispatch between them (which layout a file has, which entry a read asks
//! for) lives in the parent module, which imports them and this one.

use crate::io::util::{
    ImageInfo, decode_budget, io_error, luminance, malformed, narrow_pixels, nm, unit_in_nm,
    unsupported,
};
use crate::{DataError, PixelSize, Result};
use hdf5_reader::error::Error as H5Error;
use hdf5_reader::group::Group;
use hdf5_reader::{
    Attribute, ByteOrder, Dataset, Datatype, H5Type, Hdf5File, OpenOptions, SliceInfo,
    SliceInfoElem,
};
use ndarray::{Array2, Ix2};
use std::path::Path;

/// Bytes the decoder may keep in its chunk cache (a few chunks of a large
/// image; a frame is read once).
const CHUNK_CACHE_BYTES: usize = 16 << 20;
/// Most children of one group that are looked at: real files have a handful;
/// a corrupt group claiming millions is refused.
const MAX_CHILDREN: usize = 1 << 16;
/// Largest rank of an HDF5 dataspace (HDF5 specification, dataspace message).
const MAX_RANK: usize = 32;

/// Format name used in errors before the layout is known.
pub(super) const FORMAT: &str = "HDF5";

/// An open HDF5 file and the limits of what one read may decode.
pub(super) struct Source<'a> {
    /// The file, for messages.
    pub(super) path: &'a Path,
    /// The decoder's handle.
    pub(super) file: Hdf5File,
    /// Most bytes one frame may decode to (`decode_budget(file length)`).
    budget: u64,
}

impl<'a> Source<'a> {
    /// Opens `path` with the decoder's reads bounded by `decode_budget` of the
    /// file length (no selection nor chunk larger than that is allocated).
    pub(super) fn open(path: &'a Path) -> Result<Self> {
        let len = std::fs::metadata(path)
            .map_err(|e| io_error(path, e))?
            .len();
        let budget = decode_budget(len);
        let limit = usize::try_from(budget).unwrap_or(usize::MAX);
        let options = OpenOptions::default()
            .with_max_read_bytes(limit)
            .with_max_chunk_bytes(limit)
            .with_chunk_cache_bytes(CHUNK_CACHE_BYTES);
        let file =
            Hdf5File::open_with_options(path, options).map_err(|e| h5_error(path, FORMAT, e))?;
        Ok(Self { path, file, budget })
    }

    /// The decoder's error `e` as a [`DataError`] naming this file.
    pub(super) fn err(&self, format: &'static str, e: H5Error) -> DataError {
        h5_error(self.path, format, e)
    }

    /// A malformed-file error naming this file.
    pub(super) fn malformed(&self, format: &'static str, reason: impl ToString) -> DataError {
        malformed(self.path, format, reason)
    }

    /// Names of the child groups and datasets of `group`, each sorted (the
    /// order h5py and rosettasciio list them in).
    pub(super) fn children(
        &self,
        format: &'static str,
        group: &Group,
    ) -> Result<(Vec<String>, Vec<String>)> {
        let (mut groups, mut datasets) = group.member_names().map_err(|e| self.err(format, e))?;
        if groups.len().saturating_add(datasets.len()) > MAX_CHILDREN {
            return Err(self.malformed(
                format,
                format!(
                    "group {} claims {} members, more than the {MAX_CHILDREN} looked at",
                    group.name(),
                    groups.len().saturating_add(datasets.len())
                ),
            ));
        }
        groups.sort();
        datasets.sort();
        Ok((groups, datasets))
    }

    /// The attributes of `group`.
    pub(super) fn group_attrs(&self, format: &'static str, group: &Group) -> Result<Attrs> {
        group
            .attributes()
            .map(Attrs)
            .map_err(|e| self.err(format, e))
    }

    /// The shape of `ds` as `usize`, refusing ranks above HDF5's 32.
    pub(super) fn shape(&self, format: &'static str, ds: &Dataset) -> Result<Vec<usize>> {
        if ds.shape().len() > MAX_RANK {
            return Err(self.malformed(format, format!("dataset of rank {}", ds.shape().len())));
        }
        ds.shape()
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| self.malformed(format, "dimension overflows")))
            .collect()
    }
}

/// The decoder's error `e` on `path` as a [`DataError`]: I/O errors stay I/O
/// errors, valid HDF5 features the decoder lacks (a compression filter, an
/// encoding, a structure version) are [`DataError::Unsupported`], anything
/// else (truncation, bad signatures, checksums, out-of-range addresses, reads
/// past the size limits) is [`DataError::Malformed`].
pub(super) fn h5_error(path: &Path, format: &'static str, e: H5Error) -> DataError {
    let mut root = &e;
    while let H5Error::Context { source, .. } = root {
        root = source;
    }
    match root {
        H5Error::Io(io) => io_error(path, std::io::Error::new(io.kind(), e.to_string())),
        H5Error::InvalidMagic => malformed(
            path,
            format,
            "no HDF5 signature \\x89HDF\\r\\n\\x1a\\n at offset 0, 512, 1024, 2048, ...",
        ),
        H5Error::UnsupportedFilter(_)
        | H5Error::UnsupportedEncoding(_)
        | H5Error::UnsupportedSuperblockVersion(_)
        | H5Error::UnsupportedObjectHeaderVersion(_)
        | H5Error::UnsupportedBTreeVersion(_)
        | H5Error::UnsupportedDatatypeClass(_)
        | H5Error::UnsupportedLayoutClass(_)
        | H5Error::UnsupportedLayoutVersion(_)
        | H5Error::UnsupportedChunkIndexType(_) => unsupported(path, format, e),
        _ => malformed(path, format, e),
    }
}

/// Runs `f`, turning a panic inside the HDF5 decoder (a bug of the decoder on
/// some corrupt file; none is known) into [`DataError::Malformed`] instead of
/// unwinding into the caller.
pub(super) fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(malformed(
            path,
            FORMAT,
            "the HDF5 decoder failed on this file (internal error)",
        ))
    })
}

// ------------------------------------------------------------------ attributes

/// The attributes of one object.
pub(super) struct Attrs(pub(super) Vec<Attribute>);

impl Attrs {
    /// The attributes of a dataset.
    pub(super) fn of(ds: &Dataset) -> Self {
        Self(ds.attributes())
    }

    fn get(&self, name: &str) -> Option<&Attribute> {
        self.0.iter().find(|a| a.name == name)
    }

    /// A numeric attribute (its first element) as `f64`.
    pub(super) fn number(&self, name: &str) -> Option<f64> {
        let a = self.get(name)?;
        match Scalar::of(&a.datatype) {
            Some(s) => s.decode(&a.raw_data).map(Num::to_f64),
            None => a.read_as_f64().ok(),
        }
    }

    /// A string attribute (fixed or variable length), without trailing NULs.
    pub(super) fn string(&self, name: &str) -> Option<String> {
        self.get(name)?
            .read_string()
            .ok()
            .map(|s| s.trim_end_matches('\0').to_owned())
    }

    /// A boolean attribute: numpy's `bool` (an HDF5 enum over a 1-byte
    /// integer, `FALSE = 0`, `TRUE = 1`), an integer, or the strings
    /// `"True"`/`"False"`.
    pub(super) fn boolean(&self, name: &str) -> Option<bool> {
        let a = self.get(name)?;
        match &a.datatype {
            Datatype::Enum { base, .. } => Scalar::of(base)
                .and_then(|s| s.decode(&a.raw_data))
                .map(|n| n.to_f64() != 0.0),
            Datatype::String { .. } | Datatype::VarLen { .. } => {
                match a.read_string().ok()?.trim_end_matches('\0') {
                    "True" | "true" => Some(true),
                    "False" | "false" => Some(false),
                    _ => None,
                }
            }
            _ => self.number(name).map(|v| v != 0.0),
        }
    }
}

// ------------------------------------------------------------- element types

/// A number as decoded, before conversion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Num {
    Signed(i64),
    Unsigned(u64),
    Single(f32),
    Double(f64),
}

impl Num {
    /// The pixel value handed to [`narrow_pixels`]: integers rounded to their
    /// nearest `f32` (exact up to 2^24) and widened back, which is lossless;
    /// floats as stored, so a `f64` is rounded once, and refused there when
    /// beyond the `f32` range.
    #[allow(clippy::cast_precision_loss)]
    fn to_pixel(self) -> f64 {
        match self {
            Num::Signed(v) => f64::from(v as f32),
            Num::Unsigned(v) => f64::from(v as f32),
            Num::Single(v) => f64::from(v),
            Num::Double(v) => v,
        }
    }

    /// Nearest `f64`.
    #[allow(clippy::cast_precision_loss)]
    pub(super) fn to_f64(self) -> f64 {
        match self {
            Num::Signed(v) => v as f64,
            Num::Unsigned(v) => v as f64,
            Num::Single(v) => f64::from(v),
            Num::Double(v) => v,
        }
    }
}

/// A numeric element type: an integer of 1, 2, 4 or 8 bytes or an IEEE float
/// of 2, 4 or 8 bytes, either byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scalar {
    Int { size: u8, signed: bool, big: bool },
    Float { size: u8, big: bool },
}

impl Scalar {
    /// The numeric type `dt` describes, if it is one the readers convert.
    pub(super) fn of(dt: &Datatype) -> Option<Self> {
        match *dt {
            Datatype::FixedPoint {
                size: size @ (1 | 2 | 4 | 8),
                signed,
                byte_order,
            } => Some(Scalar::Int {
                size,
                signed,
                big: byte_order == ByteOrder::BigEndian,
            }),
            Datatype::FloatingPoint {
                size: size @ (2 | 4 | 8),
                byte_order,
            } => Some(Scalar::Float {
                size,
                big: byte_order == ByteOrder::BigEndian,
            }),
            _ => None,
        }
    }

    /// Size in bytes.
    fn size(self) -> usize {
        match self {
            Scalar::Int { size, .. } | Scalar::Float { size, .. } => usize::from(size),
        }
    }

    /// numpy's name of the type (`uint16`, `float32`, ...).
    fn name(self) -> &'static str {
        match self {
            Scalar::Int { size, signed, .. } => match (signed, size) {
                (false, 1) => "uint8",
                (false, 2) => "uint16",
                (false, 4) => "uint32",
                (false, _) => "uint64",
                (true, 1) => "int8",
                (true, 2) => "int16",
                (true, 4) => "int32",
                (true, _) => "int64",
            },
            Scalar::Float { size: 2, .. } => "float16",
            Scalar::Float { size: 4, .. } => "float32",
            Scalar::Float { .. } => "float64",
        }
    }

    /// Decodes the first `size` bytes of `b`; `None` if `b` is shorter.
    pub(super) fn decode(self, b: &[u8]) -> Option<Num> {
        match self {
            Scalar::Int {
                size: 1, signed, ..
            } => {
                let v = *b.first()?;
                Some(if signed {
                    Num::Signed(i64::from(i8::from_ne_bytes([v])))
                } else {
                    Num::Unsigned(u64::from(v))
                })
            }
            Scalar::Int {
                size: 2,
                signed,
                big,
            } => {
                let a = bytes::<2>(b, big)?;
                Some(if signed {
                    Num::Signed(i64::from(i16::from_le_bytes(a)))
                } else {
                    Num::Unsigned(u64::from(u16::from_le_bytes(a)))
                })
            }
            Scalar::Int {
                size: 4,
                signed,
                big,
            } => {
                let a = bytes::<4>(b, big)?;
                Some(if signed {
                    Num::Signed(i64::from(i32::from_le_bytes(a)))
                } else {
                    Num::Unsigned(u64::from(u32::from_le_bytes(a)))
                })
            }
            Scalar::Int { signed, big, .. } => {
                let a = bytes::<8>(b, big)?;
                Some(if signed {
                    Num::Signed(i64::from_le_bytes(a))
                } else {
                    Num::Unsigned(u64::from_le_bytes(a))
                })
            }
            Scalar::Float { size: 2, big } => Some(Num::Single(f16_to_f32(u16::from_le_bytes(
                bytes::<2>(b, big)?,
            )))),
            Scalar::Float { size: 4, big } => {
                Some(Num::Single(f32::from_le_bytes(bytes::<4>(b, big)?)))
            }
            Scalar::Float { big, .. } => Some(Num::Double(f64::from_le_bytes(bytes::<8>(b, big)?))),
        }
    }
}

/// The first `N` bytes of `b` in little-endian order.
fn bytes<const N: usize>(b: &[u8], big: bool) -> Option<[u8; N]> {
    let mut a: [u8; N] = b.get(..N)?.try_into().ok()?;
    if big {
        a.reverse();
    }
    Some(a)
}

/// IEEE 754 half precision to single precision, exactly.
pub(super) fn f16_to_f32(h: u16) -> f32 {
    /// Bits of the half-precision exponent and mantissa.
    const EXP_MASK: u16 = 0x1f;
    const MAN_BITS: u32 = 10;
    /// Exponent bias difference between binary32 (127) and binary16 (15).
    const BIAS_SHIFT: u32 = 127 - 15;
    let sign = u32::from(h >> 15) << 31;
    let exp = (h >> MAN_BITS) & EXP_MASK;
    let man = u32::from(h & 0x3ff);
    let bits = match exp {
        0 if man == 0 => sign,
        0 => {
            // Subnormal: man * 2^-24, exact in f32.
            let v = f32::from_bits(0x3380_0000) * f32::from(u16::try_from(man).unwrap_or(0));
            return if sign == 0 { v } else { -v };
        }
        EXP_MASK => sign | 0x7f80_0000 | (man << (23 - MAN_BITS)),
        e => sign | ((u32::from(e) + BIAS_SHIFT) << 23) | (man << (23 - MAN_BITS)),
    };
    f32::from_bits(bits)
}

/// How one stored element becomes one grey value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Elem {
    /// A number.
    Scalar(Scalar),
    /// hyperspy's RGB(A) compound of unsigned 8- or 16-bit fields `R`, `G`,
    /// `B` (`A` dropped): the luminance of the raw samples.
    Rgb {
        /// Element size in bytes.
        size: usize,
        /// Byte offsets of R, G and B.
        offsets: [usize; 3],
        /// Type of each channel.
        channel: Scalar,
    },
}

/// Why an entry cannot be read as 2-D images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Why {
    /// Complex values (Velox FFT and DPC images, h5py complex numbers).
    Complex,
    /// Not a 2-D image or stack (a spectrum, N-D data).
    NotAnImage,
    /// An element type without a grey value (strings, enums, ...).
    Unsupported,
}

/// Message for complex data.
const COMPLEX_HINT: &str = "complex images are not supported; export the modulus or the \
                            phase as a real image (e.g. with hyperspy: `s.amplitude` or \
                            `s.phase`, then `s.save(...)`)";

impl Elem {
    /// The conversion for element type `dt`, or why there is none.
    pub(super) fn of(dt: &Datatype) -> std::result::Result<Self, Why> {
        if let Some(s) = Scalar::of(dt) {
            return Ok(Elem::Scalar(s));
        }
        let Datatype::Compound { size, fields } = dt else {
            return Err(Why::Unsupported);
        };
        let size = usize::try_from(*size).map_err(|_| Why::Unsupported)?;
        if fields.len() == 2
            && fields
                .iter()
                .all(|f| matches!(f.datatype, Datatype::FloatingPoint { .. }))
        {
            return Err(Why::Complex);
        }
        let field = |name: &str| fields.iter().find(|f| f.name == name);
        let (Some(r), Some(g), Some(b)) = (field("R"), field("G"), field("B")) else {
            return Err(Why::Unsupported);
        };
        let channel = Scalar::of(&r.datatype).ok_or(Why::Unsupported)?;
        if !matches!(
            channel,
            Scalar::Int {
                size: 1 | 2,
                signed: false,
                ..
            }
        ) || Scalar::of(&g.datatype) != Some(channel)
            || Scalar::of(&b.datatype) != Some(channel)
        {
            return Err(Why::Unsupported);
        }
        let mut offsets = [0_usize; 3];
        for (o, f) in offsets.iter_mut().zip([r, g, b]) {
            *o = usize::try_from(f.byte_offset).map_err(|_| Why::Unsupported)?;
            if o.checked_add(channel.size()).is_none_or(|end| end > size) {
                return Err(Why::Unsupported);
            }
        }
        Ok(Elem::Rgb {
            size,
            offsets,
            channel,
        })
    }

    /// Size of one element in bytes.
    pub(super) fn size(self) -> usize {
        match self {
            Elem::Scalar(s) => s.size(),
            Elem::Rgb { size, .. } => size,
        }
    }

    /// The grey value of the element in `b` (`None` if `b` is too short), as
    /// [`Num::to_pixel`] gives it.
    fn grey(self, b: &[u8]) -> Option<f64> {
        match self {
            Elem::Scalar(s) => s.decode(b).map(Num::to_pixel),
            Elem::Rgb {
                offsets, channel, ..
            } => {
                let c = |i: usize| -> Option<f64> {
                    Some(channel.decode(b.get(*offsets.get(i)?..)?)?.to_f64())
                };
                Some(f64::from(luminance(c(0)?, c(1)?, c(2)?)))
            }
        }
    }
}

/// numpy's name of the element type `dt` (`uint16`, `float32`, `rgba16`,
/// `complex64`, `bool`, ...), or an HDF5 class name for the others.
pub(super) fn dtype_name(dt: &Datatype) -> String {
    if let Some(s) = Scalar::of(dt) {
        return s.name().to_owned();
    }
    match dt {
        Datatype::Compound { fields, .. } => {
            match Elem::of(dt) {
                Ok(Elem::Rgb { channel, .. }) => {
                    let a = if fields.iter().any(|f| f.name == "A") {
                        "a"
                    } else {
                        ""
                    };
                    let bits = channel.size() * 8;
                    return format!("rgb{a}{bits}");
                }
                Err(Why::Complex) => {
                    let bits: usize = fields
                        .iter()
                        .map(|f| match f.datatype {
                            Datatype::FloatingPoint { size, .. } => usize::from(size) * 8,
                            _ => 0,
                        })
                        .sum();
                    return format!("complex{bits}");
                }
                _ => {}
            }
            let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
            format!("compound({})", names.join(", "))
        }
        Datatype::Enum { members, .. } => {
            let mut names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
            names.sort_unstable();
            if names == ["FALSE", "TRUE"] {
                "bool".to_owned()
            } else {
                "enum".to_owned()
            }
        }
        Datatype::FixedPoint { size, signed, .. } => {
            format!(
                "{}int{}",
                if *signed { "" } else { "u" },
                usize::from(*size) * 8
            )
        }
        Datatype::FloatingPoint { size, .. } => format!("float{}", usize::from(*size) * 8),
        Datatype::String { .. } => "string".to_owned(),
        Datatype::VarLen { .. } => "vlen".to_owned(),
        Datatype::Array { .. } => "array".to_owned(),
        Datatype::Opaque { .. } => "opaque".to_owned(),
        Datatype::Reference { .. } => "reference".to_owned(),
        Datatype::Bitfield { .. } => "bitfield".to_owned(),
    }
}

/// One pixel as the decoder hands it over: [`Elem`] applied to each stored
/// element (the decoder does the layout, chunking and decompression), still
/// in `f64` so that a float64 value beyond the `f32` range can be refused.
#[derive(Debug, Clone, Copy)]
struct Px(f64);

impl H5Type for Px {
    fn hdf5_type() -> Datatype {
        Datatype::FloatingPoint {
            size: 8,
            byte_order: ByteOrder::LittleEndian,
        }
    }

    fn from_bytes(bytes: &[u8], dtype: &Datatype) -> hdf5_reader::error::Result<Self> {
        let elem = Elem::of(dtype).map_err(|_| mismatch(dtype))?;
        elem.grey(bytes)
            .map(Px)
            .ok_or_else(|| H5Error::InvalidData("element shorter than its type".to_owned()))
    }

    fn element_size(dtype: &Datatype) -> usize {
        Elem::of(dtype).map_or(0, Elem::size)
    }

    fn decode_vec(
        raw: &[u8],
        dtype: &Datatype,
        count: usize,
    ) -> Option<hdf5_reader::error::Result<Vec<Self>>> {
        Some((|| {
            let elem = Elem::of(dtype).map_err(|_| mismatch(dtype))?;
            let size = elem.size();
            let short = || H5Error::InvalidData("decoded buffer shorter than its shape".to_owned());
            let raw = raw
                .get(..count.checked_mul(size).ok_or_else(short)?)
                .ok_or_else(short)?;
            raw.chunks_exact(size)
                .map(|b| elem.grey(b).map(Px).ok_or_else(short))
                .collect()
        })())
    }
}

/// A number of a metadata vector (Berkeley EMD `dim` vectors), as `f64`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Val(pub(super) f64);

impl H5Type for Val {
    fn hdf5_type() -> Datatype {
        Datatype::FloatingPoint {
            size: 8,
            byte_order: ByteOrder::LittleEndian,
        }
    }

    fn from_bytes(bytes: &[u8], dtype: &Datatype) -> hdf5_reader::error::Result<Self> {
        let s = Scalar::of(dtype).ok_or_else(|| mismatch(dtype))?;
        s.decode(bytes)
            .map(|n| Val(n.to_f64()))
            .ok_or_else(|| H5Error::InvalidData("element shorter than its type".to_owned()))
    }

    fn element_size(dtype: &Datatype) -> usize {
        Scalar::of(dtype).map_or(0, Scalar::size)
    }
}

/// The decoder's error for an element type a read cannot convert.
fn mismatch(dtype: &Datatype) -> H5Error {
    H5Error::TypeMismatch {
        expected: "a numeric or RGB element".to_owned(),
        actual: dtype_name(dtype),
    }
}

// ------------------------------------------------------------------ entries

/// Where the image axes are in a stored array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layout {
    /// `(rows, cols)` or `(rows, cols, frames)`: Velox EMD.
    RowsColsFrames,
    /// `(rows, cols)` or `(frames, rows, cols)`: hyperspy, py4DSTEM.
    FramesRowsCols,
    /// `(cols, rows)` or `(cols, rows, frames)`: Berkeley EMD, which stores the
    /// transpose of the image.
    ColsRowsFrames,
}

/// How to read the frames of a usable entry.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Plan {
    /// Path of the array in the file.
    pub(super) data: String,
    /// Where its image axes are.
    pub(super) layout: Layout,
    /// Its shape as stored (2 or 3 axes, none zero).
    pub(super) shape: Vec<usize>,
    /// Its element conversion.
    pub(super) elem: Elem,
}

impl Plan {
    /// `(frames, rows, cols)`.
    pub(super) fn dims(&self) -> (usize, usize, usize) {
        let s = |i: usize| self.shape.get(i).copied().unwrap_or(0);
        match (self.layout, self.shape.len()) {
            (Layout::RowsColsFrames | Layout::FramesRowsCols, 2) => (1, s(0), s(1)),
            (Layout::ColsRowsFrames, 2) => (1, s(1), s(0)),
            (Layout::RowsColsFrames, _) => (s(2), s(0), s(1)),
            (Layout::FramesRowsCols, _) => (s(0), s(1), s(2)),
            (Layout::ColsRowsFrames, _) => (s(2), s(1), s(0)),
        }
    }
}

/// One listed entry and, if usable, how to read it.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    /// As [`list_hdf5`](super::list_hdf5) reports it (`index` set last).
    pub(super) info: ImageInfo,
    /// How to read it, or why it cannot be read.
    pub(super) plan: std::result::Result<Plan, Why>,
}

impl Entry {
    /// An entry that cannot be read as images, with the reason shown.
    pub(super) fn unusable(
        name: &str,
        shape: Vec<usize>,
        dtype: String,
        why: Why,
        reason: impl Into<String>,
    ) -> Self {
        Entry {
            info: ImageInfo {
                index: 0,
                name: Some(name.to_owned()),
                shape,
                dtype,
                pixel_size: None,
                unusable: Some(reason.into()),
            },
            plan: Err(why),
        }
    }

    /// An entry for the array `data` of element type `dt` and stored `shape`
    /// laid out as `layout`: usable if it has 2 or 3 non-empty axes and an
    /// element type with a grey value.
    pub(super) fn image(
        name: &str,
        data: &str,
        dt: &Datatype,
        shape: Vec<usize>,
        layout: Layout,
        pixel_size: Option<PixelSize>,
    ) -> Self {
        let dtype = dtype_name(dt);
        if !(2..=3).contains(&shape.len()) {
            let reason = format!(
                "a {}-D array, not a 2-D image or a stack of them",
                shape.len()
            );
            return Entry::unusable(name, shape, dtype, Why::NotAnImage, reason);
        }
        if shape.contains(&0) {
            return Entry::unusable(name, shape, dtype, Why::NotAnImage, "an empty array");
        }
        let elem = match Elem::of(dt) {
            Ok(elem) => elem,
            Err(Why::Complex) => {
                return Entry::unusable(name, shape, dtype, Why::Complex, COMPLEX_HINT);
            }
            Err(why) => {
                let reason = format!("element type {dtype} has no grey value");
                return Entry::unusable(name, shape, dtype, why, reason);
            }
        };
        Entry {
            info: ImageInfo {
                index: 0,
                name: Some(name.to_owned()),
                shape: shape.clone(),
                dtype,
                pixel_size,
                unusable: None,
            },
            plan: Ok(Plan {
                data: data.to_owned(),
                layout,
                shape,
                elem,
            }),
        }
    }

    /// Whether `wanted` names this entry: its group path or its array's path,
    /// with or without the leading `/`.
    pub(super) fn is_named(&self, wanted: &str) -> bool {
        let norm = |s: &str| s.trim_matches('/').to_owned();
        let wanted = norm(wanted);
        self.info.name.as_deref().is_some_and(|n| norm(n) == wanted)
            || self.plan.as_ref().is_ok_and(|p| norm(&p.data) == wanted)
    }
}

/// The pixel size in nm from two lengths `(value, unit)` along x and y, if
/// both are positive finite lengths in a unit [`unit_in_nm`] knows.
pub(super) fn pixel_size_nm(x: (f64, &str), y: (f64, &str)) -> Option<PixelSize> {
    let len = |(v, unit): (f64, &str)| {
        let v = v * unit_in_nm(unit)?;
        (v.is_finite() && v > 0.0).then_some(v)
    };
    Some(nm(len(x)?, len(y)?))
}

/// Reads frame `k` of `plan` as a `(rows, cols)` array.
pub(super) fn read_frame(
    src: &Source,
    format: &'static str,
    plan: &Plan,
    k: usize,
) -> Result<Array2<f32>> {
    let ds = src
        .file
        .dataset(&plan.data)
        .map_err(|e| src.err(format, e))?;
    if src.shape(format, &ds)? != plan.shape || Elem::of(ds.dtype()).ok() != Some(plan.elem) {
        return Err(src.malformed(format, format!("{} changed while reading", plan.data)));
    }
    let (_, rows, cols) = plan.dims();
    let bytes = rows
        .checked_mul(cols)
        .and_then(|n| n.checked_mul(plan.elem.size()))
        .and_then(|n| u64::try_from(n).ok());
    if bytes.is_none_or(|b| b > src.budget) {
        return Err(src.malformed(
            format,
            format!(
                "a frame of {rows} x {cols} elements of {} bytes exceeds the {}-byte limit \
                 for a file of this size",
                plan.elem.size(),
                src.budget
            ),
        ));
    }
    let all = SliceInfoElem::Slice {
        start: 0,
        end: u64::MAX,
        step: 1,
    };
    let k = u64::try_from(k).map_err(|_| src.malformed(format, "frame index overflows"))?;
    let selections = match (plan.layout, plan.shape.len()) {
        (_, 2) => vec![all.clone(), all],
        (Layout::FramesRowsCols, _) => vec![SliceInfoElem::Index(k), all.clone(), all],
        _ => vec![all.clone(), all, SliceInfoElem::Index(k)],
    };
    let arr = ds
        .read_slice::<Px>(&SliceInfo { selections })
        .map_err(|e| src.err(format, e))?
        .into_dimensionality::<Ix2>()
        .map_err(|e| src.malformed(format, e))?;
    let arr = if plan.layout == Layout::ColsRowsFrames {
        arr.reversed_axes()
    } else {
        arr
    };
    if arr.dim() != (rows, cols) {
        return Err(src.malformed(
            format,
            format!(
                "{} read as {:?}, expected ({rows}, {cols})",
                plan.data,
                arr.dim()
            ),
        ));
    }
    // `iter` walks the (possibly transposed) view in row-major image order.
    let values = narrow_pixels(src.path, arr.iter().map(|p| p.0), cols)?;
    Array2::from_shape_vec((rows, cols), values).map_err(|e| src.malformed(format, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_floats_convert_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2.0_f32.powi(-24));
        assert_eq!(f16_to_f32(0x8001), -(2.0_f32.powi(-24)));
        assert_eq!(f16_to_f32(0x03ff), 1023.0 * 2.0_f32.powi(-24));
        assert_eq!(f16_to_f32(0x0400), 2.0_f32.powi(-14));
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert_eq!(f16_to_f32(0xfc00), f32::NEG_INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0_f32).to_bits());
    }

    #[test]
    fn scalars_decode_both_byte_orders() {
        let be = Scalar::Int {
            size: 2,
            signed: true,
            big: true,
        };
        assert_eq!(be.decode(&[0xff, 0xfe]), Some(Num::Signed(-2)));
        let le = Scalar::Int {
            size: 4,
            signed: false,
            big: false,
        };
        assert_eq!(le.decode(&[1, 0, 0, 0]), Some(Num::Unsigned(1)));
        assert_eq!(le.decode(&[1, 0, 0]), None);
        let f = Scalar::Float { size: 8, big: true };
        assert_eq!(f.decode(&1.5_f64.to_be_bytes()), Some(Num::Double(1.5)));
        // 2^24 + 1 is not an f32: rounds to 2^24 (ties to even).
        assert_eq!(Num::Unsigned(16_777_217).to_pixel(), 16_777_216.0);
        assert_eq!(Num::Signed(-7).to_pixel(), -7.0);
    }

    fn int(size: u8, signed: bool) -> Datatype {
        Datatype::FixedPoint {
            size,
            signed,
            byte_order: ByteOrder::LittleEndian,
        }
    }

    fn compound(fields: &[(&str, u32, Datatype)]) -> Datatype {
        let size = fields
            .iter()
            .map(|(_, o, d)| o + u32::try_from(dtype_size(d)).unwrap())
            .max()
            .unwrap_or(0);
        Datatype::Compound {
            size,
            fields: fields
                .iter()
                .map(|(n, o, d)| hdf5_reader::CompoundField {
                    name: (*n).to_owned(),
                    byte_offset: *o,
                    datatype: d.clone(),
                })
                .collect(),
        }
    }

    fn dtype_size(d: &Datatype) -> usize {
        Scalar::of(d).unwrap().size()
    }

    #[test]
    fn rgb_compounds_become_luminance() {
        let rgba16 = compound(&[
            ("R", 0, int(2, false)),
            ("G", 2, int(2, false)),
            ("B", 4, int(2, false)),
            ("A", 6, int(2, false)),
        ]);
        assert_eq!(dtype_name(&rgba16), "rgba16");
        let elem = Elem::of(&rgba16).unwrap();
        assert_eq!(elem.size(), 8);
        // R = 1000, G = 2000, B = 3000, A = 7: 212.5 + 1430.8 + 216.3 = 1859.6.
        let b = [232, 3, 208, 7, 184, 11, 7, 0];
        assert!((elem.grey(&b).unwrap() - 1859.6).abs() < 1e-3);
        assert_eq!(elem.grey(&b[..5]), None);
        let rgb8 = compound(&[
            ("R", 0, int(1, false)),
            ("G", 1, int(1, false)),
            ("B", 2, int(1, false)),
        ]);
        assert_eq!(dtype_name(&rgb8), "rgb8");
        assert_eq!(Elem::of(&rgb8).unwrap().grey(&[255, 255, 255]), Some(255.0));
        // Signed channels are not RGB.
        let signed = compound(&[
            ("R", 0, int(1, true)),
            ("G", 1, int(1, true)),
            ("B", 2, int(1, true)),
        ]);
        assert_eq!(Elem::of(&signed), Err(Why::Unsupported));
    }

    #[test]
    fn complex_compounds_are_recognised() {
        let f4 = Datatype::FloatingPoint {
            size: 4,
            byte_order: ByteOrder::LittleEndian,
        };
        let c = compound(&[("realFloat", 0, f4.clone()), ("imagFloat", 4, f4)]);
        assert_eq!(Elem::of(&c), Err(Why::Complex));
        assert_eq!(dtype_name(&c), "complex64");
        let e = Entry::image(
            "/x",
            "/x/Data",
            &c,
            vec![2, 2, 1],
            Layout::RowsColsFrames,
            None,
        );
        assert_eq!(e.plan, Err(Why::Complex));
        assert!(e.info.unusable.unwrap().contains("modulus or the phase"));
    }

    #[test]
    fn plan_dims_follow_the_layout() {
        let plan = |layout, shape: &[usize]| Plan {
            data: String::new(),
            layout,
            shape: shape.to_vec(),
            elem: Elem::Scalar(Scalar::Float {
                size: 4,
                big: false,
            }),
        };
        assert_eq!(
            plan(Layout::RowsColsFrames, &[50, 10, 7]).dims(),
            (7, 50, 10)
        );
        assert_eq!(
            plan(Layout::FramesRowsCols, &[7, 50, 10]).dims(),
            (7, 50, 10)
        );
        assert_eq!(
            plan(Layout::ColsRowsFrames, &[10, 50, 7]).dims(),
            (7, 50, 10)
        );
        assert_eq!(plan(Layout::ColsRowsFrames, &[10, 50]).dims(), (1, 50, 10));
        assert_eq!(plan(Layout::RowsColsFrames, &[50, 10]).dims(), (1, 50, 10));
    }

    #[test]
    fn entries_refuse_what_is_not_an_image() {
        let u2 = int(2, false);
        let e = Entry::image(
            "/s",
            "/s/data",
            &u2,
            vec![4096],
            Layout::FramesRowsCols,
            None,
        );
        assert_eq!(e.plan, Err(Why::NotAnImage));
        let e = Entry::image(
            "/s",
            "/s/data",
            &u2,
            vec![2, 0],
            Layout::FramesRowsCols,
            None,
        );
        assert_eq!(e.plan, Err(Why::NotAnImage));
        let s = Datatype::String {
            size: hdf5_reader::StringSize::Fixed(4),
            encoding: hdf5_reader::StringEncoding::Ascii,
            padding: hdf5_reader::StringPadding::NullPad,
        };
        let e = Entry::image(
            "/s",
            "/s/data",
            &s,
            vec![2, 2],
            Layout::FramesRowsCols,
            None,
        );
        assert_eq!(e.plan, Err(Why::Unsupported));
        assert_eq!(e.info.dtype, "string");
        let e = Entry::image(
            "/s",
            "/s/data",
            &u2,
            vec![2, 3],
            Layout::FramesRowsCols,
            None,
        );
        assert!(e.is_named("s") && e.is_named("/s/data") && e.is_named("/s/") && !e.is_named("/t"));
    }

    #[test]
    fn pixel_sizes_need_two_lengths() {
        let p = pixel_size_nm((5.3e-9, "m"), (2.0, "Å")).unwrap();
        assert!((p.x - 5.3).abs() < 1e-12 && (p.y - 0.2).abs() < 1e-12);
        assert_eq!(p.unit, "nm");
        assert_eq!(pixel_size_nm((1.0, "1/nm"), (1.0, "1/nm")), None);
        assert_eq!(pixel_size_nm((1.0, "nm"), (1.0, "")), None);
        assert_eq!(pixel_size_nm((0.0, "nm"), (1.0, "nm")), None);
        assert_eq!(pixel_size_nm((f64::NAN, "nm"), (1.0, "nm")), None);
        assert_eq!(pixel_size_nm((-1.0, "nm"), (1.0, "nm")), None);
    }
}
