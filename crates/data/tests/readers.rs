//! Readers and writers on small files built in the test: NPY headers written by
//! hand, TIFF and PNG encoded with the `tiff` and `png` crates' encoders.
// Test helpers outside `#[test]` functions unwrap too (clippy.toml allows it in tests).
#![allow(clippy::unwrap_used, clippy::panic)]

use ndarray::{Array2, Array3, array};
use phyvae_data::io::{
    Format, detect_format, read_image, read_npy, read_npy_array, read_png, read_spiepy_dat,
    read_tiff, write_npy_f32, write_npy_f32_3d, write_npy_i32, write_npy_u8,
};
use phyvae_data::{DataError, PixelSize};
use proptest::prelude::*;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------- helpers

/// An NPY 1.0 file: magic, version, header length, the dict literal padded
/// with spaces and a newline to a multiple of 64 bytes, then `data`.
fn npy_file(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
    let order = if fortran { "True" } else { "False" };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}");
    while !(10 + dict.len() + 1).is_multiple_of(64) {
        dict.push(' ');
    }
    dict.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend_from_slice(data);
    out
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn le<const N: usize, T: Copy>(values: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
    values.iter().flat_map(|&v| f(v)).collect()
}

fn pixels(path: &Path, frame: Option<usize>) -> Vec<f32> {
    read_image(path, frame)
        .unwrap()
        .pixels
        .iter()
        .copied()
        .collect()
}

fn assert_names_path(err: &DataError, path: &Path) {
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "message `{msg}` does not name {}",
        path.display()
    );
}

// ---------------------------------------------------------------- NPY reading

#[test]
fn npy_every_dtype_both_byte_orders() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Little-endian (and byte) types: each file is a 2 x 3 array; expected
    // values are the stored numbers as f32.
    let little: Vec<(&str, Vec<u8>, [f32; 6])> = vec![
        (
            "<f4",
            le(&[0.5_f32, -1.25, 3.0e-9, 7.0, -0.0, 1e30], f32::to_le_bytes),
            [0.5, -1.25, 3.0e-9, 7.0, -0.0, 1e30],
        ),
        (
            "<f8",
            // 0.1 and 1/3 round to the nearest f32 (0.1_f32, 0.33333334_f32).
            le(
                &[0.1_f64, 1.0 / 3.0, -2.5, 1e-9, 65504.0, -7.0],
                f64::to_le_bytes,
            ),
            [0.1, 0.333_333_34, -2.5, 1e-9, 65504.0, -7.0],
        ),
        (
            "|u1",
            vec![0, 1, 127, 128, 254, 255],
            [0.0, 1.0, 127.0, 128.0, 254.0, 255.0],
        ),
        (
            "|i1",
            vec![0x80, 0xff, 0, 1, 0x7f, 0x10],
            [-128.0, -1.0, 0.0, 1.0, 127.0, 16.0],
        ),
        (
            "<u2",
            le(&[0_u16, 1, 256, 4095, 65534, 65535], u16::to_le_bytes),
            [0.0, 1.0, 256.0, 4095.0, 65534.0, 65535.0],
        ),
        (
            "<i2",
            le(&[-32768_i16, -1, 0, 1, 12345, 32767], i16::to_le_bytes),
            [-32768.0, -1.0, 0.0, 1.0, 12345.0, 32767.0],
        ),
        (
            "<u4",
            // 2^32 - 1 rounds to 2^32 in f32; 16 777 217 = 2^24 + 1 rounds (ties to even) to 2^24.
            le(
                &[0_u32, 7, 16_777_216, 16_777_217, 100_000, u32::MAX],
                u32::to_le_bytes,
            ),
            [
                0.0,
                7.0,
                16_777_216.0,
                16_777_216.0,
                100_000.0,
                4_294_967_296.0,
            ],
        ),
        (
            "<i4",
            le(
                &[i32::MIN, -5, 0, 5, 1_000_000, -1_000_000],
                i32::to_le_bytes,
            ),
            [-2_147_483_648.0, -5.0, 0.0, 5.0, 1_000_000.0, -1_000_000.0],
        ),
        (
            "<i8",
            le(&[-3_i64, 0, 1 << 40, -(1 << 40), 42, 9], i64::to_le_bytes),
            [
                -3.0,
                0.0,
                1_099_511_627_776.0,
                -1_099_511_627_776.0,
                42.0,
                9.0,
            ],
        ),
        (
            "<u8",
            le(&[0_u64, 1, 2, 3, 1 << 33, 5], u64::to_le_bytes),
            [0.0, 1.0, 2.0, 3.0, 8_589_934_592.0, 5.0],
        ),
    ];
    // Big-endian types: each file is a 2 x 2 array.
    let big: Vec<(&str, Vec<u8>, [f32; 4])> = vec![
        (
            ">f4",
            le(&[1.5_f32, -2.0, 0.25, 8.0], f32::to_be_bytes),
            [1.5, -2.0, 0.25, 8.0],
        ),
        (
            ">f8",
            le(&[1.5_f64, -2.0, 0.25, 8.0], f64::to_be_bytes),
            [1.5, -2.0, 0.25, 8.0],
        ),
        (
            ">u2",
            vec![0x01, 0x00, 0xff, 0xff, 0x00, 0x02, 0x12, 0x34],
            [256.0, 65535.0, 2.0, 4660.0],
        ),
        (
            ">i2",
            le(&[-2_i16, 300, -300, 7], i16::to_be_bytes),
            [-2.0, 300.0, -300.0, 7.0],
        ),
        (
            ">u4",
            le(&[1_u32, 70_000, 3, 4], u32::to_be_bytes),
            [1.0, 70_000.0, 3.0, 4.0],
        ),
        (
            ">i4",
            le(&[-1_i32, 70_000, -3, 4], i32::to_be_bytes),
            [-1.0, 70_000.0, -3.0, 4.0],
        ),
        (
            ">i8",
            le(&[-1_i64, 1 << 35, 3, 4], i64::to_be_bytes),
            [-1.0, 34_359_738_368.0, 3.0, 4.0],
        ),
    ];
    let cases = little
        .into_iter()
        .map(|(descr, data, expect)| (descr, "(2, 3)", (2, 3), data, expect.to_vec()))
        .chain(
            big.into_iter()
                .map(|(descr, data, expect)| (descr, "(2, 2)", (2, 2), data, expect.to_vec())),
        );
    for (descr, shape, dims, data, expect) in cases {
        let name = format!("{}.npy", descr.replace(['<', '|'], "_").replace('>', "be_"));
        let p = write(d, &name, &npy_file(descr, false, shape, &data));
        let img = read_image(&p, None).unwrap();
        assert_eq!(img.pixels.dim(), dims, "{descr}");
        let got: Vec<f32> = img.pixels.iter().copied().collect();
        assert_eq!(got, expect, "{descr}");
        assert_eq!(img.pixel_size, None, "{descr}");
        assert_eq!(img.source.as_deref(), Some(p.as_path()), "{descr}");
    }
}

