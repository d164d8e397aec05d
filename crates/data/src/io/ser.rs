//! FEI/Thermo Fisher TIA series files (`.ser`).
//!
//! Reference: the SER layout described by Dr Chris Boothroyd (as documented
//! in ncempy's `ncempy/io/ser.py` and rosettasciio's `rsciio/tia/_api.py`,
//! the two readers this one was checked against). Everything is
//! little-endian:
//!
//! | field | type |
//! |---|---|
//! | `ByteOrder` | `u16` = `0x4949` |
//! | `SeriesID` | `u16` = `0x0197` |
//! | `SeriesVersion` | `u16`: `0x0210` (offsets are `u32`) or `0x0220` (offsets are `u64`) |
//! | `DataTypeID` | `u32`: `0x4120` 1-D spectra, `0x4122` 2-D images |
//! | `TagTypeID` | `u32`: `0x4152` time only, `0x4142` time and 2-D position |
//! | `TotalNumberElements` | `u32` |
//! | `ValidNumberElements` | `u32` (elements actually acquired, the first ones) |
//! | `OffsetArrayOffset` | `u32` or `u64` (per version) |
//! | `NumberDimensions` | `u32` |
//! | dimension arrays | per dimension: `DimensionSize u32`, `CalibrationOffset f64`, `CalibrationDelta f64`, `CalibrationElement u32`, `DescriptionLength u32` + bytes, `UnitsLength u32` + bytes |
//!
//! At `OffsetArrayOffset`: the data offset array (`TotalNumberElements`
//! offsets, `u32` or `u64`), then the tag offset array (same size). Each data
//! offset points to one element:
//!
//! * a 2-D image: `CalibrationOffsetX f64`, `CalibrationDeltaX f64`,
//!   `CalibrationElementX u32`, the same three for Y, `DataType u16`,
//!   `ArraySizeX u32`, `ArraySizeY u32`, then `ArraySizeX * ArraySizeY`
//!   values;
//! * a 1-D spectrum: `CalibrationOffset f64`, `CalibrationDelta f64`,
//!   `CalibrationElement u32`, `DataType u16`, `ArrayLength u32`, then the
//!   values.
//!
//! `DataType`: 1 `uint8`, 2 `uint16`, 3 `uint32`, 4 `int8`, 5 `int16`,
//! 6 `int32`, 7 `float32`, 8 `float64`, 9 `complex64`, 10 `complex128`.
//!
//! Image layout: the values are stored with x fastest, in rows of
//! `ArraySizeX` values (so `ArraySizeX` is the number of columns and
//! `ArraySizeY` the number of rows), and the rows run from the bottom of the
//! image to the top (TIA's y axis points up). Both reference readers reshape
//! to `(ArraySizeY, ArraySizeX)` and flip the rows (ncempy `np.flipud`,
//! rosettasciio `data[..., ::-1, :]`); this reader does the same, so row 0
//! is the top row as TIA displays it and pixel `(r, c)` equals the reference
//! readers' `data[r, c]`.
//!
//! The calibration comes from each image element's header
//! (`CalibrationDeltaX/Y`, in metres for real-space images, converted to nm).
//! The companion `.emi` file (XML metadata: microscope, mode, ...) is not
//! read. Without it, diffraction patterns cannot be told from images by their
//! units, which the `.ser` file does not record; their deltas are in 1/m and
//! of order 1e7 to 1e9, so a delta larger than 1 mm per pixel is taken as a
//! reciprocal-space calibration and gives no pixel size (rosettasciio, reading
//! the `.ser` alone, labels such deltas as metres).
//!
//! Each valid element of an image series is one frame (`--frame k`, 0-based,
//! in file order). Spectrum series are listed but are not images.

use super::bounded::Bounded;
use super::util::{ImageInfo, malformed, narrow_pixels, nm, unsupported};
use crate::{DataError, Image, PixelSize, Result};
use std::path::{Path, PathBuf};

const FORMAT: &str = "TIA SER";

/// The first four bytes of every SER file: `ByteOrder` `0x4949` and
/// `SeriesID` `0x0197`, both little-endian.
pub const SER_MAGIC: [u8; 4] = [0x49, 0x49, 0x97, 0x01];

/// `SeriesVersion` of files written before TIA 4.7.3 (32-bit offsets).
pub const SER_VERSION_OFFSETS_32: u16 = 0x0210;
/// `SeriesVersion` of files written by TIA 4.7.3 and later (64-bit offsets).
pub const SER_VERSION_OFFSETS_64: u16 = 0x0220;
/// `DataTypeID` of a series of 1-D spectra.
pub const SER_DATA_SPECTRA: u32 = 0x4120;
/// `DataTypeID` of a series of 2-D images.
pub const SER_DATA_IMAGES: u32 = 0x4122;

/// Byte offset of `SeriesVersion`.
const VERSION_AT: u64 = 4;
/// Byte offset of `DataTypeID`.
const DATA_TYPE_ID_AT: u64 = 6;
/// Byte offset of `TagTypeID`.
const TAG_TYPE_ID_AT: u64 = 10;
/// Byte offset of `TotalNumberElements`.
const TOTAL_AT: u64 = 14;
/// Byte offset of `ValidNumberElements`.
const VALID_AT: u64 = 18;
/// Byte offset of `OffsetArrayOffset`.
const OFFSET_ARRAY_OFFSET_AT: u64 = 22;
/// Fixed part of one dimension array: size, offset, delta, element and the
/// two length fields.
const DIMENSION_FIXED_LEN: u64 = 4 + 8 + 8 + 4 + 4 + 4;
/// Size of a 2-D image element's header before the values.
const IMAGE_HEADER_LEN: u64 = 8 + 8 + 4 + 8 + 8 + 4 + 2 + 4 + 4;
/// Size of a 1-D spectrum element's header before the values.
const SPECTRUM_HEADER_LEN: u64 = 8 + 8 + 4 + 2 + 4;
/// Longest dimension description or units string accepted (TIA writes a
/// few dozen bytes at most).
const MAX_TEXT_LEN: u32 = 1 << 16;
/// Nanometres per metre.
const NM_PER_M: f64 = 1e9;
/// Largest calibration delta read as a length in metres per pixel (1 mm);
/// larger deltas are reciprocal-space calibrations (1/m, diffraction).
const MAX_REAL_SPACE_DELTA_M: f64 = 1e-3;

/// Element type of the stored values (the element header's `DataType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SerDtype {
    /// Code 1.
    U8,
    /// Code 2.
    U16,
    /// Code 3.
    U32,
    /// Code 4.
    I8,
    /// Code 5.
    I16,
    /// Code 6.
    I32,
    /// Code 7.
    F32,
    /// Code 8.
    F64,
    /// Code 9: two `f32` (real, imaginary).
    Complex64,
    /// Code 10: two `f64` (real, imaginary).
    Complex128,
}

