//! NumPy `.npy` reading and writing (format versions 1.0, 2.0 and 3.0).
//!
//! Reference: NumPy Enhancement Proposal 1 and `numpy/lib/format.py`: the file
//! is the magic `\x93NUMPY`, a version `(major, minor)`, the header length
//! (`u16` little-endian for 1.0, `u32` for 2.0/3.0), a Python dict literal
//! `{'descr': ..., 'fortran_order': ..., 'shape': (...), }` padded with spaces
//! and a newline so that the data starts on a multiple of 64 bytes, then the raw
//! elements.

use super::util::{file_len, io_error, malformed, narrow_pixels, unsupported};
use crate::atomic::write_atomic;
use crate::{DataError, Image, Result};
use ndarray::{ArrayD, ArrayView2, ArrayView3, IxDyn, ShapeBuilder};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

const FORMAT: &str = "NPY";
const MAGIC: &[u8] = b"\x93NUMPY";
/// Magic, version and the longest (4-byte) header-length field.
const PREAMBLE_V1: usize = 10;
const PREAMBLE_V2: usize = 12;
/// Largest header accepted (NumPy itself refuses headers over 10 000 bytes by
/// default; this leaves room for long shapes yet bounds the allocation).
const MAX_HEADER_LEN: usize = 1 << 20;
/// Nesting depth allowed in the header literal (a structured dtype nests lists
/// of tuples; deeper nesting is refused rather than recursed into).
const MAX_LITERAL_DEPTH: usize = 32;
/// Alignment of the data start required by NPY 1.0 since NumPy 1.14.
const ARRAY_ALIGN: usize = 64;

/// Element types the reader converts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    F32,
    F64,
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
}

impl Kind {
    fn size(self) -> usize {
        match self {
            Kind::U8 | Kind::I8 => 1,
            Kind::U16 | Kind::I16 => 2,
            Kind::F32 | Kind::U32 | Kind::I32 => 4,
            Kind::F64 | Kind::U64 | Kind::I64 => 8,
        }
    }
}

impl Kind {
    /// numpy's name of the element type.
    fn numpy_name(self) -> &'static str {
        match self {
            Kind::F32 => "float32",
            Kind::F64 => "float64",
            Kind::U8 => "uint8",
            Kind::U16 => "uint16",
            Kind::U32 => "uint32",
            Kind::U64 => "uint64",
            Kind::I8 => "int8",
            Kind::I16 => "int16",
            Kind::I32 => "int32",
            Kind::I64 => "int64",
        }
    }
}

/// Shape and numpy element type of an NPY file, from its header alone.
pub(crate) fn shape_and_dtype(path: &Path) -> Result<(Vec<usize>, String)> {
    let mut file = File::open(path).map_err(|e| io_error(path, e))?;
    let h = read_header(path, &mut file)?;
    Ok((h.shape, h.dtype.kind.numpy_name().to_owned()))
}

/// A parsed `descr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Dtype {
    kind: Kind,
    big_endian: bool,
}

/// Parses a simple `descr` string such as `'<f4'`, `'>i2'` or `'|u1'`.
/// Returns `Err(reason)` naming the dtype when it is not a supported numeric type.
fn parse_descr(descr: &str) -> std::result::Result<Dtype, String> {
    let (order, rest) = match descr.chars().next() {
        Some(c @ ('<' | '>' | '|' | '=')) => (c, &descr[1..]),
        _ => ('=', descr),
    };
    let big_endian = match order {
        '>' => true,
        '<' | '|' => false,
        _ => cfg!(target_endian = "big"),
    };
    let kind = match rest {
        "f4" => Kind::F32,
        "f8" => Kind::F64,
        "u1" | "B" => Kind::U8,
        "u2" => Kind::U16,
        "u4" => Kind::U32,
        "u8" => Kind::U64,
        "i1" | "b" => Kind::I8,
        "i2" => Kind::I16,
        "i4" => Kind::I32,
        "i8" => Kind::I64,
        _ => {
            let what = match rest.chars().next() {
                Some('b' | '?') => "boolean",
                Some('c') => "complex",
                Some('O') => "Python object",
                Some('U' | 'S' | 'a') => "string",
                Some('V') => "void/raw",
                Some('M' | 'm') => "datetime/timedelta",
                Some('f') => "floating-point of this size",
                Some('i' | 'u') => "integer of this size",
                _ => "unknown",
            };
            return Err(format!(
                "dtype '{descr}' ({what}) is not supported; expected f4, f8, u1, u2, u4, u8, i1, i2, i4 or i8"
            ));
        }
    };
    Ok(Dtype { kind, big_endian })
}

