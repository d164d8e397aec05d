//! Gatan DigitalMicrograph DM3 and DM4 reading.
//!
//! References: Chris Boothroyd's description of the DM3/DM4 formats
//! (<http://www.er-c.org/cbb/info/dmformat/>), and the reader of RosettaSciIO
//! 0.15 (`rsciio/digitalmicrograph/_api.py`, the HyperSpy DM reader), whose
//! choices this reader follows where the format leaves room (thumbnails, data
//! type codes, RGBA byte order).
//!
//! # Layout
//!
//! A file is a header, then one tree of tags:
//!
//! - header, big-endian: `u32` version (3 or 4), the root length (`u32` in
//!   DM3, `u64` in DM4), `u32` byte order (1: the tag *values* are
//!   little-endian, 0: big-endian);
//! - the root tag group: `u8` sorted flag, `u8` open flag, entry count (`u32`
//!   in DM3, `u64` in DM4), then the entries;
//! - an entry: `u8` kind (20 = tag group, 21 = data tag), `u16` name length,
//!   the name, in DM4 a `u64` entry size, then a tag group as above or a data
//!   tag;
//! - a data tag: the delimiter `%%%%`, the info-array length `n` and `n`
//!   info-array words (`u32` in DM3, `u64` in DM4) encoding the value's type,
//!   then the value. Types: 2 `i16`, 3 `i32`, 4 `u16`, 5 `u32`, 6 `f32`,
//!   7 `f64`, 8 bool, 9 char (`i8`), 10 octet (`u8`), 11 `i64`, 12 `u64`;
//!   15 struct (name length, field count, then per field a name length and a
//!   type); 18 string (length); 20 array (element type, then element count).
//!
//! Every integer of the header and of the tag structure (counts, lengths,
//! info arrays) is big-endian; the values use the header's byte order.
//!
//! Images are the groups of the root `ImageList` group, each with an
//! `ImageData` group holding `Data` (an array: the pixels, x fastest),
//! `DataType`, `Dimensions` (one `u32` per axis, x first),
//! `Calibrations/Dimension` (per axis `Origin`, `Scale`, `Units`) and
//! `PixelDepth` (bytes per pixel), and an image-level `Name`.
//!
//! # Safety against malformed input
//!
//! Every count and length read from the file is checked against the bytes
//! that remain before anything is allocated or skipped; tag groups may nest at
//! most [`MAX_GROUP_DEPTH`] deep and encoded types [`MAX_TYPE_DEPTH`] deep.
//! Pixel data is never copied while the tags are parsed: only its offset and
//! length are kept, and [`read_dm`] reads the requested frame alone.

use super::bounded::Bounded;
use super::util::{ImageInfo, luminance, malformed, narrow_pixels, nm, unit_in_nm, unsupported};
use crate::{DataError, Image, PixelSize, Result};
use ndarray::Array2;
use std::path::{Path, PathBuf};

/// Format name used in error messages.
pub const DM_FORMAT: &str = "DM";

/// Header version of a DM3 file.
const VERSION_DM3: u32 = 3;
/// Header version of a DM4 file.
const VERSION_DM4: u32 = 4;
/// Header byte-order word: tag values are big-endian.
const BYTE_ORDER_BIG: u32 = 0;
/// Header byte-order word: tag values are little-endian.
const BYTE_ORDER_LITTLE: u32 = 1;
/// Entry kind of a tag group.
const ENTRY_GROUP: u8 = 20;
/// Entry kind of a data tag.
const ENTRY_DATA: u8 = 21;
/// Delimiter opening every data tag.
const DATA_DELIMITER: &[u8; 4] = b"%%%%";

/// Deepest nesting of tag groups accepted (real files nest about ten deep).
pub const MAX_GROUP_DEPTH: usize = 64;
/// Deepest nesting of encoded types accepted (arrays of structs, arrays of
/// arrays).
pub const MAX_TYPE_DEPTH: usize = 16;
/// Smallest possible entry in a DM3 file: kind, name length, then a tag group
/// header (sorted, open, `u32` count).
const MIN_ENTRY_DM3: u64 = 1 + 2 + 1 + 1 + 4;
/// Smallest possible entry in a DM4 file: kind, name length, entry size, then
/// a tag group header (sorted, open, `u64` count).
const MIN_ENTRY_DM4: u64 = 1 + 2 + 8 + 1 + 1 + 8;
/// Longest text (image name, unit) decoded, in bytes; longer ones are cut.
const MAX_TEXT_BYTES: u64 = 1 << 16;

/// Encoded types of data-tag values (the info-array codes).
mod enc {
    pub const SHORT: u64 = 2;
    pub const LONG: u64 = 3;
    pub const USHORT: u64 = 4;
    pub const ULONG: u64 = 5;
    pub const FLOAT: u64 = 6;
    pub const DOUBLE: u64 = 7;
    pub const BOOL: u64 = 8;
    pub const CHAR: u64 = 9;
    pub const OCTET: u64 = 10;
    pub const LONG_LONG: u64 = 11;
    pub const ULONG_LONG: u64 = 12;
    pub const STRUCT: u64 = 15;
    pub const STRING: u64 = 18;
    pub const ARRAY: u64 = 20;
}

/// `ImageData/DataType` codes (DigitalMicrograph's image data types, as
/// listed by RosettaSciIO's `ImageObject.dtype`).
mod dtype {
    pub const INT16: u64 = 1;
    pub const FLOAT32: u64 = 2;
    pub const COMPLEX64: u64 = 3;
    pub const OBSOLETE: u64 = 4;
    pub const PACKED_COMPLEX: u64 = 5;
    pub const UINT8: u64 = 6;
    pub const INT32: u64 = 7;
    pub const RGB_4UI1: u64 = 8;
    pub const INT8: u64 = 9;
    pub const UINT16: u64 = 10;
    pub const UINT32: u64 = 11;
    pub const FLOAT64: u64 = 12;
    pub const COMPLEX128: u64 = 13;
    pub const BINARY: u64 = 14;
    pub const RGBA_4UI1: u64 = 23;
    pub const PACKED_COMPLEX64: u64 = 27;
    pub const PACKED_COMPLEX128: u64 = 28;
}

/// Whether `head` (the first 16 bytes of a file or more) starts like a DM3 or
/// DM4 file: big-endian version 3 or 4, then (after the 4- or 8-byte root
/// length) a byte-order word of 0 or 1. DM files have no other magic.
#[must_use]
pub fn is_dm_header(head: &[u8]) -> bool {
    let word = |at: usize| -> Option<u32> {
        let b = head.get(at..at.checked_add(4)?)?;
        Some(u32::from_be_bytes(b.try_into().ok()?))
    };
    let order_at = match word(0) {
        Some(VERSION_DM3) => 8,
        Some(VERSION_DM4) => 12,
        _ => return false,
    };
    matches!(word(order_at), Some(BYTE_ORDER_BIG | BYTE_ORDER_LITTLE))
}

// ------------------------------------------------------------------ tag tree

/// A simple (scalar) encoded type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Simple {
    I16,
    I32,
    U16,
    U32,
    F32,
    F64,
    Bool,
    I8,
    U8,
    I64,
    U64,
}

impl Simple {
    fn from_code(code: u64) -> Option<Self> {
        Some(match code {
            enc::SHORT => Simple::I16,
            enc::LONG => Simple::I32,
            enc::USHORT => Simple::U16,
            enc::ULONG => Simple::U32,
            enc::FLOAT => Simple::F32,
            enc::DOUBLE => Simple::F64,
            enc::BOOL => Simple::Bool,
            enc::CHAR => Simple::I8,
            enc::OCTET => Simple::U8,
            enc::LONG_LONG => Simple::I64,
            enc::ULONG_LONG => Simple::U64,
            _ => return None,
        })
    }

    fn size(self) -> u64 {
        match self {
            Simple::Bool | Simple::I8 | Simple::U8 => 1,
            Simple::I16 | Simple::U16 => 2,
            Simple::I32 | Simple::U32 | Simple::F32 => 4,
            Simple::F64 | Simple::I64 | Simple::U64 => 8,
        }
    }