impl SerDtype {
    /// The type for a `DataType` code, `None` for an unknown code.
    #[must_use]
    pub fn from_code(code: u16) -> Option<Self> {
        Some(match code {
            1 => Self::U8,
            2 => Self::U16,
            3 => Self::U32,
            4 => Self::I8,
            5 => Self::I16,
            6 => Self::I32,
            7 => Self::F32,
            8 => Self::F64,
            9 => Self::Complex64,
            10 => Self::Complex128,
            _ => return None,
        })
    }

    /// Bytes per value.
    #[must_use]
    pub fn size(self) -> u64 {
        match self {
            Self::U8 | Self::I8 => 1,
            Self::U16 | Self::I16 => 2,
            Self::U32 | Self::I32 | Self::F32 => 4,
            Self::F64 | Self::Complex64 => 8,
            Self::Complex128 => 16,
        }
    }

    /// numpy's name for the type, e.g. `"uint16"`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::U8 => "uint8",
            Self::U16 => "uint16",
            Self::U32 => "uint32",
            Self::I8 => "int8",
            Self::I16 => "int16",
            Self::I32 => "int32",
            Self::F32 => "float32",
            Self::F64 => "float64",
            Self::Complex64 => "complex64",
            Self::Complex128 => "complex128",
        }
    }

    /// Whether the values are complex.
    #[must_use]
    pub fn is_complex(self) -> bool {
        matches!(self, Self::Complex64 | Self::Complex128)
    }
}

/// One entry of the header's dimension array: how the series elements are
/// laid out (e.g. `Number` for a time series, `Position` in metres for a
/// scan).
#[derive(Debug, Clone, PartialEq)]
pub struct SerDimension {
    /// `DimensionSize`: number of elements along this dimension.
    pub size: u32,
    /// `CalibrationOffset`: value at `calibration_element`.
    pub calibration_offset: f64,
    /// `CalibrationDelta`: step between elements.
    pub calibration_delta: f64,
    /// `CalibrationElement`: index of the element at `calibration_offset`.
    pub calibration_element: u32,
    /// `Description` (bytes as Latin-1/ASCII text).
    pub description: String,
    /// `Units` (e.g. `meters`, or empty).
    pub units: String,
}

/// The series header of a SER file (see the module docs for the layout).
#[derive(Debug, Clone, PartialEq)]
pub struct SerHeader {
    /// `SeriesVersion`: [`SER_VERSION_OFFSETS_32`] or [`SER_VERSION_OFFSETS_64`].
    pub version: u16,
    /// `DataTypeID`: [`SER_DATA_SPECTRA`] or [`SER_DATA_IMAGES`].
    pub data_type_id: u32,
    /// `TagTypeID` (`0x4152` time only, `0x4142` time and position); not
    /// used by this reader.
    pub tag_type_id: u32,
    /// `TotalNumberElements`: elements the series was set up for.
    pub total_elements: u32,
    /// `ValidNumberElements`: elements actually stored (the first ones).
    pub valid_elements: u32,
    /// `OffsetArrayOffset`: where the data offset array starts.
    pub offset_array_offset: u64,
    /// The dimension arrays.
    pub dimensions: Vec<SerDimension>,
}

impl SerHeader {
    /// Bytes per entry of the offset arrays (4 for version `0x0210`, 8 for
    /// `0x0220`).
    #[must_use]
    pub fn offset_size(&self) -> u64 {
        if self.version == SER_VERSION_OFFSETS_32 {
            4
        } else {
            8
        }
    }

    /// Whether the series holds 2-D images (rather than spectra).
    #[must_use]
    pub fn is_images(&self) -> bool {
        self.data_type_id == SER_DATA_IMAGES
    }
}

/// What an element header says about its values.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    /// A 2-D image: `cols = ArraySizeX`, `rows = ArraySizeY`, calibration
    /// deltas in metres (or 1/m).
    Image {
        rows: u32,
        cols: u32,
        delta_x: f64,
        delta_y: f64,
    },
    /// A spectrum of `len` channels.
    Spectrum { len: u32 },
}

/// One parsed element header.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Element {
    shape: Shape,
    dtype: SerDtype,
    /// Where the values start.
    data_at: u64,
}

impl Element {
    /// Number of stored values.
    fn count(&self) -> u64 {
        match self.shape {
            Shape::Image { rows, cols, .. } => u64::from(rows) * u64::from(cols),
            Shape::Spectrum { len } => u64::from(len),
        }
    }

    /// `(rows, cols)` for an image, `None` for a spectrum.
    fn image_dims(&self) -> Option<(u32, u32)> {
        match self.shape {
            Shape::Image { rows, cols, .. } => Some((rows, cols)),
            Shape::Spectrum { .. } => None,
        }
    }
}

/// A SER file parsed from bytes in memory: the header and the first element's
/// header, checked against the buffer's length; frames are decoded on demand.
#[derive(Debug, Clone)]
pub struct SerFile<'a> {
    bytes: &'a [u8],
    path: PathBuf,
    series: Series,
}

impl SerFile<'_> {
    /// The series header.
    #[must_use]
    pub fn header(&self) -> &SerHeader {
        &self.series.header
    }

    /// The file's single entry, as [`list_ser`] gives it.
    #[must_use]
    pub fn list(&self) -> Vec<ImageInfo> {
        vec![self.series.info()]
    }

    /// Number of frames a command can read: the valid elements of an image
    /// series, 0 for spectra.
    #[must_use]
    pub fn frames(&self) -> usize {
        if self.series.header.is_images() {
            self.series.valid()
        } else {
            0
        }
    }

    /// Decodes frame `frame` (default 0), as [`read_ser`] does.
    ///
    /// # Errors
    /// As [`read_ser`].
    pub fn image(&self, frame: Option<usize>) -> Result<Image> {
        let mut src = Bounded::from_bytes(self.bytes, FORMAT);
        self.series.image(&mut src, &self.path, frame)
    }
}

