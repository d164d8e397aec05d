//! TIFF reading through the `tiff` crate.

use super::util::{
    decode_budget, file_len, io_error, luma, malformed, narrow_pixels, nm, unit_in_nm, unsupported,
};
use crate::{DataError, Image, PixelSize, Result};
use ::tiff::decoder::ifd::Value;
use ::tiff::decoder::{Decoder, DecodingResult, Limits};
use ::tiff::tags::Tag;
use ::tiff::{ColorType, TiffError, TiffFormatError};
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

const FORMAT: &str = "TIFF";
/// Nanometres per inch (TIFF `ResolutionUnit` 2).
const NM_PER_INCH: f64 = 2.54e7;
/// Nanometres per centimetre (TIFF `ResolutionUnit` 3).
const NM_PER_CM: f64 = 1e7;
/// `ResolutionUnit` values of TIFF 6.0 (section 8).
const RESUNIT_NONE: u16 = 1;
const RESUNIT_INCH: u16 = 2;
const RESUNIT_CM: u16 = 3;
/// `PlanarConfiguration` value for separate planes.
const PLANAR_SEPARATE: u16 = 2;

type Reader = Decoder<BufReader<File>>;

/// Reads one page of a TIFF file as `f32` grey values.
///
/// Everything the `tiff` crate decodes is accepted: uncompressed, LZW,
/// Deflate, PackBits (and the crate's other codecs), strips or tiles,
/// little- or big-endian, TIFF or BigTIFF. Samples may be 8/16/32/64-bit
/// unsigned or signed integers, or 16/32/64-bit floats; values are converted to
/// `f32` by rounding to nearest (exact up to 16-bit integers). One sample per
/// pixel is read as is (a `WhiteIsZero` image is inverted by the decoder);
/// grey + alpha drops the alpha; RGB and RGBA become the luminance
/// `0.2125 R + 0.7154 G + 0.0721 B` on the raw samples (as [`super::read_png`]).
/// Palette, CMYK, YCbCr, Lab, planar (separate-plane) multi-sample pages and
/// sub-byte bit depths are [`DataError::Unsupported`].
///
/// `frame` selects the page (IFD in the main chain, 0-based; default 0).
///
/// Pixel size, in this order:
/// 1. an ImageJ `ImageDescription` (starting with `ImageJ=`): its `unit=` line
///    (nm, micron/µm, Å, pm, mm, cm, m, inch) with `XResolution`/`YResolution`
///    in pixels per that unit; an ImageJ file without a recognised unit (e.g.
///    `unit=pixel`, or none) has no pixel size (`spacing=`, the z step, is not
///    used);
/// 2. otherwise `XResolution`/`YResolution` (pixels per unit) with
///    `ResolutionUnit` inch (`2.54e7 / res` nm) or centimetre (`1e7 / res` nm);
///    a missing `ResolutionUnit` means inch (the TIFF 6.0 default) and unit
///    "none" gives no pixel size. Note that a desktop export's 72 dpi then reads
///    as 352 778 nm/px: the file states it, the reader reports it.
///
/// Unreadable or non-positive resolution tags give no pixel size rather than an
/// error. The decoded size is bounded before allocation by 4096 bytes per byte
/// of file (no accepted codec expands more) and 2 GiB.
///
/// # Errors
/// [`DataError::Io`]; [`DataError::Malformed`] (corrupt or truncated file,
/// implausible dimensions); [`DataError::Unsupported`];
/// [`DataError::NoSuchFrame`] (naming the number of pages).
///
/// # Example
/// ```
/// use phyvae_data::io::read_tiff;
/// use tiff::encoder::{TiffEncoder, colortype::Gray16};
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("g.tif");
/// let mut enc = TiffEncoder::new(std::fs::File::create(&path).unwrap()).unwrap();
/// enc.write_image::<Gray16>(3, 1, &[0, 1000, 65535]).unwrap();
/// let img = read_tiff(&path, None).unwrap();
/// assert_eq!(img.pixels.as_slice().unwrap(), &[0.0_f32, 1000.0, 65535.0]);
/// ```
pub fn read_tiff(path: &Path, frame: Option<usize>) -> Result<Image> {
    let (mut dec, budget) = open(path)?;
    let page = frame.unwrap_or(0);
    if page > 0 {
        match dec.seek_to_image(page) {
            Ok(()) => {}
            Err(TiffError::FormatError(TiffFormatError::ImageFileDirectoryNotFound)) => {
                return Err(DataError::NoSuchFrame {
                    path: path.to_path_buf(),
                    frame: page,
                    frames: count_pages(path)?,
                });
            }
            Err(e) => return Err(tiff_error(path, e)),
        }
    }
    let (width, height) = dec.dimensions().map_err(|e| tiff_error(path, e))?;
    let color = dec.colortype().map_err(|e| tiff_error(path, e))?;
    let (samples, bits) = match color {
        ColorType::Gray(b) => (1, b),
        ColorType::GrayA(b) => (2, b),
        ColorType::RGB(b) => (3, b),
        ColorType::RGBA(b) => (4, b),
        ColorType::Multiband {
            bit_depth,
            num_samples: 2,
        } if has_extra_samples(&mut dec) => (2, bit_depth),
        other => {
            return Err(unsupported(
                path,
                FORMAT,
                format!("colour type {other:?} (grey, grey + alpha, RGB or RGBA expected)"),
            ));
        }
    };
    if !matches!(bits, 8 | 16 | 32 | 64) {
        return Err(unsupported(
            path,
            FORMAT,
            format!("{bits} bits per sample (8, 16, 32 or 64 expected)"),
        ));
    }
    if samples > 1
        && dec
            .find_tag_unsigned::<u16>(Tag::PlanarConfiguration)
            .ok()
            .flatten()
            == Some(PLANAR_SEPARATE)
    {
        return Err(unsupported(
            path,
            FORMAT,
            "multi-sample image stored as separate planes",
        ));
    }
    let (w, h) = (width as usize, height as usize);
    let claimed = u64::from(width)
        .saturating_mul(u64::from(height))
        .saturating_mul(samples as u64)
        .saturating_mul(u64::from(bits / 8));
    if claimed > budget {
        return Err(malformed(
            path,
            FORMAT,
            format!(
                "{width} x {height} px x {samples} samples x {bits} bits would decode to {claimed} bytes, more than a file of this size can hold"
            ),
        ));
    }
    let pixel_size = calibration(&mut dec);
    let decoded = dec.read_image().map_err(|e| tiff_error(path, e))?;
    let values = to_grey(path, &decoded, w * h, samples, w)?
        .ok_or_else(|| malformed(path, FORMAT, "decoded data shorter than the image"))?;
    let pixels =
        ndarray::Array2::from_shape_vec((h, w), values).map_err(|e| malformed(path, FORMAT, e))?;
    Ok(Image {
        pixels,
        pixel_size,
        source: Some(path.to_path_buf()),
    })
}

