//! PNG rendering of scalar maps (viridis), label maps (tab10) and grey images.
//!
//! Conventions shared by every function here:
//! - array row 0 is the top row of the picture, column 0 the left column (as
//!   `matplotlib.pyplot.imshow` with its default `origin="upper"`);
//! - `upscale` draws each map cell as an `upscale x upscale` block of identical
//!   pixels (nearest-neighbour magnification, `imshow(..., interpolation="nearest")`),
//!   so a small map (e.g. a 59 x 59 latent map) stays readable; it must be >= 1;
//! - output is an 8-bit, non-interlaced PNG (RGB for maps and labels,
//!   greyscale for [`encode_grey_png`]);
//! - `write_*` functions write the PNG to a temporary file beside `path` and
//!   rename it onto `path`, so a reader never sees a half-written file;
//! - `encode_*` functions return the PNG file's bytes (for embedding).
//!
//! ```
//! use ndarray::array;
//! use phyvae_report::render::encode_map_png;
//!
//! let map = array![[0.0_f32, 1.0], [f32::NAN, 0.5]];
//! let png = encode_map_png(map.view(), None, 4).unwrap();
//! assert_eq!(&png[1..4], b"PNG");
//! ```

use crate::ReportError;
use crate::colormap::{NAN_GREY, label_colour, viridis};
use ndarray::ArrayView2;
use phyvae_data::atomic::write_bytes_atomic;
use std::path::Path;

/// Result type of the rendering functions.
pub type Result<T> = std::result::Result<T, ReportError>;

/// Name used in [`ReportError::Png`] for an in-memory encoding.
const IN_MEMORY: &str = "<in-memory PNG>";

/// Largest picture side accepted, in pixels (the PNG format allows up to
/// 2^31 - 1; this bound keeps a mistaken `upscale` from allocating gigabytes).
pub const MAX_SIDE_PX: usize = 1 << 16;

/// Encodes a scalar map as an RGB PNG through the viridis colormap.
///
/// Scaling: with `scale = Some((lo, hi))` a value `v` is drawn with
/// [`viridis`]`((v - lo) / (hi - lo))`, values outside `[lo, hi]` taking the end
/// colours (matplotlib's `Normalize(vmin=lo, vmax=hi)`); with `None`, `lo` and `hi`
/// are the minimum and maximum of the finite values (`imshow`'s autoscaling).
/// A constant map (`lo == hi` from autoscaling) is drawn in the lowest colour,
/// as matplotlib does. NaN cells are drawn [`NAN_GREY`]; `+inf`/`-inf` take the
/// top/bottom colour and are ignored by the autoscaling.
///
/// # Errors
/// [`ReportError::EmptyMap`] if the map has no cell;
/// [`ReportError::InvalidParameter`] if `upscale` is 0, the picture would be
/// wider or taller than [`MAX_SIDE_PX`], or `scale` is not finite with `lo < hi`;
/// [`ReportError::Png`] if encoding fails.
pub fn encode_map_png(
    map: ArrayView2<'_, f32>,
    scale: Option<(f32, f32)>,
    upscale: usize,
) -> Result<Vec<u8>> {
    let pixels = map_rgb(map, scale, upscale)?;
    encode(&pixels, Path::new(IN_MEMORY))
}

/// Writes a scalar map as an RGB PNG at `path`; see [`encode_map_png`] for the
/// colour convention.
///
/// # Errors
/// As [`encode_map_png`], plus [`ReportError::Io`] (with `path`) if the file
/// cannot be written.
pub fn write_map_png(
    path: &Path,
    map: ArrayView2<'_, f32>,
    scale: Option<(f32, f32)>,
    upscale: usize,
) -> Result<()> {
    let pixels = map_rgb(map, scale, upscale)?;
    let bytes = encode(&pixels, path)?;
    Ok(write_bytes_atomic(path, &bytes)?)
}

/// Encodes an integer label map as an RGB PNG, label `l` drawn with
/// [`label_colour`]`(l)` (matplotlib's tab10 colours, negative labels black).
///
/// # Errors
/// [`ReportError::EmptyMap`] if the map has no cell;
/// [`ReportError::InvalidParameter`] if `upscale` is 0 or the picture would
/// exceed [`MAX_SIDE_PX`]; [`ReportError::Png`] if encoding fails.
pub fn encode_labels_png(labels: ArrayView2<'_, i32>, upscale: usize) -> Result<Vec<u8>> {
    let pixels = labels_rgb(labels, upscale)?;
    encode(&pixels, Path::new(IN_MEMORY))
}