/// Parses SER bytes held in memory (`path` is used only in messages and as
/// the images' source).
///
/// Checks the magic, the version and data type, the dimension arrays, that
/// the data offset array lies inside `bytes`, and the first valid element's
/// header and the extent of its values; later elements are checked when
/// their frame is read.
///
/// # Errors
/// [`DataError::Malformed`] (wrong magic, truncated, offsets or sizes outside
/// the file, unknown `DataType` code, more valid than total elements);
/// [`DataError::Unsupported`] (an unknown `SeriesVersion` or `DataTypeID`).
///
/// # Example
/// ```
/// use phyvae_data::io::ser::parse_ser;
/// use std::path::Path;
/// let err = parse_ser(b"not a ser file", Path::new("x.ser")).unwrap_err();
/// assert!(err.to_string().contains("x.ser"));
/// ```
pub fn parse_ser<'a>(bytes: &'a [u8], path: &Path) -> Result<SerFile<'a>> {
    let series = Series::parse(&mut Bounded::from_bytes(bytes, FORMAT), path)?;
    Ok(SerFile {
        bytes,
        path: path.to_path_buf(),
        series,
    })
}

/// Reads one frame of a TIA `.ser` image series as `f32` values.
///
/// `frame` is the element index among the valid elements (default 0). Rows
/// are flipped to put the image's top first and `ArraySizeX` is the number of
/// columns (see the module docs). Integers up to 16 bits convert exactly,
/// 32-bit integers exactly up to 2^24 in magnitude and rounded to nearest
/// beyond; `float64` is rounded to `f32`.
///
/// The pixel size is `CalibrationDeltaX` (x) and `CalibrationDeltaY` (y) of
/// the element, metres converted to nm; a delta that is not finite, not
/// positive, or above 1 mm (a diffraction pattern's 1/m calibration) gives
/// `None`. The `.emi` companion file is not read.
///
/// # Errors
/// [`DataError::Io`]; [`DataError::Malformed`] (see [`parse_ser`]; also an
/// element whose type or size differs from the first one);
/// [`DataError::Unsupported`] (complex values: export the modulus or phase);
/// [`DataError::NotAnImage`] (a spectrum series, or an image with no rows or
/// columns); [`DataError::NoSuchFrame`] (frame not below the number of valid
/// elements).
pub fn read_ser(path: &Path, frame: Option<usize>) -> Result<Image> {
    let mut src = Bounded::open(path, FORMAT)?;
    let series = Series::parse(&mut src, path)?;
    series.image(&mut src, path, frame)
}

/// Lists the content of a TIA `.ser` file: one entry for the series.
///
/// An image series has shape `[rows, cols]` for one valid element and
/// `[elements, rows, cols]` for more (the series as stored, whatever the
/// scan layout of the dimension arrays); a spectrum series `[channels]` or
/// `[elements, channels]`, marked unusable. Complex images are marked
/// unusable, and so is a series with no valid element (shape `[0]`, dtype
/// `"unknown"`: TIA keeps a single spectrum in the `.emi` file instead).
///
/// # Errors
/// [`DataError::Io`]; as [`parse_ser`].
pub fn list_ser(path: &Path) -> Result<Vec<ImageInfo>> {
    let mut src = Bounded::open(path, FORMAT)?;
    let series = Series::parse(&mut src, path)?;
    Ok(vec![series.info()])
}

/// The header plus the first valid element's header.
#[derive(Debug, Clone)]
struct Series {
    header: SerHeader,
    first: Option<Element>,
}

impl Series {
    fn valid(&self) -> usize {
        usize::try_from(self.header.valid_elements).unwrap_or(usize::MAX)
    }

    fn parse(src: &mut Bounded<'_>, path: &Path) -> Result<Self> {
        let len = src.len();
        let magic = src.take(path, 0, SER_MAGIC.len() as u64, "the magic")?;
        if *magic != SER_MAGIC {
            let hex: Vec<String> = magic.iter().map(|b| format!("{b:02x}")).collect();
            return Err(malformed(
                path,
                FORMAT,
                format!(
                    "first bytes {} are not the SER magic 49 49 97 01 (byte order 0x4949, series ID 0x0197)",
                    hex.join(" ")
                ),
            ));
        }
        let version = read_u16(src, VERSION_AT, "SeriesVersion", path)?;
        let offset_at_end = match version {
            SER_VERSION_OFFSETS_32 => OFFSET_ARRAY_OFFSET_AT + 4,
            SER_VERSION_OFFSETS_64 => OFFSET_ARRAY_OFFSET_AT + 8,
            v => {
                return Err(unsupported(
                    path,
                    FORMAT,
                    format!("SeriesVersion {v:#06x} (0x0210 or 0x0220 expected)"),
                ));
            }
        };
        let data_type_id = read_u32(src, DATA_TYPE_ID_AT, "DataTypeID", path)?;
        if data_type_id != SER_DATA_IMAGES && data_type_id != SER_DATA_SPECTRA {
            return Err(unsupported(
                path,
                FORMAT,
                format!(
                    "DataTypeID {data_type_id:#06x} (0x4120 spectra or 0x4122 images expected)"
                ),
            ));
        }
        let tag_type_id = read_u32(src, TAG_TYPE_ID_AT, "TagTypeID", path)?;
        let total_elements = read_u32(src, TOTAL_AT, "TotalNumberElements", path)?;
        let valid_elements = read_u32(src, VALID_AT, "ValidNumberElements", path)?;
        if valid_elements > total_elements {
            return Err(malformed(
                path,
                FORMAT,
                format!(
                    "{valid_elements} valid elements, more than the {total_elements} elements of the series"
                ),
            ));
        }
        let offset_array_offset = if version == SER_VERSION_OFFSETS_32 {
            u64::from(read_u32(
                src,
                OFFSET_ARRAY_OFFSET_AT,
                "OffsetArrayOffset",
                path,
            )?)
        } else {
            read_u64(src, OFFSET_ARRAY_OFFSET_AT, "OffsetArrayOffset", path)?
        };
        let n_dims = read_u32(src, offset_at_end, "NumberDimensions", path)?;
        let mut at = offset_at_end + 4;
        let mut dimensions = Vec::new();
        for d in 0..n_dims {
            // Each dimension needs at least DIMENSION_FIXED_LEN bytes, so the
            // loop stops (with an error) after at most len / 32 iterations.
            let (dim, next) = read_dimension(src, at, d, path)?;
            dimensions.push(dim);
            at = next;
        }
        let header = SerHeader {
            version,
            data_type_id,
            tag_type_id,
            total_elements,
            valid_elements,
            offset_array_offset,
            dimensions,
        };
        let array_end = u64::from(total_elements)
            .checked_mul(header.offset_size())
            .and_then(|n| n.checked_add(offset_array_offset));
        if array_end.is_none_or(|end| end > len) {
            return Err(malformed(
                path,
                FORMAT,
                format!(
                    "the data offset array ({total_elements} entries of {} bytes at byte {offset_array_offset}) does not fit in the {len}-byte file",
                    header.offset_size()
                ),
            ));
        }
        let mut series = Self {
            header,
            first: None,
        };
        if valid_elements > 0 {
            series.first = Some(series.element(src, 0, path)?);
        }
        Ok(series)
    }