#[test]
fn npy_fortran_order_2d() {
    // a = [[1, 2, 3], [4, 5, 6]] stored column-major: 1 4 2 5 3 6.
    let dir = tempfile::tempdir().unwrap();
    let data = le(&[1_i16, 4, 2, 5, 3, 6], i16::to_le_bytes);
    let p = write(dir.path(), "f.npy", &npy_file("<i2", true, "(2, 3)", &data));
    let img = read_image(&p, None).unwrap();
    assert_eq!(img.pixels, array![[1.0_f32, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    let arr = read_npy_array(&p).unwrap();
    assert_eq!(arr.shape(), &[2, 3]);
    assert_eq!(
        arr.iter().copied().collect::<Vec<_>>(),
        vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    );
}

#[test]
fn npy_3d_stack_frames_c_and_fortran() {
    let dir = tempfile::tempdir().unwrap();
    // a[f, r, c] = 100 f + 10 r + c, shape (2, 2, 3).
    let value = |f: usize, r: usize, c: usize| (100 * f + 10 * r + c) as f32;
    let mut c_order = Vec::new();
    for f in 0..2 {
        for r in 0..2 {
            for c in 0..3 {
                c_order.push(value(f, r, c));
            }
        }
    }
    // Fortran order: the first index varies fastest.
    let mut f_order = Vec::new();
    for c in 0..3 {
        for r in 0..2 {
            for f in 0..2 {
                f_order.push(value(f, r, c));
            }
        }
    }
    let frame1 = array![[100.0_f32, 101.0, 102.0], [110.0, 111.0, 112.0]];
    let frame0 = array![[0.0_f32, 1.0, 2.0], [10.0, 11.0, 12.0]];
    for (name, fortran, data) in [("c.npy", false, &c_order), ("f.npy", true, &f_order)] {
        let bytes = npy_file("<f4", fortran, "(2, 2, 3)", &le(data, f32::to_le_bytes));
        let p = write(dir.path(), name, &bytes);
        assert_eq!(read_image(&p, None).unwrap().pixels, frame0, "{name}");
        assert_eq!(read_image(&p, Some(0)).unwrap().pixels, frame0, "{name}");
        assert_eq!(read_image(&p, Some(1)).unwrap().pixels, frame1, "{name}");
        let err = read_image(&p, Some(2)).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::NoSuchFrame {
                    frame: 2,
                    frames: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert_names_path(&err, &p);
        let arr = read_npy_array(&p).unwrap();
        assert_eq!(arr.shape(), &[2, 2, 3]);
        assert_eq!(arr[[1, 0, 2]], 102.0);
        assert_eq!(arr[[0, 1, 1]], 11.0);
    }
}

#[test]
fn npy_fully_literal_file() {
    // A 1 x 2 '<u2' array [258, 1], every byte spelled out: magic, version 1.0,
    // header length 118 = 0x76, the dict (59 chars) + 58 spaces + '\n' = 118,
    // so that 10 + 118 = 128; data 02 01 01 00 (258 and 1 little-endian).
    let dict = "{'descr': '<u2', 'fortran_order': False, 'shape': (1, 2), }";
    assert_eq!(dict.len(), 59);
    let mut bytes = vec![0x93, b'N', b'U', b'M', b'P', b'Y', 0x01, 0x00, 0x76, 0x00];
    bytes.extend_from_slice(dict.as_bytes());
    bytes.extend(std::iter::repeat_n(b' ', 118 - 59 - 1));
    bytes.push(b'\n');
    bytes.extend_from_slice(&[0x02, 0x01, 0x01, 0x00]);
    assert_eq!(bytes.len(), 132);
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "lit.npy", &bytes);
    assert_eq!(pixels(&p, None), vec![258.0, 1.0]);
}

#[test]
fn npy_version_2_header() {
    // Version 2.0: 4-byte header length; magic + version + length = 12 bytes.
    let dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1), }";
    let mut h = dict.to_owned();
    while !(12 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut bytes = b"\x93NUMPY\x02\x00".to_vec();
    bytes.extend_from_slice(&(h.len() as u32).to_le_bytes());
    bytes.extend_from_slice(h.as_bytes());
    bytes.extend_from_slice(&2.5_f64.to_le_bytes());
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "v2.npy", &bytes);
    assert_eq!(pixels(&p, None), vec![2.5]);
}

#[test]
fn npy_not_an_image_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, usize, Vec<usize>); 5] = [
        ("0d.npy", "()", 1, vec![]),
        ("1d.npy", "(4,)", 4, vec![4]),
        ("4d.npy", "(1, 1, 2, 2)", 4, vec![1, 1, 2, 2]),
        ("empty_rows.npy", "(0, 3)", 0, vec![0, 3]),
        ("empty_cols.npy", "(2, 2, 0)", 0, vec![2, 2, 0]),
    ];
    for (name, shape, n, dims) in cases {
        let data = vec![0_u8; 4 * n];
        let p = write(dir.path(), name, &npy_file("<f4", false, shape, &data));
        let err = read_image(&p, None).unwrap_err();
        match &err {
            DataError::NotAnImage { shape, .. } => assert_eq!(shape, &dims, "{name}"),
            other => panic!("{name}: expected NotAnImage, got {other}"),
        }
        assert_names_path(&err, &p);
        // The array reader accepts any dimension.
        assert_eq!(read_npy_array(&p).unwrap().shape(), dims.as_slice());
    }
}

#[test]
fn npy_2d_frame_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "a.npy",
        &npy_file("|u1", false, "(1, 2)", &[1, 2]),
    );
    assert_eq!(pixels(&p, Some(0)), vec![1.0, 2.0]);
    let err = read_image(&p, Some(1)).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::NoSuchFrame {
                frame: 1,
                frames: 1,
                ..
            }
        ),
        "{err}"
    );
    assert_names_path(&err, &p);
}

/// Reads `p` with [`read_image`], keeping only the error.
fn via_read_image(p: &Path) -> Result<(), DataError> {
    read_image(p, None).map(drop)
}

/// Reads `p` with [`read_npy_array`], keeping only the error.
fn via_read_npy_array(p: &Path) -> Result<(), DataError> {
    read_npy_array(p).map(drop)
}

