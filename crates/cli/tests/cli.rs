//! End-to-end tests of the `phyvae` binary: each command on real inputs
//! (golden arrays from scikit-image and the authors' loss functions, bundled
//! images, synthetic images), and the exit code and message of bad input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{ok, phyvae, s};

use std::path::{Path, PathBuf};

/// Runs phyvae, asserts it failed with `code` and returns stderr.
fn fails(args: &[&str], code: i32) -> String {
    let out = phyvae(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "phyvae {args:?}: {stderr}");
    // Progress lines may come first; the error is the last line.
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

fn golden(stem: &str) -> String {
    format!(
        "{}/../../testdata/golden/{stem}.npy",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn data(rel: &str) -> String {
    format!("{}/../../data/{rel}", env!("CARGO_MANIFEST_DIR"))
}

/// Reads an NPY file: its dtype string and values as f64.
fn npy(path: &Path) -> (String, Vec<usize>, Vec<f64>) {
    let bytes = std::fs::read(path).unwrap();
    let f = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = f.shape().iter().map(|&d| d as usize).collect();
    let descr = f.header().dtype().descr().trim_matches('\'').to_owned();
    let values = match descr.as_str() {
        "<f8" => f.into_vec::<f64>().unwrap(),
        "<f4" => f
            .into_vec::<f32>()
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect(),
        "<i4" => f
            .into_vec::<i32>()
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect(),
        "<i8" => f
            .into_vec::<i64>()
            .unwrap()
            .into_iter()
            .map(|v| v as f64)
            .collect(),
        "|u1" => f
            .into_vec::<u8>()
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect(),
        other => panic!("unexpected dtype {other}"),
    };
    (descr, shape, values)
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn bilateral_f64_input_matches_scikit_image_in_f64() {
    let dir = tmp();
    let out = dir.path().join("out.npy");
    ok(&[
        "filter",
        "bilateral",
        &golden("in_r33x47"),
        s(&out),
        "--sigma-color",
        "std",
        "--sigma-spatial",
        "5",
    ]);
    let (dtype, shape, got) = npy(&out);
    let (_, _, want) = npy(Path::new(&golden("in_r33x47__bilateral_scNone_ss5")));
    assert_eq!((dtype.as_str(), shape), ("<f8", vec![33, 47]));
    assert!(max_abs_diff(&got, &want) <= 1e-5);

    ok(&[
        "filter",
        "bilateral",
        &golden("in_r16_f32"),
        s(&out),
        "--sigma-color",
        "0.3",
        "--sigma-spatial",
        "5",
    ]);
    let (dtype, _, got) = npy(&out);
    let (_, _, want) = npy(Path::new(&golden("in_r16_f32__bilateral_sc0.3_ss5")));
    assert_eq!(dtype, "<f4");
    assert!(max_abs_diff(&got, &want) <= 1e-4);
}

#[test]
fn gaussian_bilateral_differs_from_scikit_image_mode() {
    let dir = tmp();
    let (a, b) = (dir.path().join("a.npy"), dir.path().join("b.npy"));
    ok(&[
        "filter",
        "bilateral",
        &golden("in_step24"),
        s(&a),
        "--sigma-spatial",
        "5",
        "--mode",
        "skimage",
    ]);
    ok(&[
        "filter",
        "bilateral",
        &golden("in_step24"),
        s(&b),
        "--sigma-spatial",
        "5",
        "--mode",
        "gaussian",
    ]);
    let (_, _, va) = npy(&a);
    let (_, _, vb) = npy(&b);
    // The golden README: a symmetric kernel differs from scikit-image's by up to ~0.4.
    assert!(max_abs_diff(&va, &vb) > 1e-3);
}

#[test]
fn scharr_matches_scikit_image() {
    let dir = tmp();
    let out = dir.path().join("e.npy");
    ok(&["filter", "scharr", &golden("in_step24"), s(&out)]);
    let (_, _, got) = npy(&out);
    let (_, _, want) = npy(Path::new(&golden("in_step24__scharr")));
    assert!(max_abs_diff(&got, &want) <= 1e-5);
}

#[test]
fn thresholds_match_scikit_image() {
    // golden/index.json: threshold_otsu(in_r16) = 0.517901844590249,
    // threshold_multiotsu(in_r16, classes=3) = [0.35421815864496475, 0.685482761153278].
    let j = ok(&["threshold", "otsu", &golden("in_r16")]);
    assert!((j["thresholds"][0].as_f64().unwrap() - 0.517_901_844_590_249).abs() <= 1e-5);
    let j = ok(&[
        "threshold",
        "multiotsu",
        &golden("in_r16"),
        "--classes",
        "3",
    ]);
    let t: Vec<f64> = j["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!(max_abs_diff(&t, &[0.354_218_158_644_964_75, 0.685_482_761_153_278]) <= 1e-5);
}

#[test]
fn segment_reproduces_the_authors_visualisation() {
    for input in ["in_step24", "in_r33x47"] {
        let dir = tmp();
        let j = ok(&["segment", &golden(input), "--out", s(dir.path())]);
        assert_eq!(j["flat"], false);
        for (ours, theirs) in [
            ("otsu", "vb_otsu_labels"),
            ("multiotsu3", "vb_multiotsu_labels"),
            ("chanvese", "vb_chanvese_labels"),
        ] {
            let (dtype, _, got) = npy(&dir.path().join(format!("{ours}.npy")));
            let (_, _, want) = npy(Path::new(&golden(&format!("{input}__{theirs}"))));
            assert_eq!(dtype, "<i4");
            assert_eq!(got, want, "{input} {ours}");
            assert!(dir.path().join(format!("{ours}.png")).is_file());
        }
        assert!(dir.path().join("multiotsu4.npy").is_file());
    }
}

#[test]
fn physics_losses_match_the_authors_values() {
    // golden/index.json: the authors' add_loss / add_loss2 on lat8x8__z_mean.
    for (loss, want) in [
        ("sl1", 5.954_588_890_075_684),
        ("sl2", 0.885_662_853_717_804),
    ] {
        let j = ok(&["physics", loss, &golden("lat8x8__z_mean")]);
        let psi = j["psi"].as_f64().unwrap();
        assert!(
            ((psi - want) / want).abs() <= 1e-4,
            "{loss}: {psi} vs {want}"
        );
    }
}

#[test]
fn non_square_batch_is_a_clear_error() {
    let dir = tmp();
    let z = dir.path().join("z.npy");
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    let mut header = "{'descr': '<f4', 'fortran_order': False, 'shape': (50, 4), }".to_owned();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    bytes.extend_from_slice(&u16::try_from(header.len()).unwrap().to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for k in 0..200 {
        bytes.extend_from_slice(&(k as f32).to_le_bytes());
    }
    std::fs::write(&z, bytes).unwrap();
    let err = fails(&["physics", "sl1", s(&z)], 4);
    assert!(err.contains("50") && err.contains("square"), "{err}");
}

#[test]
fn synth_is_reproducible_and_scores_itself_perfectly() {
    let (a, b) = (tmp(), tmp());
    for d in [&a, &b] {
        ok(&[
            "synth",
            "two-phase",
            "--size",
            "128",
            "--seed",
            "3",
            "--out",
            s(d.path()),
        ]);
    }
    let (dtype, shape, img) = npy(&a.path().join("image.npy"));
    assert_eq!((dtype.as_str(), shape), ("<f4", vec![128, 128]));
    assert_eq!(img, npy(&b.path().join("image.npy")).2);
    let (dtype, _, truth) = npy(&a.path().join("truth.npy"));
    assert_eq!(dtype, "<i4");
    assert!(truth.contains(&0.0) && truth.contains(&1.0));
    let t = a.path().join("truth.npy");
    let j = ok(&["score", s(&t), s(&t)]);
    assert_eq!(
        (
            j["ari"].as_f64(),
            j["accuracy"].as_f64(),
            j["boundary_f1"].as_f64()
        ),
        (Some(1.0), Some(1.0), Some(1.0))
    );
    ok(&[
        "synth",
        "domains",
        "--size",
        "96",
        "--seed",
        "1",
        "--out",
        s(b.path()),
    ]);
    let (_, _, truth) = npy(&b.path().join("truth.npy"));
    assert!(truth.contains(&2.0));
}

#[test]
fn patches_of_bundled_images() {
    let j = ok(&[
        "patches",
        &data("au_grain_boundary_png/Grain_boundry_gold_512px.png"),
    ]);
    assert_eq!(j["grid"], serde_json::json!([59, 59]));
    assert_eq!(j["patches"], 3481);
    // The paper's graphene grid: 109 x 109 = 11 881 patches from a 915 px image.
    let j = ok(&["patches", &data("rgo_cafm_graphene_lattice/GO_cafm.tif")]);
    assert_eq!(j["patches"], 11_881);
    assert!((j["pixel_size"]["x"].as_f64().unwrap() - 0.016_393_442_622_950_82).abs() < 1e-12);
    let j = ok(&[
        "patches",
        &data("stm_spiepy_step_edge_atoms/image_with_step_edge_and_atoms.dat"),
        "--window",
        "64",
        "--step",
        "16",
    ]);
    assert_eq!(j["grid"], serde_json::json!([29, 29]));
}

#[test]
fn missing_input_names_the_file() {
    let err = fails(
        &["filter", "scharr", "/nonexistent/in.npy", "/tmp/out.npy"],
        3,
    );
    assert!(err.contains("/nonexistent/in.npy"), "{err}");
    // One line, the cause said once.
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
}

#[test]
fn corrupt_input_is_an_input_error() {
    let d = tmp();
    let p: PathBuf = d.path().join("bad.npy");
    std::fs::write(&p, b"\x93NUMPY\x01\x00\xff\xffnot a header").unwrap();
    let err = fails(&["threshold", "otsu", s(&p)], 3);
    assert!(err.contains("bad.npy"), "{err}");
}

#[test]
fn invalid_parameters_exit_with_code_4() {
    let img = data("au_grain_boundary_png/Grain_boundry_gold_512px.png");
    let err = fails(&["patches", &img, "--window", "0"], 4);
    assert!(err.contains("window"), "{err}");
    let err = fails(&["patches", &img, "--window", "600"], 4);
    assert!(err.contains("512"), "{err}");
    let err = fails(
        &[
            "threshold",
            "multiotsu",
            &golden("in_r16"),
            "--classes",
            "7",
        ],
        4,
    );
    assert!(err.contains("classes"), "{err}");
    let d = tmp();
    let err = fails(
        &[
            "filter",
            "bilateral",
            &golden("in_r16"),
            s(&d.path().join("o.npy")),
            "--sigma-color",
            "-1",
        ],
        4,
    );
    assert!(err.contains("sigma_color"), "{err}");
    let err = fails(
        &[
            "filter",
            "bilateral",
            &golden("in_r16"),
            s(&d.path().join("o.npy")),
            "--sigma-color",
            "abc",
        ],
        1,
    );
    assert!(err.contains("abc"), "{err}");
}

#[test]
fn constant_image_is_refused_by_run() {
    let d = tmp();
    let p = d.path().join("flat.png");
    let file = std::fs::File::create(&p).unwrap();
    let mut enc = png::Encoder::new(file, 64, 64);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()
        .unwrap()
        .write_image_data(&[7u8; 64 * 64])
        .unwrap();
    let err = fails(
        &[
            "train",
            s(&p),
            "--out",
            s(&d.path().join("o")),
            "--model",
            "fft",
        ],
        4,
    );
    assert!(err.contains("constant"), "{err}");
}

#[test]
fn unwritable_output_exits_with_code_5() {
    let d = tmp();
    let blocker = d.path().join("file");
    std::fs::write(&blocker, b"x").unwrap();
    // A folder cannot be created under a regular file.
    fails(
        &[
            "segment",
            &golden("in_step24"),
            "--out",
            s(&blocker.join("sub")),
        ],
        5,
    );
    // A file that cannot be written is an output error too.
    let err = fails(
        &[
            "convert",
            &data("rgo_cafm_graphene_lattice/GO_cafm.tif"),
            s(&blocker.join("x.npy")),
        ],
        5,
    );
    assert!(err.contains("x.npy"), "{err}");
}

#[test]
fn a_truth_map_without_integer_labels_is_invalid_input() {
    let d = tmp();
    common::synth("two-phase", 64, 1, d.path());
    let img = d.path().join("image.npy");
    // Float labels: the golden latent map holds fractions.
    let err = fails(
        &[
            "train",
            s(&img),
            "--out",
            s(&d.path().join("r")),
            "--model",
            "fft",
            "--truth",
            &golden("in_step24"),
        ],
        4,
    );
    assert!(err.contains("integer labels"), "{err}");
}

#[test]
fn info_lists_format_shape_type_and_pixel_size() {
    // GO_cafm.tif: 915 x 915 uint16 (its meta.json), pixel size 15 nm / 915 px
    // from the sidecar GO_cafm.json.
    let j = ok(&["info", &data("rgo_cafm_graphene_lattice/GO_cafm.tif")]);
    assert_eq!(j["format"], "TIFF");
    assert_eq!(j["default"], 0);
    let im = &j["images"][0];
    assert_eq!(im["shape"], serde_json::json!([915, 915]));
    assert_eq!(im["dtype"], "uint16");
    assert_eq!(im["pixel_size"]["unit"], "nm");
    let x = im["pixel_size"]["x"].as_f64().unwrap();
    assert!((x - 15.0 / 915.0).abs() < 1e-12, "{x}");
    // The SPIEPy raw file holds float64 values.
    let j = ok(&[
        "info",
        &data("stm_spiepy_step_edge_atoms/image_with_step_edge_and_atoms.dat"),
    ]);
    assert_eq!(j["images"][0]["dtype"], "float64");
    assert!(j["images"][0]["pixel_size"].is_null());
}

#[test]
fn convert_refuses_float64_beyond_the_float32_range() {
    let d = tmp();
    let input = d.path().join("huge.npy");
    let a = ndarray::array![[0.0_f64, 1.0], [1e300, 2.0]];
    phyvae_data::io::write_npy_f64(&input, a.view()).unwrap();
    let out = d.path().join("out.npy");
    let err = fails(&["convert", s(&input), s(&out)], 4);
    assert!(err.contains("huge.npy"), "{err}");
    assert!(err.contains("row 1, col 0"), "{err}");
    assert!(err.contains("float32 range"), "{err}");
    assert!(!out.exists(), "an output was written");
}

#[test]
fn convert_writes_the_image_as_float32_npy() {
    let d = tmp();
    let out = d.path().join("go.npy");
    let j = ok(&[
        "convert",
        &data("rgo_cafm_graphene_lattice/GO_cafm.tif"),
        s(&out),
    ]);
    assert_eq!(j["shape"], serde_json::json!([915, 915]));
    // The bundled image.npy holds the same pixels (uint16 values, exact in f32).
    let (dtype, shape, got) = npy(&out);
    assert_eq!(dtype, "<f4");
    assert_eq!(shape, vec![915, 915]);
    let (_, _, want) = npy(Path::new(&data("rgo_cafm_graphene_lattice/image.npy")));
    assert_eq!(got, want);
    // A frame that does not exist is an error naming the frame count.
    let err = fails(
        &[
            "convert",
            &data("rgo_cafm_graphene_lattice/GO_cafm.tif"),
            s(&out),
            "--frame",
            "3",
        ],
        3,
    );
    assert!(err.contains("frame") || err.contains("page"), "{err}");
}
