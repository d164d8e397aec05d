//! PNG reading through the `png` crate.

use super::util::{
    decode_budget, file_len, io_error, luminance, malformed, nm, single_frame, unsupported,
};
use crate::{Image, PixelSize, Result};
use ::png::{BitDepth, ColorType, Decoder, DecodingError, Transformations, Unit};
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

const FORMAT: &str = "PNG";

/// Nanometres per metre.
const NM_PER_M: f64 = 1e9;

/// numpy-style element type of a PNG as stored: `uint8` / `uint16` for grey,
/// `rgb8`, `rgba16`, `grey+alpha8`, `palette8`, ...
pub(crate) fn stored_dtype(path: &Path) -> Result<String> {
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    let reader = Decoder::new(BufReader::new(file))
        .read_info()
        .map_err(|e| png_error(path, e))?;
    let info = reader.info();
    let bits = info.bit_depth as u8;
    Ok(match info.color_type {
        ::png::ColorType::Grayscale => format!("uint{}", bits.max(8)),
        ::png::ColorType::Rgb => format!("rgb{bits}"),
        ::png::ColorType::Rgba => format!("rgba{bits}"),
        ::png::ColorType::GrayscaleAlpha => format!("grey+alpha{bits}"),
        ::png::ColorType::Indexed => format!("palette{bits}"),
    })
}

/// Reads a PNG image as `f32` grey values.
///
/// Conversions (the raw sample values are kept: 8-bit stays `0..=255`, 16-bit
/// `0..=65535`):
/// - greyscale 8/16-bit: the value; 1/2/4-bit grey is expanded to the 8-bit
///   scale by the `png` crate (`v * 255 / (2^depth - 1)`, so 1-bit gives 0/255),
///   as PIL does for 2- and 4-bit grey;
/// - grey + alpha: the grey value (alpha dropped);
/// - RGB, RGBA and palette (expanded to RGB/RGBA): the luminance
///   `Y = 0.2125 R + 0.7154 G + 0.0721 B` ([`LUMA_R`](super::LUMA_R),
///   [`LUMA_G`](super::LUMA_G), [`LUMA_B`](super::LUMA_B);
///   scikit-image `rgb2gray`, ITU-R BT.709) on the raw samples, alpha dropped.
///   scikit-image first rescales integers to `[0, 1]`; here the result stays on
///   the sample scale (divide by 255 or 65535 to compare).
///
/// The pixel size comes from the `pHYs` chunk when its unit is the metre
/// (`1e9 / pixels_per_metre` nm); an unspecified unit gives `None`. Only the
/// default image is read (APNG animation frames are not exposed): `frame` must
/// be `None` or `Some(0)`. The decoded size is bounded by 4096 bytes per file
/// byte (Deflate cannot expand more) before the buffer is allocated.
///
/// # Errors
/// [`crate::DataError::Io`]; [`crate::DataError::Malformed`] (bad signature,
/// truncated or corrupt stream, implausible dimensions);
/// [`crate::DataError::NoSuchFrame`] for a frame other than 0.
///
/// # Example
/// ```
/// use phyvae_data::io::read_png;
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("g.png");
/// let file = std::fs::File::create(&path).unwrap();
/// let mut enc = png::Encoder::new(std::io::BufWriter::new(file), 2, 1);
/// enc.set_color(png::ColorType::Grayscale);
/// enc.set_depth(png::BitDepth::Sixteen);
/// let mut w = enc.write_header().unwrap();
/// w.write_image_data(&[0x01, 0x00, 0xff, 0xff]).unwrap(); // big-endian 256, 65535
/// w.finish().unwrap();
/// let img = read_png(&path, None).unwrap();
/// assert_eq!(img.pixels.as_slice().unwrap(), &[256.0_f32, 65535.0]);
/// ```
pub fn read_png(path: &Path, frame: Option<usize>) -> Result<Image> {
    single_frame(path, frame)?;
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    let budget = decode_budget(file_len(path, &file)?);
    let limit = usize::try_from(budget).unwrap_or(usize::MAX);
    let mut decoder = Decoder::new_with_limits(
        BufReader::new(file),
        ::png::Limits {
            bytes: limit.saturating_mul(2),
        },
    );
    decoder.set_transformations(Transformations::EXPAND);
    let mut reader = decoder.read_info().map_err(|e| png_error(path, e))?;
    let pixel_size = pixel_size(reader.info().pixel_dims);
    let (width, height) = reader.info().size();
    let Some(size) = reader.output_buffer_size() else {
        return Err(malformed(
            path,
            FORMAT,
            format!("{width} x {height} px does not fit in memory"),
        ));
    };
    if size as u64 > budget {
        return Err(malformed(
            path,
            FORMAT,
            format!(
                "{width} x {height} px would decode to {size} bytes, more than a file of this size can hold"
            ),
        ));
    }
    let mut buf = vec![0_u8; size];
    let out = reader
        .next_frame(&mut buf)
        .map_err(|e| png_error(path, e))?;
    let (w, h) = (out.width as usize, out.height as usize);
    let channels = match out.color_type {
        ColorType::Grayscale => 1,
        ColorType::GrayscaleAlpha => 2,
        ColorType::Rgb => 3,
        ColorType::Rgba => 4,
        ColorType::Indexed => {
            return Err(unsupported(
                path,
                FORMAT,
                "palette image left unexpanded by the decoder",
            ));
        }
    };
    let sample_len = match out.bit_depth {
        BitDepth::Eight => 1,
        BitDepth::Sixteen => 2,
        d => {
            return Err(unsupported(
                path,
                FORMAT,
                format!("bit depth {d:?} left unexpanded by the decoder"),
            ));
        }
    };
    let line = out.line_size;
    if line < w * channels * sample_len || buf.len() < line * h {
        return Err(malformed(
            path,
            FORMAT,
            "decoded buffer smaller than the image",
        ));
    }
    let mut values = Vec::with_capacity(w * h);
    let sample = |row: &[u8], i: usize| -> f64 {
        if sample_len == 1 {
            f64::from(row[i])
        } else {
            f64::from(u16::from_be_bytes([row[2 * i], row[2 * i + 1]]))
        }
    };
    for r in 0..h {
        let row = &buf[r * line..r * line + line];
        for c in 0..w {
            let i = c * channels;
            #[allow(clippy::cast_possible_truncation)]
            let v = if channels <= 2 {
                sample(row, i) as f32
            } else {
                luminance(sample(row, i), sample(row, i + 1), sample(row, i + 2))
            };
            values.push(v);
        }
    }
    let pixels =
        ndarray::Array2::from_shape_vec((h, w), values).map_err(|e| malformed(path, FORMAT, e))?;
    Ok(Image {
        pixels,
        pixel_size,
        source: Some(path.to_path_buf()),
    })
}