/// Opens a decoder with limits derived from the file size.
fn open(path: &Path) -> Result<(Reader, u64)> {
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    let budget = decode_budget(file_len(path, &file)?);
    let dec = Decoder::new(BufReader::new(file)).map_err(|e| tiff_error(path, e))?;
    let mut limits = Limits::default();
    let cap = usize::try_from(budget).unwrap_or(usize::MAX);
    limits.decoding_buffer_size = cap;
    limits.intermediate_buffer_size = cap;
    Ok((dec.with_limits(limits), budget))
}

/// numpy-style element type of every page in the main IFD chain, e.g.
/// `uint16`, `float32`, `rgb8`.
pub(crate) fn page_types(path: &Path) -> Result<Vec<String>> {
    let (mut dec, _) = open(path)?;
    let mut out = Vec::new();
    loop {
        let name = match dec.colortype().map_err(|e| tiff_error(path, e))? {
            ColorType::Gray(b) => {
                let format = dec
                    .find_tag_unsigned::<u16>(Tag::SampleFormat)
                    .ok()
                    .flatten()
                    .unwrap_or(1);
                match format {
                    2 => format!("int{b}"),
                    3 => format!("float{b}"),
                    _ => format!("uint{b}"),
                }
            }
            ColorType::GrayA(b) => format!("grey+alpha {b}-bit"),
            ColorType::RGB(b) => format!("rgb{b}"),
            ColorType::RGBA(b) => format!("rgba{b}"),
            other => format!("{other:?}"),
        };
        out.push(name);
        if !dec.more_images() {
            break;
        }
        dec.next_image().map_err(|e| tiff_error(path, e))?;
    }
    Ok(out)
}