/// A value of the header's Python literal.
#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Str(String),
    Bool(bool),
    Int(u64),
    Tuple(Vec<Literal>),
    List(Vec<Literal>),
    Dict(Vec<(String, Literal)>),
    None,
}

/// A small recursive-descent parser for the Python literals NumPy writes in
/// NPY headers (dicts, strings, booleans, non-negative integers, tuples, lists).
struct LiteralParser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> LiteralParser<'a> {
    fn new(s: &'a str) -> Self {
        Self {
            s: s.as_bytes(),
            pos: 0,
        }
    }

    fn skip_ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.pos).copied()
    }

    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!(
                "expected '{}' at byte {} of the header",
                c as char, self.pos
            ))
        }
    }

    fn value(&mut self, depth: usize) -> std::result::Result<Literal, String> {
        if depth > MAX_LITERAL_DEPTH {
            return Err("header literal nested too deeply".to_owned());
        }
        match self.peek() {
            Some(b'\'' | b'"') => self.string().map(Literal::Str),
            Some(b'{') => self.dict(depth),
            Some(b'(') => self.sequence(b'(', b')', depth).map(Literal::Tuple),
            Some(b'[') => self.sequence(b'[', b']', depth).map(Literal::List),
            Some(c) if c.is_ascii_digit() => self.int(),
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.pos;
                while self.pos < self.s.len() && self.s[self.pos].is_ascii_alphanumeric() {
                    self.pos += 1;
                }
                match &self.s[start..self.pos] {
                    b"True" => Ok(Literal::Bool(true)),
                    b"False" => Ok(Literal::Bool(false)),
                    b"None" => Ok(Literal::None),
                    w => Err(format!(
                        "unexpected word '{}' in the header",
                        String::from_utf8_lossy(w)
                    )),
                }
            }
            Some(c) => Err(format!(
                "unexpected character '{}' at byte {} of the header",
                c.escape_ascii(),
                self.pos
            )),
            None => Err("header ends early".to_owned()),
        }
    }

    fn string(&mut self) -> std::result::Result<String, String> {
        let Some(quote) = self.peek() else {
            return Err("header ends early".to_owned());
        };
        self.pos += 1;
        let start = self.pos;
        while self.pos < self.s.len() && self.s[self.pos] != quote {
            if self.s[self.pos] == b'\\' {
                self.pos += 1;
            }
            self.pos += 1;
        }
        if self.pos >= self.s.len() {
            return Err("unterminated string in the header".to_owned());
        }
        let text = String::from_utf8_lossy(&self.s[start..self.pos]).into_owned();
        self.pos += 1;
        Ok(text)
    }

    fn int(&mut self) -> std::result::Result<Literal, String> {
        let start = self.pos;
        let mut v: u64 = 0;
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_digit() {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(self.s[self.pos] - b'0')))
                .ok_or_else(|| {
                    format!("integer at byte {start} of the header overflows 64 bits")
                })?;
            self.pos += 1;
        }
        // Python 2 long suffix, written by very old NumPy versions.
        if self.pos < self.s.len() && matches!(self.s[self.pos], b'L' | b'l') {
            self.pos += 1;
        }
        Ok(Literal::Int(v))
    }

    fn sequence(
        &mut self,
        open: u8,
        close: u8,
        depth: usize,
    ) -> std::result::Result<Vec<Literal>, String> {
        self.expect(open)?;
        let mut items = Vec::new();
        loop {
            if self.peek() == Some(close) {
                self.pos += 1;
                return Ok(items);
            }
            items.push(self.value(depth + 1)?);
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(c) if c == close => {}
                _ => return Err(format!("expected ',' or '{}' in the header", close as char)),
            }
        }
    }

    fn dict(&mut self, depth: usize) -> std::result::Result<Literal, String> {
        self.expect(b'{')?;
        let mut items = Vec::new();
        loop {
            if self.peek() == Some(b'}') {
                self.pos += 1;
                return Ok(Literal::Dict(items));
            }
            let key = self.string()?;
            self.expect(b':')?;
            let v = self.value(depth + 1)?;
            items.push((key, v));
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {}
                _ => return Err("expected ',' or '}' in the header dict".to_owned()),
            }
        }
    }
}

