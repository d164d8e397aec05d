//! The DM3/DM4 reader on real files: HyperSpy 1.6.5's test files and
//! temul-toolkit 0.1.9's example image (GPL-3.0, fetched into a cache by
//! `scripts/fetch-format-samples.sh`, never copied into this repository).
//!
//! Expected values come from RosettaSciIO 0.15 (the HyperSpy DM reader):
//! ```text
//! python -c "from rsciio.digitalmicrograph import file_reader; d = file_reader(PATH)[0];
//!   a = d['data']; print(a.shape, a.dtype, a.astype('f8').sum(), a.ravel()[:4],
//!   [(x['scale'], x['units']) for x in d['axes']])"
//! ```
//! and, for the image list (thumbnails, data type codes), its tag tree:
//! `DigitalMicrographReader(open(PATH, 'rb')).parse_file()`, then
//! `tags_dict['ImageList']` and `tags_dict['Thumbnails']`.
// Test helpers outside `#[test]` functions unwrap too (clippy.toml allows it in tests).
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use phyvae_data::DataError;
use phyvae_data::io::dm::{list_dm, parse_dm, read_dm};
use std::path::{Path, PathBuf};

fn samples() -> Option<&'static Path> {
    common::samples("DM")
}

fn sum(img: &phyvae_data::Image) -> f64 {
    img.pixels.iter().map(|&v| f64::from(v)).sum()
}

fn assert_close(a: f64, b: f64, what: &str) {
    assert!(
        (a - b).abs() <= 1e-12 * b.abs().max(1.0),
        "{what}: {a} vs {b}"
    );
}

#[test]
fn mos2_matches_rosettasciio() {
    let Some(dir) = samples() else { return };
    let path = dir.join("temul/example_Se_implanted_MoS2.dm3");
    let start = std::time::Instant::now();
    let img = read_dm(&path, None).unwrap();
    let elapsed = start.elapsed();
    eprintln!("read_dm on the 4.8 MB MoS2 file: {elapsed:?}");
    assert!(elapsed.as_secs_f64() < 1.0, "read_dm took {elapsed:?}");
    // rsciio: (1024, 1024) uint32, sum 3187697916895.0,
    // a[0,0], a[0,1], a[511,700], a[1023,1023] = 3058051, 3077498, 3022205, 3004641,
    // scales 0.0126953125 nm along y and x.
    assert_eq!(img.pixels.dim(), (1024, 1024));
    assert_eq!(img.pixels[[0, 0]], 3_058_051.0);
    assert_eq!(img.pixels[[0, 1]], 3_077_498.0);
    assert_eq!(img.pixels[[511, 700]], 3_022_205.0);
    assert_eq!(img.pixels[[1023, 1023]], 3_004_641.0);
    // Every value is below 2^24, so f32 holds it exactly and the sums agree.
    assert_eq!(sum(&img), 3_187_697_916_895.0);
    let ps = img.pixel_size.unwrap();
    assert_eq!(
        (ps.x, ps.y, ps.unit.as_str()),
        (0.012_695_312_5, 0.012_695_312_5, "nm")
    );
    assert_eq!(img.source.as_deref(), Some(path.as_path()));

    // Tag tree: ImageList holds the 384 x 384 RGBA thumbnail (Thumbnails
    // ImageIndex 0, DataType 23) then the 1024 x 1024 image (DataType 11).
    let list = list_dm(&path).unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].shape, vec![384, 384]);
    assert_eq!(list[0].dtype, "rgba8");
    assert!(list[0].unusable.as_deref().unwrap().contains("thumbnail"));
    assert_eq!(list[1].index, 1);
    assert_eq!(list[1].name.as_deref(), Some("SI Survey Image (active)"));
    assert_eq!(list[1].shape, vec![1024, 1024]);
    assert_eq!(list[1].dtype, "uint32");
    assert_eq!(list[1].unusable, None);
    assert!(matches!(
        read_dm(&path, Some(1)),
        Err(DataError::NoSuchFrame {
            frame: 1,
            frames: 1,
            ..
        })
    ));
}