/// Number of pages in the main IFD chain.
fn count_pages(path: &Path) -> Result<usize> {
    let (mut dec, _) = open(path)?;
    let mut n = 1;
    while dec.more_images() {
        dec.next_image().map_err(|e| tiff_error(path, e))?;
        n += 1;
    }
    Ok(n)
}

/// Whether the current page declares `ExtraSamples` (an alpha channel).
fn has_extra_samples(dec: &mut Reader) -> bool {
    matches!(dec.find_tag(Tag::ExtraSamples), Ok(Some(_)))
}

/// Converts the decoded samples to grey `f32`, row-major with `cols` columns;
/// `Ok(None)` if too short.
///
/// # Errors
/// [`DataError::BeyondFloat32`] when a `float64` page holds a finite grey value
/// (a sample, or the luminance of an RGB pixel) too large for `f32`.
fn to_grey(
    path: &Path,
    decoded: &DecodingResult,
    n: usize,
    samples: usize,
    cols: usize,
) -> Result<Option<Vec<f32>>> {
    /// Grey values (the first sample, or the luminance of the first three) in
    /// `f64`, each passed through `out`.
    fn grey<T: Copy, O>(
        v: &[T],
        n: usize,
        samples: usize,
        f: impl Fn(T) -> f64,
        out: impl Fn(f64) -> O,
    ) -> Option<Vec<O>> {
        let v = v.get(..n.checked_mul(samples)?)?;
        let values = if samples <= 2 {
            v.iter().step_by(samples).map(|&x| out(f(x))).collect()
        } else {
            v.chunks_exact(samples)
                .map(|p| out(luma(f(p[0]), f(p[1]), f(p[2]))))
                .collect()
        };
        Some(values)
    }
    #[allow(clippy::cast_possible_truncation)]
    let f32_of = |x: f64| x as f32;
    #[allow(clippy::cast_precision_loss)]
    let values = match decoded {
        DecodingResult::U8(v) => grey(v, n, samples, f64::from, f32_of),
        DecodingResult::U16(v) => grey(v, n, samples, f64::from, f32_of),
        DecodingResult::U32(v) => grey(v, n, samples, f64::from, f32_of),
        DecodingResult::U64(v) => grey(v, n, samples, |x| x as f64, f32_of),
        DecodingResult::I8(v) => grey(v, n, samples, f64::from, f32_of),
        DecodingResult::I16(v) => grey(v, n, samples, f64::from, f32_of),
        DecodingResult::I32(v) => grey(v, n, samples, f64::from, f32_of),
        DecodingResult::I64(v) => grey(v, n, samples, |x| x as f64, f32_of),
        DecodingResult::F16(v) => grey(v, n, samples, |x| f64::from(x.to_f32()), f32_of),
        DecodingResult::F32(v) => grey(v, n, samples, f64::from, f32_of),
        DecodingResult::F64(v) => {
            return grey(v, n, samples, |x| x, |x| x)
                .map(|g| narrow_pixels(path, g, cols))
                .transpose();
        }
    };
    Ok(values)
}