    /// Decodes one value from `b` (exactly `size()` bytes).
    fn decode(self, b: &[u8], little: bool) -> Option<Num> {
        Some(match self {
            Simple::Bool | Simple::U8 => Num::UInt(u64::from(*b.first()?)),
            Simple::I8 => Num::Int(i64::from(i8::from_le_bytes(ordered::<1>(b, little)?))),
            Simple::I16 => Num::Int(i64::from(i16::from_le_bytes(ordered(b, little)?))),
            Simple::U16 => Num::UInt(u64::from(u16::from_le_bytes(ordered(b, little)?))),
            Simple::I32 => Num::Int(i64::from(i32::from_le_bytes(ordered(b, little)?))),
            Simple::U32 => Num::UInt(u64::from(u32::from_le_bytes(ordered(b, little)?))),
            Simple::I64 => Num::Int(i64::from_le_bytes(ordered(b, little)?)),
            Simple::U64 => Num::UInt(u64::from_le_bytes(ordered(b, little)?)),
            Simple::F32 => Num::Float(f64::from(f32::from_le_bytes(ordered(b, little)?))),
            Simple::F64 => Num::Float(f64::from_le_bytes(ordered(b, little)?)),
        })
    }
}

/// The first `N` bytes of `b` in little-endian order (reversed when the
/// source is big-endian).
fn ordered<const N: usize>(b: &[u8], little: bool) -> Option<[u8; N]> {
    let mut a = *b.first_chunk::<N>()?;
    if !little {
        a.reverse();
    }
    Some(a)
}

/// An encoded type, as an info array describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TagType {
    Simple(Simple),
    Struct(Vec<TagType>),
    String(u64),
    Array(Box<TagType>, u64),
}

impl TagType {
    /// Bytes a value of this type occupies; `None` on overflow.
    fn byte_size(&self) -> Option<u64> {
        match self {
            TagType::Simple(s) => Some(s.size()),
            TagType::Struct(fields) => fields
                .iter()
                .try_fold(0_u64, |acc, f| acc.checked_add(f.byte_size()?)),
            TagType::String(len) => Some(*len),
            TagType::Array(elem, count) => elem.byte_size()?.checked_mul(*count),
        }
    }
}

/// A scalar tag value.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Num {
    Int(i64),
    UInt(u64),
    Float(f64),
}

impl Num {
    /// The value as a non-negative integer, if it is one.
    fn as_u64(self) -> Option<u64> {
        match self {
            Num::Int(i) => u64::try_from(i).ok(),
            Num::UInt(u) => Some(u),
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Num::Float(f) => (f >= 0.0 && f.fract() == 0.0 && f < 1.8e19).then_some(f as u64),
        }
    }

    #[allow(clippy::cast_precision_loss)]
    fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::UInt(u) => u as f64,
            Num::Float(f) => f,
        }
    }
}

/// A data tag's value: scalars are decoded, arrays and strings are kept as
/// their place in the file.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Num(Num),
    /// An array: `elem` is its element type when simple; elements of
    /// `elem_size` bytes (structs, for complex pixels).
    Array {
        elem: Option<Simple>,
        elem_size: u64,
        offset: u64,
        count: u64,
    },
    Text {
        offset: u64,
        len: u64,
    },
    Other,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Group(Vec<Entry>),
    Data(Value),
}

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    name: String,
    node: Node,
}

/// The entry named `name` among `entries`.
fn child<'e>(entries: &'e [Entry], name: &str) -> Option<&'e Node> {
    entries.iter().find(|e| e.name == name).map(|e| &e.node)
}

/// The tag group named `name`.
fn group<'e>(entries: &'e [Entry], name: &str) -> Option<&'e [Entry]> {
    match child(entries, name)? {
        Node::Group(g) => Some(g),
        Node::Data(_) => None,
    }
}

/// The scalar data tag named `name`.
fn number(entries: &[Entry], name: &str) -> Option<Num> {
    match child(entries, name)? {
        Node::Data(Value::Num(n)) => Some(*n),
        _ => None,
    }
}

/// The tag groups among `entries`, in file order.
fn subgroups(entries: &[Entry]) -> impl Iterator<Item = &[Entry]> {
    entries.iter().filter_map(|e| match &e.node {
        Node::Group(g) => Some(g.as_slice()),
        Node::Data(_) => None,
    })
}

/// Decodes bytes as UTF-8, or Latin-1 when they are not UTF-8.
fn bytes_to_string(b: Vec<u8>) -> String {
    String::from_utf8(b).unwrap_or_else(|e| e.into_bytes().iter().map(|&c| char::from(c)).collect())
}

/// Reads the tag tree of a file.
struct Parser<'s, 'a> {
    src: &'s mut Bounded<'a>,
    path: &'s Path,
    pos: u64,
    dm4: bool,
    little: bool,
}

impl Parser<'_, '_> {
    fn err(&self, reason: impl ToString) -> DataError {
        malformed(self.path, DM_FORMAT, reason)
    }