/// The parsed NPY header.
#[derive(Debug)]
struct Header {
    dtype: Dtype,
    fortran_order: bool,
    shape: Vec<usize>,
    /// Byte offset of the first element.
    data_offset: u64,
    /// Number of data bytes the header implies (`prod(shape) * itemsize`).
    data_len: u64,
}

/// Reads and validates the preamble and header of an open NPY file, checking
/// the declared data size against the actual file length before anything is
/// allocated for the data.
fn read_header(path: &Path, file: &mut File) -> Result<Header> {
    let total = file_len(path, file)?;
    let mut pre = [0_u8; PREAMBLE_V2];
    let got = read_up_to(path, file, &mut pre)?;
    if got < MAGIC.len() || &pre[..MAGIC.len()] != MAGIC {
        return Err(malformed(
            path,
            FORMAT,
            "missing the NPY magic \\x93NUMPY at the start of the file",
        ));
    }
    if got < PREAMBLE_V1 {
        return Err(malformed(
            path,
            FORMAT,
            "truncated before the header length",
        ));
    }
    let (major, minor) = (pre[6], pre[7]);
    let (header_len, preamble) = match major {
        1 => (
            usize::from(u16::from_le_bytes([pre[8], pre[9]])),
            PREAMBLE_V1,
        ),
        2 | 3 => {
            if got < PREAMBLE_V2 {
                return Err(malformed(
                    path,
                    FORMAT,
                    "truncated before the header length",
                ));
            }
            let n = u32::from_le_bytes([pre[8], pre[9], pre[10], pre[11]]);
            (usize::try_from(n).unwrap_or(usize::MAX), PREAMBLE_V2)
        }
        _ => {
            return Err(unsupported(
                path,
                FORMAT,
                format!("format version {major}.{minor} (expected 1.0, 2.0 or 3.0)"),
            ));
        }
    };
    if header_len > MAX_HEADER_LEN {
        return Err(malformed(
            path,
            FORMAT,
            format!("header length {header_len} bytes exceeds the {MAX_HEADER_LEN}-byte limit"),
        ));
    }
    let data_offset = (preamble + header_len) as u64;
    if data_offset > total {
        return Err(malformed(
            path,
            FORMAT,
            format!(
                "truncated: header of {header_len} bytes announced, file is only {total} bytes long"
            ),
        ));
    }
    file.seek(SeekFrom::Start(preamble as u64))
        .map_err(|e| io_error(path, e))?;
    let mut raw = vec![0_u8; header_len];
    file.read_exact(&mut raw).map_err(|e| io_error(path, e))?;
    let text = if major == 3 {
        String::from_utf8(raw).map_err(|_| malformed(path, FORMAT, "header is not UTF-8"))?
    } else {
        // Versions 1 and 2 store the header in latin-1.
        raw.iter().map(|&b| char::from(b)).collect()
    };
    let mut parser = LiteralParser::new(&text);
    let lit = parser
        .value(0)
        .map_err(|r| malformed(path, FORMAT, format!("bad header: {r}")))?;
    let Literal::Dict(items) = lit else {
        return Err(malformed(path, FORMAT, "header is not a dict literal"));
    };
    let get = |key: &str| items.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    let descr = match get("descr") {
        Some(Literal::Str(s)) => s.clone(),
        Some(Literal::List(_)) => {
            return Err(unsupported(
                path,
                FORMAT,
                "structured dtype (a list 'descr') is not supported",
            ));
        }
        _ => return Err(malformed(path, FORMAT, "header has no string 'descr'")),
    };
    let dtype = parse_descr(&descr).map_err(|r| unsupported(path, FORMAT, r))?;
    let fortran_order = match get("fortran_order") {
        Some(Literal::Bool(b)) => *b,
        _ => {
            return Err(malformed(
                path,
                FORMAT,
                "header has no boolean 'fortran_order'",
            ));
        }
    };
    let shape = match get("shape") {
        Some(Literal::Tuple(dims)) => dims
            .iter()
            .map(|d| match d {
                Literal::Int(n) => usize::try_from(*n).ok(),
                _ => None,
            })
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| malformed(path, FORMAT, "'shape' holds a non-integer"))?,
        _ => return Err(malformed(path, FORMAT, "header has no tuple 'shape'")),
    };
    let count = shape
        .iter()
        .try_fold(1_u64, |acc, &d| acc.checked_mul(d as u64));
    let data_len = count.and_then(|c| c.checked_mul(dtype.kind.size() as u64));
    let Some(data_len) = data_len else {
        return Err(malformed(
            path,
            FORMAT,
            format!("shape {shape:?} of '{descr}' overflows 64-bit byte counts"),
        ));
    };
    let available = total - data_offset;
    if available != data_len {
        let what = if available < data_len {
            "truncated"
        } else {
            "trailing bytes"
        };
        return Err(malformed(
            path,
            FORMAT,
            format!(
                "{what}: shape {shape:?} of '{descr}' needs {data_len} data bytes, the file holds {available}"
            ),
        ));
    }
    Ok(Header {
        dtype,
        fortran_order,
        shape,
        data_offset,
        data_len,
    })
}