/// Pixel size from a `pHYs` chunk in pixels per metre.
fn pixel_size(dims: Option<::png::PixelDimensions>) -> Option<PixelSize> {
    let d = dims?;
    if d.unit != Unit::Meter || d.xppu == 0 || d.yppu == 0 {
        return None;
    }
    Some(nm(
        NM_PER_M / f64::from(d.xppu),
        NM_PER_M / f64::from(d.yppu),
    ))
}

/// Maps a `png` decoding error to the crate error.
fn png_error(path: &Path, e: DecodingError) -> crate::DataError {
    match e {
        DecodingError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            malformed(path, FORMAT, "truncated stream")
        }
        DecodingError::IoError(io) => io_error(path, io),
        DecodingError::LimitsExceeded => malformed(
            path,
            FORMAT,
            "image too large for a file of this size (decoder limit exceeded)",
        ),
        other => malformed(path, FORMAT, other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phys_in_metres_gives_nm() {
        // 2e9 px/m = 0.5 nm/px; 1e9 px/m = 1 nm/px.
        let d = ::png::PixelDimensions {
            xppu: 2_000_000_000,
            yppu: 1_000_000_000,
            unit: Unit::Meter,
        };
        assert_eq!(pixel_size(Some(d)), Some(nm(0.5, 1.0)));
        let d = ::png::PixelDimensions {
            xppu: 2,
            yppu: 1,
            unit: Unit::Unspecified,
        };
        assert_eq!(pixel_size(Some(d)), None);
        assert_eq!(pixel_size(None), None);
    }
}
