//! Velox EMD, Berkeley EMD and hyperspy files from public packages (hyperspy
//! 1.6.5's test data, temul-toolkit 0.1.9's and atomap 0.4.2's example data;
//! GPL-3.0, so they are fetched into a cache by
//! `scripts/fetch-format-samples.sh` and never copied into this repository),
//! read by phyvae and compared with an independent reader.
//!
//! Expected values come from rosettasciio 0.15.0 (with h5py 3.16 and numpy
//! 2.4) run on the same files, from the folder the script prints (`$F`):
//!
//! ```python
//! import numpy as np
//! from rsciio.emd import file_reader as emd      # Velox and Berkeley EMD
//! from rsciio.hspy import file_reader as hspy    # hyperspy
//! d = emd(F + "/emd_files/fei_velox/fei_emd_image.emd")[0]
//! img = np.asarray(d["data"], dtype=np.float64)   # d["data"][k] for stacks
//! img.shape, d["data"].dtype, img.sum(), img.ravel()[:3], img[1, 2], img.ravel()[-1]
//! [(a["scale"], a["units"]) for a in d["axes"]]   # pixel size (y, x)
//! ```
//!
//! Exceptions, said at each test: the Velox spectrum-image file needs the
//! `sparse` package in rosettasciio, so its image values come from h5py
//! (`h5py.File(f)["Data/Image/<id>/Data"][:, :, k]`, the plane rosettasciio's
//! `_read_image_data` reads as frame `k`); RGB luminances are computed from
//! rosettasciio's RGBA array with numpy.
#![cfg(feature = "hdf5")]
// Test helpers outside `#[test]` functions unwrap too (clippy.toml allows it in tests).
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use phyvae_data::io::hdf5::{Hdf5Kind, list_hdf5, read_hdf5_image};
use phyvae_data::io::{ImageInfo, read_npy, write_npy_f32};
use phyvae_data::{DataError, Image};
use std::path::{Path, PathBuf};

fn samples() -> Option<&'static Path> {
    common::samples("HDF5")
}

/// What the reference reader gave for one 2-D image.
struct Expected {
    rows: usize,
    cols: usize,
    /// Pixel size in nm (x, y), if calibrated.
    nm: Option<(f64, f64)>,
    first: [f32; 3],
    /// Pixel (row 1, column 2).
    at_1_2: f32,
    last: f32,
    sum: f64,
}

fn check(img: &Image, e: &Expected, what: &str) {
    assert_eq!((img.rows(), img.cols()), (e.rows, e.cols), "{what}: shape");
    match (&img.pixel_size, e.nm) {
        (None, None) => {}
        (Some(p), Some((x, y))) => {
            assert_eq!(p.unit, "nm", "{what}");
            assert!((p.x - x).abs() <= 1e-12 * x, "{what}: x {} vs {x}", p.x);
            assert!((p.y - y).abs() <= 1e-12 * y, "{what}: y {} vs {y}", p.y);
        }
        (got, want) => panic!("{what}: pixel size {got:?}, expected {want:?}"),
    }
    let px: Vec<f32> = img.pixels.iter().copied().collect();
    assert_eq!(&px[..3], &e.first, "{what}: first pixels");
    assert_eq!(img.pixels[(1, 2)], e.at_1_2, "{what}: pixel (1, 2)");
    assert_eq!(*px.last().unwrap(), e.last, "{what}: last pixel");
    let sum: f64 = px.iter().map(|&v| f64::from(v)).sum();
    assert!(
        (sum - e.sum).abs() <= 1e-9 * e.sum.abs().max(1.0),
        "{what}: sum {sum} vs {}",
        e.sum
    );
}