/// Reads as many bytes as available into `buf`; returns the count.
fn read_up_to(path: &Path, file: &mut File, buf: &mut [u8]) -> Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error(path, e)),
        }
    }
    Ok(got)
}

/// Output element types of the converters.
trait Elem: Copy {
    fn from_f32(v: f32) -> Self;
    fn from_f64(v: f64) -> Self;
    fn from_i64(v: i64) -> Self;
    fn from_u64(v: u64) -> Self;
}

#[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
impl Elem for f32 {
    fn from_f32(v: f32) -> Self {
        v
    }
    // `read_npy` narrows float64 data with `narrow_pixels` instead, which
    // refuses values beyond the f32 range.
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn from_i64(v: i64) -> Self {
        v as f32
    }
    fn from_u64(v: u64) -> Self {
        v as f32
    }
}

#[allow(clippy::cast_precision_loss)]
impl Elem for f64 {
    fn from_f32(v: f32) -> Self {
        f64::from(v)
    }
    fn from_f64(v: f64) -> Self {
        v
    }
    fn from_i64(v: i64) -> Self {
        v as f64
    }
    fn from_u64(v: u64) -> Self {
        v as f64
    }
}

/// Converts the elements `start, start + stride, ...` (`count` of them) of the
/// raw little/big-endian `bytes` to `O`.
fn convert<O: Elem>(
    bytes: &[u8],
    dtype: Dtype,
    start: usize,
    stride: usize,
    count: usize,
) -> Vec<O> {
    macro_rules! conv {
        ($t:ty, $n:expr, $f:expr) => {{
            let mut out = Vec::with_capacity(count);
            for k in 0..count {
                let off = (start + k * stride) * $n;
                let mut b = [0_u8; $n];
                b.copy_from_slice(&bytes[off..off + $n]);
                let v = if dtype.big_endian {
                    <$t>::from_be_bytes(b)
                } else {
                    <$t>::from_le_bytes(b)
                };
                out.push($f(v));
            }
            out
        }};
    }
    match dtype.kind {
        Kind::F32 => conv!(f32, 4, O::from_f32),
        Kind::F64 => conv!(f64, 8, O::from_f64),
        Kind::U8 => conv!(u8, 1, |v: u8| O::from_u64(u64::from(v))),
        Kind::U16 => conv!(u16, 2, |v: u16| O::from_u64(u64::from(v))),
        Kind::U32 => conv!(u32, 4, |v: u32| O::from_u64(u64::from(v))),
        Kind::U64 => conv!(u64, 8, O::from_u64),
        Kind::I8 => conv!(i8, 1, |v: i8| O::from_i64(i64::from(v))),
        Kind::I16 => conv!(i16, 2, |v: i16| O::from_i64(i64::from(v))),
        Kind::I32 => conv!(i32, 4, |v: i32| O::from_i64(i64::from(v))),
        Kind::I64 => conv!(i64, 8, O::from_i64),
    }
}