/// Writes an integer label map as an RGB PNG at `path`; see
/// [`encode_labels_png`].
///
/// # Errors
/// As [`encode_labels_png`], plus [`ReportError::Io`] (with `path`).
pub fn write_labels_png(path: &Path, labels: ArrayView2<'_, i32>, upscale: usize) -> Result<()> {
    let pixels = labels_rgb(labels, upscale)?;
    let bytes = encode(&pixels, path)?;
    Ok(write_bytes_atomic(path, &bytes)?)
}

/// Encodes an image as an 8-bit greyscale PNG, one pixel per image pixel,
/// min-max scaled: `255 (v - min) / (max - min)` rounded half to even, with
/// `min`/`max` over the finite pixels, as
/// `skimage.util.img_as_ubyte(skimage.exposure.rescale_intensity(img, out_range=(0.0, 1.0)))`
/// (which rounds with `np.rint`; computed here in `f64`, so a value within
/// float rounding of a half may round the other way). NaN and `-inf` pixels are drawn 0,
/// `+inf` 255; a constant image is drawn all 0.
///
/// # Errors
/// [`ReportError::EmptyMap`] if the image has no pixel;
/// [`ReportError::InvalidParameter`] if a side exceeds [`MAX_SIDE_PX`];
/// [`ReportError::Png`] if encoding fails.
pub fn encode_grey_png(img: ArrayView2<'_, f32>) -> Result<Vec<u8>> {
    let pixels = grey_bytes(img)?;
    encode(&pixels, Path::new(IN_MEMORY))
}

/// Writes an image as an 8-bit greyscale PNG at `path`; see [`encode_grey_png`].
///
/// # Errors
/// As [`encode_grey_png`], plus [`ReportError::Io`] (with `path`).
pub fn write_grey_png(path: &Path, img: ArrayView2<'_, f32>) -> Result<()> {
    let pixels = grey_bytes(img)?;
    let bytes = encode(&pixels, path)?;
    Ok(write_bytes_atomic(path, &bytes)?)
}

/// Encodes row-major 8-bit RGB pixels (`3 * width * height` bytes) as a PNG.
///
/// # Errors
/// [`ReportError::InvalidParameter`] if `rgb` has the wrong length;
/// [`ReportError::Png`] if encoding fails.
pub(crate) fn encode_rgb(width: u32, height: u32, rgb: Vec<u8>) -> Result<Vec<u8>> {
    if rgb.len() != 3 * width as usize * height as usize {
        return Err(ReportError::InvalidParameter {
            name: "rgb",
            value: format!("{} bytes for {width} x {height}", rgb.len()),
            rule: "three bytes per pixel",
        });
    }
    let pixels = Pixels {
        width,
        height,
        colour: png::ColorType::Rgb,
        data: rgb,
    };
    encode(&pixels, Path::new(IN_MEMORY))
}

/// Pixels ready for the encoder: row-major bytes, `channels` per pixel.
struct Pixels {
    width: u32,
    height: u32,
    colour: png::ColorType,
    data: Vec<u8>,
}

/// Checks that the map is not empty and that the upscaled picture fits;
/// returns the picture's `(height, width)`.
fn picture_size(rows: usize, cols: usize, upscale: usize) -> Result<(usize, usize)> {
    if rows == 0 || cols == 0 {
        return Err(ReportError::EmptyMap { rows, cols });
    }
    if upscale == 0 {
        return Err(ReportError::InvalidParameter {
            name: "upscale",
            value: upscale.to_string(),
            rule: "must be at least 1",
        });
    }
    let side = |n: usize| n.checked_mul(upscale).filter(|&s| s <= MAX_SIDE_PX);
    match (side(rows), side(cols)) {
        (Some(h), Some(w)) => Ok((h, w)),
        _ => Err(ReportError::InvalidParameter {
            name: "upscale",
            value: upscale.to_string(),
            rule: "the picture side (map side x upscale) must not exceed 65536 px",
        }),
    }
}

