//! PNG rendering, checked by decoding the written files with the `png` crate.

use ndarray::{Array2, array};
use phyvae_report::ReportError;
use phyvae_report::colormap::{NAN_GREY, VIRIDIS, label_colour};
use phyvae_report::render::{
    encode_grey_png, encode_labels_png, encode_map_png, write_grey_png, write_labels_png,
    write_map_png,
};
use std::io::Cursor;
use std::path::Path;

/// Decoded picture: (width, height, colour type, bytes).
type Decoded = (u32, u32, png::ColorType, Vec<u8>);

fn try_decode(bytes: &[u8]) -> Result<Decoded, Box<dyn std::error::Error>> {
    let decoder = png::Decoder::new(Cursor::new(bytes));
    let mut reader = decoder.read_info()?;
    let mut buf = vec![0; reader.output_buffer_size().ok_or("no buffer size")?];
    let info = reader.next_frame(&mut buf)?;
    if info.bit_depth != png::BitDepth::Eight {
        return Err(format!("bit depth {:?}", info.bit_depth).into());
    }
    buf.truncate(info.buffer_size());
    Ok((info.width, info.height, info.color_type, buf))
}

fn pixel(data: &[u8], width: u32, row: u32, col: u32) -> [u8; 3] {
    let i = 3 * (row * width + col) as usize;
    [data[i], data[i + 1], data[i + 2]]
}

#[test]
fn two_by_two_map_decodes_to_expected_colours() {
    // min 0, max 4: 0 -> t 0 (entry 0), 1 -> t 0.25 (floor(64.0) = entry 64),
    // 4 -> t 1 (entry 255), NaN -> grey.
    let map = array![[0.0_f32, 1.0], [4.0, f32::NAN]];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("map.png");
    write_map_png(&path, map.view(), None, 3).unwrap();
    let (w, h, colour, data) = try_decode(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!((w, h, colour), (6, 6, png::ColorType::Rgb));
    for r in 0..6 {
        for c in 0..6 {
            let expect = match (r / 3, c / 3) {
                (0, 0) => VIRIDIS[0],
                (0, 1) => VIRIDIS[64],
                (1, 0) => VIRIDIS[255],
                _ => NAN_GREY,
            };
            assert_eq!(pixel(&data, w, r, c), expect, "pixel ({r}, {c})");
        }
    }
    // The in-memory encoding is the same file.
    assert_eq!(
        encode_map_png(map.view(), None, 3).unwrap(),
        std::fs::read(&path).unwrap()
    );
    // Only the target is left in the directory (the temporary file was renamed).
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn fixed_scale_clamps() {
    // scale (0, 2): -5 -> below, entry 0; 1 -> t 0.5 -> entry 128; 9 -> above, 255.
    let map = array![[-5.0_f32, 1.0, 9.0]];
    let (w, h, _, data) =
        try_decode(&encode_map_png(map.view(), Some((0.0, 2.0)), 1).unwrap()).unwrap();
    assert_eq!((w, h), (3, 1));
    assert_eq!(pixel(&data, w, 0, 0), VIRIDIS[0]);
    assert_eq!(pixel(&data, w, 0, 1), [33, 145, 140]);
    assert_eq!(pixel(&data, w, 0, 2), VIRIDIS[255]);
}

#[test]
fn labels_get_distinct_colours() {
    let labels = array![[0, 1, 2], [2, 1, 0]];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("labels.png");
    write_labels_png(&path, labels.view(), 2).unwrap();
    let (w, h, colour, data) = try_decode(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!((w, h, colour), (6, 4, png::ColorType::Rgb));
    let (c0, c1, c2) = (
        pixel(&data, w, 0, 0),
        pixel(&data, w, 0, 2),
        pixel(&data, w, 0, 4),
    );
    assert!(c0 != c1 && c1 != c2 && c0 != c2);
    assert_eq!(c0, label_colour(0));
    assert_eq!(pixel(&data, w, 3, 5), c0);
    assert_eq!(pixel(&data, w, 2, 0), c2);
    assert_eq!(
        encode_labels_png(labels.view(), 2).unwrap(),
        std::fs::read(&path).unwrap()
    );
}

#[test]
fn grey_png_is_min_max_8_bit() {
    // min 10, max 20: 10 -> 0, 15 -> 127.5 -> 128 (np.rint: ties to even), 20 -> 255.
    let img = array![[10.0_f32, 15.0, 20.0]];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grey.png");
    write_grey_png(&path, img.view()).unwrap();
    let (w, h, colour, data) = try_decode(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!((w, h, colour), (3, 1, png::ColorType::Grayscale));
    assert_eq!(data, vec![0, 128, 255]);
    assert_eq!(
        encode_grey_png(img.view()).unwrap(),
        std::fs::read(&path).unwrap()
    );
}

#[test]
fn empty_map_is_an_error() {
    let empty = Array2::<f32>::zeros((0, 3));
    assert!(matches!(
        encode_map_png(empty.view(), None, 4),
        Err(ReportError::EmptyMap { rows: 0, cols: 3 })
    ));
    assert!(matches!(
        encode_labels_png(Array2::<i32>::zeros((2, 0)).view(), 1),
        Err(ReportError::EmptyMap { rows: 2, cols: 0 })
    ));
    assert!(matches!(
        encode_grey_png(empty.view()),
        Err(ReportError::EmptyMap { .. })
    ));
}

#[test]
fn unwritable_path_is_an_io_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no_such_dir").join("map.png");
    let err = write_map_png(&path, array![[1.0_f32]].view(), None, 1).unwrap_err();
    match &err {
        ReportError::Io { path: p, .. } => assert_eq!(p, &path),
        other => panic!("expected Io, got {other:?}"),
    }
    assert!(err.to_string().contains(path.to_str().unwrap()));
    // Nothing was left behind, and the missing directory was not created.
    assert!(!Path::new(&path).exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