    /// Parses the header of element `index` (< valid elements) and checks
    /// that its values lie inside the file.
    fn element(&self, src: &mut Bounded<'_>, index: u32, path: &Path) -> Result<Element> {
        let entry_at = u64::from(index)
            .checked_mul(self.header.offset_size())
            .and_then(|n| n.checked_add(self.header.offset_array_offset))
            .ok_or_else(|| malformed(path, FORMAT, "offset array position overflows"))?;
        let what = format!("the data offset of element {index}");
        let at = if self.header.version == SER_VERSION_OFFSETS_32 {
            u64::from(read_u32(src, entry_at, &what, path)?)
        } else {
            read_u64(src, entry_at, &what, path)?
        };
        let head_len = if self.header.is_images() {
            IMAGE_HEADER_LEN
        } else {
            SPECTRUM_HEADER_LEN
        };
        let head = src.take(
            path,
            at,
            head_len,
            &format!("the header of element {index}"),
        )?;
        let mut r = Fields::new(&head);
        let (shape, code) = if self.header.is_images() {
            let _offset_x = r.f64();
            let delta_x = r.f64();
            let _element_x = r.u32();
            let _offset_y = r.f64();
            let delta_y = r.f64();
            let _element_y = r.u32();
            let code = r.u16();
            let cols = r.u32();
            let rows = r.u32();
            let shape = Shape::Image {
                rows,
                cols,
                delta_x,
                delta_y,
            };
            (shape, code)
        } else {
            let _offset = r.f64();
            let _delta = r.f64();
            let _element = r.u32();
            let code = r.u16();
            let len = r.u32();
            (Shape::Spectrum { len }, code)
        };
        let dtype = SerDtype::from_code(code).ok_or_else(|| {
            malformed(
                path,
                FORMAT,
                format!("element {index} has an unknown DataType code {code} (1 to 10 expected)"),
            )
        })?;
        let data_at = at + head_len;
        let element = Element {
            shape,
            dtype,
            data_at,
        };
        let end = element
            .count()
            .checked_mul(dtype.size())
            .and_then(|n| n.checked_add(data_at));
        if end.is_none_or(|end| end > src.len()) {
            return Err(malformed(
                path,
                FORMAT,
                format!(
                    "element {index} ({} values of {} at byte {data_at}) extends past the end of the {}-byte file",
                    element.count(),
                    dtype.name(),
                    src.len()
                ),
            ));
        }
        Ok(element)
    }

    /// The file's entry for `phyvae info`.
    fn info(&self) -> ImageInfo {
        let valid = self.valid();
        let Some(first) = self.first else {
            return ImageInfo {
                index: 0,
                name: None,
                shape: vec![0],
                dtype: "unknown".to_owned(),
                pixel_size: None,
                unusable: Some(
                    "the series holds no valid element (TIA stores a single spectrum in the .emi file)"
                        .to_owned(),
                ),
            };
        };
        let mut shape = if valid > 1 { vec![valid] } else { Vec::new() };
        let (pixel_size, unusable) = match first.shape {
            Shape::Image {
                rows,
                cols,
                delta_x,
                delta_y,
            } => {
                shape.extend([rows as usize, cols as usize]);
                let unusable = if first.dtype.is_complex() {
                    Some(complex_message(first.dtype))
                } else if rows == 0 || cols == 0 {
                    Some("empty image (no rows or no columns)".to_owned())
                } else {
                    None
                };
                (pixel_size(delta_x, delta_y), unusable)
            }
            Shape::Spectrum { len } => {
                shape.push(len as usize);
                (None, Some("a series of 1-D spectra, not images".to_owned()))
            }
        };
        ImageInfo {
            index: 0,
            name: None,
            shape,
            dtype: first.dtype.name().to_owned(),
            pixel_size,
            unusable,
        }
    }

    /// Decodes frame `frame` (default 0) of an image series.
    fn image(&self, src: &mut Bounded<'_>, path: &Path, frame: Option<usize>) -> Result<Image> {
        let frame = frame.unwrap_or(0);
        let valid = self.valid();
        if !self.header.is_images() {
            return Err(DataError::NotAnImage {
                path: path.to_path_buf(),
                shape: self.info().shape,
            });
        }
        let (Some(first), Ok(index)) = (self.first, u32::try_from(frame)) else {
            return Err(no_such_frame(path, frame, valid));
        };
        if frame >= valid {
            return Err(no_such_frame(path, frame, valid));
        }
        if first.dtype.is_complex() {
            return Err(unsupported(path, FORMAT, complex_message(first.dtype)));
        }
        let element = if index == 0 {
            first
        } else {
            let e = self.element(src, index, path)?;
            if e.dtype != first.dtype || e.image_dims() != first.image_dims() {
                return Err(malformed(
                    path,
                    FORMAT,
                    format!(
                        "element {index} ({}) differs from element 0 ({}); series of elements of different types or sizes are not supported",
                        describe(&e),
                        describe(&first)
                    ),
                ));
            }
            e
        };
        let Shape::Image {
            rows,
            cols,
            delta_x,
            delta_y,
        } = element.shape
        else {
            return Err(malformed(
                path,
                FORMAT,
                "image series with a spectrum element",
            ));
        };
        let (rows, cols) = (rows as usize, cols as usize);
        if rows == 0 || cols == 0 {
            return Err(DataError::NotAnImage {
                path: path.to_path_buf(),
                shape: vec![rows, cols],
            });
        }
        // Checked against the file length by `element`.
        let n_bytes = element.count() * element.dtype.size();
        let raw = src.take(path, element.data_at, n_bytes, "the image values")?;
        // Rows are stored bottom first: flip them, then decode in image order.
        // `raw` holds exactly `rows` rows (rows > 0 checked above).
        let row_bytes = raw.len() / rows;
        let flipped: Vec<u8> = raw
            .chunks_exact(row_bytes)
            .rev()
            .flatten()
            .copied()
            .collect();
        let values = decode(path, element.dtype, &flipped, cols)?;
        let pixels = ndarray::Array2::from_shape_vec((rows, cols), values)
            .map_err(|e| malformed(path, FORMAT, e))?;
        Ok(Image {
            pixels,
            pixel_size: pixel_size(delta_x, delta_y),
            source: Some(path.to_path_buf()),
        })
    }
}

/// `rows x cols dtype` or `n-channel dtype spectrum`, for messages.
fn describe(e: &Element) -> String {
    match e.shape {
        Shape::Image { rows, cols, .. } => format!("{rows} x {cols} {}", e.dtype.name()),
        Shape::Spectrum { len } => format!("{len}-channel {} spectrum", e.dtype.name()),
    }
}