fn info(list: &[ImageInfo], name: &str) -> ImageInfo {
    list.iter()
        .find(|i| i.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no entry {name} in {list:?}"))
        .clone()
}

// ------------------------------------------------------------------ Velox EMD

#[test]
fn velox_image_matches_rosettasciio_and_the_shipped_npy() {
    let Some(dir) = samples() else { return };
    let path = dir.join("emd_files/fei_velox/fei_emd_image.emd");
    let (kind, list) = list_hdf5(&path).unwrap();
    assert_eq!(kind, Hdf5Kind::VeloxEmd);
    assert_eq!(list.len(), 1);
    let name = "/Data/Image/23088cf7c7844be397c5c465915044ac";
    let i = info(&list, name);
    assert_eq!(i.shape, vec![512, 512, 1]);
    assert_eq!(i.dtype, "uint16");
    assert_eq!(i.unusable, None);
    // rosettasciio: axes y, x of scale 0.0053024148379916015 µm.
    let e = Expected {
        rows: 512,
        cols: 512,
        nm: Some((5.302_414_837_991_601, 5.302_414_837_991_601)),
        first: [9240.0, 9244.0, 9221.0],
        at_1_2: 9203.0,
        last: 9216.0,
        sum: 2_431_912_854.0,
    };
    let img = read_hdf5_image(&path, None, None).unwrap();
    check(&img, &e, "fei_emd_image.emd");
    assert_eq!(img.source.as_deref(), Some(path.as_path()));
    // By name, with or without the array, and frame 0.
    for ds in [name, "Data/Image/23088cf7c7844be397c5c465915044ac/Data"] {
        assert_eq!(
            read_hdf5_image(&path, Some(0), Some(ds)).unwrap().pixels,
            img.pixels
        );
    }
    // hyperspy ships the same image as fei_emd_image.npy beside it.
    let npy = read_npy(&dir.join("emd_files/fei_velox/fei_emd_image.npy"), None).unwrap();
    assert_eq!(npy.pixels, img.pixels);
    assert!(matches!(
        read_hdf5_image(&path, Some(1), None),
        Err(DataError::NoSuchFrame {
            frame: 1,
            frames: 1,
            ..
        })
    ));
}

#[test]
fn velox_spectrum_image_lists_the_stream_as_unusable() {
    let Some(dir) = samples() else { return };
    let path = dir.join("emd_files/fei_velox/fei_SI_SuperX-HAADF_10frames_10x50.emd");
    let (kind, list) = list_hdf5(&path).unwrap();
    assert_eq!(kind, Hdf5Kind::VeloxEmd);
    let names: Vec<&str> = list.iter().filter_map(|i| i.name.as_deref()).collect();
    assert_eq!(
        names,
        [
            "/Data/Image/f7d057810df64a86b5dca3ec2c448b12",
            "/Data/SpectrumImage/ecdf77598f5a4bb08f730e1b1a76dcad",
            "/Data/SpectrumStream/04ac570d6691477181bf4acad1696fd9",
        ]
    );
    assert_eq!(list[0].shape, vec![50, 10, 10]);
    assert_eq!(list[0].unusable, None);
    assert_eq!(list[2].shape, vec![769_077, 1]);
    assert!(list[1].unusable.is_some() && list[2].unusable.is_some());
    // Values from h5py (rosettasciio needs `sparse` for this file):
    // Data[:, :, 0] and Data[:, :, 9]; pixel size 1.234009628745422e-9 m.
    let nm = Some((1.234_009_628_745_422, 1.234_009_628_745_422));
    let e0 = Expected {
        rows: 50,
        cols: 10,
        nm,
        first: [42175.0, 43756.0, 43846.0],
        at_1_2: 43645.0,
        last: 38106.0,
        sum: 19_657_297.0,
    };
    let e9 = Expected {
        rows: 50,
        cols: 10,
        nm,
        first: [41464.0, 42161.0, 42912.0],
        at_1_2: 42642.0,
        last: 38246.0,
        sum: 19_551_647.0,
    };
    check(
        &read_hdf5_image(&path, None, None).unwrap(),
        &e0,
        "SI frame 0",
    );
    check(
        &read_hdf5_image(&path, Some(9), None).unwrap(),
        &e9,
        "SI frame 9",
    );
    let stream = "/Data/SpectrumStream/04ac570d6691477181bf4acad1696fd9";
    assert!(matches!(
        read_hdf5_image(&path, None, Some(stream)),
        Err(DataError::NotAnImage { .. })
    ));
}

#[test]
fn velox_complex_fft_is_listed_but_not_read() {
    let Some(dir) = samples() else { return };
    let path = dir.join("emd_files/fei_example_complex_fft.emd");
    let (_, list) = list_hdf5(&path).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].dtype, "complex64");
    assert_eq!(list[0].shape, vec![3, 4, 1]);
    let err = read_hdf5_image(&path, None, None).unwrap_err();
    assert!(matches!(err, DataError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("modulus or the phase"), "{err}");
}