    fn remaining(&self) -> u64 {
        self.src.len().saturating_sub(self.pos)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut b = [0_u8; N];
        self.src.read_into(self.path, self.pos, &mut b, what)?;
        self.pos += N as u64;
        Ok(b)
    }

    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u16_be(&mut self, what: &str) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    fn u32_be(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    /// A structure word: big-endian `u32` in DM3, `u64` in DM4.
    fn word(&mut self, what: &str) -> Result<u64> {
        if self.dm4 {
            Ok(u64::from_be_bytes(self.array(what)?))
        } else {
            Ok(u64::from(self.u32_be(what)?))
        }
    }

    fn word_size(&self) -> u64 {
        if self.dm4 { 8 } else { 4 }
    }

    /// Skips `n` bytes after checking that the file holds them; returns the
    /// offset of the first.
    fn skip(&mut self, n: u64, what: &str) -> Result<u64> {
        if n > self.remaining() {
            return Err(self.src.truncated(self.path, what, self.pos, n));
        }
        let start = self.pos;
        self.pos += n;
        Ok(start)
    }

    /// Reads `n` bytes (at most what remains, checked first).
    fn bytes(&mut self, n: u64, what: &str) -> Result<Vec<u8>> {
        let start = self.skip(n, what)?;
        let mut b = vec![0_u8; usize::try_from(n).map_err(|e| self.err(e))?];
        self.src.read_into(self.path, start, &mut b, what)?;
        Ok(b)
    }

    /// A tag group's header and entries; `depth` is its nesting level.
    fn group(&mut self, depth: usize) -> Result<Vec<Entry>> {
        if depth > MAX_GROUP_DEPTH {
            return Err(self.err(format!(
                "tag groups nested deeper than {MAX_GROUP_DEPTH} levels at byte {}",
                self.pos
            )));
        }
        let _sorted = self.u8("tag group sorted flag")?;
        let _open = self.u8("tag group open flag")?;
        let count = self.word("tag group entry count")?;
        let min_entry = if self.dm4 {
            MIN_ENTRY_DM4
        } else {
            MIN_ENTRY_DM3
        };
        if count > self.remaining() / min_entry {
            return Err(self.err(format!(
                "tag group at byte {} claims {count} entries, more than the {} remaining bytes can hold",
                self.pos,
                self.remaining()
            )));
        }
        let mut entries = Vec::new();
        for _ in 0..count {
            entries.push(self.entry(depth)?);
        }
        Ok(entries)
    }

    /// One entry of a group at nesting level `depth`.
    fn entry(&mut self, depth: usize) -> Result<Entry> {
        let at = self.pos;
        let kind = self.u8("tag entry kind")?;
        let name_len = self.u16_be("tag name length")?;
        let name = bytes_to_string(self.bytes(u64::from(name_len), "tag name")?);
        if self.dm4 {
            let _size = self.word("tag entry size")?;
        }
        let node = match kind {
            ENTRY_GROUP => Node::Group(self.group(depth + 1)?),
            ENTRY_DATA => Node::Data(self.data()?),
            other => {
                return Err(self.err(format!(
                    "tag entry at byte {at} has kind {other} (20 for a group or 21 for data expected)"
                )));
            }
        };
        Ok(Entry { name, node })
    }

    /// A data tag: delimiter, info array, value.
    fn data(&mut self) -> Result<Value> {
        let at = self.pos;
        let delim = self.array::<4>("data tag delimiter")?;
        if &delim != DATA_DELIMITER {
            return Err(self.err(format!(
                "data tag at byte {at} does not start with %%%% (found {delim:02x?})"
            )));
        }
        let n = self.word("info array length")?;
        if n > self.remaining() / self.word_size() {
            return Err(self.err(format!(
                "info array at byte {} claims {n} words, more than the {} remaining bytes can hold",
                self.pos,
                self.remaining()
            )));
        }
        let mut words = Vec::new();
        for _ in 0..n {
            words.push(self.word("info array word")?);
        }
        let mut next = words.iter().copied();
        let ty = parse_type(&mut next, 0).map_err(|reason| {
            self.err(format!(
                "data tag at byte {at}: {reason} (info array {words:?})"
            ))
        })?;
        let size = ty
            .byte_size()
            .ok_or_else(|| self.err(format!("data tag at byte {at}: value size overflows")))?;
        let offset = self.skip(size, "tag value")?;
        Ok(match ty {
            TagType::Simple(s) => {
                let mut b = [0_u8; 8];
                let b = b.get_mut(..s.size() as usize).unwrap_or_default();
                self.src.read_into(self.path, offset, b, "tag value")?;
                s.decode(b, self.little).map_or(Value::Other, Value::Num)
            }
            TagType::Array(elem, count) => Value::Array {
                elem: match *elem {
                    TagType::Simple(s) => Some(s),
                    _ => None,
                },
                // Cannot overflow: the whole array's size was computed above.
                elem_size: elem.byte_size().unwrap_or(0),
                offset,
                count,
            },
            TagType::String(len) => Value::Text { offset, len },
            TagType::Struct(_) => Value::Other,
        })
    }
}

/// Parses one encoded type from the info-array words; `Err` names the problem.
fn parse_type(
    words: &mut impl Iterator<Item = u64>,
    depth: usize,
) -> std::result::Result<TagType, String> {
    if depth > MAX_TYPE_DEPTH {
        return Err(format!("types nested deeper than {MAX_TYPE_DEPTH} levels"));
    }
    let mut next = |what: &str| {
        words
            .next()
            .ok_or_else(|| format!("info array ends before the {what}"))
    };
    let code = next("type code")?;
    if let Some(s) = Simple::from_code(code) {
        return Ok(TagType::Simple(s));
    }
    match code {
        enc::STRUCT => {
            let _name_len = next("struct name length")?;
            let n = next("struct field count")?;
            let mut fields = Vec::new();
            for _ in 0..n {
                let _field_name_len = words
                    .next()
                    .ok_or_else(|| "info array ends before a struct field".to_owned())?;
                fields.push(parse_type(words, depth + 1)?);
            }
            Ok(TagType::Struct(fields))
        }
        enc::STRING => Ok(TagType::String(next("string length")?)),
        enc::ARRAY => {
            let elem = parse_type(words, depth + 1)?;
            let count = words
                .next()
                .ok_or_else(|| "info array ends before the array length".to_owned())?;
            Ok(TagType::Array(Box::new(elem), count))
        }
        other => Err(format!("unknown encoded type {other}")),
    }
}

// ------------------------------------------------------------------ images

/// DigitalMicrograph pixel types this reader converts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PixelKind {
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    F32,
    F64,
    Binary,
    /// Four bytes per pixel: blue, green, red, alpha.
    Bgra,
}

impl PixelKind {
    fn size(self) -> u64 {
        match self {
            PixelKind::I8 | PixelKind::U8 | PixelKind::Binary => 1,
            PixelKind::I16 | PixelKind::U16 => 2,
            PixelKind::I32 | PixelKind::U32 | PixelKind::F32 | PixelKind::Bgra => 4,
            PixelKind::F64 => 8,
        }
    }
}

/// Why an entry of the image list cannot be read as images.
#[derive(Debug, Clone, PartialEq)]
enum Problem {
    Thumbnail,
    NotAnImage(String),
    Unsupported(String),
    Malformed(String),
}

impl Problem {
    fn reason(&self) -> String {
        match self {
            Problem::Thumbnail => {
                "thumbnail: the preview DigitalMicrograph lists under `Thumbnails`".to_owned()
            }
            Problem::NotAnImage(r) | Problem::Unsupported(r) | Problem::Malformed(r) => r.clone(),
        }
    }
}

/// Where the frames of a usable image lie.
#[derive(Debug, Clone, PartialEq)]
struct Layout {
    kind: PixelKind,
    offset: u64,
    rows: usize,
    cols: usize,
    frames: usize,
}

/// One entry of the image list.
#[derive(Debug, Clone, PartialEq)]
struct DmImage {
    info: ImageInfo,
    layout: Option<Layout>,
    problem: Option<Problem>,
}

/// Numpy name and pixel kind of a `DataType` code; the kind is `Err` with the
/// reason when the type is not converted.
fn pixel_kind(code: u64) -> (String, std::result::Result<PixelKind, Problem>) {
    let ok = |name: &str, kind| (name.to_owned(), Ok(kind));
    let complex = |name: &str| {
        (
            name.to_owned(),
            Err(Problem::Unsupported(format!(
                "complex data ({name}, DataType {code}): complex images are not supported; \
                 export the modulus or the phase (e.g. from DigitalMicrograph) and read that"
            ))),
        )
    };
    match code {
        dtype::INT16 => ok("int16", PixelKind::I16),
        dtype::FLOAT32 => ok("float32", PixelKind::F32),
        dtype::UINT8 => ok("uint8", PixelKind::U8),
        dtype::INT32 => ok("int32", PixelKind::I32),
        dtype::INT8 => ok("int8", PixelKind::I8),
        dtype::UINT16 => ok("uint16", PixelKind::U16),
        dtype::UINT32 => ok("uint32", PixelKind::U32),
        dtype::FLOAT64 => ok("float64", PixelKind::F64),
        dtype::BINARY => ok("bool", PixelKind::Binary),
        dtype::RGB_4UI1 | dtype::RGBA_4UI1 => ok("rgba8", PixelKind::Bgra),
        dtype::COMPLEX64 => complex("complex64"),
        dtype::COMPLEX128 => complex("complex128"),
        dtype::PACKED_COMPLEX | dtype::PACKED_COMPLEX64 => complex("complex64 (packed)"),
        dtype::PACKED_COMPLEX128 => complex("complex128 (packed)"),
        dtype::OBSOLETE => (
            "DataType 4".to_owned(),
            Err(Problem::Unsupported(
                "DataType 4 (obsolete in DigitalMicrograph) is not supported".to_owned(),
            )),
        ),
        other => (
            format!("DataType {other}"),
            Err(Problem::Unsupported(format!(
                "DataType {other} is not a DigitalMicrograph pixel type this reader knows"
            ))),
        ),
    }
}

/// Reads a text value (an array of `u16` UTF-16 code units, an array of bytes,
/// or a string tag), cut at [`MAX_TEXT_BYTES`].
fn text(src: &mut Bounded<'_>, path: &Path, value: &Value, little: bool) -> Result<Option<String>> {
    let (offset, len, utf16) = match *value {
        Value::Array {
            elem: Some(Simple::U16 | Simple::I16),
            offset,
            count,
            ..
        } => (offset, count.saturating_mul(2), true),
        Value::Array {
            elem: Some(Simple::U8 | Simple::I8),
            offset,
            count,
            ..
        } => (offset, count, false),
        Value::Text { offset, len } => (offset, len, false),
        _ => return Ok(None),
    };
    let len = len.min(MAX_TEXT_BYTES);
    let mut b = vec![0_u8; usize::try_from(len).unwrap_or(0)];
    src.read_into(path, offset, &mut b, "text")?;
    let s = if utf16 {
        let units = b
            .chunks_exact(2)
            .filter_map(|c| ordered::<2>(c, little).map(u16::from_le_bytes));
        char::decode_utf16(units)
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect()
    } else {
        bytes_to_string(b)
    };
    Ok(Some(s))
}