#[test]
fn npy_malformed_files_are_errors_without_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let full = npy_file(
        "<f4",
        false,
        "(2, 2)",
        &le(&[1.0_f32, 2.0, 3.0, 4.0], f32::to_le_bytes),
    );
    // A header length pointing past the end of the file.
    let mut hlen = b"\x93NUMPY\x01\x00\xff\xff{'descr'".to_vec();
    hlen.extend_from_slice(&[b' '; 20]);
    let mut long = full.clone();
    long.push(0);
    // (file, bytes, reader, text the message must hold)
    type Case = (
        &'static str,
        Vec<u8>,
        fn(&Path) -> Result<(), DataError>,
        Option<&'static str>,
    );
    let cases: [Case; 6] = [
        // 10^6 x 10^6 f8 = 8 TB claimed, 16 bytes present.
        (
            "huge.npy",
            npy_file("<f8", false, "(1000000, 1000000)", &[0; 16]),
            via_read_image,
            Some("truncated"),
        ),
        // A product overflowing 64 bits.
        (
            "overflow.npy",
            npy_file("<f8", false, "(4294967296, 4294967296, 4)", &[0; 16]),
            via_read_npy_array,
            None,
        ),
        ("hlen.npy", hlen, via_read_image, None),
        // One byte of data missing.
        (
            "cut.npy",
            full[..full.len() - 1].to_vec(),
            via_read_image,
            Some("truncated"),
        ),
        // Cut inside the header.
        ("cut_header.npy", full[..40].to_vec(), via_read_image, None),
        // Trailing data.
        ("long.npy", long, via_read_image, None),
    ];
    for (name, bytes, read, needle) in cases {
        let p = write(dir.path(), name, &bytes);
        let err = read(&p).unwrap_err();
        assert!(
            matches!(err, DataError::Malformed { format: "NPY", .. }),
            "{name}: {err}"
        );
        if let Some(needle) = needle {
            assert!(err.to_string().contains(needle), "{name}: {err}");
        }
        assert_names_path(&err, &p);
    }
}

#[test]
fn npy_unsupported_dtypes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    for (descr, size) in [
        ("|b1", 1),
        ("<c8", 8),
        ("<c16", 16),
        ("|O", 8),
        ("<U3", 12),
        ("|S2", 2),
    ] {
        let name = format!("{}.npy", descr.replace(['<', '|'], "_"));
        let p = write(
            dir.path(),
            &name,
            &npy_file(descr, false, "(1, 1)", &vec![0; size]),
        );
        let err = read_image(&p, None).unwrap_err();
        assert!(
            matches!(err, DataError::Unsupported { format: "NPY", .. }),
            "{descr}: {err}"
        );
        assert!(err.to_string().contains(descr), "{err}");
        assert_names_path(&err, &p);
    }
    // A structured dtype (list descr).
    let mut dict =
        "{'descr': [('a', '<i4'), ('b', '<f4')], 'fortran_order': False, 'shape': (1, 1), }"
            .to_owned();
    while !(10 + dict.len() + 1).is_multiple_of(64) {
        dict.push(' ');
    }
    dict.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    bytes.extend_from_slice(dict.as_bytes());
    bytes.extend_from_slice(&[0; 8]);
    let p = write(dir.path(), "struct.npy", &bytes);
    let err = read_image(&p, None).unwrap_err();
    assert!(matches!(err, DataError::Unsupported { .. }), "{err}");
}

// ---------------------------------------------------------------- NPY writing

#[test]
fn writer_header_is_npy_1_0_literally() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("w.npy");
    write_npy_f32(&p, array![[1.0_f32, 2.0, 3.0], [4.0, 5.0, 6.0]].view()).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    // NPY 1.0: magic, (1, 0), u16 LE header length, dict, spaces, '\n'; the
    // dict is 59 chars and 10 + 59 + 1 = 70 pads to 128 with 58 spaces, so the
    // length field is 118 = 0x76.
    let mut expect = b"\x93NUMPY\x01\x00\x76\x00".to_vec();
    expect.extend_from_slice(b"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }");
    expect.extend_from_slice(&[b' '; 58]);
    expect.push(b'\n');
    assert_eq!(&bytes[..128], expect.as_slice());
    // Data: 1.0_f32 = 0x3f800000 little-endian, ... 6.0_f32 = 0x40c00000.
    assert_eq!(&bytes[128..132], &[0x00, 0x00, 0x80, 0x3f]);
    assert_eq!(&bytes[148..152], &[0x00, 0x00, 0xc0, 0x40]);
    assert_eq!(bytes.len(), 128 + 24);
}

#[test]
fn writer_headers_for_u8_i32_and_3d() {
    let dir = tempfile::tempdir().unwrap();
    let header_text = |p: &Path| {
        let b = std::fs::read(p).unwrap();
        let len = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((10 + len) % 64, 0);
        String::from_utf8(b[10..10 + len].to_vec()).unwrap()
    };
    let p = dir.path().join("u8.npy");
    write_npy_u8(&p, array![[1_u8, 2], [3, 4]].view()).unwrap();
    assert!(
        header_text(&p).starts_with("{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2), }")
    );
    let p = dir.path().join("i32.npy");
    write_npy_i32(&p, array![[-1_i32, 2, 3]].view()).unwrap();
    assert!(
        header_text(&p).starts_with("{'descr': '<i4', 'fortran_order': False, 'shape': (1, 3), }")
    );
    let p = dir.path().join("f3.npy");
    write_npy_f32_3d(&p, Array3::<f32>::zeros((2, 3, 4)).view()).unwrap();
    assert!(
        header_text(&p)
            .starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4), }")
    );
}

#[test]
fn writers_round_trip_through_the_reader() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let f = Array2::from_shape_fn((5, 7), |(r, c)| r as f32 * 0.37 - c as f32 * 1.5e-3);
    let p = d.join("f.npy");
    write_npy_f32(&p, f.view()).unwrap();
    assert_eq!(read_image(&p, None).unwrap().pixels, f);
    // A transposed (non-standard-layout) view is written in logical order.
    let p = d.join("ft.npy");
    write_npy_f32(&p, f.t()).unwrap();
    assert_eq!(read_image(&p, None).unwrap().pixels, f.t().to_owned());
    let u = Array2::from_shape_fn((3, 4), |(r, c)| (r * 60 + c) as u8);
    let p = d.join("u.npy");
    write_npy_u8(&p, u.view()).unwrap();
    assert_eq!(read_image(&p, None).unwrap().pixels, u.mapv(f32::from));
    let i = Array2::from_shape_fn((3, 4), |(r, c)| r as i32 * 1000 - c as i32 * 7 - 5);
    let p = d.join("i.npy");
    write_npy_i32(&p, i.view()).unwrap();
    assert_eq!(read_image(&p, None).unwrap().pixels, i.mapv(|v| v as f32));
    let s = Array3::from_shape_fn((4, 3, 2), |(a, b, c)| (a * 100 + b * 10 + c) as f32 + 0.5);
    let p = d.join("s.npy");
    write_npy_f32_3d(&p, s.view()).unwrap();
    let arr = read_npy_array(&p).unwrap();
    assert_eq!(arr.shape(), &[4, 3, 2]);
    assert_eq!(arr[[3, 2, 1]], 321.5);
    // A (gh, gw, C) latent map read back frame by frame along the first axis.
    assert_eq!(
        read_image(&p, Some(2)).unwrap().pixels,
        s.index_axis(ndarray::Axis(0), 2)
    );
    // Only the written files remain: no temporary siblings.
    let mut names: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["f.npy", "ft.npy", "i.npy", "s.npy", "u.npy"]);
}

