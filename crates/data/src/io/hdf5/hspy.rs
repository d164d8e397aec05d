//! hyperspy `.hspy` / `.hdf5` (HyperSpy file format 1.0 to 3.x).
//!
//! Layout (hyperspy's `hspy` writer, rosettasciio's `rsciio/hspy` and
//! `rsciio/_hierarchical.py` readers): `/Experiments/<title>/data` is the
//! signal's array in hyperspy's order, navigation axes first and signal axes
//! last; `/Experiments/<title>/axis-<i>` describes array axis `i` with the
//! attributes `scale`, `offset`, `units`, `size` and `navigate` (`False` for a
//! signal axis).
//!
//! An entry is usable when its signal axes are exactly the last two array
//! axes (an image) and it has at most one navigation axis (a stack): the
//! array is `(rows, cols)` or `(frames, rows, cols)`, rows along axis
//! `ndim - 2` (hyperspy's y) and columns along axis `ndim - 1` (x), and the
//! pixel size is those axes' `scale` in their `units`. Files older than
//! format 2.0 have no `navigate`: the signal axes are then the last two for
//! `record_by = "image"` (in `metadata/Signal`, or `mapped_parameters` in
//! format 1.0), the last one for `"spectrum"`, and the last two when neither
//! is recorded.
//!
//! Entries come by sorted title.

use super::common::{Entry, Layout, Source, Why, dtype_name, pixel_size_nm};
use crate::{PixelSize, Result};
use hdf5_reader::group::Group;

const FORMAT: &str = "hyperspy HDF5";
/// The root group of the signals.
pub(super) const EXPERIMENTS: &str = "Experiments";
/// The array of a signal group.
const DATA: &str = "data";
/// Prefix of the axis groups.
const AXIS: &str = "axis-";
/// Where older files record the signal kind, and the attribute.
const RECORD_BY_GROUPS: [&str; 2] = ["metadata/Signal", "mapped_parameters"];
const RECORD_BY: &str = "record_by";

/// One axis as `axis-<i>` describes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Axis {
    scale: Option<f64>,
    units: Option<String>,
    navigate: Option<bool>,
}

/// The signals under `/Experiments`.
pub(super) fn list(src: &Source, root: &Group) -> Result<Vec<Entry>> {
    let experiments = root.group(EXPERIMENTS).map_err(|e| src.err(FORMAT, e))?;
    let (titles, _) = src.children(FORMAT, &experiments)?;
    let mut entries = Vec::new();
    for title in titles {
        let group = experiments.group(&title).map_err(|e| src.err(FORMAT, e))?;
        let (groups, datasets) = src.children(FORMAT, &group)?;
        if !datasets.iter().any(|d| d == DATA) {
            continue;
        }
        let ds = group.dataset(DATA).map_err(|e| src.err(FORMAT, e))?;
        let shape = src.shape(FORMAT, &ds)?;
        let mut axes = Vec::with_capacity(shape.len());
        for i in 0..shape.len() {
            let name = format!("{AXIS}{i}");
            axes.push(if groups.contains(&name) {
                let g = group.group(&name).map_err(|e| src.err(FORMAT, e))?;
                let a = src.group_attrs(FORMAT, &g)?;
                Axis {
                    scale: a.number("scale"),
                    units: a.string("units"),
                    navigate: a.boolean("navigate"),
                }
            } else {
                Axis::default()
            });
        }
        let record_by = if axes.iter().all(|a| a.navigate.is_some()) {
            None
        } else {
            record_by(src, &group)?
        };
        let name = format!("/{EXPERIMENTS}/{title}");
        let sig = signal_axes(&axes, record_by.as_deref());
        let n = shape.len();
        let why_not = match sig.as_slice() {
            [] => Some("no signal axis".to_owned()),
            [_] => Some("a spectrum (one signal axis), not an image".to_owned()),
            [a, b] if *a + 2 == n && *b + 1 == n => (n > 3).then(|| {
                format!(
                    "an image with {} navigation axes; only stacks with one are read",
                    n - 2
                )
            }),
            [a, b] => Some(format!(
                "signal axes {a} and {b} of a {n}-D array, not the last two"
            )),
            more => Some(format!("{} signal axes, not an image", more.len())),
        };
        if let Some(reason) = why_not {
            entries.push(Entry::unusable(
                &name,
                shape,
                dtype_name(ds.dtype()),
                Why::NotAnImage,
                reason,
            ));
            continue;
        }
        let pixel_size = image_pixel_size(&axes);
        entries.push(Entry::image(
            &name,
            &format!("{name}/{DATA}"),
            ds.dtype(),
            shape,
            Layout::FramesRowsCols,
            pixel_size,
        ));
    }
    Ok(entries)
}