/// The stored `DataType` of HyperSpy's `test-N` files (the number in the name
/// is what was asked for; DigitalMicrograph stored 5 and 27 as 3, 28 as 13
/// and 8 as 23), with numpy's name.
fn stored_dtype(n: u32) -> &'static str {
    match n {
        1 => "int16",
        2 => "float32",
        3 | 5 | 27 => "complex64",
        6 => "uint8",
        7 => "int32",
        8 | 23 => "rgba8",
        9 => "int8",
        10 => "uint16",
        11 => "uint32",
        12 => "float64",
        13 | 28 => "complex128",
        14 => "bool",
        _ => panic!("no test-{n}"),
    }
}

#[test]
fn every_2d_data_type_matches_rosettasciio() {
    let Some(dir) = samples() else { return };
    let cases = [
        (
            "dm3_2D_data",
            "dm3",
            &[1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 23][..],
        ),
        (
            "dm4_2D_data",
            "dm4",
            &[1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 23, 27, 28][..],
        ),
    ];
    for (folder, ext, numbers) in cases {
        for &n in numbers {
            let path = dir.join(folder).join(format!("test-{n}.{ext}"));
            let dtype = stored_dtype(n);
            let list = list_dm(&path).unwrap();
            // ImageList: the 64 x 64 RGBA thumbnail, then the 2 x 2 image "test".
            assert_eq!(list.len(), 2, "{}", path.display());
            assert!(list[0].unusable.as_deref().unwrap().contains("thumbnail"));
            assert_eq!(list[0].shape, vec![64, 64]);
            assert_eq!(list[1].name.as_deref(), Some("test"));
            assert_eq!(list[1].shape, vec![2, 2]);
            assert_eq!(list[1].dtype, dtype, "{}", path.display());
            // Uncalibrated: Scale 1, no unit.
            assert_eq!(list[1].pixel_size, None);
            let got = read_dm(&path, None);
            if dtype.starts_with("complex") {
                // rsciio: complex data 1+0j, 2+0j, 3+0j, 4+0j.
                let err = got.unwrap_err();
                assert!(
                    matches!(err, DataError::Unsupported { .. }),
                    "{}: {err}",
                    path.display()
                );
                assert!(err.to_string().contains("complex"), "{err}");
                assert!(list[1].unusable.as_deref().unwrap().contains("complex"));
                continue;
            }
            assert_eq!(list[1].unusable, None);
            let img = got.unwrap();
            // rsciio: [[1, 2], [3, 4]], sum 10; bool: all True, sum 4;
            // RGBA: (R, G, B, A) = (k, k, k, 0), whose luminance
            // 0.2125 k + 0.7154 k + 0.0721 k is k.
            let expected: Vec<f32> = if dtype == "bool" {
                vec![1.0; 4]
            } else {
                vec![1.0, 2.0, 3.0, 4.0]
            };
            let got: Vec<f32> = img.pixels.iter().copied().collect();
            assert_eq!(got, expected, "{}", path.display());
            let want_sum = if dtype == "bool" { 4.0 } else { 10.0 };
            assert_close(sum(&img), want_sum, &path.display().to_string());
        }
    }
}

#[test]
fn stacks_give_one_frame_per_slice() {
    let Some(dir) = samples() else { return };
    for (path, dtype) in [
        (dir.join("dm4_3D_data/test-1.dm4"), "int16"),
        (dir.join("dm3_3D_data/test-12.dm3"), "float64"),
        (dir.join("dm4_3D_data/test-23.dm4"), "rgba8"),
    ] {
        // rsciio: shape (2, 2, 2), values 1..8 in C order, sum 36.
        let list = list_dm(&path).unwrap();
        assert_eq!(list[1].shape, vec![2, 2, 2]);
        assert_eq!(list[1].dtype, dtype);
        let f0 = read_dm(&path, None).unwrap();
        let f1 = read_dm(&path, Some(1)).unwrap();
        assert_eq!(f0.pixels, ndarray::array![[1.0_f32, 2.0], [3.0, 4.0]]);
        assert_eq!(f1.pixels, ndarray::array![[5.0_f32, 6.0], [7.0, 8.0]]);
        assert_eq!(sum(&f0) + sum(&f1), 36.0);
        assert!(matches!(
            read_dm(&path, Some(2)),
            Err(DataError::NoSuchFrame { frames: 2, .. })
        ));
    }
    // Complex stacks are unsupported like complex images.
    assert!(matches!(
        read_dm(&dir.join("dm4_3D_data/test-28.dm4"), None),
        Err(DataError::Unsupported { .. })
    ));
}

