//! Velox EMD (Thermo Fisher Scientific Velox `.emd`).
//!
//! Layout (as rosettasciio's `rsciio/emd/_emd_velox.py` reads it):
//!
//! - `/Data/Image/<id>/Data`: the image, stored **`(rows, cols, frames)`**
//!   (rosettasciio's `_read_image_data`: "a `(y, x, frame)` image dataset",
//!   frame `k` read as `Data[:, :, k]`, axes named `y` then `x`). Frame `k`
//!   of phyvae is that `(rows, cols)` plane, rows along y.
//! - `/Data/Image/<id>/Metadata`: `uint8`, shape `(n, frames)`, one
//!   NUL-padded JSON document per frame (column). Column 0 gives the
//!   calibration: `BinaryResult.PixelSize.width` (x, columns) and `.height`
//!   (y, rows), numbers written as strings, in `BinaryResult.PixelUnitX` and
//!   `PixelUnitY` (`"m"` in every file seen).
//! - Images with a compound element of two floats (FFT and DPC images,
//!   `realFloat`/`imagFloat`) are complex: listed, not read.
//! - `/Data/Spectrum/<id>`, `/Data/SpectrumImage/<id>` and
//!   `/Data/SpectrumStream/<id>` (EDS spectra and spectrum images) are listed
//!   as not usable: a spectrum image's HAADF/BF images are the
//!   `/Data/Image` entries of the same file.
//!
//! Entries: images first, then spectra, each by sorted group id.

use super::common::{Entry, Layout, Source, Why, dtype_name, pixel_size_nm};
use crate::{PixelSize, Result};
use hdf5_reader::group::Group;
use hdf5_reader::{SliceInfo, SliceInfoElem};

const FORMAT: &str = "Velox EMD";
/// The root group of the data.
const DATA: &str = "Data";
/// The image groups, under `/Data`.
const IMAGE: &str = "Image";
/// The array of an image or spectrum group.
const ARRAY: &str = "Data";
/// The per-frame JSON metadata of an image group.
const METADATA: &str = "Metadata";
/// Spectrum groups under `/Data`, each with why it is not an image.
const SPECTRA: [(&str, &str); 3] = [
    (
        "Spectrum",
        "a single spectrum (Velox Spectrum), not an image",
    ),
    (
        "SpectrumImage",
        "a spectrum image in Velox's own encoding, not a 2-D image",
    ),
    (
        "SpectrumStream",
        "an EDS spectrum image (Velox SpectrumStream), not a 2-D image; the images \
         acquired with it are the /Data/Image entries",
    ),
];
/// Largest metadata document read (Velox writes 60 000 bytes per frame).
const MAX_METADATA_BYTES: usize = 1 << 20;

/// `/Data` if the root holds it with an `Image` or spectrum group inside.
pub(super) fn data_group(
    src: &Source,
    root: &Group,
    root_groups: &[String],
) -> Result<Option<Group>> {
    if !root_groups.iter().any(|g| g == DATA) {
        return Ok(None);
    }
    let data = root.group(DATA).map_err(|e| src.err(FORMAT, e))?;
    let (groups, _) = src.children(FORMAT, &data)?;
    let velox = groups
        .iter()
        .any(|g| g == IMAGE || SPECTRA.iter().any(|(s, _)| g == s));
    Ok(velox.then_some(data))
}

/// The entries under `/Data`.
pub(super) fn list(src: &Source, data: &Group) -> Result<Vec<Entry>> {
    let (groups, _) = src.children(FORMAT, data)?;
    let mut entries = Vec::new();
    if groups.iter().any(|g| g == IMAGE) {
        let images = data.group(IMAGE).map_err(|e| src.err(FORMAT, e))?;
        let (ids, _) = src.children(FORMAT, &images)?;
        for id in ids {
            let name = format!("/{DATA}/{IMAGE}/{id}");
            let group = images.group(&id).map_err(|e| src.err(FORMAT, e))?;
            let (_, arrays) = src.children(FORMAT, &group)?;
            if !arrays.iter().any(|a| a == ARRAY) {
                continue;
            }
            let ds = group.dataset(ARRAY).map_err(|e| src.err(FORMAT, e))?;
            let shape = src.shape(FORMAT, &ds)?;
            let pixel_size = if arrays.iter().any(|a| a == METADATA) {
                metadata_pixel_size(src, &group)?
            } else {
                None
            };
            let data_path = format!("{name}/{ARRAY}");
            entries.push(Entry::image(
                &name,
                &data_path,
                ds.dtype(),
                shape,
                Layout::RowsColsFrames,
                pixel_size,
            ));
        }
    }
    for (kind, reason) in SPECTRA {
        if !groups.iter().any(|g| g == kind) {
            continue;
        }
        let spectra = data.group(kind).map_err(|e| src.err(FORMAT, e))?;
        let (ids, _) = src.children(FORMAT, &spectra)?;
        for id in ids {
            let group = spectra.group(&id).map_err(|e| src.err(FORMAT, e))?;
            let (_, arrays) = src.children(FORMAT, &group)?;
            let (shape, dtype) = if arrays.iter().any(|a| a == ARRAY) {
                let ds = group.dataset(ARRAY).map_err(|e| src.err(FORMAT, e))?;
                (src.shape(FORMAT, &ds)?, dtype_name(ds.dtype()))
            } else {
                (Vec::new(), String::new())
            };
            let name = format!("/{DATA}/{kind}/{id}");
            entries.push(Entry::unusable(
                &name,
                shape,
                dtype,
                Why::NotAnImage,
                reason,
            ));
        }
    }
    Ok(entries)
}