#[test]
fn writer_into_missing_directory_is_a_write_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("no_such_dir").join("x.npy");
    let err = write_npy_f32(&p, array![[1.0_f32]].view()).unwrap_err();
    assert!(matches!(err, DataError::Write { .. }), "{err}");
    assert_names_path(&err, &p);
}

#[test]
fn writer_replaces_an_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.npy");
    write_npy_f32(&p, array![[1.0_f32, 2.0]].view()).unwrap();
    write_npy_f32(&p, array![[3.0_f32], [4.0]].view()).unwrap();
    assert_eq!(
        read_image(&p, None).unwrap().pixels,
        array![[3.0_f32], [4.0]]
    );
}

// ---------------------------------------------------------------- TIFF

mod tiff_files {
    use super::*;
    use tiff::encoder::colortype::{
        Gray8, Gray16, Gray32, Gray32Float, Gray64Float, GrayI16, GrayI32, RGB8, RGBA16,
    };
    use tiff::encoder::{Compression, DeflateLevel, Rational, TiffEncoder};
    use tiff::tags::{ResolutionUnit, Tag};

    fn compressions() -> [(&'static str, Compression); 4] {
        [
            ("none", Compression::Uncompressed),
            ("lzw", Compression::Lzw),
            ("deflate", Compression::Deflate(DeflateLevel::default())),
            ("packbits", Compression::Packbits),
        ]
    }

    fn encoder(p: &Path, c: Compression) -> TiffEncoder<std::fs::File> {
        TiffEncoder::new(std::fs::File::create(p).unwrap())
            .unwrap()
            .with_compression(c)
    }

    /// Writes a 4 x 3 image of one sample type with `enc`, row-major;
    /// returns the values the reader must give.
    type WriteSamples = fn(TiffEncoder<std::fs::File>) -> Vec<f32>;

    /// Width and height of the sample-type images.
    const W: u32 = 4;
    const H: u32 = 3;

    #[test]
    fn every_sample_type_and_compression() {
        let dir = tempfile::tempdir().unwrap();
        let types: [(&str, WriteSamples); 7] = [
            ("u8", |mut enc| {
                let v: Vec<u8> = (0..12).map(|i| i * 20 + 3).collect();
                enc.write_image::<Gray8>(W, H, &v).unwrap();
                v.iter().map(|&x| f32::from(x)).collect()
            }),
            ("u16", |mut enc| {
                let v: Vec<u16> = (0..12).map(|i| i * 5000 + 35).collect();
                enc.write_image::<Gray16>(W, H, &v).unwrap();
                v.iter().map(|&x| f32::from(x)).collect()
            }),
            ("i16", |mut enc| {
                let v: Vec<i16> = (0..12_i16).map(|i| i * 2900 - 16000).collect();
                enc.write_image::<GrayI16>(W, H, &v).unwrap();
                v.iter().map(|&x| f32::from(x)).collect()
            }),
            ("u32", |mut enc| {
                let v: Vec<u32> = (0..12).map(|i| i * 1_000_000 + 1).collect();
                enc.write_image::<Gray32>(W, H, &v).unwrap();
                // Values below 2^24 are exact in f32.
                v.iter().map(|&x| x as f32).collect()
            }),
            ("i32", |mut enc| {
                let v: Vec<i32> = (0..12).map(|i| i * 100_000 - 600_000).collect();
                enc.write_image::<GrayI32>(W, H, &v).unwrap();
                v.iter().map(|&x| x as f32).collect()
            }),
            ("f32", |mut enc| {
                let v: Vec<f32> = (0..12).map(|i| i as f32 * 0.125 - 0.7).collect();
                enc.write_image::<Gray32Float>(W, H, &v).unwrap();
                v
            }),
            ("f64", |mut enc| {
                let v: Vec<f64> = (0..12).map(|i| f64::from(i) * 1e-10 - 3e-10).collect();
                enc.write_image::<Gray64Float>(W, H, &v).unwrap();
                v.iter().map(|&x| x as f32).collect()
            }),
        ];
        for (cname, comp) in compressions() {
            for (tname, write_samples) in types {
                let p = dir.path().join(format!("{tname}_{cname}.tif"));
                let expect = write_samples(encoder(&p, comp));
                let img = read_image(&p, None).unwrap();
                assert_eq!(img.pixels.dim(), (3, 4), "{tname} {cname}");
                assert_eq!(
                    img.pixels.iter().copied().collect::<Vec<_>>(),
                    expect,
                    "{tname} {cname}"
                );
            }
        }
    }

    #[test]
    fn two_pages_and_frame_out_of_range() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pages.tif");
        let mut enc = encoder(&p, Compression::Lzw);
        enc.write_image::<Gray16>(2, 2, &[1, 2, 3, 4]).unwrap();
        enc.write_image::<Gray16>(3, 1, &[10, 20, 30]).unwrap();
        drop(enc);
        assert_eq!(detect_format(&p).unwrap(), Format::Tiff);
        assert_eq!(
            read_image(&p, None).unwrap().pixels,
            array![[1.0_f32, 2.0], [3.0, 4.0]]
        );
        assert_eq!(
            read_image(&p, Some(1)).unwrap().pixels,
            array![[10.0_f32, 20.0, 30.0]]
        );
        let err = read_image(&p, Some(2)).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::NoSuchFrame {
                    frame: 2,
                    frames: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert_names_path(&err, &p);
        let err = read_tiff(&p, Some(7)).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::NoSuchFrame {
                    frame: 7,
                    frames: 2,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn rgb_becomes_luminance() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("rgb.tif");
        // Pixel (100, 200, 40): 0.2125 * 100 + 0.7154 * 200 + 0.0721 * 40
        // = 21.25 + 143.08 + 2.884 = 167.214; pixel (255, 255, 255) -> 255.
        encoder(&p, Compression::Uncompressed)
            .write_image::<RGB8>(2, 1, &[100, 200, 40, 255, 255, 255])
            .unwrap();
        let v = pixels(&p, None);
        assert!((v[0] - 167.214).abs() < 1e-4, "{v:?}");
        assert!((v[1] - 255.0).abs() < 1e-4, "{v:?}");
        let p = dir.path().join("rgba16.tif");
        // 16-bit RGBA (1000, 0, 0, alpha 7): 0.2125 * 1000 = 212.5; alpha ignored.
        encoder(&p, Compression::Deflate(DeflateLevel::default()))
            .write_image::<RGBA16>(1, 1, &[1000, 0, 0, 7])
            .unwrap();
        assert_eq!(pixels(&p, None), vec![212.5]);
    }

    #[test]
    fn resolution_tags_give_pixel_size_in_nm() {
        let dir = tempfile::tempdir().unwrap();
        let write_with =
            |name: &str, unit: ResolutionUnit, x: Rational, y: Rational, desc: Option<&str>| {
                let p = dir.path().join(name);
                let mut enc = encoder(&p, Compression::Uncompressed);
                let mut img = enc.new_image::<Gray8>(2, 2).unwrap();
                img.resolution_unit(unit);
                img.x_resolution(x);
                img.y_resolution(y);
                if let Some(d) = desc {
                    img.encoder().write_tag(Tag::ImageDescription, d).unwrap();
                }
                img.write_data(&[1, 2, 3, 4]).unwrap();
                p
            };
        let per = |n: u32| Rational { n, d: 1 };
        // (file, unit, x and y resolution, ImageDescription, pixel size (x, y)
        // in nm, tolerance: 0 for an exact result).
        type Case = (
            &'static str,
            ResolutionUnit,
            (u32, u32),
            Option<&'static str>,
            Option<(f64, f64)>,
            f64,
        );
        let cases: [Case; 6] = [
            // 2e7 px/cm -> 1e7 nm / 2e7 = 0.5 nm/px; y: 4e7 px/cm -> 0.25 nm/px.
            (
                "cm.tif",
                ResolutionUnit::Centimeter,
                (20_000_000, 40_000_000),
                None,
                Some((0.5, 0.25)),
                0.0,
            ),
            // 254 000 px/inch -> 2.54e7 nm / 254 000 = 100 nm/px.
            (
                "inch.tif",
                ResolutionUnit::Inch,
                (254_000, 254_000),
                None,
                Some((100.0, 100.0)),
                1e-9,
            ),
            // Unit "none": no calibration.
            ("none.tif", ResolutionUnit::None, (3, 3), None, None, 0.0),
            // ImageJ: 4 px per nm (unit=nm) -> 0.25 nm/px; spacing= is ignored.
            (
                "imagej_nm.tif",
                ResolutionUnit::None,
                (4, 4),
                Some("ImageJ=1.54f\nunit=nm\nspacing=2.0\n"),
                Some((0.25, 0.25)),
                0.0,
            ),
            // ImageJ in microns: 8 px per micron = 125 nm/px.
            (
                "imagej_um.tif",
                ResolutionUnit::None,
                (8, 8),
                Some("ImageJ=1.54f\nunit=micron\n"),
                Some((125.0, 125.0)),
                0.0,
            ),
            // ImageJ without a length unit: no calibration, even with a cm ResolutionUnit.
            (
                "imagej_px.tif",
                ResolutionUnit::Centimeter,
                (8, 8),
                Some("ImageJ=1.54f\nunit=pixel\n"),
                None,
                0.0,
            ),
        ];
        for (name, unit, (x, y), desc, want, tol) in cases {
            let p = write_with(name, unit, per(x), per(y), desc);
            let got = read_image(&p, None).unwrap().pixel_size;
            match (got, want) {
                (None, None) => {}
                (Some(ps), Some((wx, wy))) => {
                    assert_eq!(ps.unit, "nm", "{name}");
                    assert!(
                        (ps.x - wx).abs() <= tol && (ps.y - wy).abs() <= tol,
                        "{name}: {ps:?}, expected ({wx}, {wy})"
                    );
                }
                (got, want) => panic!("{name}: pixel size {got:?}, expected {want:?}"),
            }
        }
    }

    #[test]
    fn default_encoder_output_has_no_calibration() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("plain.tif");
        encoder(&p, Compression::Uncompressed)
            .write_image::<Gray8>(1, 1, &[9])
            .unwrap();
        assert_eq!(read_image(&p, None).unwrap().pixel_size, None);
    }

    #[test]
    fn truncated_tiff_is_malformed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("full.tif");
        let v: Vec<u16> = (0..64 * 64).map(|i| i as u16).collect();
        encoder(&p, Compression::Uncompressed)
            .write_image::<Gray16>(64, 64, &v)
            .unwrap();
        let bytes = std::fs::read(&p).unwrap();
        for cut in [4, 7, 100, bytes.len() / 2, bytes.len() - 1] {
            let q = write(dir.path(), "cut.tif", &bytes[..cut]);
            let err = read_image(&q, None).unwrap_err();
            assert!(
                matches!(err, DataError::Malformed { format: "TIFF", .. }),
                "cut {cut}: {err}"
            );
            assert_names_path(&err, &q);
        }
    }