/// Reads `len` bytes at `offset` of `file` (the length was checked against the
/// file size, so the allocation is bounded by what the file holds).
fn read_bytes(path: &Path, file: &mut File, offset: u64, len: u64) -> Result<Vec<u8>> {
    let len =
        usize::try_from(len).map_err(|_| malformed(path, FORMAT, "data does not fit in memory"))?;
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| io_error(path, e))?;
    let mut buf = vec![0_u8; len];
    file.read_exact(&mut buf).map_err(|e| io_error(path, e))?;
    Ok(buf)
}

/// Reads a 2-D image, or one frame of a 3-D `(frames, rows, cols)` stack, from a
/// `.npy` file.
///
/// Element types: `f4`, `f8`, `u1`, `u2`, `u4`, `u8`, `i1`, `i2`, `i4`, `i8`,
/// little (`<`), big (`>`) or not (`|`) endian, C or Fortran order. Values are
/// converted to `f32` by rounding to nearest (exact for `f4`, `u1`, `u2`, `i1`,
/// `i2`; `f8` and 32/64-bit integers above 2^24 round). `frame` defaults to 0.
/// The header's `shape x itemsize` is compared with the file length before any
/// data is read: a header claiming more (or fewer) bytes than the file holds is
/// [`DataError::Malformed`]. For a C-order stack only the selected frame is read.
/// NPY holds no calibration: `pixel_size` is `None`.
///
/// # Errors
/// [`DataError::Io`]; [`DataError::Malformed`] (no magic, bad header, truncated,
/// trailing bytes); [`DataError::Unsupported`] (bool, complex, object, string,
/// structured dtypes, naming the dtype; unknown versions);
/// [`DataError::NotAnImage`] (0-D, 1-D, 4-D or more, or a zero-sized image
/// dimension); [`DataError::NoSuchFrame`]; [`DataError::BeyondFloat32`] for a
/// finite `f8` value too large for `f32` ([`read_npy_f64`] reads it in `f64`).
///
/// # Example
/// ```
/// use ndarray::array;
/// use phyvae_data::io::{read_npy, write_npy_u8};
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("labels.npy");
/// write_npy_u8(&path, array![[0_u8, 1], [2, 255]].view()).unwrap();
/// let img = read_npy(&path, None).unwrap();
/// assert_eq!(img.pixels, array![[0.0_f32, 1.0], [2.0, 255.0]]);
/// ```
pub fn read_npy(path: &Path, frame: Option<usize>) -> Result<Image> {
    let mut file = File::open(path).map_err(|e| io_error(path, e))?;
    let h = read_header(path, &mut file)?;
    let pixels = if h.dtype.kind == Kind::F64 {
        let wide = read_plane::<f64>(path, &mut file, &h, frame)?;
        let values = narrow_pixels(path, wide.iter().copied(), wide.ncols())?;
        ndarray::Array2::from_shape_vec(wide.dim(), values)
            .map_err(|e| malformed(path, FORMAT, e))?
    } else {
        read_plane::<f32>(path, &mut file, &h, frame)?
    };
    Ok(Image {
        pixels,
        pixel_size: None,
        source: Some(path.to_path_buf()),
    })
}