/// Draws `rows x cols` cells, cell `(r, c)` having colour `colour_of(r, c)`, as
/// `upscale x upscale` RGB blocks.
fn blocks_rgb(
    rows: usize,
    cols: usize,
    upscale: usize,
    mut colour_of: impl FnMut(usize, usize) -> [u8; 3],
) -> Result<Pixels> {
    let (height, width) = picture_size(rows, cols, upscale)?;
    let row_len = width * 3;
    let mut data = vec![0_u8; row_len * height];
    for (r, band) in data.chunks_exact_mut(row_len * upscale).enumerate() {
        let (first, rest) = band.split_at_mut(row_len);
        for (c, block) in first.chunks_exact_mut(3 * upscale).enumerate() {
            let rgb = colour_of(r, c);
            for px in block.chunks_exact_mut(3) {
                px.copy_from_slice(&rgb);
            }
        }
        for line in rest.chunks_exact_mut(row_len) {
            line.copy_from_slice(first);
        }
    }
    Ok(Pixels {
        width: to_u32(width)?,
        height: to_u32(height)?,
        colour: png::ColorType::Rgb,
        data,
    })
}

/// A side already bounded by [`MAX_SIDE_PX`] as the `u32` the encoder wants.
fn to_u32(n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| ReportError::InvalidParameter {
        name: "upscale",
        value: n.to_string(),
        rule: "the picture side must fit in 32 bits",
    })
}