#[test]
fn spectra_are_listed_but_not_images() {
    let Some(dir) = samples() else { return };
    // rsciio: (2048,) float32, 'EELS Acquire', 0.5 eV per channel.
    let path = dir.join("dm3_1D_data/test-EELS_spectrum.dm3");
    let list = list_dm(&path).unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[1].name.as_deref(), Some("EELS Acquire"));
    assert_eq!(list[1].shape, vec![2048]);
    assert_eq!(list[1].dtype, "float32");
    assert!(list[1].unusable.as_deref().unwrap().contains("1-D"));
    assert!(matches!(
        read_dm(&path, None),
        Err(DataError::NotAnImage { ref shape, .. }) if shape == &vec![2048]
    ));
    // rsciio: (2048, 2, 2) float32 'EELS_SI', ImageTags/Meta Data/Format
    // "Spectrum image": a spectrum per pixel.
    let path = dir.join("dm4_3D_data/EELS_SI.dm4");
    let list = list_dm(&path).unwrap();
    assert_eq!(list[1].shape, vec![2048, 2, 2]);
    assert!(list[1].unusable.as_deref().unwrap().contains("spectrum"));
    // 0.0019920736085623503 µm along x and y = 1.992... nm.
    let ps = list[1].pixel_size.clone().unwrap();
    assert_close(ps.x, 0.001_992_073_608_562_350_3 * 1e3, "EELS_SI x");
    assert!(matches!(
        read_dm(&path, None),
        Err(DataError::Unsupported { .. })
    ));
}

/// File, rows = cols, sum, three (row, col, value), pixel size in nm.
type Calibrated = (
    &'static str,
    usize,
    f64,
    [(usize, usize, f32); 3],
    Option<f64>,
);

#[test]
fn calibrated_images_match_rosettasciio() {
    let Some(dir) = samples() else { return };
    // rsciio: [(shape, sum, (a[0,0], a[r/2-ish], a[-1,-1]), scale nm or None)].
    // multi_signal.dm3: 'HAADF' (512, 512) uint16, sum 949490255,
    //   a[0,0], a[100,37], a[511,511] = 195, 1627, 3074, 0.017751578241586685 nm;
    //   then 'Plot' (512,) float32 (1-D).
    // test_STEM_image.dm3: (68, 68) uint32, sum 150998555,
    //   a[0,0], a[30,41], a[67,67] = 33121, 33034, 32683, 0.24853801727294922 nm.
    // test_diffraction_pattern.dm3: (87, 87) int32, sum 9459771,
    //   a[0,0], a[43,43], a[86,86] = 834, 2482, 923, 0.17443285882472992 1/nm.
    let cases: [Calibrated; 3] = [
        (
            "dm3_2D_data/multi_signal.dm3",
            512,
            949_490_255.0,
            [(0, 0, 195.0), (100, 37, 1627.0), (511, 511, 3074.0)],
            Some(0.017_751_578_241_586_685),
        ),
        (
            "dm3_2D_data/test_STEM_image.dm3",
            68,
            150_998_555.0,
            [(0, 0, 33121.0), (30, 41, 33034.0), (67, 67, 32683.0)],
            Some(0.248_538_017_272_949_22),
        ),
        (
            "dm3_2D_data/test_diffraction_pattern.dm3",
            87,
            9_459_771.0,
            [(0, 0, 834.0), (43, 43, 2482.0), (86, 86, 923.0)],
            None,
        ),
    ];
    for (file, n, want_sum, values, scale) in cases {
        let path = dir.join(file);
        let img = read_dm(&path, None).unwrap();
        assert_eq!(img.pixels.dim(), (n, n), "{file}");
        assert_eq!(sum(&img), want_sum, "{file}");
        for (r, c, v) in values {
            assert_eq!(img.pixels[[r, c]], v, "{file} [{r}, {c}]");
        }
        match scale {
            Some(s) => {
                let ps = img.pixel_size.unwrap();
                assert_close(ps.x, s, file);
                assert_close(ps.y, s, file);
                assert_eq!(ps.unit, "nm");
            }
            None => assert_eq!(img.pixel_size, None, "{file}"),
        }
    }
    let path = dir.join("dm3_2D_data/multi_signal.dm3");
    let list = list_dm(&path).unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[1].name.as_deref(), Some("HAADF"));
    assert_eq!(list[2].name.as_deref(), Some("Plot"));
    assert_eq!(list[2].shape, vec![512]);
    assert!(list[2].unusable.is_some());
    assert!(matches!(
        read_dm(&path, Some(1)),
        Err(DataError::NoSuchFrame { frames: 1, .. })
    ));
}