fn no_such_frame(path: &Path, frame: usize, frames: usize) -> DataError {
    DataError::NoSuchFrame {
        path: path.to_path_buf(),
        frame,
        frames,
    }
}

fn complex_message(dtype: SerDtype) -> String {
    format!(
        "complex images ({}) are not supported; export the modulus or the phase as a real image",
        dtype.name()
    )
}

/// Pixel size in nm from the element's deltas in metres (see [`read_ser`]).
fn pixel_size(delta_x: f64, delta_y: f64) -> Option<PixelSize> {
    let length = |d: f64| d.is_finite() && d > 0.0 && d <= MAX_REAL_SPACE_DELTA_M;
    (length(delta_x) && length(delta_y)).then(|| nm(delta_x * NM_PER_M, delta_y * NM_PER_M))
}

/// Reads dimension array `index` at `at`; returns it and the position after it.
fn read_dimension(
    src: &mut Bounded<'_>,
    at: u64,
    index: u32,
    path: &Path,
) -> Result<(SerDimension, u64)> {
    let what = format!("dimension array {index}");
    let fixed = src.take(path, at, DIMENSION_FIXED_LEN - 4, &what)?;
    let mut r = Fields::new(&fixed);
    let size = r.u32();
    let calibration_offset = r.f64();
    let calibration_delta = r.f64();
    let calibration_element = r.u32();
    let description_len = r.u32();
    let (description, at) = read_text(
        src,
        at + DIMENSION_FIXED_LEN - 4,
        description_len,
        &what,
        path,
    )?;
    let units_len = read_u32(src, at, &what, path)?;
    let (units, at) = read_text(src, at + 4, units_len, &what, path)?;
    let dim = SerDimension {
        size,
        calibration_offset,
        calibration_delta,
        calibration_element,
        description,
        units,
    };
    Ok((dim, at))
}

/// Reads `len` bytes of text at `at`; returns it and the position after it.
fn read_text(
    src: &mut Bounded<'_>,
    at: u64,
    len: u32,
    what: &str,
    path: &Path,
) -> Result<(String, u64)> {
    if len > MAX_TEXT_LEN {
        return Err(malformed(
            path,
            FORMAT,
            format!("{what}: a {len}-byte text field (at most {MAX_TEXT_LEN} expected)"),
        ));
    }
    let bytes = src.take(path, at, u64::from(len), what)?;
    // Latin-1: every byte is the code point of the same value.
    let text = bytes.iter().map(|&b| char::from(b)).collect();
    Ok((text, at + u64::from(len)))
}

/// Decodes little-endian values, row-major with `cols` columns, to `f32`
/// (complex types give an empty vector; callers reject them first).
///
/// # Errors
/// [`DataError::BeyondFloat32`] for a finite `f64` value too large for `f32`.
#[allow(clippy::cast_precision_loss)]
fn decode(path: &Path, dtype: SerDtype, raw: &[u8], cols: usize) -> Result<Vec<f32>> {
    fn each<const N: usize>(raw: &[u8], f: impl Fn([u8; N]) -> f32) -> Vec<f32> {
        raw.chunks_exact(N).map(|c| f(array(c))).collect()
    }
    if dtype == SerDtype::F64 {
        let values = raw.chunks_exact(8).map(|c| f64::from_le_bytes(array(c)));
        return narrow_pixels(path, values, cols);
    }
    Ok(match dtype {
        SerDtype::U8 => raw.iter().map(|&b| f32::from(b)).collect(),
        SerDtype::I8 => raw.iter().map(|&b| f32::from(b.cast_signed())).collect(),
        SerDtype::U16 => each(raw, |b| f32::from(u16::from_le_bytes(b))),
        SerDtype::I16 => each(raw, |b| f32::from(i16::from_le_bytes(b))),
        SerDtype::U32 => each(raw, |b| u32::from_le_bytes(b) as f32),
        SerDtype::I32 => each(raw, |b| i32::from_le_bytes(b) as f32),
        SerDtype::F32 => each(raw, f32::from_le_bytes),
        SerDtype::F64 | SerDtype::Complex64 | SerDtype::Complex128 => Vec::new(),
    })
}

/// The first `N` bytes of `c` (zero-padded if shorter; never panics).
fn array<const N: usize>(c: &[u8]) -> [u8; N] {
    let mut out = [0_u8; N];
    for (o, b) in out.iter_mut().zip(c) {
        *o = *b;
    }
    out
}

/// Sequential little-endian fields of a buffer whose length the caller has
/// checked (missing bytes read as zero, never a panic).
struct Fields<'b> {
    buf: &'b [u8],
    pos: usize,
}

impl<'b> Fields<'b> {
    fn new(buf: &'b [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn next<const N: usize>(&mut self) -> [u8; N] {
        let out = array(self.buf.get(self.pos..).unwrap_or_default());
        self.pos = self.pos.saturating_add(N);
        out
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.next())
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.next())
    }

    fn f64(&mut self) -> f64 {
        f64::from_le_bytes(self.next())
    }
}

fn read_u16(src: &mut Bounded<'_>, at: u64, what: &str, path: &Path) -> Result<u16> {
    Ok(u16::from_le_bytes(array(&src.take(path, at, 2, what)?)))
}

fn read_u32(src: &mut Bounded<'_>, at: u64, what: &str, path: &Path) -> Result<u32> {
    Ok(u32::from_le_bytes(array(&src.take(path, at, 4, what)?)))
}