/// Reads a 2-D image (or one frame of a 3-D stack) in `f64` when, and only
/// when, `path` is a `.npy` file of `float64` elements; returns `Ok(None)` for
/// any other file or element type (read those with [`read_image`](super::read_image)).
///
/// This lets a caller keep a `float64` input in `float64` (as scikit-image
/// does) instead of rounding it to the `f32` of [`Image`].
///
/// # Errors
/// As [`read_npy`], for a file that is a `float64` NPY.
///
/// # Example
/// ```
/// use phyvae_data::io::{read_npy_f64, write_npy_f64, write_npy_f32};
/// let dir = tempfile::tempdir().unwrap();
/// let p64 = dir.path().join("a.npy");
/// write_npy_f64(&p64, ndarray::array![[0.1_f64, 0.2]].view()).unwrap();
/// assert_eq!(read_npy_f64(&p64, None).unwrap().unwrap()[(0, 1)], 0.2);
/// let p32 = dir.path().join("b.npy");
/// write_npy_f32(&p32, ndarray::array![[0.1_f32, 0.2]].view()).unwrap();
/// assert!(read_npy_f64(&p32, None).unwrap().is_none());
/// ```
pub fn read_npy_f64(path: &Path, frame: Option<usize>) -> Result<Option<ndarray::Array2<f64>>> {
    let mut file = File::open(path).map_err(|e| io_error(path, e))?;
    let mut magic = [0_u8; 6];
    if read_up_to(path, &mut file, &mut magic)? < MAGIC.len() || magic != MAGIC {
        return Ok(None);
    }
    file.seek(SeekFrom::Start(0))
        .map_err(|e| io_error(path, e))?;
    let h = read_header(path, &mut file)?;
    if h.dtype.kind != Kind::F64 {
        return Ok(None);
    }
    read_plane::<f64>(path, &mut file, &h, frame).map(Some)
}

/// Reads the 2-D image or the selected frame of a 3-D stack described by `h`.
fn read_plane<O: Elem>(
    path: &Path,
    file: &mut File,
    h: &Header,
    frame: Option<usize>,
) -> Result<ndarray::Array2<O>> {
    let (frames, rows, cols) = match h.shape.as_slice() {
        [r, c] => (None, *r, *c),
        [f, r, c] => (Some(*f), *r, *c),
        _ => {
            return Err(DataError::NotAnImage {
                path: path.to_path_buf(),
                shape: h.shape.clone(),
            });
        }
    };
    if rows == 0 || cols == 0 {
        return Err(DataError::NotAnImage {
            path: path.to_path_buf(),
            shape: h.shape.clone(),
        });
    }
    let frame_index = frame.unwrap_or(0);
    let n_frames = frames.unwrap_or(1);
    if frame_index >= n_frames {
        return Err(DataError::NoSuchFrame {
            path: path.to_path_buf(),
            frame: frame_index,
            frames: n_frames,
        });
    }
    let plane = rows * cols;
    let isz = h.dtype.kind.size() as u64;
    let (shape, values) = if h.fortran_order {
        // Element (f, r, c) of a Fortran-order (F, R, C) stack sits at
        // f + F * (r + R * c): a stride of F over the column-major plane.
        let bytes = read_bytes(path, file, h.data_offset, h.data_len)?;
        let column_major: Vec<O> = convert(&bytes, h.dtype, frame_index, n_frames, plane);
        ((rows, cols).f(), column_major)
    } else {
        let frame_bytes = plane as u64 * isz;
        let offset = h.data_offset + frame_index as u64 * frame_bytes;
        let bytes = read_bytes(path, file, offset, frame_bytes)?;
        (
            (rows, cols).into_shape_with_order(),
            convert(&bytes, h.dtype, 0, 1, plane),
        )
    };
    let pixels =
        ndarray::Array2::from_shape_vec(shape, values).map_err(|e| malformed(path, FORMAT, e))?;
    // Fortran-order data is reordered once; C-order data is used as read.
    Ok(if pixels.is_standard_layout() {
        pixels
    } else {
        pixels.as_standard_layout().into_owned()
    })
}