#[test]
fn truncated_and_corrupted_real_files_give_errors() {
    let Some(dir) = samples() else { return };
    for (file, data_end) in [
        // Offset + size of ImageList/TagGroup1/ImageData/Data, from rsciio's tag tree.
        ("dm4_2D_data/test-1.dm4", 22_963 + 8),
        ("dm3_2D_data/test_STEM_image.dm3", 70_718 + 18_496),
    ] {
        let path = dir.join(file);
        let bytes = std::fs::read(&path).unwrap();
        assert!(parse_dm(&bytes, &path).is_ok());
        // Every prefix up to the end of the pixel data, 1 in 29 beyond the first 2 KiB.
        let mut n = 0;
        while n < data_end {
            let err = parse_dm(&bytes[..n], &path).unwrap_err();
            assert!(
                matches!(err, DataError::Malformed { .. }),
                "{file}[..{n}]: {err}"
            );
            n += if n < 2048 { 1 } else { 29 };
        }
        // The rest must not panic, whether or not it parses.
        for n in (data_end..bytes.len()).step_by(17) {
            if let Ok(mut f) = parse_dm(&bytes[..n], &path) {
                let _ = f.image(0);
            }
        }
        // Single-byte corruptions across the tag tree.
        for i in (0..bytes.len()).step_by(31) {
            let mut b = bytes.clone();
            b[i] ^= 0xa5;
            if let Ok(mut f) = parse_dm(&b, &path) {
                let _ = f.images();
                let _ = f.image(0);
            }
        }
    }
}

/// Writes every usable frame of the sample DM files as `.npy` into
/// `$PHYVAE_DM_EXPORT`, to compare with RosettaSciIO in Python. Run with
/// `PHYVAE_DM_EXPORT=DIR cargo test -p phyvae-data --test formats_dm -- --ignored`.
#[test]
#[ignore = "writes files for a comparison in Python"]
fn export_for_comparison() {
    let Some(dir) = samples() else { return };
    let out = PathBuf::from(std::env::var("PHYVAE_DM_EXPORT").unwrap());
    std::fs::create_dir_all(&out).unwrap();
    let mut files = vec![dir.join("temul/example_Se_implanted_MoS2.dm3")];
    for folder in ["dm3_2D_data", "dm4_2D_data", "dm3_3D_data", "dm4_3D_data"] {
        for e in std::fs::read_dir(dir.join(folder)).unwrap() {
            files.push(e.unwrap().path());
        }
    }
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        let mut f = parse_dm(&bytes, &path).unwrap();
        let stem = format!(
            "{}__{}",
            path.parent()
                .unwrap()
                .file_name()
                .unwrap()
                .to_string_lossy(),
            path.file_stem().unwrap().to_string_lossy()
        );
        for k in 0..f.frame_count() {
            let img = f.image(k).unwrap();
            let ps = img
                .pixel_size
                .as_ref()
                .map_or("none".to_owned(), |p| format!("{}x{}", p.x, p.y));
            phyvae_data::io::write_npy_f32(
                &out.join(format!("{stem}__{k}.npy")),
                img.pixels.view(),
            )
            .unwrap();
            std::fs::write(out.join(format!("{stem}__{k}.ps")), ps).unwrap();
        }
    }
}