    #[test]
    fn absurd_tiff_dimensions_are_refused_before_decoding() {
        // Hand-built little-endian TIFF: one IFD at offset 8 with 8 entries
        // claiming a 60000 x 60000 16-bit image (7.2 GB) in a 110-byte file.
        let entries: [(u16, u16, u32, u32); 8] = [
            (256, 4, 1, 60_000), // ImageWidth, LONG
            (257, 4, 1, 60_000), // ImageLength
            (258, 3, 1, 16),     // BitsPerSample
            (259, 3, 1, 1),      // Compression none
            (262, 3, 1, 1),      // BlackIsZero
            (273, 4, 1, 8),      // StripOffsets
            (278, 4, 1, 60_000), // RowsPerStrip
            (279, 4, 1, 4),      // StripByteCounts
        ];
        let mut b = b"II*\0\x08\0\0\0".to_vec();
        b.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        for (tag, ty, count, value) in entries {
            b.extend_from_slice(&tag.to_le_bytes());
            b.extend_from_slice(&ty.to_le_bytes());
            b.extend_from_slice(&count.to_le_bytes());
            if ty == 3 {
                b.extend_from_slice(&(value as u16).to_le_bytes());
                b.extend_from_slice(&[0, 0]);
            } else {
                b.extend_from_slice(&value.to_le_bytes());
            }
        }
        b.extend_from_slice(&[0; 4]); // no next IFD
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "huge.tif", &b);
        let err = read_image(&p, None).unwrap_err();
        assert!(
            matches!(err, DataError::Malformed { format: "TIFF", .. }),
            "{err}"
        );
        assert_names_path(&err, &p);
    }
}