/// Minimum and maximum of the finite values, `None` if there are none.
fn finite_range(values: ArrayView2<'_, f32>) -> Option<(f32, f32)> {
    values
        .iter()
        .filter(|v| v.is_finite())
        .fold(None, |acc, &v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

fn map_rgb(map: ArrayView2<'_, f32>, scale: Option<(f32, f32)>, upscale: usize) -> Result<Pixels> {
    let (lo, hi) = match scale {
        Some((lo, hi)) => {
            if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                return Err(ReportError::InvalidParameter {
                    name: "scale",
                    value: format!("({lo}, {hi})"),
                    rule: "must be two finite values with lo < hi",
                });
            }
            (f64::from(lo), f64::from(hi))
        }
        None => finite_range(map).map_or((0.0, 0.0), |(lo, hi)| (f64::from(lo), f64::from(hi))),
    };
    // A constant (or all-NaN) map: every finite value maps to 0, as matplotlib's
    // Normalize does when vmin == vmax.
    let inv_span = if hi > lo { 1.0 / (hi - lo) } else { 0.0 };
    blocks_rgb(map.nrows(), map.ncols(), upscale, |r, c| {
        let v = map[[r, c]];
        if v.is_nan() {
            NAN_GREY
        } else if v == f32::INFINITY {
            viridis(1.0)
        } else if v == f32::NEG_INFINITY {
            viridis(0.0)
        } else {
            // Rounded to f32 only after the subtraction so that v == hi gives
            // exactly 1.0 and therefore the last colour.
            viridis(((f64::from(v) - lo) * inv_span) as f32)
        }
    })
}

fn labels_rgb(labels: ArrayView2<'_, i32>, upscale: usize) -> Result<Pixels> {
    blocks_rgb(labels.nrows(), labels.ncols(), upscale, |r, c| {
        label_colour(labels[[r, c]])
    })
}

fn grey_bytes(img: ArrayView2<'_, f32>) -> Result<Pixels> {
    let (height, width) = picture_size(img.nrows(), img.ncols(), 1)?;
    let (lo, hi) = finite_range(img).map_or((0.0, 0.0), |(lo, hi)| (f64::from(lo), f64::from(hi)));
    let factor = if hi > lo { 255.0 / (hi - lo) } else { 0.0 };
    let data = img
        .iter()
        .map(|&v| {
            if v.is_nan() || v == f32::NEG_INFINITY {
                0
            } else if v == f32::INFINITY {
                255
            } else {
                // In [0, 255] for finite v in [lo, hi]; the cast saturates anyway.
                ((f64::from(v) - lo) * factor).round_ties_even() as u8
            }
        })
        .collect();
    Ok(Pixels {
        width: to_u32(width)?,
        height: to_u32(height)?,
        colour: png::ColorType::Grayscale,
        data,
    })
}

/// Encodes pixels as a PNG; `path` only names the target in errors.
fn encode(pixels: &Pixels, path: &Path) -> Result<Vec<u8>> {
    let png_err = |e: png::EncodingError| ReportError::Png {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, pixels.width, pixels.height);
    encoder.set_color(pixels.colour);
    encoder.set_depth(png::BitDepth::Eight);
    // fdeflate's PNG-tuned compression: several times faster than the default
    // (miniz) for files a little larger.
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header().map_err(png_err)?;
    writer.write_image_data(&pixels.data).map_err(png_err)?;
    writer.finish().map_err(png_err)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::colormap::VIRIDIS;
    use ndarray::{Array2, array};

    #[test]
    fn blocks_are_nearest_neighbour() {
        // 1 x 2 labels [0, 1] at upscale 2 -> 4 x 2 pixels: C0 C0 C1 C1 on both rows.
        let p = labels_rgb(array![[0, 1]].view(), 2).unwrap();
        assert_eq!((p.width, p.height), (4, 2));
        let c0 = [0x1f, 0x77, 0xb4];
        let c1 = [0xff, 0x7f, 0x0e];
        let row: Vec<u8> = [c0, c0, c1, c1].concat();
        assert_eq!(p.data, [row.clone(), row].concat());
    }

    #[test]
    fn autoscale_uses_finite_range() {
        // finite values 2 and 6: 2 -> t 0, 4 -> t 0.5 (entry 128), 6 -> t 1.
        let p = map_rgb(array![[2.0_f32, 4.0, 6.0, f32::INFINITY]].view(), None, 1).unwrap();
        let expect: Vec<u8> = [VIRIDIS[0], VIRIDIS[128], VIRIDIS[255], VIRIDIS[255]].concat();
        assert_eq!(p.data, expect);
    }

    #[test]
    fn constant_map_is_lowest_colour() {
        let p = map_rgb(Array2::from_elem((2, 2), 3.0_f32).view(), None, 1).unwrap();
        assert_eq!(p.data, [VIRIDIS[0]; 4].concat());
    }

    #[test]
    fn zero_upscale_is_an_error() {
        assert!(matches!(
            map_rgb(array![[1.0_f32]].view(), None, 0),
            Err(ReportError::InvalidParameter {
                name: "upscale",
                ..
            })
        ));
    }

    #[test]
    fn oversized_picture_is_an_error() {
        assert!(matches!(
            labels_rgb(array![[1, 2]].view(), MAX_SIDE_PX),
            Err(ReportError::InvalidParameter {
                name: "upscale",
                ..
            })
        ));
    }

    #[test]
    fn bad_scale_is_an_error() {
        for scale in [
            (1.0, 1.0),
            (2.0, 1.0),
            (f32::NAN, 1.0),
            (0.0, f32::INFINITY),
        ] {
            assert!(matches!(
                map_rgb(array![[1.0_f32]].view(), Some(scale), 1),
                Err(ReportError::InvalidParameter { name: "scale", .. })
            ));
        }
    }

    #[test]
    fn grey_min_max() {
        // skimage: img_as_ubyte(rescale_intensity([[-1, 0], [1, 0.3]], out_range=(0, 1)))
        // = [[0, 128], [255, 166]]  ((v + 1) / 2 * 255: 127.5 -> 128, 165.75 -> 166).
        let p = grey_bytes(array![[-1.0_f32, 0.0], [1.0, 0.3]].view()).unwrap();
        assert_eq!(p.data, vec![0, 128, 255, 166]);
        // Ties to even as np.rint: range 0..510, v / 2: 0.5 -> 0, 1.5 -> 2; NaN -> 0.
        let p = grey_bytes(array![[0.0_f32, 1.0, 3.0, 510.0, f32::NAN]].view()).unwrap();
        assert_eq!(p.data, vec![0, 0, 2, 255, 0]);
    }

    #[test]
    fn pictures_are_written_atomically() {
        // The writer (phyvae_data::atomic) is tested in the data crate; here:
        // only the target is left, and a failure is an Io error naming it.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("map.png");
        write_grey_png(&path, array![[0.0_f32, 1.0]].view()).unwrap();
        write_grey_png(&path, array![[1.0_f32, 0.0]].view()).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["map.png"]);
        let missing = dir.path().join("no/map.png");
        let err = write_grey_png(&missing, array![[0.0_f32]].view()).unwrap_err();
        assert!(
            matches!(&err, ReportError::Io { path, .. } if *path == missing),
            "{err}"
        );
        assert!(!missing.exists());
    }
}