/// A rational/float tag value as `f64`.
fn tag_f64(dec: &mut Reader, tag: Tag) -> Option<f64> {
    let v = match dec.find_tag(tag).ok()?? {
        Value::Rational(n, d) => f64::from(n) / f64::from(d),
        Value::Float(x) => f64::from(x),
        Value::Double(x) => x,
        Value::Short(x) => f64::from(x),
        Value::Unsigned(x) => f64::from(x),
        _ => return None,
    };
    (v.is_finite() && v > 0.0).then_some(v)
}

/// The page's pixel size in nm (see [`read_tiff`] for the rules).
fn calibration(dec: &mut Reader) -> Option<PixelSize> {
    let xres = tag_f64(dec, Tag::XResolution);
    let yres = tag_f64(dec, Tag::YResolution).or(xres);
    let description = match dec.find_tag(Tag::ImageDescription) {
        Ok(Some(Value::Ascii(s))) => Some(s),
        _ => None,
    };
    let unit_nm = match description.as_deref().and_then(imagej_unit) {
        Some(imagej) => imagej?,
        None => {
            let unit = match dec.find_tag_unsigned::<u16>(Tag::ResolutionUnit) {
                Ok(Some(u)) => u,
                Ok(None) => RESUNIT_INCH,
                Err(_) => RESUNIT_NONE,
            };
            match unit {
                RESUNIT_INCH => NM_PER_INCH,
                RESUNIT_CM => NM_PER_CM,
                _ => return None,
            }
        }
    };
    Some(nm(unit_nm / xres?, unit_nm / yres?))
}

/// For an ImageJ description, `Some(Some(nm per unit))` when its `unit=` is
/// recognised, `Some(None)` when it is missing or not a length; `None` for a
/// description that is not ImageJ's.
fn imagej_unit(description: &str) -> Option<Option<f64>> {
    if !description.starts_with("ImageJ=") {
        return None;
    }
    let unit = description
        .lines()
        .find_map(|l| l.trim().strip_prefix("unit="));
    Some(unit.and_then(unit_in_nm))
}

/// Maps a `tiff` error to the crate error.
fn tiff_error(path: &Path, e: TiffError) -> DataError {
    match e {
        TiffError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            malformed(path, FORMAT, "truncated file")
        }
        TiffError::IoError(io) => io_error(path, io),
        TiffError::UnsupportedError(u) => unsupported(path, FORMAT, u),
        TiffError::LimitsExceeded => malformed(
            path,
            FORMAT,
            "image or tag too large for a file of this size (decoder limit exceeded)",
        ),
        other => malformed(path, FORMAT, other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imagej_units() {
        let d = "ImageJ=1.53t\nunit=nm\nspacing=0.5\n";
        assert_eq!(imagej_unit(d), Some(Some(1.0)));
        let d = "ImageJ=1.53t\nunit=micron\n";
        assert_eq!(imagej_unit(d), Some(Some(1000.0)));
        let d = "ImageJ=1.53t\nunit=pixel\n";
        assert_eq!(imagej_unit(d), Some(None));
        assert_eq!(imagej_unit("ImageJ=1.53t\nimages=3\n"), Some(None));
        assert_eq!(imagej_unit("scan 512 lines"), None);
    }

    #[test]
    fn grey_conversion_drops_alpha_and_weights_rgb() {
        let p = Path::new("a.tif");
        let v = DecodingResult::U8(vec![10, 99, 20, 98]);
        assert_eq!(to_grey(p, &v, 2, 2, 2).unwrap(), Some(vec![10.0, 20.0]));
        // 0.2125 * 100 + 0.7154 * 200 + 0.0721 * 40 = 21.25 + 143.08 + 2.884 = 167.214
        let v = DecodingResult::U16(vec![100, 200, 40]);
        let g = to_grey(p, &v, 1, 3, 1).unwrap().unwrap();
        assert!((g[0] - 167.214).abs() < 1e-4);
        assert_eq!(
            to_grey(p, &DecodingResult::U8(vec![1, 2]), 3, 1, 3).unwrap(),
            None
        );
    }
}