// ---------------------------------------------------------------- PNG

mod png_files {
    use super::*;
    use png::{BitDepth, ColorType, Encoder, PixelDimensions, Unit};

    fn encode(
        p: &Path,
        w: u32,
        h: u32,
        color: ColorType,
        depth: BitDepth,
        data: &[u8],
        setup: impl FnOnce(&mut Encoder<'_, std::io::BufWriter<std::fs::File>>),
    ) {
        let file = std::fs::File::create(p).unwrap();
        let mut enc = Encoder::new(std::io::BufWriter::new(file), w, h);
        enc.set_color(color);
        enc.set_depth(depth);
        setup(&mut enc);
        let mut writer = enc.write_header().unwrap();
        writer.write_image_data(data).unwrap();
        writer.finish().unwrap();
    }

    /// One PNG of the colour-type table: file name, width, height, colour
    /// type, bit depth, data, palette, expected grey values and the
    /// tolerance on them (0: exact).
    type PngCase = (
        &'static str,
        u32,
        u32,
        ColorType,
        BitDepth,
        Vec<u8>,
        Option<Vec<u8>>,
        Vec<f32>,
        f32,
    );

    #[test]
    fn colour_types_and_bit_depths() {
        let dir = tempfile::tempdir().unwrap();
        let cases: Vec<PngCase> = vec![
            (
                "g8.png",
                3,
                2,
                ColorType::Grayscale,
                BitDepth::Eight,
                vec![0, 1, 2, 128, 254, 255],
                None,
                vec![0.0, 1.0, 2.0, 128.0, 254.0, 255.0],
                0.0,
            ),
            // Big-endian samples: 0x0102 = 258, 0xfffe = 65534.
            (
                "g16.png",
                2,
                1,
                ColorType::Grayscale,
                BitDepth::Sixteen,
                vec![0x01, 0x02, 0xff, 0xfe],
                None,
                vec![258.0, 65534.0],
                0.0,
            ),
            // (100, 200, 40): 0.2125 * 100 + 0.7154 * 200 + 0.0721 * 40 = 167.214;
            // (0, 0, 255): 0.0721 * 255 = 18.3855.
            (
                "rgb.png",
                2,
                1,
                ColorType::Rgb,
                BitDepth::Eight,
                vec![100, 200, 40, 0, 0, 255],
                None,
                vec![167.214, 18.3855],
                1e-4,
            ),
            // 16-bit RGB (0, 1000, 0): 0.7154 * 1000 = 715.4 (raw 16-bit scale).
            (
                "rgb16.png",
                1,
                1,
                ColorType::Rgb,
                BitDepth::Sixteen,
                vec![0, 0, 0x03, 0xe8, 0, 0],
                None,
                vec![715.4],
                1e-3,
            ),
            // RGBA: alpha dropped. (10, 10, 10, 0) -> 10.
            (
                "rgba.png",
                1,
                1,
                ColorType::Rgba,
                BitDepth::Eight,
                vec![10, 10, 10, 0],
                None,
                vec![10.0],
                1e-5,
            ),
            (
                "ga.png",
                2,
                1,
                ColorType::GrayscaleAlpha,
                BitDepth::Eight,
                vec![7, 255, 9, 0],
                None,
                vec![7.0, 9.0],
                0.0,
            ),
            // Palette: index 0 = (255, 0, 0) -> 0.2125 * 255 = 54.1875; index 1 = (0, 0, 0) -> 0.
            (
                "pal.png",
                2,
                1,
                ColorType::Indexed,
                BitDepth::Eight,
                vec![0, 1],
                Some(vec![255, 0, 0, 0, 0, 0]),
                vec![54.1875, 0.0],
                1e-4,
            ),
            // 1-bit grey 0b1010_0000 (4 px wide): 1, 0, 1, 0 -> 255, 0, 255, 0.
            (
                "g1.png",
                4,
                1,
                ColorType::Grayscale,
                BitDepth::One,
                vec![0b1010_0000],
                None,
                vec![255.0, 0.0, 255.0, 0.0],
                0.0,
            ),
            // 4-bit grey 0x3f: 3, 15 -> 3 * 17 = 51, 255.
            (
                "g4.png",
                2,
                1,
                ColorType::Grayscale,
                BitDepth::Four,
                vec![0x3f],
                None,
                vec![51.0, 255.0],
                0.0,
            ),
        ];
        for (name, w, h, color, depth, data, palette, want, tol) in cases {
            let p = dir.path().join(name);
            encode(&p, w, h, color, depth, &data, |e| {
                if let Some(palette) = palette {
                    e.set_palette(palette);
                }
            });
            assert_eq!(detect_format(&p).unwrap(), Format::Png, "{name}");
            let img = read_image(&p, None).unwrap();
            assert_eq!(img.pixels.dim(), (h as usize, w as usize), "{name}");
            assert_eq!(img.pixel_size, None, "{name}");
            let got: Vec<f32> = img.pixels.iter().copied().collect();
            assert_eq!(got.len(), want.len(), "{name}");
            for (g, w) in got.iter().zip(&want) {
                // An exact expected value must be met exactly (0 stays 0).
                if tol == 0.0 || *w == 0.0 {
                    assert_eq!(g, w, "{name}: {got:?}");
                } else {
                    assert!((g - w).abs() < tol, "{name}: {got:?}, expected {want:?}");
                }
            }
        }
    }

    #[test]
    fn phys_metre_gives_pixel_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("phys.png");
        // 4e9 px/m -> 1e9 / 4e9 = 0.25 nm/px; 2e9 px/m -> 0.5 nm/px.
        encode(&p, 1, 1, ColorType::Grayscale, BitDepth::Eight, &[1], |e| {
            e.set_pixel_dims(Some(PixelDimensions {
                xppu: 4_000_000_000,
                yppu: 2_000_000_000,
                unit: Unit::Meter,
            }));
        });
        assert_eq!(
            read_image(&p, None).unwrap().pixel_size,
            Some(PixelSize {
                x: 0.25,
                y: 0.5,
                unit: "nm".into()
            })
        );
        let p = dir.path().join("aspect.png");
        encode(&p, 1, 1, ColorType::Grayscale, BitDepth::Eight, &[1], |e| {
            e.set_pixel_dims(Some(PixelDimensions {
                xppu: 1,
                yppu: 2,
                unit: Unit::Unspecified,
            }));
        });
        assert_eq!(read_image(&p, None).unwrap().pixel_size, None);
    }

