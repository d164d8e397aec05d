//! The TIA `.ser` reader on real files: HyperSpy 1.6.5's test files
//! `FEI_new/` (SeriesVersion 0x0220) and `FEI_old/` (0x0210) (GPL-3.0,
//! fetched into a cache by `scripts/fetch-format-samples.sh`, never copied
//! into this repository).
//!
//! Expected values come from RosettaSciIO 0.15 (HyperSpy's TIA reader),
//! reading the `.ser` file alone:
//! ```text
//! python -c "from rsciio.tia import file_reader; import numpy as np;
//!   d = file_reader(PATH)[0]; a = d['data']; f = a.reshape((-1,) + a.shape[-2:])[K];
//!   print(a.shape, a.dtype, [(x['scale'], x['units']) for x in d['axes']],
//!         f[0, 0], f[0, 1], f[1, 0], f[-1, -1], f[f.shape[0] // 2, f.shape[1] // 3],
//!         f.astype(np.float64).sum())"
//! ```
//! where `K` is the frame (element) index. RosettaSciIO, like ncempy, flips
//! the stored rows (`data[..., ::-1, :]`), so its `f[0, 0]` is the top-left
//! pixel, as here.
// Test helpers outside `#[test]` functions unwrap too (clippy.toml allows it in tests).
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use phyvae_data::io::ser::{SER_MAGIC, list_ser, parse_ser, read_ser};
use phyvae_data::{DataError, Image};
use std::path::{Path, PathBuf};

fn samples() -> Option<&'static Path> {
    common::samples("TIA SER")
}

/// What RosettaSciIO reports for one frame of an image series.
struct Expected {
    file: &'static str,
    /// Shape of the whole series (RosettaSciIO's, frames first).
    shape: &'static [usize],
    dtype: &'static str,
    /// Pixel size in nm (RosettaSciIO's axis scale), or `None`.
    pixel_nm: Option<f64>,
    frame: usize,
    /// `f[0, 0]`, `f[0, 1]`, `f[1, 0]`, `f[-1, -1]`, `f[rows / 2, cols / 3]`.
    values: [f32; 5],
    sum: f64,
}

const IMAGES: &[Expected] = &[
    // Version 0x0220, one int32 image.
    Expected {
        file: "FEI_new/128x128-TEM_search_1.ser",
        shape: &[128, 128],
        dtype: "int32",
        pixel_nm: Some(5.261_214_205_047_081),
        frame: 0,
        values: [12796., 12232., 12582., 12303., 980.],
        sum: 169_637_782.0,
    },
    // Version 0x0210, one float32 image.
    Expected {
        file: "FEI_old/64x64_TEM_images_acquire_1.ser",
        shape: &[64, 64],
        dtype: "float32",
        pixel_nm: Some(6.281_833_616_298_531),
        frame: 0,
        values: [49154.605, 47970.406, 48014.98, 47856.695, 9858.739],
        sum: 165_050_960.890_136_72,
    },
    // Version 0x0210, five float32 frames.
    Expected {
        file: "FEI_old/64x64x5_TEM_preview_1.ser",
        shape: &[5, 64, 64],
        dtype: "float32",
        pixel_nm: Some(6.281_833_616_298_531),
        frame: 0,
        values: [2624.097, 2379.6768, 2408.3633, 2289.8516, 1278.6472],
        sum: 8_574_644.731_475_83,
    },
    Expected {
        file: "FEI_old/64x64x5_TEM_preview_1.ser",
        shape: &[5, 64, 64],
        dtype: "float32",
        pixel_nm: Some(6.281_833_616_298_531),
        frame: 4,
        values: [2446.9595, 2470.0757, 2505.4026, 2348.5732, 1420.7616],
        sum: 8_579_774.302_154_541,
    },
    // Version 0x0210, uint16, 5 valid of 200 planned elements.
    Expected {
        file: "FEI_old/03_Scanning Preview_1.ser",
        shape: &[5, 128, 128],
        dtype: "uint16",
        pixel_nm: Some(0.384_352_487_513_925_1),
        frame: 4,
        values: [2971., 1648., 2117., 4542., 6150.],
        sum: 201_058_560.0,
    },
    // Version 0x0220, five int32 diffraction patterns: RosettaSciIO, without
    // the .emi file, gives a scale of 4.246e16 "nm" (the 1/m delta read as
    // metres); this reader gives no pixel size.
    Expected {
        file: "FEI_new/128x128x5-diffraction_preview_1.ser",
        shape: &[5, 128, 128],
        dtype: "int32",
        pixel_nm: None,
        frame: 4,
        values: [64., 126., 322., 275., -61.],
        sum: 1_874_086.0,
    },
    // Version 0x0220, a 5 x 5 scan of 256 x 256 int32 diffraction patterns
    // (time-and-position tags): RosettaSciIO's shape is (5, 5, 256, 256),
    // element 24 is its [4, 4].
    Expected {
        file: "FEI_new/16x16-diffraction_imagel_5x5x256x256_EDS_2.ser",
        shape: &[25, 256, 256],
        dtype: "int32",
        pixel_nm: None,
        frame: 24,
        values: [-64., -65., -248., -73., -180.],
        sum: -6_239_421.0,
    },
];