// -------------------------------------------------------------------- hyperspy

#[test]
fn hyperspy_rgba16_stack_becomes_luminance() {
    let Some(dir) = samples() else { return };
    // Format 1.2 (no `navigate`, record_by = "image"): 3 frames of 128 x 128
    // RGBA16; Y = 0.2125 R + 0.7154 G + 0.0721 B from rosettasciio's array
    // with numpy, as float32.
    let path = dir.join("hdf5_files/test_rgba16.hdf5");
    let (_, list) = list_hdf5(&path).unwrap();
    assert_eq!(list[0].shape, vec![3, 128, 128]);
    assert_eq!(list[0].dtype, "rgba16");
    // Pixel (100, 30) is pure green, red, then blue in frames 0, 1, 2.
    // (float32 values, written out exactly as f64.)
    let at_100_30 = [46_883.738_281_25_f64, 13_926.187_5, 4_725.073_730_468_75];
    for (k, v) in at_100_30.into_iter().enumerate() {
        let img = read_hdf5_image(&path, Some(k), None).unwrap();
        assert_eq!((img.rows(), img.cols()), (128, 128));
        assert_eq!(f64::from(img.pixels[(100, 30)]), v, "frame {k}");
        assert_eq!(img.pixels[(64, 64)], 65535.0, "frame {k}");
        assert_eq!(img.pixels[(0, 0)], 0.0, "frame {k}");
        let sum: f64 = img.pixels.iter().map(|&p| f64::from(p)).sum();
        assert!(
            (sum - 374_598_058.597_167_97).abs() < 1e-3,
            "frame {k}: {sum}"
        );
        assert_eq!(img.pixel_size, None);
    }
}

#[test]
fn other_hdf5_and_unknown_dataset_names_are_refused() {
    let Some(dir) = samples() else { return };
    // atomap's own HDF5 (an atom lattice) is none of the three layouts.
    let path = dir.join("atomap/test_atom_lattice.hdf5");
    let err = list_hdf5(&path).unwrap_err();
    assert!(matches!(err, DataError::Unsupported { .. }), "{err}");
    // A dataset name that is not in the file lists those that are.
    let path = dir.join("hdf5_files/example2_v2.2.hspy");
    let err = read_hdf5_image(&path, None, Some("/Experiments/nope")).unwrap_err();
    assert!(
        err.to_string()
            .contains("/Experiments/test_diffraction_pattern"),
        "{err}"
    );
}

// ---------------------------------------------- tables of files, all layouts

/// One file whose image is compared with the reference reader's.
struct Single {
    file: &'static str,
    kind: Hdf5Kind,
    /// The entry: its listed name, read with `dataset = name` when
    /// `by_name`; `None`: the file's first entry, read by default.
    name: Option<&'static str>,
    by_name: bool,
    /// Number of entries listed, where checked.
    entries: Option<usize>,
    /// Shape and element type as stored.
    shape: Vec<usize>,
    dtype: &'static str,
    expected: Expected,
}