/// The pixel size recorded in the first frame's metadata of image `group`:
/// `None` when the metadata is not a `uint8` array of JSON or lacks the
/// calibration; decoder errors reading it are errors.
fn metadata_pixel_size(src: &Source, group: &Group) -> Result<Option<PixelSize>> {
    let ds = group.dataset(METADATA).map_err(|e| src.err(FORMAT, e))?;
    let shape = src.shape(FORMAT, &ds)?;
    let is_bytes = matches!(
        ds.dtype(),
        hdf5_reader::Datatype::FixedPoint { size: 1, .. }
    );
    let all = SliceInfoElem::Slice {
        start: 0,
        end: u64::MAX,
        step: 1,
    };
    let selections = match shape.as_slice() {
        [n] if *n <= MAX_METADATA_BYTES => vec![all],
        [n, f] if *n <= MAX_METADATA_BYTES && *f > 0 => vec![all, SliceInfoElem::Index(0)],
        _ => return Ok(None),
    };
    if !is_bytes {
        return Ok(None);
    }
    let bytes = ds
        .read_slice::<u8>(&SliceInfo { selections })
        .map_err(|e| src.err(FORMAT, e))?;
    let bytes: Vec<u8> = bytes.iter().copied().collect();
    Ok(pixel_size_from_json(&bytes))
}

/// The pixel size in a Velox metadata document (JSON, NUL-padded):
/// `BinaryResult.PixelSize.width`/`.height` (numbers or numeric strings) in
/// `BinaryResult.PixelUnitX`/`PixelUnitY` (Y defaults to X), converted to nm.
pub(super) fn pixel_size_from_json(bytes: &[u8]) -> Option<PixelSize> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let json: serde_json::Value = serde_json::from_slice(bytes.get(..end)?).ok()?;
    let result = json.get("BinaryResult")?;
    let size = result.get("PixelSize")?;
    let number = |v: &serde_json::Value| -> Option<f64> {
        match v {
            serde_json::Value::Number(n) => n.as_f64(),
            serde_json::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    };
    let x = number(size.get("width")?)?;
    let y = number(size.get("height")?)?;
    let unit_x = result.get("PixelUnitX")?.as_str()?;
    let unit_y = result
        .get("PixelUnitY")
        .and_then(serde_json::Value::as_str)
        .unwrap_or(unit_x);
    pixel_size_nm((x, unit_x), (y, unit_y))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_from_metadata_json() {
        // Values of fei_emd_image.emd (hyperspy's test data): 5.30e-9 m = 5.30 nm.
        let doc = br#"{"BinaryResult": {"PixelSize": {"width": "5.3024148379916015e-009", "height": "2.5e-9"}, "PixelUnitX": "m", "PixelUnitY": "m"}}"#;
        let mut padded = doc.to_vec();
        padded.resize(doc.len() + 100, 0);
        let p = pixel_size_from_json(&padded).unwrap();
        assert!((p.x - 5.302_414_837_991_601).abs() < 1e-12);
        assert!((p.y - 2.5).abs() < 1e-12);
        // Numbers instead of strings, PixelUnitY missing: y uses PixelUnitX.
        let doc = br#"{"BinaryResult": {"PixelSize": {"width": 2e-10, "height": 3e-10}, "PixelUnitX": "m"}}"#;
        let p = pixel_size_from_json(doc).unwrap();
        assert!((p.x - 0.2).abs() < 1e-12 && (p.y - 0.3).abs() < 1e-12);
        // Reciprocal space (a diffraction pattern) has no length calibration.
        let doc = br#"{"BinaryResult": {"PixelSize": {"width": "1", "height": "1"}, "PixelUnitX": "1/m"}}"#;
        assert_eq!(pixel_size_from_json(doc), None);
        for bad in [&b""[..], b"{", b"\0{}", b"[]", br#"{"BinaryResult": 3}"#] {
            assert_eq!(pixel_size_from_json(bad), None);
        }
    }
}