/// The text data tag named `name` among `entries`.
fn text_tag(
    src: &mut Bounded<'_>,
    path: &Path,
    entries: &[Entry],
    name: &str,
    little: bool,
) -> Result<Option<String>> {
    match child(entries, name) {
        Some(Node::Data(v)) => text(src, path, v, little),
        _ => Ok(None),
    }
}

/// Pixel size in nm from the first two calibrated axes (x = dimension 0,
/// y = dimension 1); `None` unless both scales are positive and finite and
/// both units are lengths.
fn pixel_size(calibrations: &[(Option<f64>, String)]) -> Option<PixelSize> {
    let axis = |i: usize| -> Option<f64> {
        let (scale, unit) = calibrations.get(i)?;
        let scale = (*scale)?;
        (scale.is_finite() && scale > 0.0).then_some(())?;
        Some(scale * unit_in_nm(unit)?)
    };
    Some(nm(axis(0)?, axis(1)?))
}

/// Describes one group of `ImageList`. Problems of the content are recorded
/// in the result; only failures to read the file are errors.
fn describe(
    src: &mut Bounded<'_>,
    path: &Path,
    little: bool,
    index: usize,
    entries: &[Entry],
    thumbnail: bool,
) -> Result<DmImage> {
    let name = text_tag(src, path, entries, "Name", little)?.filter(|s| !s.is_empty());
    let mut info = ImageInfo {
        index,
        name,
        shape: Vec::new(),
        dtype: "unknown".to_owned(),
        pixel_size: None,
        unusable: None,
    };
    let broken = |info: ImageInfo, reason: &str| DmImage {
        info: ImageInfo {
            unusable: Some(reason.to_owned()),
            ..info
        },
        layout: None,
        problem: Some(Problem::Malformed(format!("image {index}: {reason}"))),
    };
    let Some(data) = group(entries, "ImageData") else {
        return Ok(broken(info, "no ImageData tag group"));
    };
    let Some(dims) = group(data, "Dimensions") else {
        return Ok(broken(info, "no ImageData/Dimensions tag group"));
    };
    let mut sizes = Vec::new();
    for e in dims {
        match &e.node {
            Node::Data(Value::Num(n)) => match n.as_u64().and_then(|d| usize::try_from(d).ok()) {
                Some(d) => sizes.push(d),
                None => return Ok(broken(info, "a dimension is not a size")),
            },
            _ => return Ok(broken(info, "a dimension is not a number")),
        }
    }
    info.shape = sizes.iter().rev().copied().collect();
    let Some(code) = number(data, "DataType").and_then(Num::as_u64) else {
        return Ok(broken(info, "no ImageData/DataType tag"));
    };
    let (dtype_name, kind) = pixel_kind(code);
    info.dtype = dtype_name;
    let mut calibrations = Vec::new();
    if let Some(axes) = group(data, "Calibrations").and_then(|c| group(c, "Dimension")) {
        for axis in subgroups(axes) {
            let scale = number(axis, "Scale").map(Num::as_f64);
            let unit = text_tag(src, path, axis, "Units", little)?.unwrap_or_default();
            calibrations.push((scale, unit));
        }
    }
    if sizes.len() >= 2 {
        info.pixel_size = pixel_size(&calibrations);
    }
    let (data_offset, data_len) = match child(data, "Data") {
        Some(Node::Data(Value::Array {
            elem_size,
            offset,
            count,
            ..
        })) => (*offset, elem_size.saturating_mul(*count)),
        _ => return Ok(broken(info, "no ImageData/Data array")),
    };
    let image_tags = group(entries, "ImageTags");
    let meta_format = match image_tags.and_then(|t| group(t, "Meta Data")) {
        Some(meta) => text_tag(src, path, meta, "Format", little)?,
        None => None,
    };
    let spim = image_tags.is_some_and(|t| child(t, "spim").is_some());
    let spectral = spim || matches!(meta_format.as_deref(), Some("Spectrum image" | "Spectrum"));

    let problem = if thumbnail {
        Some(Problem::Thumbnail)
    } else if sizes.len() < 2 {
        Some(Problem::NotAnImage(format!(
            "{}-D data (a spectrum or a profile), not an image",
            sizes.len()
        )))
    } else if sizes.len() > 3 {
        Some(Problem::NotAnImage(format!(
            "{}-D data, not an image or a stack of images",
            sizes.len()
        )))
    } else if spectral {
        Some(Problem::Unsupported(format!(
            "spectrum data (ImageTags/Meta Data/Format {:?}{}): a spectrum per pixel, not images",
            meta_format.as_deref().unwrap_or(""),
            if spim { ", ImageTags/spim" } else { "" }
        )))
    } else if sizes.contains(&0) {
        Some(Problem::NotAnImage(
            "empty: a dimension has size 0".to_owned(),
        ))
    } else {
        kind.as_ref().err().cloned()
    };
    let mut layout = None;
    let problem = match (problem, kind) {
        (None, Ok(kind)) => {
            let cols = sizes.first().copied().unwrap_or(0);
            let rows = sizes.get(1).copied().unwrap_or(0);
            let frames = sizes.get(2).copied().unwrap_or(1);
            let needed = [rows, cols, frames]
                .iter()
                .try_fold(kind.size(), |acc, &d| acc.checked_mul(d as u64));
            match needed {
                Some(n) if n <= data_len => {
                    layout = Some(Layout {
                        kind,
                        offset: data_offset,
                        rows,
                        cols,
                        frames,
                    });
                    None
                }
                _ => Some(Problem::Malformed(format!(
                    "image {index}: Data holds {data_len} bytes, too few for dimensions {sizes:?} of {}",
                    info.dtype
                ))),
            }
        }
        (p, _) => p,
    };
    info.unusable = problem.as_ref().map(Problem::reason);
    Ok(DmImage {
        info,
        layout,
        problem,
    })
}

// ------------------------------------------------------------------ file

/// A parsed DigitalMicrograph file: its image list, and the bytes to read
/// pixels from. Made by [`parse_dm`] (bytes in memory) or internally by
/// [`read_dm`] and [`list_dm`] (a file, read on demand).
///
/// Frames are numbered over the usable entries of the image list in file
/// order, a 3-D stack counting as its number of frames (see [`ImageInfo`]).
pub struct DmFile<'a> {
    path: PathBuf,
    source: Bounded<'a>,
    version: u32,
    little_endian: bool,
    images: Vec<DmImage>,
}

impl std::fmt::Debug for DmFile<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DmFile")
            .field("path", &self.path)
            .field("version", &self.version)
            .field("little_endian", &self.little_endian)
            .field("images", &self.images)
            .finish_non_exhaustive()
    }
}

/// Parses a whole DM3/DM4 file held in memory; `path` is used only in
/// messages. See the module documentation for the layout and [`read_dm`] for
/// how images are chosen and converted.
///
/// # Errors
/// [`DataError::Malformed`] (not a DM3/DM4 header, truncated or inconsistent
/// tag tree, tags nested too deep, lengths larger than the file).
///
/// # Example
/// ```
/// use phyvae_data::io::dm::parse_dm;
/// use std::path::Path;
/// let err = parse_dm(b"\0\0\0\x05 not a DM file", Path::new("x.dm3")).unwrap_err();
/// assert!(err.to_string().contains("version"));
/// ```
pub fn parse_dm<'a>(bytes: &'a [u8], path: &Path) -> Result<DmFile<'a>> {
    parse(Bounded::from_bytes(bytes, DM_FORMAT), path)
}