#[test]
fn single_images_match_rosettasciio() {
    let Some(dir) = samples() else { return };
    let cases = [
        // rosettasciio: scale 0.0074984014901309905 nm.
        Single {
            file: "temul/example_Au_nanoparticle.emd",
            kind: Hdf5Kind::VeloxEmd,
            name: None,
            by_name: false,
            entries: Some(1),
            shape: vec![2048, 2048, 1],
            dtype: "uint16",
            expected: Expected {
                rows: 2048,
                cols: 2048,
                nm: Some((0.007_498_401_490_130_99, 0.007_498_401_490_130_99)),
                first: [17532.0, 17457.0, 17411.0],
                at_1_2: 17679.0,
                last: 16674.0,
                sum: 68_233_769_830.0,
            },
        },
        // Berkeley EMD stores the transpose of the image: stored
        // [[0, 1, 2], [3, 4, 5], [6, 7, 8]] int32; rosettasciio transposes it.
        // dim units "[]": no calibration.
        Single {
            file: "emd_files/example_image.emd",
            kind: Hdf5Kind::BerkeleyEmd,
            name: Some("/signals/__unnamed__"),
            by_name: false,
            entries: Some(1),
            shape: vec![3, 3],
            dtype: "int32",
            expected: Expected {
                rows: 3,
                cols: 3,
                nm: None,
                first: [0.0, 3.0, 6.0],
                at_1_2: 7.0,
                last: 8.0,
                sum: 36.0,
            },
        },
        // A Prismatic slice is calibrated: realslice (44, 22) float32 with
        // dim1 = R_x, dim2 = R_y in "[n_m]"; rosettasciio: shape (22, 44),
        // scales 0.25 nm (y) and 0.25 nm (x), all zeros.
        Single {
            file: "emd_files/Si100_2x1x1_3D.emd",
            kind: Hdf5Kind::BerkeleyEmd,
            name: Some("/4DSTEM_simulation/data/realslices/annular_detector_depth0000"),
            by_name: false,
            entries: None,
            shape: vec![44, 22],
            dtype: "float32",
            expected: Expected {
                rows: 22,
                cols: 44,
                nm: Some((0.25, 0.25)),
                first: [0.0; 3],
                at_1_2: 0.0,
                last: 0.0,
                sum: 0.0,
            },
        },
        // hyperspy: rosettasciio's axes give the scales.
        Single {
            file: "hdf5_files/example2_v2.2.hspy",
            kind: Hdf5Kind::Hyperspy,
            name: Some("/Experiments/test_diffraction_pattern"),
            by_name: true,
            entries: None,
            shape: vec![10, 10],
            dtype: "int64",
            expected: Expected {
                rows: 10,
                cols: 10,
                nm: None, // scale 1.0, no units
                first: [0.0, 1.0, 2.0],
                at_1_2: 12.0,
                last: 99.0,
                sum: 4950.0,
            },
        },
        Single {
            file: "atomap/example_detector_image.hspy",
            kind: Hdf5Kind::Hyperspy,
            name: Some("/Experiments/__unnamed__"),
            by_name: true,
            entries: None,
            shape: vec![512, 512],
            dtype: "uint16",
            expected: Expected {
                rows: 512,
                cols: 512,
                // 0.031036470055905062 microns.
                nm: Some((31.036_470_055_905_06, 31.036_470_055_905_06)),
                first: [1290.0, 1245.0, 1237.0],
                at_1_2: 1232.0,
                last: 1234.0,
                sum: 4_218_953_618.0,
            },
        },
        Single {
            file: "atomap/test_ABF_cropped.hdf5",
            kind: Hdf5Kind::Hyperspy,
            name: Some("/Experiments/__unnamed__"),
            by_name: true,
            entries: None,
            shape: vec![400, 380],
            dtype: "float16",
            expected: Expected {
                rows: 400,
                cols: 380,
                nm: None, // scale 0.009326270238006416, no units
                first: [2368.0, 2186.0, 2436.0],
                at_1_2: 2618.0,
                last: 3438.0,
                sum: 517_962_284.0,
            },
        },
        Single {
            file: "temul/example_Cu_nanoparticle_sim.hspy",
            kind: Hdf5Kind::Hyperspy,
            name: Some("/Experiments/__unnamed__"),
            by_name: true,
            entries: None,
            shape: vec![434, 434],
            dtype: "float32",
            expected: Expected {
                rows: 434,
                cols: 434,
                nm: Some((1.0, 1.0)),
                first: [1.037_647_4e-13, 1.031_527_9e-13, 1.101_728_8e-13],
                at_1_2: 1.009_060_1e-13,
                last: 1.015_191_6e-13,
                sum: 881.169_245_357_785,
            },
        },
    ];
    for c in cases {
        let file = c.file;
        let path = dir.join(file);
        let (kind, list) = list_hdf5(&path).unwrap();
        assert_eq!(kind, c.kind, "{file}");
        if let Some(n) = c.entries {
            assert_eq!(list.len(), n, "{file}");
        }
        let i = match c.name {
            Some(name) => info(&list, name),
            None => list[0].clone(),
        };
        assert_eq!(i.shape, c.shape, "{file}");
        assert_eq!(i.dtype, c.dtype, "{file}");
        let dataset = if c.by_name { c.name } else { None };
        check(
            &read_hdf5_image(&path, None, dataset).unwrap(),
            &c.expected,
            file,
        );
    }
}