/// Reads a whole `.npy` array of any dimension (0-D scalars and 1-D vectors
/// included) as `f64`, in standard (C) layout whatever the file's order.
///
/// Same element types and checks as [`read_npy`]; 64-bit integers above 2^53
/// round to the nearest `f64`.
///
/// # Errors
/// As [`read_npy`], without the shape and frame rules.
pub fn read_npy_array(path: &Path) -> Result<ArrayD<f64>> {
    let mut file = File::open(path).map_err(|e| io_error(path, e))?;
    let h = read_header(path, &mut file)?;
    let bytes = read_bytes(path, &mut file, h.data_offset, h.data_len)?;
    let n = h.shape.iter().product();
    let values: Vec<f64> = convert(&bytes, h.dtype, 0, 1, n);
    let shape = IxDyn(&h.shape);
    let arr = if h.fortran_order {
        ArrayD::from_shape_vec(shape.f(), values)
    } else {
        ArrayD::from_shape_vec(shape, values)
    }
    .map_err(|e| malformed(path, FORMAT, e))?;
    if arr.is_standard_layout() {
        Ok(arr)
    } else {
        Ok(arr.as_standard_layout().into_owned())
    }
}

/// The NPY 1.0 header (magic, version, length, padded dict) for a C-order
/// array of `descr` with `shape`.
fn header_bytes(descr: &str, shape: &[usize]) -> Vec<u8> {
    let shape_repr = match shape {
        [] => "()".to_owned(),
        [n] => format!("({n},)"),
        dims => {
            let parts: Vec<String> = dims.iter().map(ToString::to_string).collect();
            format!("({})", parts.join(", "))
        }
    };
    let mut dict =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_repr}, }}");
    // Pad with spaces so that magic + version + length + dict + '\n' is a
    // multiple of 64 bytes.
    let unpadded = PREAMBLE_V1 + dict.len() + 1;
    let pad = (ARRAY_ALIGN - unpadded % ARRAY_ALIGN) % ARRAY_ALIGN;
    dict.extend(std::iter::repeat_n(' ', pad));
    dict.push('\n');
    let mut out = Vec::with_capacity(PREAMBLE_V1 + dict.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    // The dict is at most a few hundred bytes: it fits in the u16 of NPY 1.0.
    let len = u16::try_from(dict.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

/// Writes a C-order NPY 1.0 file atomically ([`write_atomic`]).
fn write_npy<T: Copy, const N: usize>(
    path: &Path,
    descr: &str,
    shape: &[usize],
    values: impl Iterator<Item = T>,
    to_bytes: impl Fn(T) -> [u8; N],
) -> Result<()> {
    let header = header_bytes(descr, shape);
    write_atomic(path, |w| {
        w.write_all(&header)?;
        for v in values {
            w.write_all(&to_bytes(v))?;
        }
        Ok(())
    })?;
    Ok(())
}

/// Writes a 2-D `f32` array as a NumPy `.npy` file (NPY 1.0, `'<f4'`,
/// `'fortran_order': False`, header padded to 64 bytes; readable by
/// `numpy.load`). The file is written to a temporary sibling and renamed, so a
/// partial file is never left under `path`.
///
/// # Errors
/// [`DataError::Io`] naming `path` if the file cannot be written.
pub fn write_npy_f32(path: &Path, a: ArrayView2<'_, f32>) -> Result<()> {
    let (r, c) = a.dim();
    write_npy(path, "<f4", &[r, c], a.iter().copied(), f32::to_le_bytes)
}

/// Writes a 2-D `f64` array as `.npy` (`'<f8'`), like [`write_npy_f32`].
///
/// # Errors
/// [`DataError::Io`] naming `path`.
pub fn write_npy_f64(path: &Path, a: ArrayView2<'_, f64>) -> Result<()> {
    let (r, c) = a.dim();
    write_npy(path, "<f8", &[r, c], a.iter().copied(), f64::to_le_bytes)
}

/// Writes a 3-D `f32` array (e.g. a `gh x gw x C` latent map) as `.npy`
/// (`'<f4'`, C order), like [`write_npy_f32`].
///
/// # Errors
/// [`DataError::Io`] naming `path`.
pub fn write_npy_f32_3d(path: &Path, a: ArrayView3<'_, f32>) -> Result<()> {
    let (d0, d1, d2) = a.dim();
    write_npy(
        path,
        "<f4",
        &[d0, d1, d2],
        a.iter().copied(),
        f32::to_le_bytes,
    )
}

/// Writes a 2-D `u8` array (e.g. a label map) as `.npy` (`'|u1'`), like
/// [`write_npy_f32`].
///
/// # Errors
/// [`DataError::Io`] naming `path`.
pub fn write_npy_u8(path: &Path, a: ArrayView2<'_, u8>) -> Result<()> {
    let (r, c) = a.dim();
    write_npy(path, "|u1", &[r, c], a.iter().copied(), u8::to_le_bytes)
}

/// Writes a 2-D `i32` array as `.npy` (`'<i4'`), like [`write_npy_f32`].
///
/// # Errors
/// [`DataError::Io`] naming `path`.
pub fn write_npy_i32(path: &Path, a: ArrayView2<'_, i32>) -> Result<()> {
    let (r, c) = a.dim();
    write_npy(path, "<i4", &[r, c], a.iter().copied(), i32::to_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descr_parsing() {
        assert_eq!(
            parse_descr("<f4"),
            Ok(Dtype {
                kind: Kind::F32,
                big_endian: false
            })
        );
        assert_eq!(
            parse_descr(">i2"),
            Ok(Dtype {
                kind: Kind::I16,
                big_endian: true
            })
        );
        assert_eq!(
            parse_descr("|u1"),
            Ok(Dtype {
                kind: Kind::U8,
                big_endian: false
            })
        );
        for bad in ["|b1", "<c8", "|O", "<U5", "|S3", "<f2", "<M8[ns]", "zz"] {
            let err = parse_descr(bad).unwrap_err();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn literal_parser_reads_numpy_headers() {
        let mut p =
            LiteralParser::new("{'descr': '<f8', 'fortran_order': True, 'shape': (3, 4), }");
        let v = p.value(0).unwrap();
        assert_eq!(
            v,
            Literal::Dict(vec![
                ("descr".into(), Literal::Str("<f8".into())),
                ("fortran_order".into(), Literal::Bool(true)),
                (
                    "shape".into(),
                    Literal::Tuple(vec![Literal::Int(3), Literal::Int(4)])
                ),
            ])
        );
        let mut p = LiteralParser::new("{'shape': (7,), 'shape2': (), 'x': [('a', '<i4')]}");
        assert!(p.value(0).is_ok());
        let deep = format!("{{'a': {}{}}}", "[".repeat(100), "]".repeat(100));
        assert!(LiteralParser::new(&deep).value(0).is_err());
        assert!(
            LiteralParser::new("{'a': 99999999999999999999999}")
                .value(0)
                .is_err()
        );
        assert!(LiteralParser::new("{'a': 'unterminated}").value(0).is_err());
    }

    #[test]
    fn header_is_padded_to_64() {
        // Dict for (2, 3) f32 is 59 chars; 10 + 59 + 1 = 70 -> 58 spaces of padding
        // to reach 128, so the length field says 118.
        let h = header_bytes("<f4", &[2, 3]);
        assert_eq!(h.len(), 128);
        assert_eq!(&h[8..10], &118_u16.to_le_bytes());
        assert_eq!(h[127], b'\n');
        assert_eq!(header_bytes("<f4", &[5]).len() % 64, 0);
        assert!(String::from_utf8_lossy(&header_bytes("<f4", &[5])).contains("'shape': (5,)"));
    }
}