/// Parses the header and the tag tree from `source`, then the image list.
fn parse<'a>(mut source: Bounded<'a>, path: &Path) -> Result<DmFile<'a>> {
    let mut p = Parser {
        src: &mut source,
        path,
        pos: 0,
        dm4: false,
        little: true,
    };
    let version = p.u32_be("header version")?;
    p.dm4 = match version {
        VERSION_DM3 => false,
        VERSION_DM4 => true,
        other => {
            return Err(p.err(format!(
                "not a DigitalMicrograph file: header version {other} (3 or 4 expected)"
            )));
        }
    };
    let _root_len = p.word("header root length")?;
    p.little = match p.u32_be("header byte order")? {
        BYTE_ORDER_LITTLE => true,
        BYTE_ORDER_BIG => false,
        other => {
            return Err(p.err(format!("header byte order {other} (0 or 1 expected)")));
        }
    };
    let root = p.group(0)?;
    let little = p.little;
    let thumbnails: Vec<u64> = group(&root, "Thumbnails")
        .map(|t| {
            subgroups(t)
                .filter_map(|g| number(g, "ImageIndex").and_then(Num::as_u64))
                .collect()
        })
        .unwrap_or_default();
    let mut images = Vec::new();
    if let Some(list) = group(&root, "ImageList") {
        for (index, entries) in subgroups(list).enumerate() {
            let thumbnail = thumbnails.contains(&(index as u64));
            images.push(describe(
                &mut source,
                path,
                little,
                index,
                entries,
                thumbnail,
            )?);
        }
    }
    Ok(DmFile {
        path: path.to_path_buf(),
        source,
        version,
        little_endian: little,
        images,
    })
}

impl DmFile<'_> {
    /// Header version: 3 (DM3) or 4 (DM4).
    #[must_use]
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Whether the tag values and pixels are little-endian (header flag).
    #[must_use]
    pub fn little_endian(&self) -> bool {
        self.little_endian
    }

    /// The image list, thumbnails and unusable entries included (with the
    /// reason in [`ImageInfo::unusable`]). `shape` is slowest axis first
    /// (DM's `Dimensions` reversed), `dtype` numpy's name of `DataType`
    /// (`rgba8` for DM's RGB types), `pixel_size` in nm from the first two
    /// calibrated axes.
    #[must_use]
    pub fn images(&self) -> Vec<ImageInfo> {
        self.images.iter().map(|i| i.info.clone()).collect()
    }

    /// Number of 2-D frames the usable entries hold (a 3-D stack counts as
    /// its number of frames).
    #[must_use]
    pub fn frame_count(&self) -> usize {
        self.images
            .iter()
            .filter_map(|i| i.layout.as_ref())
            .fold(0_usize, |acc, l| acc.saturating_add(l.frames))
    }

    /// The error a request for an image gets when no entry is usable: the
    /// problem of the first entry that is not a thumbnail.
    fn no_image_error(&self) -> DataError {
        let first = self
            .images
            .iter()
            .find(|i| !matches!(i.problem, Some(Problem::Thumbnail) | None));
        match first {
            Some(DmImage {
                problem: Some(Problem::NotAnImage(_)),
                info,
                ..
            }) => DataError::NotAnImage {
                path: self.path.clone(),
                shape: info.shape.clone(),
            },
            Some(DmImage {
                problem: Some(Problem::Unsupported(r)),
                ..
            }) => unsupported(&self.path, DM_FORMAT, r),
            Some(DmImage {
                problem: Some(p), ..
            }) => malformed(&self.path, DM_FORMAT, p.reason()),
            _ => malformed(
                &self.path,
                DM_FORMAT,
                "the file holds no image (no ImageList entry besides thumbnails)",
            ),
        }
    }

    /// Reads frame `frame` (0-based, numbered as in [`DmFile::frame_count`])
    /// as an [`Image`] whose source is the path given at parsing.
    ///
    /// # Errors
    /// When no entry is usable, the first non-thumbnail entry's problem:
    /// [`DataError::NotAnImage`] (1-D, more than 3-D or empty data),
    /// [`DataError::Unsupported`] (complex data, unknown data type, spectrum
    /// images), [`DataError::Malformed`]. Otherwise
    /// [`DataError::NoSuchFrame`] when `frame` is past the last frame, and
    /// [`DataError::Io`] if reading the file fails.
    pub fn image(&mut self, frame: usize) -> Result<Image> {
        let total = self.frame_count();
        if total == 0 {
            return Err(self.no_image_error());
        }
        let mut k = frame;
        let mut found = None;
        for image in &self.images {
            let Some(l) = &image.layout else { continue };
            if k < l.frames {
                found = Some((l.clone(), image.info.pixel_size.clone()));
                break;
            }
            k -= l.frames;
        }
        let Some((l, pixel_size)) = found else {
            return Err(DataError::NoSuchFrame {
                path: self.path.clone(),
                frame,
                frames: total,
            });
        };
        let too_big = || malformed(&self.path, DM_FORMAT, "frame size overflows");
        let frame_bytes = (l.rows as u64)
            .checked_mul(l.cols as u64)
            .and_then(|n| n.checked_mul(l.kind.size()))
            .ok_or_else(too_big)?;
        let offset = frame_bytes
            .checked_mul(k as u64)
            .and_then(|o| o.checked_add(l.offset))
            .ok_or_else(too_big)?;
        let mut raw = vec![0_u8; usize::try_from(frame_bytes).map_err(|_| too_big())?];
        self.source
            .read_into(&self.path, offset, &mut raw, "pixel data")?;
        let values = convert(&self.path, l.kind, &raw, self.little_endian, l.cols)?;
        let pixels = Array2::from_shape_vec((l.rows, l.cols), values)
            .map_err(|e| malformed(&self.path, DM_FORMAT, e))?;
        Ok(Image {
            pixels,
            pixel_size,
            source: Some(self.path.clone()),
        })
    }
}

/// Converts raw pixels of `kind` to `f32` (integers exactly up to 2^24,
/// `f64` rounded to nearest, binary as 0 or 1, BGRA as the luminance of R, G,
/// B), row-major with `cols` columns.
///
/// # Errors
/// [`DataError::BeyondFloat32`] for a finite `f64` value too large for `f32`.
#[allow(clippy::cast_precision_loss)]
fn convert(
    path: &Path,
    kind: PixelKind,
    raw: &[u8],
    little: bool,
    cols: usize,
) -> Result<Vec<f32>> {
    fn each<const N: usize>(raw: &[u8], little: bool, f: impl Fn([u8; N]) -> f32) -> Vec<f32> {
        raw.chunks_exact(N)
            .filter_map(|c| ordered::<N>(c, little).map(&f))
            .collect()
    }
    if kind == PixelKind::F64 {
        let values = raw
            .chunks_exact(8)
            .filter_map(|c| ordered::<8>(c, little).map(f64::from_le_bytes));
        return narrow_pixels(path, values, cols);
    }
    Ok(match kind {
        PixelKind::U8 => raw.iter().map(|&b| f32::from(b)).collect(),
        PixelKind::I8 => raw.iter().map(|&b| f32::from(b.cast_signed())).collect(),
        PixelKind::Binary => raw.iter().map(|&b| f32::from(u8::from(b != 0))).collect(),
        PixelKind::I16 => each(raw, little, |b| f32::from(i16::from_le_bytes(b))),
        PixelKind::U16 => each(raw, little, |b| f32::from(u16::from_le_bytes(b))),
        PixelKind::I32 => each(raw, little, |b| i32::from_le_bytes(b) as f32),
        PixelKind::U32 => each(raw, little, |b| u32::from_le_bytes(b) as f32),
        PixelKind::F32 => each(raw, little, f32::from_le_bytes),
        // Decoded above.
        PixelKind::F64 => Vec::new(),
        // Byte order B, G, R, A whatever the file's byte order (RosettaSciIO).
        PixelKind::Bgra => raw
            .chunks_exact(4)
            .filter_map(|c| c.first_chunk::<4>())
            .map(|&[b, g, r, _a]| luminance(f64::from(r), f64::from(g), f64::from(b)))
            .collect(),
    })
}