fn sum(img: &Image) -> f64 {
    img.pixels.iter().map(|&v| f64::from(v)).sum()
}

fn picks(img: &Image) -> [f32; 5] {
    let (r, c) = img.pixels.dim();
    let p = &img.pixels;
    [
        p[[0, 0]],
        p[[0, 1]],
        p[[1, 0]],
        p[[r - 1, c - 1]],
        p[[r / 2, c / 3]],
    ]
}

#[test]
fn images_match_rosettasciio() {
    let Some(dir) = samples() else { return };
    for e in IMAGES {
        let path = dir.join(e.file);
        let head = std::fs::read(&path).unwrap();
        assert!(head.starts_with(&SER_MAGIC), "{}", e.file);
        let info = list_ser(&path).unwrap();
        assert_eq!(info.len(), 1, "{}", e.file);
        let info = &info[0];
        assert_eq!(info.shape, e.shape, "{}", e.file);
        assert_eq!(info.dtype, e.dtype, "{}", e.file);
        assert_eq!(info.unusable, None, "{}", e.file);

        let img = read_ser(&path, Some(e.frame)).unwrap();
        let (rows, cols) = (e.shape[e.shape.len() - 2], e.shape[e.shape.len() - 1]);
        assert_eq!(img.pixels.dim(), (rows, cols), "{}", e.file);
        assert_eq!(picks(&img), e.values, "{} frame {}", e.file, e.frame);
        let s = sum(&img);
        assert!(
            (s - e.sum).abs() <= 1e-9 * e.sum.abs().max(1.0),
            "{} frame {}: sum {s} vs {}",
            e.file,
            e.frame,
            e.sum
        );
        match (&img.pixel_size, e.pixel_nm) {
            (None, None) => {}
            (Some(ps), Some(want)) => {
                assert_eq!(ps.unit, "nm");
                for got in [ps.x, ps.y] {
                    assert!((got - want).abs() <= 1e-12 * want, "{}: {got}", e.file);
                }
            }
            (got, want) => panic!("{}: pixel size {got:?}, expected {want:?}", e.file),
        }
        assert_eq!(info.pixel_size, img.pixel_size, "{}", e.file);
        assert_eq!(img.source.as_deref(), Some(path.as_path()));

        // The in-memory parser gives the same image.
        let ser = parse_ser(&head, &path).unwrap();
        assert_eq!(ser.image(Some(e.frame)).unwrap(), img);
        let frames = e.shape.first().copied().filter(|_| e.shape.len() == 3);
        let frames = frames.unwrap_or(1);
        assert_eq!(ser.frames(), frames, "{}", e.file);
        assert!(matches!(
            read_ser(&path, Some(frames)),
            Err(DataError::NoSuchFrame { frames: f, .. }) if f == frames
        ));
    }
}