/// The `record_by` of signal group `group` (`"image"`, `"spectrum"`, ...),
/// for files without `navigate`.
fn record_by(src: &Source, group: &Group) -> Result<Option<String>> {
    for path in RECORD_BY_GROUPS {
        let mut g = group.clone();
        let mut found = true;
        for part in path.split('/') {
            let (groups, _) = src.children(FORMAT, &g)?;
            if !groups.iter().any(|n| n == part) {
                found = false;
                break;
            }
            g = g.group(part).map_err(|e| src.err(FORMAT, e))?;
        }
        if found && let Some(r) = src.group_attrs(FORMAT, &g)?.string(RECORD_BY) {
            return Ok(Some(r));
        }
    }
    Ok(None)
}

/// The indices of the signal axes: those with `navigate = False` when every
/// axis says; else from `record_by` (the last two for `"image"` or when
/// unknown, the last one for `"spectrum"`).
pub(super) fn signal_axes(axes: &[Axis], record_by: Option<&str>) -> Vec<usize> {
    let n = axes.len();
    if n > 0 && axes.iter().all(|a| a.navigate.is_some()) {
        return (0..n)
            .filter(|&i| axes.get(i).and_then(|a| a.navigate) == Some(false))
            .collect();
    }
    let count = match record_by {
        Some("spectrum") => 1,
        _ => 2,
    };
    (n.saturating_sub(count)..n).collect()
}

/// The pixel size of an image whose last two axes are y and x.
fn image_pixel_size(axes: &[Axis]) -> Option<PixelSize> {
    let n = axes.len();
    let x = axes.get(n.checked_sub(1)?)?;
    let y = axes.get(n.checked_sub(2)?)?;
    pixel_size_nm(
        (x.scale?, x.units.as_deref()?),
        (y.scale?, y.units.as_deref()?),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axis(navigate: Option<bool>) -> Axis {
        Axis {
            scale: Some(0.5),
            units: Some("nm".to_owned()),
            navigate,
        }
    }

    #[test]
    fn signal_axes_from_navigate_or_record_by() {
        let a = [axis(Some(true)), axis(Some(false)), axis(Some(false))];
        assert_eq!(signal_axes(&a, None), vec![1, 2]);
        let a = [axis(Some(false)), axis(Some(true))];
        assert_eq!(signal_axes(&a, None), vec![0]);
        let a = [axis(None), axis(None), axis(None)];
        assert_eq!(signal_axes(&a, Some("image")), vec![1, 2]);
        assert_eq!(signal_axes(&a, Some("spectrum")), vec![2]);
        assert_eq!(signal_axes(&a, None), vec![1, 2]);
        assert_eq!(signal_axes(&a[..1], None), vec![0]);
        assert_eq!(signal_axes(&[], None), Vec::<usize>::new());
    }

    #[test]
    fn pixel_size_from_the_last_two_axes() {
        let mut y = axis(Some(false));
        y.scale = Some(0.031);
        y.units = Some("microns".to_owned());
        let x = axis(Some(false));
        let p = image_pixel_size(&[axis(Some(true)), y, x]).unwrap();
        assert!((p.x - 0.5).abs() < 1e-12 && (p.y - 31.0).abs() < 1e-9);
        let mut no_units = axis(Some(false));
        no_units.units = None;
        assert_eq!(image_pixel_size(&[no_units, axis(Some(false))]), None);
        assert_eq!(image_pixel_size(&[axis(Some(false))]), None);
    }
}