/// Opens `path` as a [`DmFile`] read on demand.
fn open(path: &Path) -> Result<DmFile<'static>> {
    parse(Bounded::open(path, DM_FORMAT)?, path)
}

/// Reads one 2-D image from a DigitalMicrograph DM3 or DM4 file.
///
/// `frame` (default 0) numbers the usable 2-D frames of the file's
/// `ImageList` in order, a 3-D stack `[x, y, z]` counting as `z` frames of
/// `y` rows by `x` columns. Entries that are not usable and are skipped in
/// that numbering (but listed by [`list_dm`]):
/// - thumbnails: as RosettaSciIO decides, the entries whose position in
///   `ImageList` is an `ImageIndex` of the root `Thumbnails` group (usually
///   the first entry, a small RGBA preview); a file without `Thumbnails` has
///   none;
/// - 1-D data (spectra, profiles) and data of more than 3 dimensions;
/// - spectrum images and lines of spectra (`ImageTags/Meta Data/Format`
///   `"Spectrum image"` or `"Spectrum"`, or an `ImageTags/spim` group);
/// - complex data (`DataType` 3, 13, and the packed FFT types 5, 27, 28) and
///   unknown data types.
///
/// Pixels (`DataType`): 1 `int16`, 2 `float32`, 6 `uint8`, 7 `int32`,
/// 9 `int8`, 10 `uint16`, 11 `uint32`, 12 `float64`, 14 binary (0 or 1),
/// 8 and 23 RGB(A) stored as bytes B, G, R, A: the luminance
/// `0.2125 R + 0.7154 G + 0.0721 B`, alpha ignored. Values become `f32`
/// (integers exactly up to 2^24, others rounded to nearest), in the byte order
/// the header gives (RosettaSciIO reads pixels in the machine's byte order
/// whatever the header says; the two agree on the little-endian files that
/// DigitalMicrograph writes on PCs).
///
/// Pixel size: `Calibrations/Dimension` 0 (`Scale`, `Units`) along x and 1
/// along y, converted to nm (`nm`, `µm`/`um`, `Å`, `pm`, `mm`, `m`, ...); a
/// non-length unit (e.g. `1/nm`), a missing or empty unit (DM's uncalibrated
/// `Scale` 1) or a non-positive scale gives none.
///
/// # Errors
/// [`DataError::Io`]; [`DataError::Malformed`] (see [`parse_dm`], or pixel
/// data shorter than the dimensions need); [`DataError::NotAnImage`] and
/// [`DataError::Unsupported`] when the file holds no usable image (the first
/// entry's reason, e.g. a complex image); [`DataError::NoSuchFrame`].
pub fn read_dm(path: &Path, frame: Option<usize>) -> Result<Image> {
    open(path)?.image(frame.unwrap_or(0))
}

