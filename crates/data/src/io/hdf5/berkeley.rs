//! Berkeley EMD (NCEM `.emd`, EMD 0.2 specification; also Prismatic and
//! py4DSTEM output).
//!
//! A data group is any group with the attribute `emd_group_type = 1`. It holds
//! the array (`data`; Prismatic and py4DSTEM name it `realslice`,
//! `diffractionslice`, `datacube` or `counted_datacube`) and one vector per
//! array axis, `dim1`, `dim2`, ... (`dim0`, `dim1`, ... in py4DSTEM files),
//! with attributes `name` and `units`. The pixel size along an axis is the
//! step of its vector, `(last - first) / (n - 1)`; units are written either
//! plainly (`"nm"`) or in brackets with `_` between characters (`"[n_m]"`,
//! as hyperspy and Prismatic write them), read as rosettasciio's
//! `_parse_attribute` does.
//!
//! Which axis is rows: the array is stored as the **transpose** of the image.
//! rosettasciio (`rsciio/emd/_emd_ncem.py`, `_read_data_from_groups`)
//! transposes every array except `datacube` and py4DSTEM's (files with a
//! `dim0`), and hyperspy writes `data.T` with `dim1` describing its last
//! (x) axis; Prismatic files agree (`dim1` is named `R_x`, `dim2` `R_y`).
//! So a stored `(d1, d2)` array is an image of `d2` rows and `d1` columns,
//! x calibrated by `dim1` and y by `dim2`, and a stored `(d1, d2, d3)` array is
//! a stack of `d3` such frames. py4DSTEM arrays (with `dim0`) are used as
//! stored: rows along `dim0`, columns along `dim1`, 2-D only.
//!
//! Groups are visited depth-first with names sorted at each level (the order
//! of h5py's `visititems`), the first [`MAX_GROUPS`] groups at most
//! [`MAX_DEPTH`] levels deep (which also ends a cycle of hard links).

use super::common::{Attrs, Entry, Layout, Source, Val, Why, dtype_name, pixel_size_nm};
use crate::{PixelSize, Result};
use hdf5_reader::group::Group;
use hdf5_reader::{SliceInfo, SliceInfoElem};

const FORMAT: &str = "Berkeley EMD";
/// The attribute marking a data group, and its value for data.
const GROUP_TYPE: &str = "emd_group_type";
const DATA_GROUP: f64 = 1.0;
/// Names of the array in a data group, in order of preference.
const ARRAYS: [&str; 5] = [
    "data",
    "realslice",
    "diffractionslice",
    "datacube",
    "counted_datacube",
];
/// Arrays of points (py4DSTEM), not images.
const POINT_LISTS: [&str; 2] = ["pointlist", "pointlistarray"];
/// Most groups visited, and deepest level walked.
const MAX_GROUPS: usize = 4096;
const MAX_DEPTH: usize = 16;
/// Longest `dim` vector whose step is read.
const MAX_DIM_LEN: usize = 1 << 24;

/// The data groups of the file, in depth-first order.
pub(super) fn list(src: &Source, root: &Group) -> Result<Vec<Entry>> {
    let mut entries = Vec::new();
    let mut stack: Vec<(String, Group, usize)> = vec![(String::new(), root.clone(), 0)];
    let mut visited = 0_usize;
    while let Some((path, group, depth)) = stack.pop() {
        visited += 1;
        if visited > MAX_GROUPS {
            // A huge tree, or a cycle of hard links: what was found so far.
            break;
        }
        let (groups, datasets) = src.children(FORMAT, &group)?;
        // An attribute the decoder cannot read elsewhere in the tree does
        // not hide the data groups; in a data group it shows when its array
        // is read.
        let is_data_group = depth > 0
            && group
                .attributes()
                .is_ok_and(|a| Attrs(a).number(GROUP_TYPE) == Some(DATA_GROUP));
        if is_data_group && let Some(e) = entry(src, &path, &group, &datasets)? {
            entries.push(e);
        }
        if depth < MAX_DEPTH {
            for name in groups.iter().rev() {
                let child = group.group(name).map_err(|e| src.err(FORMAT, e))?;
                stack.push((format!("{path}/{name}"), child, depth + 1));
            }
        }
    }
    Ok(entries)
}