fn read_u64(src: &mut Bounded<'_>, at: u64, what: &str, path: &Path) -> Result<u64> {
    Ok(u64::from_le_bytes(array(&src.take(path, at, 8, what)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One element of a hand-built series.
    enum Elem {
        /// `DataType` code, `ArraySizeX` (cols), `ArraySizeY` (rows), deltas
        /// X and Y, raw values.
        Image(u16, u32, u32, f64, f64, Vec<u8>),
        /// `DataType` code, `ArrayLength`, raw values.
        Spectrum(u16, u32, Vec<u8>),
    }

    /// A SER file: header with one `Number` dimension of `total` elements,
    /// the offset arrays (`total` entries each, unused ones 0), then the
    /// elements one after the other, each followed by an 8-byte time tag.
    fn build(version: u16, total: u32, elems: &[Elem]) -> Vec<u8> {
        let images = matches!(elems.first(), Some(Elem::Image(..)) | None);
        let wide = version == SER_VERSION_OFFSETS_64;
        let mut out = Vec::new();
        out.extend_from_slice(&SER_MAGIC);
        out.extend_from_slice(&version.to_le_bytes());
        let type_id = if images {
            SER_DATA_IMAGES
        } else {
            SER_DATA_SPECTRA
        };
        out.extend_from_slice(&type_id.to_le_bytes());
        out.extend_from_slice(&0x4152_u32.to_le_bytes());
        out.extend_from_slice(&total.to_le_bytes());
        out.extend_from_slice(&(elems.len() as u32).to_le_bytes());
        let oao_at = out.len();
        if wide {
            out.extend_from_slice(&0_u64.to_le_bytes());
        } else {
            out.extend_from_slice(&0_u32.to_le_bytes());
        }
        out.extend_from_slice(&1_u32.to_le_bytes()); // NumberDimensions
        out.extend_from_slice(&total.to_le_bytes());
        out.extend_from_slice(&0.0_f64.to_le_bytes());
        out.extend_from_slice(&1.0_f64.to_le_bytes());
        out.extend_from_slice(&0_u32.to_le_bytes());
        out.extend_from_slice(&6_u32.to_le_bytes());
        out.extend_from_slice(b"Number");
        out.extend_from_slice(&0_u32.to_le_bytes());
        let oao = out.len();
        if wide {
            out[oao_at..oao_at + 8].copy_from_slice(&(oao as u64).to_le_bytes());
        } else {
            out[oao_at..oao_at + 4].copy_from_slice(&(oao as u32).to_le_bytes());
        }
        let size = if wide { 8 } else { 4 };
        out.resize(oao + 2 * total as usize * size, 0);
        for (i, e) in elems.iter().enumerate() {
            let at = out.len() as u64;
            let entry = oao + i * size;
            if wide {
                out[entry..entry + 8].copy_from_slice(&at.to_le_bytes());
            } else {
                out[entry..entry + 4].copy_from_slice(&(at as u32).to_le_bytes());
            }
            match e {
                Elem::Image(code, cols, rows, dx, dy, data) => {
                    for (offset, delta) in [(-1.0e-7_f64, dx), (-1.0e-7, dy)] {
                        out.extend_from_slice(&offset.to_le_bytes());
                        out.extend_from_slice(&delta.to_le_bytes());
                        out.extend_from_slice(&0_u32.to_le_bytes());
                    }
                    out.extend_from_slice(&code.to_le_bytes());
                    out.extend_from_slice(&cols.to_le_bytes());
                    out.extend_from_slice(&rows.to_le_bytes());
                    out.extend_from_slice(data);
                }
                Elem::Spectrum(code, len, data) => {
                    out.extend_from_slice(&(-20.0_f64).to_le_bytes());
                    out.extend_from_slice(&0.2_f64.to_le_bytes());
                    out.extend_from_slice(&0_u32.to_le_bytes());
                    out.extend_from_slice(&code.to_le_bytes());
                    out.extend_from_slice(&len.to_le_bytes());
                    out.extend_from_slice(data);
                }
            }
            // Time tag (TagTypeID u16, unused u16, time u32), not read.
            let tag_at = out.len();
            let entry = oao + (total as usize + i) * size;
            if wide {
                out[entry..entry + 8].copy_from_slice(&(tag_at as u64).to_le_bytes());
            } else {
                out[entry..entry + 4].copy_from_slice(&(tag_at as u32).to_le_bytes());
            }
            out.extend_from_slice(&0x4152_u16.to_le_bytes());
            out.extend_from_slice(&[0; 6]);
        }
        out
    }

    fn u16s(v: &[u16]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn f32s(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn p() -> &'static Path {
        Path::new("t.ser")
    }

    fn pixels(img: &Image) -> Vec<f32> {
        img.pixels.iter().copied().collect()
    }

    /// A two-frame 2 x 3 float32 series (version 0x0220, 3 elements planned).
    fn two_frames() -> Vec<u8> {
        build(
            SER_VERSION_OFFSETS_64,
            3,
            &[
                Elem::Image(7, 3, 2, 2e-10, 2e-10, f32s(&[1., 2., 3., 4., 5., 6.])),
                Elem::Image(7, 3, 2, 2e-10, 2e-10, f32s(&[7., 8., 9., 10., 11., 12.])),
            ],
        )
    }

    #[test]
    fn image_rows_are_flipped_and_x_is_columns() {
        // ArraySizeX = 3 columns, ArraySizeY = 2 rows; stored bottom row first.
        let bytes = build(
            SER_VERSION_OFFSETS_32,
            1,
            &[Elem::Image(
                2,
                3,
                2,
                0.5e-9,
                0.25e-9,
                u16s(&[1, 2, 3, 4, 5, 6]),
            )],
        );
        let ser = parse_ser(&bytes, p()).unwrap();
        assert_eq!(ser.header().version, SER_VERSION_OFFSETS_32);
        assert_eq!(ser.header().dimensions[0].description, "Number");
        assert_eq!(ser.frames(), 1);
        let img = ser.image(None).unwrap();
        assert_eq!(img.pixels, ndarray::array![[4.0_f32, 5., 6.], [1., 2., 3.]]);
        // 0.5e-9 m = 0.5 nm along x, 0.25e-9 m = 0.25 nm along y.
        let ps = img.pixel_size.clone().unwrap();
        assert!((ps.x - 0.5).abs() < 1e-12 && (ps.y - 0.25).abs() < 1e-12);
        assert_eq!(ps.unit, "nm");
        assert_eq!(img.source.as_deref(), Some(p()));
        let info = &ser.list()[0];
        assert_eq!(info.shape, vec![2, 3]);
        assert_eq!(info.dtype, "uint16");
        assert_eq!(info.unusable, None);
        assert_eq!(info.pixel_size, img.pixel_size);
    }

    #[test]
    fn every_real_dtype_converts() {
        fn one(code: u16, data: Vec<u8>) -> Vec<f32> {
            let bytes = build(
                SER_VERSION_OFFSETS_32,
                1,
                &[Elem::Image(code, 2, 1, 1e-9, 1e-9, data)],
            );
            pixels(&parse_ser(&bytes, p()).unwrap().image(Some(0)).unwrap())
        }
        assert_eq!(one(1, vec![0, 255]), [0.0, 255.0]);
        assert_eq!(one(4, vec![0x80, 0x7f]), [-128.0, 127.0]);
        assert_eq!(one(2, u16s(&[65535, 7])), [65535.0, 7.0]);
        let i16s: Vec<u8> = [-32768_i16, 5]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert_eq!(one(5, i16s), [-32768.0, 5.0]);
        // 2^24 + 1 is not an f32: it rounds to 2^24 (ties to even).
        let u32s: Vec<u8> = [16_777_217_u32, 3]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert_eq!(one(3, u32s), [16_777_216.0, 3.0]);
        let i32s: Vec<u8> = [-7_i32, 123_456]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert_eq!(one(6, i32s), [-7.0, 123_456.0]);
        assert_eq!(one(7, f32s(&[0.5, -1e-9])), [0.5, -1e-9]);
        let f64s: Vec<u8> = [0.1_f64, -2.5]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        assert_eq!(one(8, f64s), [0.1_f32, -2.5]);
    }

    #[test]
    fn float64_beyond_the_float32_range_is_refused() {
        // 2 rows x 3 cols, stored bottom row first: stored index 1 of the
        // bottom row is image (row 1, col 1).
        let f64s = |v: &[f64]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
        let one = |v: &[f64]| {
            let bytes = build(
                SER_VERSION_OFFSETS_32,
                1,
                &[Elem::Image(8, 3, 2, 1e-9, 1e-9, f64s(v))],
            );
            parse_ser(&bytes, p()).unwrap().image(None)
        };
        let err = one(&[0.0, 1e300, 0.0, 0.0, 0.0, 0.0]).unwrap_err();
        assert!(
            matches!(err, DataError::BeyondFloat32 { row: 1, col: 1, value, .. } if value == 1e300),
            "{err}"
        );
        let max = f64::from(f32::MAX);
        let img = one(&[0.0, 0.0, 0.0, max, -max, 0.0]).unwrap();
        assert_eq!(img.pixels[(0, 0)], f32::MAX);
        assert_eq!(img.pixels[(0, 1)], f32::MIN);
    }

    #[test]
    fn frames_of_a_series() {
        // RosettaSciIO 0.15 (`rsciio.tia.file_reader`) reads the same bytes,
        // written by Python, as [[[4, 5, 6], [1, 2, 3]], [[10, 11, 12],
        // [7, 8, 9]]]: ArraySizeX = 3 columns, rows flipped.
        let bytes = two_frames();
        let ser = parse_ser(&bytes, p()).unwrap();
        assert_eq!(ser.header().total_elements, 3);
        assert_eq!(ser.header().valid_elements, 2);
        assert_eq!(ser.frames(), 2);
        assert_eq!(ser.list()[0].shape, vec![2, 2, 3]);
        assert_eq!(ser.list()[0].dtype, "float32");
        assert_eq!(
            pixels(&ser.image(Some(0)).unwrap()),
            [4., 5., 6., 1., 2., 3.]
        );
        assert_eq!(
            pixels(&ser.image(Some(1)).unwrap()),
            [10., 11., 12., 7., 8., 9.]
        );
        for frame in [2, usize::MAX] {
            assert!(matches!(
                ser.image(Some(frame)),
                Err(DataError::NoSuchFrame { frames: 2, .. })
            ));
        }
    }

    #[test]
    fn files_on_disk_read_like_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s_1.ser");
        let bytes = two_frames();
        std::fs::write(&path, &bytes).unwrap();
        let ser = parse_ser(&bytes, &path).unwrap();
        assert_eq!(list_ser(&path).unwrap(), ser.list());
        for frame in 0..2 {
            assert_eq!(
                read_ser(&path, Some(frame)).unwrap(),
                ser.image(Some(frame)).unwrap()
            );
        }
        let missing = dir.path().join("missing.ser");
        assert!(matches!(
            read_ser(&missing, None),
            Err(DataError::Io { .. })
        ));
        assert!(matches!(list_ser(&missing), Err(DataError::Io { .. })));
    }

    #[test]
    fn complex_images_are_listed_but_unsupported() {
        let bytes = build(
            SER_VERSION_OFFSETS_32,
            1,
            &[Elem::Image(9, 1, 1, 1e-9, 1e-9, vec![0; 8])],
        );
        let ser = parse_ser(&bytes, p()).unwrap();
        let info = &ser.list()[0];
        assert_eq!(info.dtype, "complex64");
        assert!(info.unusable.as_deref().unwrap().contains("complex"));
        let err = ser.image(None).unwrap_err();
        assert!(matches!(err, DataError::Unsupported { .. }));
        let msg = err.to_string();
        assert!(msg.contains("complex") && msg.contains("modulus") && msg.contains("t.ser"));
    }

    #[test]
    fn spectra_are_listed_but_not_images() {
        let data: Vec<u8> = [1_i32, 2, 3, 4]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let bytes = build(
            SER_VERSION_OFFSETS_32,
            2,
            &[
                Elem::Spectrum(6, 4, data.clone()),
                Elem::Spectrum(6, 4, data),
            ],
        );
        let ser = parse_ser(&bytes, p()).unwrap();
        assert!(!ser.header().is_images());
        assert_eq!(ser.frames(), 0);
        let info = &ser.list()[0];
        assert_eq!(info.shape, vec![2, 4]);
        assert_eq!(info.dtype, "int32");
        assert_eq!(info.pixel_size, None);
        assert!(info.unusable.as_deref().unwrap().contains("spectra"));
        assert!(matches!(
            ser.image(None),
            Err(DataError::NotAnImage { ref shape, .. }) if *shape == vec![2, 4]
        ));
    }

    #[test]
    fn non_length_calibrations_give_no_pixel_size() {
        // A diffraction pattern's delta in 1/m (1.0e8), a negative, a NaN
        // and a zero delta.
        for (dx, dy) in [(1.0e8, 1.0e8), (-1e-9, 1e-9), (f64::NAN, 1e-9), (1e-9, 0.0)] {
            let bytes = build(
                SER_VERSION_OFFSETS_32,
                1,
                &[Elem::Image(1, 1, 1, dx, dy, vec![9])],
            );
            let ser = parse_ser(&bytes, p()).unwrap();
            assert_eq!(ser.image(None).unwrap().pixel_size, None, "{dx} {dy}");
            assert_eq!(ser.list()[0].pixel_size, None);
        }
        assert_eq!(pixel_size(1e-3, 1e-3), Some(nm(1e6, 1e6)));
        assert_eq!(pixel_size(1.1e-3, 1e-9), None);
    }

    #[test]
    fn empty_series_and_empty_images() {
        let bytes = build(SER_VERSION_OFFSETS_32, 4, &[]);
        let ser = parse_ser(&bytes, p()).unwrap();
        assert_eq!(ser.frames(), 0);
        let info = &ser.list()[0];
        assert_eq!(info.shape, vec![0]);
        assert!(info.unusable.is_some());
        assert!(matches!(
            ser.image(None),
            Err(DataError::NoSuchFrame { frames: 0, .. })
        ));
        let bytes = build(
            SER_VERSION_OFFSETS_32,
            1,
            &[Elem::Image(1, 0, 5, 1e-9, 1e-9, vec![])],
        );
        let ser = parse_ser(&bytes, p()).unwrap();
        assert!(ser.list()[0].unusable.is_some());
        assert!(matches!(ser.image(None), Err(DataError::NotAnImage { .. })));
    }

    #[test]
    fn elements_of_different_sizes_are_malformed() {
        let bytes = build(
            SER_VERSION_OFFSETS_32,
            2,
            &[
                Elem::Image(1, 2, 1, 1e-9, 1e-9, vec![1, 2]),
                Elem::Image(1, 1, 2, 1e-9, 1e-9, vec![3, 4]),
            ],
        );
        let ser = parse_ser(&bytes, p()).unwrap();
        assert_eq!(pixels(&ser.image(Some(0)).unwrap()), [1.0, 2.0]);
        let err = ser.image(Some(1)).unwrap_err();
        assert!(matches!(err, DataError::Malformed { .. }), "{err}");
        assert!(err.to_string().contains("differs from element 0"));
    }

    #[test]
    fn bad_headers() {
        let good = two_frames();
        let malformed_with = |bytes: &[u8], needle: &str| {
            let err = parse_ser(bytes, p()).unwrap_err();
            assert!(matches!(err, DataError::Malformed { .. }), "{err}");
            assert!(err.to_string().contains(needle), "{err}");
            assert!(err.to_string().contains("t.ser"), "{err}");
        };
        let mut b = good.clone();
        b[0] = b'M';
        malformed_with(&b, "magic");
        malformed_with(b"", "truncated");
        // Unknown SeriesVersion and DataTypeID.
        let mut b = good.clone();
        b[4..6].copy_from_slice(&0x0300_u16.to_le_bytes());
        assert!(matches!(
            parse_ser(&b, p()),
            Err(DataError::Unsupported { .. })
        ));
        let mut b = good.clone();
        b[6..10].copy_from_slice(&0x4121_u32.to_le_bytes());
        assert!(matches!(
            parse_ser(&b, p()),
            Err(DataError::Unsupported { .. })
        ));
        // More valid than total elements.
        let mut b = good.clone();
        b[18..22].copy_from_slice(&4_u32.to_le_bytes());
        malformed_with(&b, "valid elements");
    }

    #[test]
    fn absurd_sizes_fail_before_allocating() {
        let good = two_frames();
        let ser = parse_ser(&good, p()).unwrap();
        let oao = usize::try_from(ser.header().offset_array_offset).unwrap();
        let first = usize::try_from(ser.series.first.unwrap().data_at).unwrap();
        let head = first - usize::try_from(IMAGE_HEADER_LEN).unwrap();
        let patch = |at: usize, v: &[u8]| {
            let mut b = good.clone();
            b[at..at + v.len()].copy_from_slice(v);
            b
        };
        // TotalNumberElements (and ValidNumberElements) near u32::MAX.
        let b = patch(14, &[0xff; 8]);
        assert!(matches!(
            parse_ser(&b, p()),
            Err(DataError::Malformed { .. })
        ));
        // OffsetArrayOffset past the end, and u64::MAX.
        let b = patch(22, &[0xff; 8]);
        assert!(matches!(
            parse_ser(&b, p()),
            Err(DataError::Malformed { .. })
        ));
        // NumberDimensions u32::MAX, then a description length of u32::MAX.
        let b = patch(30, &[0xff; 4]);
        assert!(matches!(
            parse_ser(&b, p()),
            Err(DataError::Malformed { .. })
        ));
        let b = patch(34 + 24, &[0xff; 4]);
        assert!(matches!(
            parse_ser(&b, p()),
            Err(DataError::Malformed { .. })
        ));
        // A data offset of u64::MAX.
        let b = patch(oao, &[0xff; 8]);
        assert!(matches!(
            parse_ser(&b, p()),
            Err(DataError::Malformed { .. })
        ));
        // ArraySizeX x ArraySizeY = (2^32 - 1)^2 float32 values.
        let b = patch(head + 42, &[0xff; 8]);
        assert!(matches!(
            parse_ser(&b, p()),
            Err(DataError::Malformed { .. })
        ));
        // The same in the second element: found when frame 1 is read.
        let second = usize::try_from(u64::from_le_bytes(
            good[oao + 8..oao + 16].try_into().unwrap(),
        ))
        .unwrap();
        let b = patch(second + 42, &[0xff; 8]);
        let ser = parse_ser(&b, p()).unwrap();
        assert!(ser.image(Some(0)).is_ok());
        assert!(matches!(
            ser.image(Some(1)),
            Err(DataError::Malformed { .. })
        ));
        // An unknown DataType code.
        let b = patch(head + 40, &11_u16.to_le_bytes());
        let err = parse_ser(&b, p()).unwrap_err();
        assert!(err.to_string().contains("DataType code 11"), "{err}");
    }

    /// Parses `bytes` and reads every frame it lists; must never panic.
    fn exercise(bytes: &[u8]) {
        if let Ok(ser) = parse_ser(bytes, p()) {
            let _ = ser.list();
            for frame in 0..ser.frames().min(64) {
                let _ = ser.image(Some(frame));
            }
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        for bytes in [
            two_frames(),
            build(
                SER_VERSION_OFFSETS_32,
                1,
                &[Elem::Spectrum(2, 3, u16s(&[1, 2, 3]))],
            ),
        ] {
            // The last 8 bytes are the last element's time tag, which is not
            // read; every shorter prefix cuts into data that is.
            for n in 0..bytes.len() - 8 {
                let short = &bytes[..n];
                match parse_ser(short, p()) {
                    Err(DataError::Malformed { .. }) => {}
                    Err(e) => panic!("prefix {n}: unexpected error {e}"),
                    Ok(ser) => {
                        let last = ser.frames().saturating_sub(1);
                        assert!(
                            ser.frames() > 0 && ser.image(Some(last)).is_err(),
                            "prefix {n} of {} read whole",
                            bytes.len()
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn random_and_mutated_bytes_never_panic() {
        // xorshift64*, fixed seed.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let good = two_frames();
        for _ in 0..2000 {
            let len = usize::try_from(next() % 200).unwrap();
            let mut b: Vec<u8> = (0..len).map(|_| next().to_le_bytes()[0]).collect();
            // Half of them with a valid start, to get past the magic.
            if next() % 2 == 0 && b.len() >= 10 {
                b[..10].copy_from_slice(&good[..10]);
            }
            exercise(&b);
            let mut m = good.clone();
            for _ in 0..1 + next() % 4 {
                let at = usize::try_from(next() % good.len() as u64).unwrap();
                m[at] = next().to_le_bytes()[0];
            }
            exercise(&m);
        }
    }
}