/// Lists the entries of a DigitalMicrograph file's `ImageList`, thumbnails
/// and unusable entries included (see [`DmFile::images`] and [`read_dm`]).
///
/// # Errors
/// [`DataError::Io`]; [`DataError::Malformed`] (see [`parse_dm`]).
pub fn list_dm(path: &Path) -> Result<Vec<ImageInfo>> {
    Ok(open(path)?.images())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tag of a DM file built in a test.
    enum T {
        Group(Vec<(&'static str, T)>),
        /// A scalar: encoded type and its bytes in the file's byte order.
        Scalar(u64, Vec<u8>),
        /// An array of a simple type: element code, count, bytes.
        Array(u64, u64, Vec<u8>),
        /// Raw info-array words and value bytes.
        Raw(Vec<u64>, Vec<u8>),
    }

    /// Builds DM3/DM4 files.
    struct Builder {
        dm4: bool,
        little: bool,
    }

    impl Builder {
        fn word(&self, out: &mut Vec<u8>, w: u64) {
            if self.dm4 {
                out.extend_from_slice(&w.to_be_bytes());
            } else {
                out.extend_from_slice(&(w as u32).to_be_bytes());
            }
        }

        fn u32(&self, v: u32) -> T {
            let b = if self.little {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            };
            T::Scalar(enc::ULONG, b.to_vec())
        }

        fn f32(&self, v: f32) -> T {
            let b = if self.little {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            };
            T::Scalar(enc::FLOAT, b.to_vec())
        }

        fn utf16(&self, s: &str) -> T {
            let units: Vec<u16> = s.encode_utf16().collect();
            let bytes = units
                .iter()
                .flat_map(|u| {
                    if self.little {
                        u.to_le_bytes()
                    } else {
                        u.to_be_bytes()
                    }
                })
                .collect();
            T::Array(enc::USHORT, units.len() as u64, bytes)
        }

        fn group_body(&self, out: &mut Vec<u8>, entries: &[(&str, T)]) {
            out.extend_from_slice(&[0, 1]);
            self.word(out, entries.len() as u64);
            for (name, t) in entries {
                self.entry(out, name, t);
            }
        }

        fn entry(&self, out: &mut Vec<u8>, name: &str, t: &T) {
            let mut body = Vec::new();
            let kind = match t {
                T::Group(g) => {
                    self.group_body(&mut body, g);
                    ENTRY_GROUP
                }
                T::Scalar(code, b) => {
                    self.data_body(&mut body, &[*code], b);
                    ENTRY_DATA
                }
                T::Array(code, n, b) => {
                    self.data_body(&mut body, &[enc::ARRAY, *code, *n], b);
                    ENTRY_DATA
                }
                T::Raw(words, b) => {
                    self.data_body(&mut body, words, b);
                    ENTRY_DATA
                }
            };
            out.push(kind);
            out.extend_from_slice(&(name.len() as u16).to_be_bytes());
            out.extend_from_slice(name.as_bytes());
            if self.dm4 {
                out.extend_from_slice(&(body.len() as u64).to_be_bytes());
            }
            out.extend_from_slice(&body);
        }

        fn data_body(&self, out: &mut Vec<u8>, words: &[u64], b: &[u8]) {
            out.extend_from_slice(DATA_DELIMITER);
            self.word(out, words.len() as u64);
            for &w in words {
                self.word(out, w);
            }
            out.extend_from_slice(b);
        }

        fn file(&self, root: &[(&str, T)]) -> Vec<u8> {
            let mut body = Vec::new();
            self.group_body(&mut body, root);
            let mut out = Vec::new();
            out.extend_from_slice(&(if self.dm4 { 4_u32 } else { 3 }).to_be_bytes());
            self.word(&mut out, body.len() as u64);
            out.extend_from_slice(&u32::from(self.little).to_be_bytes());
            out.extend_from_slice(&body);
            out
        }

        /// An `ImageList` entry.
        fn image(
            &self,
            name: &str,
            data_type: u32,
            dims: &[u32],
            data: T,
            calib: &[(f32, &str)],
        ) -> T {
            let dims = dims.iter().map(|&d| ("", self.u32(d))).collect();
            let calib = calib
                .iter()
                .map(|&(scale, unit)| {
                    (
                        "",
                        T::Group(vec![
                            ("Origin", self.f32(0.0)),
                            ("Scale", self.f32(scale)),
                            ("Units", self.utf16(unit)),
                        ]),
                    )
                })
                .collect();
            T::Group(vec![
                (
                    "ImageData",
                    T::Group(vec![
                        (
                            "Calibrations",
                            T::Group(vec![("Dimension", T::Group(calib))]),
                        ),
                        ("Data", data),
                        ("DataType", self.u32(data_type)),
                        ("Dimensions", T::Group(dims)),
                        ("PixelDepth", self.u32(2)),
                    ]),
                ),
                ("ImageTags", T::Group(vec![])),
                ("Name", self.utf16(name)),
            ])
        }
    }

    const LE3: Builder = Builder {
        dm4: false,
        little: true,
    };
    const BE4: Builder = Builder {
        dm4: true,
        little: false,
    };

    fn p() -> &'static Path {
        Path::new("t.dm3")
    }

    /// A 2 x 3 int16 DM3 file with a thumbnail: values 1..6 then -7 at the
    /// last pixel, 0.5 nm x 2 Å calibration.
    fn small_dm3() -> Vec<u8> {
        let b = &LE3;
        let pixels: Vec<u8> = [1_i16, 2, 3, 4, 5, -7]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let thumb = b.image(
            "Image Of x",
            23,
            &[1, 1],
            T::Array(enc::ULONG, 1, vec![10, 20, 30, 255]),
            &[],
        );
        let img = b.image(
            "HAADF",
            1,
            &[3, 2],
            T::Array(enc::SHORT, 6, pixels),
            &[(0.5, "nm"), (2.0, "\u{c5}")],
        );
        b.file(&[
            ("ImageList", T::Group(vec![("", thumb), ("", img)])),
            (
                "Thumbnails",
                T::Group(vec![("", T::Group(vec![("ImageIndex", b.u32(0))]))]),
            ),
        ])
    }

    #[test]
    fn reads_a_small_dm3() {
        let bytes = small_dm3();
        let mut f = parse_dm(&bytes, p()).unwrap();
        assert_eq!(f.version(), 3);
        assert!(f.little_endian());
        let list = f.images();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].dtype, "rgba8");
        assert!(list[0].unusable.as_deref().unwrap().contains("thumbnail"));
        assert_eq!(list[1].name.as_deref(), Some("HAADF"));
        assert_eq!(list[1].shape, vec![2, 3]);
        assert_eq!(list[1].dtype, "int16");
        assert_eq!(list[1].unusable, None);
        assert_eq!(f.frame_count(), 1);
        let img = f.image(0).unwrap();
        assert_eq!(
            img.pixels,
            ndarray::array![[1.0_f32, 2.0, 3.0], [4.0, 5.0, -7.0]]
        );
        // 0.5 nm along x; 2 Å = 0.2 nm along y.
        let ps = img.pixel_size.unwrap();
        assert_eq!(ps.unit, "nm");
        assert!((ps.x - 0.5).abs() < 1e-12);
        assert!((ps.y - 0.2).abs() < 1e-7);
        assert_eq!(img.source.as_deref(), Some(p()));
        assert!(matches!(
            f.image(1),
            Err(DataError::NoSuchFrame {
                frame: 1,
                frames: 1,
                ..
            })
        ));
    }

    #[test]
    fn reads_files_through_the_path_api() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.dm3");
        std::fs::write(&path, small_dm3()).unwrap();
        let img = read_dm(&path, None).unwrap();
        assert_eq!(img.pixels[[1, 2]], -7.0);
        assert_eq!(list_dm(&path).unwrap().len(), 2);
        let err = read_dm(&path, Some(3)).unwrap_err();
        assert!(err.to_string().contains(&path.display().to_string()));
        assert!(matches!(
            read_dm(&dir.path().join("missing.dm3"), None),
            Err(DataError::Io { .. })
        ));
    }

    #[test]
    fn big_endian_dm4_stack_and_units() {
        let b = &BE4;
        // 3-D [x=2, y=1, z=3] float32, big-endian: frames [0, 1], [2, 3], [4, 5.5].
        let pixels: Vec<u8> = [0.0_f32, 1.0, 2.0, 3.0, 4.0, 5.5]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        let img = b.image(
            "stack",
            2,
            &[2, 1, 3],
            T::Array(enc::FLOAT, 6, pixels),
            &[(0.25, "\u{b5}m"), (0.5, "um"), (1.0, "s")],
        );
        let bytes = b.file(&[("ImageList", T::Group(vec![("", img)]))]);
        let mut f = parse_dm(&bytes, p()).unwrap();
        assert_eq!(f.version(), 4);
        assert!(!f.little_endian());
        assert_eq!(f.images()[0].shape, vec![3, 1, 2]);
        assert_eq!(f.frame_count(), 3);
        let third = f.image(2).unwrap();
        assert_eq!(third.pixels, ndarray::array![[4.0_f32, 5.5]]);
        // 0.25 µm = 250 nm, 0.5 um = 500 nm.
        let ps = third.pixel_size.unwrap();
        assert_eq!((ps.x, ps.y), (250.0, 500.0));
        assert!(matches!(
            f.image(3),
            Err(DataError::NoSuchFrame { frames: 3, .. })
        ));
    }

    #[test]
    fn float64_beyond_the_float32_range_is_refused() {
        // 2 rows x 3 cols ([x=3, y=2]) float64, both byte orders; row-major,
        // so element 4 is (row 1, col 1).
        for b in [&LE3, &BE4] {
            let one = |v: [f64; 6]| {
                let pixels: Vec<u8> = v
                    .iter()
                    .flat_map(|x| {
                        if b.little {
                            x.to_le_bytes()
                        } else {
                            x.to_be_bytes()
                        }
                    })
                    .collect();
                let img = b.image("d", 12, &[3, 2], T::Array(enc::DOUBLE, 6, pixels), &[]);
                let bytes = b.file(&[("ImageList", T::Group(vec![("", img)]))]);
                parse_dm(&bytes, p()).unwrap().image(0)
            };
            let err = one([0.0, 0.0, 0.0, 0.0, -3.5e38, 1e300]).unwrap_err();
            assert!(
                matches!(err, DataError::BeyondFloat32 { row: 1, col: 1, value, .. } if value == -3.5e38),
                "{err}"
            );
            let max = f64::from(f32::MAX);
            let img = one([max, 0.5, 0.0, 0.0, 0.0, 0.0]).unwrap();
            assert_eq!(img.pixels[(0, 0)], f32::MAX);
            assert_eq!(img.pixels[(0, 1)], 0.5);
        }
    }

    #[test]
    fn rgba_becomes_luminance_and_binary_is_0_or_1() {
        let b = &LE3;
        // B, G, R, A = 10, 20, 30, 255.
        let rgba = b.image(
            "rgb",
            23,
            &[1, 1],
            T::Array(enc::ULONG, 1, vec![10, 20, 30, 255]),
            &[],
        );
        let bin = b.image("bin", 14, &[2, 1], T::Array(enc::OCTET, 2, vec![0, 5]), &[]);
        let bytes = b.file(&[("ImageList", T::Group(vec![("", rgba), ("", bin)]))]);
        let mut f = parse_dm(&bytes, p()).unwrap();
        let y = f.image(0).unwrap().pixels[[0, 0]];
        let expected = (0.2125 * 30.0 + 0.7154 * 20.0 + 0.0721 * 10.0) as f32;
        assert_eq!(y, expected);
        assert!(f.image(0).unwrap().pixel_size.is_none());
        assert_eq!(f.image(1).unwrap().pixels, ndarray::array![[0.0_f32, 1.0]]);
    }

    #[test]
    fn unusable_entries_give_typed_errors() {
        let b = &LE3;
        let one_d = b.image("spec", 2, &[2], T::Array(enc::FLOAT, 2, vec![0; 8]), &[]);
        let bytes = b.file(&[("ImageList", T::Group(vec![("", one_d)]))]);
        let mut f = parse_dm(&bytes, p()).unwrap();
        assert!(f.images()[0].unusable.as_deref().unwrap().contains("1-D"));
        assert!(matches!(
            f.image(0),
            Err(DataError::NotAnImage { ref shape, .. }) if shape == &vec![2]
        ));

        let complex = b.image("fft", 3, &[1, 1], T::Array(enc::FLOAT, 2, vec![0; 8]), &[]);
        let bytes = b.file(&[("ImageList", T::Group(vec![("", complex)]))]);
        let err = parse_dm(&bytes, p()).unwrap().image(0).unwrap_err();
        assert!(matches!(err, DataError::Unsupported { .. }));
        let msg = err.to_string();
        assert!(msg.contains("complex") && msg.contains("modulus"), "{msg}");

        let four_d = b.image(
            "4d",
            6,
            &[1, 1, 1, 1],
            T::Array(enc::OCTET, 1, vec![0]),
            &[],
        );
        let bytes = b.file(&[("ImageList", T::Group(vec![("", four_d)]))]);
        assert!(matches!(
            parse_dm(&bytes, p()).unwrap().image(0),
            Err(DataError::NotAnImage { .. })
        ));

        // Dimensions that need more bytes than Data holds.
        let short = b.image("s", 10, &[4, 4], T::Array(enc::USHORT, 2, vec![0; 4]), &[]);
        let bytes = b.file(&[("ImageList", T::Group(vec![("", short)]))]);
        assert!(matches!(
            parse_dm(&bytes, p()).unwrap().image(0),
            Err(DataError::Malformed { .. })
        ));

        // No ImageList at all.
        let bytes = b.file(&[("Other", b.u32(1))]);
        assert!(matches!(
            parse_dm(&bytes, p()).unwrap().image(0),
            Err(DataError::Malformed { .. })
        ));
    }

    #[test]
    fn non_length_units_give_no_pixel_size() {
        let b = &LE3;
        let img = b.image(
            "dp",
            6,
            &[1, 1],
            T::Array(enc::OCTET, 1, vec![7]),
            &[(0.1, "1/nm"), (0.1, "1/nm")],
        );
        let bytes = b.file(&[("ImageList", T::Group(vec![("", img)]))]);
        let mut f = parse_dm(&bytes, p()).unwrap();
        assert_eq!(f.images()[0].pixel_size, None);
        assert_eq!(f.image(0).unwrap().pixels[[0, 0]], 7.0);
    }

    #[test]
    fn header_checks() {
        assert!(is_dm_header(&small_dm3()));
        assert!(is_dm_header(&BE4.file(&[])));
        assert!(!is_dm_header(b"\0\0\0\x03\0\0\0\0\0\0\0\x02"));
        assert!(!is_dm_header(b"II*\0"));
        for bad in [
            &b"\0\0\0\x05\0\0\0\0\0\0\0\x01"[..],
            b"",
            b"\0\0\0\x03\0\0\0\0\0\0\0\x07",
        ] {
            assert!(matches!(
                parse_dm(bad, p()),
                Err(DataError::Malformed { .. })
            ));
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        for bytes in [small_dm3(), {
            let b = &BE4;
            let img = b.image("x", 6, &[1, 1], T::Array(enc::OCTET, 1, vec![7]), &[]);
            b.file(&[("ImageList", T::Group(vec![("", img)]))])
        }] {
            for n in 0..bytes.len() {
                assert!(parse_dm(&bytes[..n], p()).is_err(), "prefix {n} parsed");
            }
            assert!(parse_dm(&bytes, p()).is_ok());
        }
    }

    #[test]
    fn absurd_sizes_fail_fast() {
        let b = &LE3;
        // Info array of 2^32 - 1 words.
        let mut bytes = b.file(&[("x", b.u32(1))]);
        let at = bytes.windows(4).position(|w| w == DATA_DELIMITER).unwrap() + 4;
        bytes[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            parse_dm(&bytes, p()),
            Err(DataError::Malformed { .. })
        ));
        // An array of 2^63 u64 elements (DM4): the size overflows.
        let bytes = BE4.file(&[(
            "a",
            T::Raw(vec![enc::ARRAY, enc::ULONG_LONG, 1 << 63], vec![]),
        )]);
        assert!(matches!(
            parse_dm(&bytes, p()),
            Err(DataError::Malformed { .. })
        ));
        // An array of 2^40 bytes: larger than the file.
        let bytes = BE4.file(&[("a", T::Raw(vec![enc::ARRAY, enc::OCTET, 1 << 40], vec![]))]);
        assert!(matches!(
            parse_dm(&bytes, p()),
            Err(DataError::Malformed { .. })
        ));
        // A root group claiming 2^64 - 1 entries.
        let mut bytes = BE4.file(&[]);
        let n = bytes.len();
        bytes[n - 8..].copy_from_slice(&u64::MAX.to_be_bytes());
        assert!(matches!(
            parse_dm(&bytes, p()),
            Err(DataError::Malformed { .. })
        ));
        // Unknown encoded type, struct running past the info array.
        for words in [
            vec![99],
            vec![enc::STRUCT, 0, 3, 0, enc::LONG],
            vec![enc::ARRAY],
        ] {
            let bytes = b.file(&[("a", T::Raw(words, vec![0; 16]))]);
            assert!(matches!(
                parse_dm(&bytes, p()),
                Err(DataError::Malformed { .. })
            ));
        }
        // Wrong delimiter, unknown entry kind.
        let mut bytes = b.file(&[("x", b.u32(1))]);
        let at = bytes.windows(4).position(|w| w == DATA_DELIMITER).unwrap();
        bytes[at] = b'#';
        assert!(matches!(
            parse_dm(&bytes, p()),
            Err(DataError::Malformed { .. })
        ));
        let mut bytes = b.file(&[("x", b.u32(1))]);
        bytes[18] = 7;
        assert!(matches!(
            parse_dm(&bytes, p()),
            Err(DataError::Malformed { .. })
        ));
    }

    #[test]
    fn structs_strings_and_nested_arrays_are_skipped() {
        let b = &LE3;
        let structure = T::Raw(
            vec![enc::STRUCT, 0, 2, 0, enc::LONG, 0, enc::DOUBLE],
            vec![0; 12],
        );
        let strings = T::Raw(vec![enc::ARRAY, enc::STRING, 3, 2], b"abcdef".to_vec());
        let nested = T::Raw(vec![enc::ARRAY, enc::ARRAY, enc::SHORT, 2, 3], vec![0; 12]);
        let text = T::Raw(vec![enc::STRING, 2], b"hi".to_vec());
        let img = b.image("x", 9, &[1, 1], T::Array(enc::CHAR, 1, vec![0xff]), &[]);
        let bytes = b.file(&[
            ("s", structure),
            ("t", strings),
            ("n", nested),
            ("u", text),
            ("ImageList", T::Group(vec![("", img)])),
        ]);
        let mut f = parse_dm(&bytes, p()).unwrap();
        assert_eq!(f.image(0).unwrap().pixels[[0, 0]], -1.0);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let b = &LE3;
        let mut t = T::Group(vec![]);
        for _ in 0..=MAX_GROUP_DEPTH {
            t = T::Group(vec![("g", t)]);
        }
        let bytes = b.file(&[("g", t)]);
        let err = parse_dm(&bytes, p()).unwrap_err();
        assert!(err.to_string().contains("nested"), "{err}");
        // Types nested deeper than the limit.
        let mut words = vec![enc::ARRAY; MAX_TYPE_DEPTH + 2];
        words.push(enc::OCTET);
        words.extend(std::iter::repeat_n(0, MAX_TYPE_DEPTH + 2));
        let bytes = b.file(&[("a", T::Raw(words, vec![]))]);
        let err = parse_dm(&bytes, p()).unwrap_err();
        assert!(err.to_string().contains("nested"), "{err}");
    }

    #[test]
    fn random_and_corrupted_bytes_never_panic() {
        // xorshift64: deterministic pseudo-random bytes.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let base = small_dm3();
        for round in 0..3000 {
            let mut bytes = base.clone();
            if round % 3 == 0 {
                bytes = (0..(next() % 300)).map(|_| next() as u8).collect();
                if round % 2 == 0 && bytes.len() >= 16 {
                    bytes[..4].copy_from_slice(&3_u32.to_be_bytes());
                    bytes[8..12].copy_from_slice(&1_u32.to_be_bytes());
                }
            } else {
                for _ in 0..(1 + next() % 4) {
                    let i = (next() as usize) % bytes.len();
                    bytes[i] = next() as u8;
                }
            }
            if let Ok(mut f) = parse_dm(&bytes, p()) {
                let _ = f.images();
                for k in 0..f.frame_count().min(8) {
                    let _ = f.image(k);
                }
            }
        }
    }
}