/// The entry of data group `group` at `path` with datasets `datasets`.
fn entry(src: &Source, path: &str, group: &Group, datasets: &[String]) -> Result<Option<Entry>> {
    let has = |n: &str| datasets.iter().any(|d| d == n);
    let Some(array) = ARRAYS.iter().find(|a| has(a)).copied().or_else(|| {
        datasets
            .iter()
            .find(|d| d.starts_with("data"))
            .map(String::as_str)
    }) else {
        if let Some(p) = POINT_LISTS.iter().find(|p| has(p)) {
            return Ok(Some(Entry::unusable(
                path,
                Vec::new(),
                String::new(),
                Why::NotAnImage,
                format!("a py4DSTEM {p}, not an image"),
            )));
        }
        return Ok(None);
    };
    let ds = group.dataset(array).map_err(|e| src.err(FORMAT, e))?;
    let shape = src.shape(FORMAT, &ds)?;
    let data = format!("{path}/{array}");
    let py4dstem = has("dim0");
    if py4dstem && shape.len() != 2 {
        return Ok(Some(Entry::unusable(
            path,
            shape.clone(),
            dtype_name(ds.dtype()),
            Why::NotAnImage,
            format!("a {}-D py4DSTEM array, not a 2-D image", shape.len()),
        )));
    }
    if array == "datacube" || array == "counted_datacube" {
        return Ok(Some(Entry::unusable(
            path,
            shape,
            dtype_name(ds.dtype()),
            Why::NotAnImage,
            "a 4D-STEM data cube, not a 2-D image",
        )));
    }
    let (layout, x_dim, y_dim) = if py4dstem {
        (Layout::FramesRowsCols, "dim1", "dim0")
    } else {
        (Layout::ColsRowsFrames, "dim1", "dim2")
    };
    let pixel_size = if shape.len() >= 2 && has(x_dim) && has(y_dim) {
        calibration(src, group, x_dim, y_dim)?
    } else {
        None
    };
    Ok(Some(Entry::image(
        path,
        &data,
        ds.dtype(),
        shape,
        layout,
        pixel_size,
    )))
}

/// The pixel size from the `dim` vectors `x_dim` (columns) and `y_dim` (rows).
fn calibration(src: &Source, group: &Group, x_dim: &str, y_dim: &str) -> Result<Option<PixelSize>> {
    let (Some(x), Some(y)) = (step(src, group, x_dim)?, step(src, group, y_dim)?) else {
        return Ok(None);
    };
    Ok(pixel_size_nm((x.0, &x.1), (y.0, &y.1)))
}

/// The step and units of vector `name`, if it is numeric with 2 or more
/// values.
fn step(src: &Source, group: &Group, name: &str) -> Result<Option<(f64, String)>> {
    let ds = group.dataset(name).map_err(|e| src.err(FORMAT, e))?;
    let shape = src.shape(FORMAT, &ds)?;
    let n = match shape.as_slice() {
        [n] if (2..=MAX_DIM_LEN).contains(n) => *n,
        _ => return Ok(None),
    };
    if super::common::Scalar::of(ds.dtype()).is_none() {
        return Ok(None);
    }
    let at = |i: usize| -> Result<f64> {
        let i = u64::try_from(i).map_err(|_| src.malformed(FORMAT, "index overflows"))?;
        let v = ds
            .read_slice::<Val>(&SliceInfo {
                selections: vec![SliceInfoElem::Index(i)],
            })
            .map_err(|e| src.err(FORMAT, e))?;
        v.iter()
            .next()
            .map(|v| v.0)
            .ok_or_else(|| src.malformed(FORMAT, format!("{name} read as an empty array")))
    };
    let first = at(0)?;
    let last = at(n - 1)?;
    #[allow(clippy::cast_precision_loss)]
    let step = (last - first) / (n - 1) as f64;
    let units = Attrs::of(&ds).string("units").unwrap_or_default();
    Ok(Some((step, units_of(&units))))
}

/// A unit as written in an EMD `units` attribute: the bracketed parts with
/// `_` removed, joined by `" * "` (`"[n_m]"` -> `"nm"`, `"[]"` -> `""`), or
/// the text itself when it has no brackets.
pub(super) fn units_of(raw: &str) -> String {
    if !raw.contains('[') {
        return raw.trim().to_owned();
    }
    let mut parts = Vec::new();
    let mut rest = raw;
    while let Some(open) = rest.find('[') {
        let after = rest.get(open + 1..).unwrap_or("");
        let Some(close) = after.find(']') else {
            break;
        };
        parts.push(after.get(..close).unwrap_or("").replace('_', ""));
        rest = after.get(close + 1..).unwrap_or("");
    }
    parts.join(" * ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bracketed_units() {
        assert_eq!(units_of("[n_m]"), "nm");
        assert_eq!(units_of("[Å]"), "Å");
        assert_eq!(units_of("[µ_m]"), "µm");
        assert_eq!(units_of("[]"), "");
        assert_eq!(units_of(" nm "), "nm");
        assert_eq!(units_of("[n_m] [s]"), "nm * s");
        assert_eq!(units_of("[n_m"), "");
        assert_eq!(units_of(""), "");
    }
}