    #[test]
    fn png_frame_and_truncation_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.png");
        let data: Vec<u8> = (0..64 * 64).map(|i| (i * 7 % 251) as u8).collect();
        encode(
            &p,
            64,
            64,
            ColorType::Grayscale,
            BitDepth::Eight,
            &data,
            |_| {},
        );
        let err = read_png(&p, Some(1)).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::NoSuchFrame {
                    frame: 1,
                    frames: 1,
                    ..
                }
            ),
            "{err}"
        );
        assert_names_path(&err, &p);
        let bytes = std::fs::read(&p).unwrap();
        for cut in [8, 20, 40, bytes.len() / 2, bytes.len() - 13] {
            let q = write(dir.path(), "cut.png", &bytes[..cut]);
            let err = read_image(&q, None).unwrap_err();
            assert!(
                matches!(err, DataError::Malformed { format: "PNG", .. }),
                "cut {cut}: {err}"
            );
            assert_names_path(&err, &q);
        }
    }

    #[test]
    fn absurd_png_dimensions_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("huge.png");
        // Header for 60000 x 60000 16-bit RGBA (28.8 GB decoded) with no data.
        let file = std::fs::File::create(&p).unwrap();
        let mut enc = Encoder::new(std::io::BufWriter::new(file), 60_000, 60_000);
        enc.set_color(ColorType::Rgba);
        enc.set_depth(BitDepth::Sixteen);
        let writer = enc.write_header().unwrap();
        drop(writer);
        let err = read_image(&p, None).unwrap_err();
        assert!(
            matches!(err, DataError::Malformed { format: "PNG", .. }),
            "{err}"
        );
        assert_names_path(&err, &p);
    }
}

// ---------------------------------------------------------------- SPIEPy raw

fn dat_bytes(rows: u32, cols: u32, values: &[f64]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&rows.to_le_bytes());
    b.extend_from_slice(&cols.to_le_bytes());
    for v in values {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b
}

#[test]
fn spiepy_dat_reads_row_major_f64() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "a.dat",
        &dat_bytes(2, 3, &[1.0, 2.0, 3.0, -4.0, 0.1, 1e-9]),
    );
    assert_eq!(detect_format(&p).unwrap(), Format::SpiepyDat);
    let img = read_image(&p, None).unwrap();
    assert_eq!(img.pixels, array![[1.0_f32, 2.0, 3.0], [-4.0, 0.1, 1e-9]]);
    assert_eq!(img.pixel_size, None);
    let err = read_image(&p, Some(1)).unwrap_err();
    assert!(
        matches!(err, DataError::NoSuchFrame { frames: 1, .. }),
        "{err}"
    );
}

#[test]
fn spiepy_dat_length_must_match_header() {
    let dir = tempfile::tempdir().unwrap();
    // Claims 100000 x 100000 (80 GB) with 16 bytes of data: refused before allocating.
    let p = write(
        dir.path(),
        "huge.dat",
        &dat_bytes(100_000, 100_000, &[1.0, 2.0]),
    );
    let err = read_image(&p, None).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::Malformed {
                format: "SPIEPy raw",
                ..
            }
        ),
        "{err}"
    );
    assert_names_path(&err, &p);
    let full = dat_bytes(2, 2, &[1.0, 2.0, 3.0, 4.0]);
    for cut in [0, 3, 8, 15, full.len() - 1] {
        let q = write(dir.path(), "cut.dat", &full[..cut]);
        let err = read_spiepy_dat(&q, None).unwrap_err();
        assert!(
            matches!(err, DataError::Malformed { .. }),
            "cut {cut}: {err}"
        );
        assert_names_path(&err, &q);
    }
    let p = write(dir.path(), "zero.dat", &dat_bytes(0, 5, &[]));
    let err = read_image(&p, None).unwrap_err();
    assert!(matches!(err, DataError::NotAnImage { .. }), "{err}");
}

// ---------------------------------------------------------------- float64 beyond float32

/// Each reader of float64 data built here, on a tiny file holding one finite
/// value too large for `f32`: refused with `BeyondFloat32` naming the file,
/// the pixel (row, column of the image as read) and the value.
#[test]
fn float64_beyond_the_float32_range_is_refused_by_every_reader() {
    use tiff::encoder::{TiffEncoder, colortype::Gray64Float};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let f8 = |v: &[f64]| le(v, f64::to_le_bytes);
    let f8_be = |v: &[f64]| le(v, f64::to_be_bytes);
    let mut c = [0.0_f64; 6];
    c[2] = 1e300; // C order, 2 x 3: index 2 is (0, 2)
    let mut fortran = [0.0_f64; 6];
    fortran[4] = 1e300; // Fortran order: (r, c) at r + 2 c, so index 4 is (0, 2)
    let mut stack = [0.0_f64; 12];
    stack[9] = -1e300; // (2, 2, 3) C order: frame 1 starts at 6, (1, 0) is 6 + 3
    let tif = d.join("big.tif");
    let mut tv = [0.0_f64; 12];
    tv[6] = 3.5e38; // 4 wide: index 6 is (1, 2)
    TiffEncoder::new(std::fs::File::create(&tif).unwrap())
        .unwrap()
        .write_image::<Gray64Float>(4, 3, &tv)
        .unwrap();
    // (file, frame, (row, col) of the refused pixel, its value)
    let cases = [
        (
            write(d, "c.npy", &npy_file("<f8", false, "(2, 3)", &f8(&c))),
            None,
            (0, 2),
            1e300,
        ),
        (
            write(d, "be.npy", &npy_file(">f8", false, "(2, 3)", &f8_be(&c))),
            None,
            (0, 2),
            1e300,
        ),
        (
            write(d, "f.npy", &npy_file("<f8", true, "(2, 3)", &f8(&fortran))),
            None,
            (0, 2),
            1e300,
        ),
        (
            write(
                d,
                "s.npy",
                &npy_file("<f8", false, "(2, 2, 3)", &f8(&stack)),
            ),
            Some(1),
            (1, 0),
            -1e300,
        ),
        (tif, None, (1, 2), 3.5e38),
        (
            write(
                d,
                "big.dat",
                &dat_bytes(2, 3, &[0.0, 0.0, 0.0, 0.0, 1e300, 0.0]),
            ),
            None,
            (1, 1),
            1e300,
        ),
    ];
    for (path, frame, (r, c), v) in cases {
        let err = read_image(&path, frame).unwrap_err();
        assert!(
            matches!(err, DataError::BeyondFloat32 { row, col, value, .. }
                if (row, col) == (r, c) && value == v),
            "{}: {err}",
            path.display()
        );
        assert_names_path(&err, &path);
        assert!(err.to_string().contains("float32 range"), "{err}");
    }
}