#[test]
fn spectra_are_listed_not_read() {
    let Some(dir) = samples() else { return };
    // RosettaSciIO: (5, 5, 1024) int32 and (5, 5, 4000) uint32 (25 spectra on
    // a 5 x 5 scan, listed here as the 25 stored elements).
    for (file, channels, dtype) in [
        ("FEI_old/16x16-spectrum_image-5x5x1024_1.ser", 1024, "int32"),
        (
            "FEI_new/16x16-spectrum_image_5x5x4000-not_square_1.ser",
            4000,
            "uint32",
        ),
    ] {
        let path = dir.join(file);
        let info = list_ser(&path).unwrap();
        assert_eq!(info.len(), 1);
        assert_eq!(info[0].shape, vec![25, channels], "{file}");
        assert_eq!(info[0].dtype, dtype, "{file}");
        assert_eq!(info[0].pixel_size, None);
        assert!(info[0].unusable.is_some(), "{file}");
        let err = read_ser(&path, None).unwrap_err();
        assert!(matches!(err, DataError::NotAnImage { .. }), "{file}: {err}");
        assert!(err.to_string().contains(file.rsplit('/').next().unwrap()));
    }
}

#[test]
fn every_sample_file_lists_and_reads() {
    let Some(dir) = samples() else { return };
    let mut images = 0;
    for sub in ["FEI_new", "FEI_old"] {
        for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "ser") {
                continue;
            }
            let info = list_ser(&path).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            let ser = parse_ser(&bytes, &path).unwrap();
            assert_eq!(ser.list(), info);
            if info[0].unusable.is_some() {
                assert_eq!(ser.frames(), 0, "{}", path.display());
                assert!(matches!(
                    read_ser(&path, None),
                    Err(DataError::NotAnImage { .. })
                ));
                continue;
            }
            images += 1;
            let shape = &info[0].shape;
            for k in 0..ser.frames() {
                let img = ser.image(Some(k)).unwrap();
                assert_eq!(
                    [img.rows(), img.cols()],
                    shape[shape.len() - 2..],
                    "{}",
                    path.display()
                );
            }
        }
    }
    // hyperspy 1.6.5 ships 15 image series among its 28 .ser files (the
    // others are spectra; counted from their DataTypeID 0x4122).
    assert_eq!(images, 15);
}

#[test]
fn truncated_real_files_are_errors() {
    let Some(dir) = samples() else { return };
    for file in [
        "FEI_old/16x16x5_STEM_BF_DF_preview_1.ser",
        "FEI_new/128x128-TEM_search_1.ser",
    ] {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let path = Path::new(file);
        // The whole file reads; the last element's 8-byte time tag is not
        // read, so every prefix cutting into the values must fail somewhere.
        let whole = parse_ser(&bytes, path).unwrap();
        let frames = whole.frames();
        assert!(whole.image(Some(frames - 1)).is_ok());
        let step = (bytes.len() / 3000).max(1);
        for n in (0..bytes.len() - 8).step_by(step) {
            let failed = match parse_ser(&bytes[..n], path) {
                Err(e) => {
                    assert!(
                        matches!(e, DataError::Malformed { .. }),
                        "{file}[..{n}]: {e}"
                    );
                    true
                }
                Ok(ser) => (0..ser.frames()).any(|k| ser.image(Some(k)).is_err()),
            };
            assert!(failed, "{file} cut to {n} bytes read without error");
        }
    }
}

/// Writes every frame of the image files above as `<dir>/<file stem>_<k>.npy`
/// for comparison with RosettaSciIO in Python; runs only when
/// `PHYVAE_SER_EXPORT` names a folder.
#[test]
#[ignore = "exports .npy files for an external comparison"]
fn export_frames_for_comparison() {
    let Ok(out) = std::env::var("PHYVAE_SER_EXPORT") else {
        return;
    };
    let Some(dir) = samples() else { return };
    let out = PathBuf::from(out);
    std::fs::create_dir_all(&out).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for e in IMAGES {
        if !seen.insert(e.file) {
            continue;
        }
        let path = dir.join(e.file);
        let bytes = std::fs::read(&path).unwrap();
        let ser = parse_ser(&bytes, &path).unwrap();
        let stem = path
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .replace(' ', "_");
        for k in 0..ser.frames() {
            let img = ser.image(Some(k)).unwrap();
            let npy = out.join(format!("{stem}_{k}.npy"));
            phyvae_data::io::write_npy_f32(&npy, img.pixels.view()).unwrap();
        }
    }
}