/// A stack whose frames are compared with the reference reader's.
struct Stack {
    file: &'static str,
    /// Shape as stored, and the element type where checked.
    shape: Vec<usize>,
    dtype: Option<&'static str>,
    /// Frames read and what they hold.
    frames: Vec<(usize, Expected)>,
    /// Number of frames, where reading one past the last is checked.
    count: Option<usize>,
}

#[test]
fn stack_frames_match_rosettasciio() {
    let Some(dir) = samples() else { return };
    let velox_nm = Some((0.008_172_883_192_297_851, 0.008_172_883_192_297_851));
    let cases = [
        // Velox stacks frames along the last axis: stored (3, 3, 2) int16;
        // rosettasciio gives (2, 3, 3), scale 8.172883192297851 pm.
        Stack {
            file: "emd_files/fei_example_tem_stack.emd",
            shape: vec![3, 3, 2],
            dtype: Some("int16"),
            frames: vec![
                (
                    0,
                    Expected {
                        rows: 3,
                        cols: 3,
                        nm: velox_nm,
                        first: [0.0, 2.0, 4.0],
                        at_1_2: 10.0,
                        last: 16.0,
                        sum: 72.0,
                    },
                ),
                (
                    1,
                    Expected {
                        rows: 3,
                        cols: 3,
                        nm: velox_nm,
                        first: [1.0, 3.0, 5.0],
                        at_1_2: 11.0,
                        last: 17.0,
                        sum: 81.0,
                    },
                ),
            ],
            count: Some(2),
        },
        // A Berkeley 3-D signal is a stack along the last stored axis:
        // stored (3, 3, 3) int32; rosettasciio's data[k] (after its transpose).
        Stack {
            file: "emd_files/example_signal.emd",
            shape: vec![3, 3, 3],
            dtype: None,
            frames: vec![
                (
                    0,
                    Expected {
                        rows: 3,
                        cols: 3,
                        nm: None,
                        first: [0.0, 9.0, 18.0],
                        at_1_2: 21.0,
                        last: 24.0,
                        sum: 108.0,
                    },
                ),
                (
                    2,
                    Expected {
                        rows: 3,
                        cols: 3,
                        nm: None,
                        first: [2.0, 11.0, 20.0],
                        at_1_2: 23.0,
                        last: 26.0,
                        sum: 126.0,
                    },
                ),
            ],
            count: None,
        },
    ];
    for c in cases {
        let file = c.file;
        let path = dir.join(file);
        let (_, list) = list_hdf5(&path).unwrap();
        assert_eq!(list[0].shape, c.shape, "{file}");
        if let Some(dtype) = c.dtype {
            assert_eq!(list[0].dtype, dtype, "{file}");
        }
        for (k, e) in &c.frames {
            check(
                &read_hdf5_image(&path, Some(*k), None).unwrap(),
                e,
                &format!("{file} frame {k}"),
            );
        }
        if let Some(n) = c.count {
            let err = read_hdf5_image(&path, Some(n), None).unwrap_err();
            assert!(
                matches!(err, DataError::NoSuchFrame { frames, .. } if frames == n),
                "{file}: {err}"
            );
        }
    }
}