/// `f32::MAX` itself, stored as float64, is read as `f32::MAX`; 3.5e38, above
/// it by more than half an f32 ulp (2^103 ~ 1e31), is refused.
#[test]
fn float64_at_the_float32_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let max = f64::from(f32::MAX);
    let p = write(dir.path(), "max.dat", &dat_bytes(1, 2, &[max, -max]));
    assert_eq!(pixels(&p, None), [f32::MAX, f32::MIN]);
    let p = write(dir.path(), "over.dat", &dat_bytes(1, 2, &[max, 3.5e38]));
    assert!(matches!(
        read_image(&p, None),
        Err(DataError::BeyondFloat32 { row: 0, col: 1, .. })
    ));
}

/// A float64 NPY read in float64 (the filters' path) keeps values beyond the
/// float32 range.
#[test]
fn float64_npy_read_in_float64_keeps_large_values() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "w.npy",
        &npy_file(
            "<f8",
            false,
            "(1, 2)",
            &le(&[1e300, -2.0], f64::to_le_bytes),
        ),
    );
    let a = phyvae_data::io::read_npy_f64(&p, None).unwrap().unwrap();
    assert_eq!(a, array![[1e300, -2.0]]);
}

// ---------------------------------------------------------------- detection and common errors

#[test]
fn missing_file_is_an_io_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("absent.npy");
    for err in [
        read_image(&p, None).unwrap_err(),
        read_npy(&p, None).unwrap_err(),
        read_tiff(&p, None).unwrap_err(),
        read_png(&p, None).unwrap_err(),
        read_spiepy_dat(&p, None).unwrap_err(),
        detect_format(&p).unwrap_err(),
    ] {
        assert!(matches!(err, DataError::Io { .. }), "{err}");
        assert_names_path(&err, &p);
    }
}

#[test]
fn bad_magic_is_an_unknown_format() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "fake.npy", b"PK\x03\x04 not an npy file");
    let err = read_image(&p, None).unwrap_err();
    assert!(matches!(err, DataError::UnknownFormat { .. }), "{err}");
    assert_names_path(&err, &p);
    // What was seen is named: the first bytes in hex.
    assert!(err.to_string().contains("50 4b 03 04"), "{err}");
    // The format readers themselves call it malformed.
    for (format, err) in [
        ("NPY", read_npy(&p, None).unwrap_err()),
        ("PNG", read_png(&p, None).unwrap_err()),
        ("TIFF", read_tiff(&p, None).unwrap_err()),
    ] {
        assert!(
            matches!(err, DataError::Malformed { format: f, .. } if f == format),
            "{format}: {err}"
        );
    }
    let p = write(dir.path(), "empty.bin", b"");
    let err = read_image(&p, None).unwrap_err();
    assert!(matches!(err, DataError::UnknownFormat { .. }), "{err}");
    assert!(err.to_string().contains("empty"), "{err}");
}

#[test]
fn magic_wins_over_extension() {
    // An NPY file named .png and a PNG named .dat are read by their content.
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "really_npy.png",
        &npy_file("|u1", false, "(1, 1)", &[42]),
    );
    assert_eq!(detect_format(&p).unwrap(), Format::Npy);
    assert_eq!(pixels(&p, None), vec![42.0]);
}

// ---------------------------------------------------------------- robustness

/// One valid file per reader, for truncation and mutation.
fn valid_files(dir: &Path) -> Vec<PathBuf> {
    let npy = write(
        dir,
        "v.npy",
        &npy_file(
            "<f4",
            false,
            "(2, 3, 4)",
            &le(&[0.5_f32; 24], f32::to_le_bytes),
        ),
    );
    let dat = write(dir, "v.dat", &dat_bytes(3, 4, &[0.25; 12]));
    let tif = dir.join("v.tif");
    tiff::encoder::TiffEncoder::new(std::fs::File::create(&tif).unwrap())
        .unwrap()
        .with_compression(tiff::encoder::Compression::Lzw)
        .write_image::<tiff::encoder::colortype::Gray16>(8, 8, &[300; 64])
        .unwrap();
    let png = dir.join("v.png");
    {
        let file = std::fs::File::create(&png).unwrap();
        let mut enc = png::Encoder::new(std::io::BufWriter::new(file), 8, 8);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().unwrap();
        w.write_image_data(&[77; 8 * 8 * 3]).unwrap();
        w.finish().unwrap();
    }
    for p in [&npy, &dat, &tif, &png] {
        assert!(read_image(p, None).is_ok(), "{}", p.display());
    }
    vec![npy, dat, tif, png]
}

/// Every reader on `bytes` saved as `name`: must return (Ok or Err), not panic.
fn all_readers(dir: &Path, name: &str, bytes: &[u8]) {
    let p = write(dir, name, bytes);
    let _ = read_image(&p, None);
    let _ = read_image(&p, Some(1));
    let _ = read_npy(&p, None);
    let _ = read_npy_array(&p);
    let _ = read_tiff(&p, None);
    let _ = read_tiff(&p, Some(1));
    let _ = read_png(&p, None);
    let _ = read_spiepy_dat(&p, None);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        magic in 0_usize..5,
    ) {
        let dir = tempfile::tempdir().unwrap();
        // Prefix a real magic most of the time, so the parsers past it are exercised.
        let prefixes: [&[u8]; 5] = [b"", b"\x93NUMPY\x01\x00", b"II*\0", b"MM\0*", b"\x89PNG\r\n\x1a\n"];
        let mut b = prefixes[magic].to_vec();
        b.extend_from_slice(&bytes);
        all_readers(dir.path(), "r.dat", &b);
    }

    #[test]
    fn truncated_and_mutated_valid_files_never_panic(
        which in 0_usize..4,
        cut in 0.0_f64..1.0,
        flips in proptest::collection::vec((0.0_f64..1.0, any::<u8>()), 0..4),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let files = valid_files(dir.path());
        let mut b = std::fs::read(&files[which]).unwrap();
        for (pos, val) in flips {
            let i = ((b.len() as f64 * pos) as usize).min(b.len() - 1);
            b[i] = val;
        }
        let keep = (b.len() as f64 * cut) as usize;
        let ext = files[which].extension().unwrap().to_string_lossy().into_owned();
        all_readers(dir.path(), &format!("t.{ext}"), &b[..keep]);
        all_readers(dir.path(), &format!("m.{ext}"), &b);
    }
}