#[test]
fn spectra_are_listed_but_not_images() {
    let Some(dir) = samples() else { return };
    // (file, kind where checked, shape, text the unusable reason must hold)
    type Case = (
        &'static str,
        Option<Hdf5Kind>,
        Vec<usize>,
        Option<&'static str>,
    );
    let cases: [Case; 2] = [
        ("emd_files/example_spectrum.emd", None, vec![3], None),
        (
            "hdf5_files/example1_v1.2.hdf5",
            Some(Hdf5Kind::Hyperspy),
            vec![21],
            Some("spectrum"),
        ),
    ];
    for (file, want_kind, shape, reason) in cases {
        let path = dir.join(file);
        let (kind, list) = list_hdf5(&path).unwrap();
        if let Some(want) = want_kind {
            assert_eq!(kind, want, "{file}");
        }
        assert_eq!(list[0].shape, shape, "{file}");
        let unusable = list[0].unusable.as_deref();
        assert!(unusable.is_some(), "{file}");
        if let Some(reason) = reason {
            assert!(unusable.unwrap().contains(reason), "{file}: {unusable:?}");
        }
        let err = read_hdf5_image(&path, None, None).unwrap_err();
        assert!(matches!(err, DataError::NotAnImage { .. }), "{file}: {err}");
    }
}

/// Every prefix of a small real file (and a sample of a larger one) is an
/// error or a valid read, never a panic.
#[test]
fn truncated_real_files_give_errors() {
    let Some(dir) = samples() else { return };
    let tmp = tempfile::tempdir().unwrap();
    for (file, step) in [
        ("emd_files/example_image.emd", 97),
        ("hdf5_files/example2_v2.2.hspy", 211),
        ("emd_files/fei_example_tem_stack.emd", 1999),
    ] {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let p = tmp.path().join("cut.h5");
        for len in (0..bytes.len()).step_by(step) {
            std::fs::write(&p, &bytes[..len]).unwrap();
            if let Ok((_, list)) = list_hdf5(&p) {
                for (k, _) in list.iter().enumerate() {
                    let _ = read_hdf5_image(&p, Some(k), None);
                }
            }
            let _ = read_hdf5_image(&p, None, None);
        }
    }
}

/// Writes every image the tests compare as `.npy` into `$PHYVAE_HDF5_EXPORT`,
/// for comparing all pixels with the Python readers (run with `--ignored`).
#[test]
#[ignore = "writes files for an external comparison"]
fn export_for_comparison() {
    let Some(dir) = samples() else { return };
    let out = PathBuf::from(std::env::var("PHYVAE_HDF5_EXPORT").unwrap());
    std::fs::create_dir_all(&out).unwrap();
    for file in [
        "emd_files/fei_velox/fei_emd_image.emd",
        "temul/example_Au_nanoparticle.emd",
        "emd_files/fei_example_tem_stack.emd",
        "emd_files/fei_velox/fei_SI_SuperX-HAADF_10frames_10x50.emd",
        "emd_files/example_image.emd",
        "emd_files/example_signal.emd",
        "emd_files/Si100_2x1x1_3D.emd",
        "hdf5_files/example2_v2.2.hspy",
        "atomap/example_detector_image.hspy",
        "atomap/test_ABF_cropped.hdf5",
        "temul/example_Cu_nanoparticle_sim.hspy",
        "hdf5_files/test_rgba16.hdf5",
    ] {
        let path = dir.join(file);
        let mut k = 0;
        while let Ok(img) = read_hdf5_image(&path, Some(k), None) {
            let name = format!("{}.{k}.npy", file.replace('/', "__"));
            write_npy_f32(&out.join(name), img.pixels.view()).unwrap();
            println!("{file} frame {k}: pixel size {:?}", img.pixel_size);
            k += 1;
        }
    }
}
