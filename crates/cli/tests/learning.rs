//! End-to-end tests of what a run says about itself: settings measured on the
//! image, the diagnosis of failed runs (posterior collapse, flattening by the
//! physics term, a run that ran away), the unsupervised result, and the
//! classical FFT baseline.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{ok, phyvae, s};

use serde_json::Value;
use std::path::Path;

/// A 128 x 128 synthetic two-phase image (12 px square lattice beside a
/// 14 px perovskite) and its truth map in `dir`.
fn two_phase(dir: &Path) {
    common::synth("two-phase", 128, 3, dir);
}

/// The same at 256 x 256 px.
fn two_phase_256(dir: &Path) {
    common::synth("two-phase", 256, 3, dir);
}

fn metrics(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("metrics.json")).unwrap()).unwrap()
}

fn kinds(m: &Value) -> Vec<String> {
    m["diagnosis"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap().to_owned())
        .collect()
}

/// Runs `phyvae train` and returns (metrics.json, stderr, report.html).
fn train(img: &Path, out: &Path, extra: &[&str]) -> (Value, String, String) {
    let mut args = vec!["train", s(img), "--out", s(out), "--snapshot-every", "0"];
    args.extend(extra);
    let o = phyvae(&args);
    assert!(
        o.status.success(),
        "phyvae {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    (
        metrics(out),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        report,
    )
}

#[test]
fn settings_come_from_the_lattice_and_flags_win() {
    let d = tempfile::tempdir().unwrap();
    two_phase(d.path());
    let img = d.path().join("image.npy");
    // Two lattices of 12 and 14 px: the cell is one of them, and the window
    // holds about two cells (below); the step is a quarter of it, and the shift prior
    // half a cell per unit: cell / window.
    let a = d.path().join("a");
    let (m, _, report) = train(&img, &a, &["--steps", "20", "--hidden", "16"]);
    let cell = m["settings"]["facts"]["cell_px"].as_f64().unwrap();
    assert!(
        (cell - 12.0).abs() < 0.5 || (cell - 14.0).abs() < 0.5,
        "cell {cell}"
    );
    // The second lattice puts measured peaks off the registered one, so a
    // VAE keeps a window of two cells (one lattice alone gets a cell and a half).
    let off = m["settings"]["facts"]["off_lattice_peaks"]
        .as_u64()
        .unwrap();
    assert!(off >= 1, "off-lattice peaks {off}");
    let window = m["window"].as_u64().unwrap() as f64;
    assert!((window - 2.0 * cell).abs() <= 2.0, "window {window}");
    let window = window as u64;
    assert_eq!(m["step"].as_u64().unwrap(), window / 4);
    let config = std::fs::read_to_string(a.join("config.toml")).unwrap();
    let cfg: toml::Table = config.parse().unwrap();
    let k = cfg["model"]["translation_prior"].as_float().unwrap();
    assert!((k - cell / window as f64).abs() < 1e-3, "k {k}");
    assert_eq!(cfg["train"]["beta"]["type"].as_str(), Some("constant"));
    // 20 steps: fewer than 4 whole epochs of ceil(patches / 16) batches fit,
    // so 4 epochs of 20 / 4 = 5 batches each, exactly 20 steps.
    let batches = m["patches"].as_u64().unwrap().div_ceil(16);
    assert!(4 * batches > 20, "{batches} batches per epoch");
    assert_eq!(m["epochs"].as_u64(), Some(4));
    assert_eq!(m["steps"].as_u64(), Some(20));
    assert_eq!(cfg["train"]["batches_per_epoch"].as_integer(), Some(5));
    // Every choice has a reason, in config.toml and in the report.
    assert!(config.contains("reason"), "{config}");
    assert!(report.contains("Settings taken from the image"));
    assert!(report.contains("data.window"));

    // A window on the command line wins; step and shift prior follow it.
    let b = d.path().join("b");
    let (m, _, _) = train(
        &img,
        &b,
        &["--steps", "5", "--hidden", "16", "--window", "20"],
    );
    assert_eq!(m["window"], 20);
    assert_eq!(m["step"], 5);

    // The paper's preset: window 48, step 8, k 0.1, beta 0.1 to 1, 50 epochs
    // (checked on the written configuration; two epochs are trained here).
    let c = d.path().join("c");
    let (m, _, _) = train(
        &img,
        &c,
        &["--preset", "paper", "--hidden", "16", "--epochs", "1"],
    );
    assert_eq!(
        (m["window"].as_u64(), m["step"].as_u64()),
        (Some(48), Some(8))
    );
    let cfg: toml::Table = std::fs::read_to_string(c.join("config.toml"))
        .unwrap()
        .parse()
        .unwrap();
    assert!((cfg["model"]["translation_prior"].as_float().unwrap() - 0.1).abs() < 1e-6);
    assert_eq!(cfg["train"]["beta"]["type"].as_str(), Some("ramp"));
    assert!(
        cfg.get("auto").is_none(),
        "the paper preset measures nothing"
    );
}

#[test]
fn a_collapsed_run_says_so_and_names_no_result() {
    let d = tempfile::tempdir().unwrap();
    two_phase(d.path());
    let img = d.path().join("image.npy");
    let truth = d.path().join("truth.npy");
    let out = d.path().join("run");
    // A KL weight of 200 makes any information in a latent cost more than
    // it can save in reconstruction: every posterior is pushed to the prior.
    let (m, stderr, report) = train(
        &img,
        &out,
        &["--beta", "200", "--steps", "150", "--truth", s(&truth)],
    );
    assert_eq!(kinds(&m), vec!["collapsed"], "{}", m["diagnosis"]);
    assert_eq!(m["diagnosis"]["ok"], false);
    assert!(m["result"]["map"].is_null(), "{}", m["result"]);
    assert!(stderr.contains("posterior collapse"), "{stderr}");
    assert!(report.contains("This run failed"));
    assert!(report.contains("collapsed"));
    assert!(report.contains("carries no information"));
    // No result segmentation is drawn for it.
    assert!(!out.join("result").join("labels.npy").exists());
    // The default retry trained it again from scratch, with the next seed and
    // half the rate (5e-3 -> 2.5e-3), and collapsed again; both are recorded.
    let attempts = m["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{}", m["attempts"]);
    assert_eq!(attempts[0]["seed"], 0);
    assert_eq!(attempts[0]["lr"], 0.005);
    assert!(
        stderr.contains(
            "training again from scratch with seed 1 and learning rate 0.0025, and half the KL scale"
        ),
        "{stderr}"
    );
    assert!(report.contains("This run trained 2 times from scratch"));
    let cfg: toml::Table = std::fs::read_to_string(out.join("config.toml"))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(cfg["retries"].as_integer(), Some(1));
    // --retries 0: one attempt, nothing recorded.
    let once = d.path().join("once");
    let (m, _, _) = train(
        &img,
        &once,
        &[
            "--beta",
            "200",
            "--steps",
            "20",
            "--hidden",
            "16",
            "--retries",
            "0",
        ],
    );
    assert_eq!(kinds(&m), vec!["collapsed"], "{}", m["diagnosis"]);
    assert!(m.get("attempts").is_none(), "{}", m["attempts"]);
}

#[test]
fn a_physics_term_that_flattens_the_maps_is_named() {
    let d = tempfile::tempdir().unwrap();
    two_phase(d.path());
    let img = d.path().join("image.npy");
    let out = d.path().join("run");
    // Four epochs without Psi let the content latents learn; then a Psi
    // weighted 20 times the reconstruction's scale smooths them flat (10 does
    // too; at 50 the means drift beyond the end-of-run bound and the run is
    // diagnosed as ran-away instead).
    let (m, stderr, report) = train(
        &img,
        &out,
        &[
            "--physics",
            "sl1",
            "--mode",
            "gradient",
            "--add-lambda",
            "20",
            "--physics-warmup",
            "4",
            "--epochs",
            "12",
        ],
    );
    assert_eq!(kinds(&m), vec!["flattened-by-psi"], "{}", m["diagnosis"]);
    assert!(stderr.contains("physics term flattened"), "{stderr}");
    assert!(report.contains("This run failed"));
    assert!(report.contains("flattened-by-psi"));
}

/// Runs `phyvae train`, which must stop with exit code 4; returns its
/// stderr.
fn train_stopped(img: &Path, out: &Path, extra: &[&str]) -> String {
    let mut args = vec!["train", s(img), "--out", s(out), "--snapshot-every", "0"];
    args.extend(extra);
    let o = phyvae(&args);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(4), "phyvae {args:?}: {stderr}");
    stderr
}

#[test]
fn a_run_that_ran_away_is_named() {
    let d = tempfile::tempdir().unwrap();
    two_phase(d.path());
    let img = d.path().join("image.npy");
    let out = d.path().join("run");
    // Adam at a rate of 10 throws the encoder's means far outside the prior
    // within the first epoch: training stops there, before any checkpoint.
    let stderr = train_stopped(&img, &out, &["--lr", "10", "--steps", "100"]);
    assert!(stderr.contains("ran away at epoch 1"), "{stderr}");
    assert!(
        stderr.contains("no checkpoint was written; start again with a lower --lr"),
        "{stderr}"
    );
    assert!(!stderr.contains("is kept"), "{stderr}");
    assert!(!out.join("checkpoint/checkpoint.safetensors").exists());
    let m = metrics(&out);
    assert_eq!(kinds(&m), vec!["ran-away"], "{}", m["diagnosis"]);
    assert!(m["result"]["map"].is_null());
    assert_eq!(
        m["result"]["reason"], "training ran away",
        "{}",
        m["result"]
    );
    assert!(!out.join("latents.npy").exists(), "no map is drawn");
}

/// A run that runs away after healthy epochs (here a rate raised from epoch
/// 2 on in its config.toml) stops in that epoch; the checkpoint of the
/// epoch before is kept, named in the message, and resumes at a lower rate.
#[test]
fn a_run_that_ran_away_later_keeps_the_last_good_checkpoint() {
    let d = tempfile::tempdir().unwrap();
    common::synth("two-phase", 96, 2, d.path());
    let img = d.path().join("image.npy");
    let small = [
        "--window", "16", "--step", "8", "--hidden", "16", "--batch", "16",
    ];
    let a = d.path().join("a");
    let mut args = vec!["--epochs", "1"];
    args.extend(small);
    train(&img, &a, &args);
    let config = std::fs::read_to_string(a.join("config.toml"))
        .unwrap()
        .replace("epochs = 1\n", "epochs = 3\n");
    let config = format!("{config}\n[[train.lr_changes]]\nepoch = 2\nlr = 10.0\n");
    let cfg_path = d.path().join("raised.toml");
    std::fs::write(&cfg_path, config).unwrap();
    let out = d.path().join("run");
    let stderr = train_stopped(&img, &out, &["--config", s(&cfg_path)]);
    let ckpt = out.join("checkpoint").join("checkpoint.safetensors");
    assert!(stderr.contains("ran away at epoch 2"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the checkpoint of epoch 1, the last good one, is kept in {}",
            ckpt.display()
        )),
        "{stderr}"
    );
    assert!(ckpt.is_file());
    assert_eq!(kinds(&metrics(&out)), vec!["ran-away"]);
    // It resumes from that checkpoint at a lower rate, and completes.
    let m = common::ok(&[
        "train",
        s(&img),
        "--out",
        s(&out),
        "--resume",
        "--lr",
        "0.001",
    ]);
    assert_eq!(m["epochs"], 3);
    assert!(!kinds(&m).contains(&"ran-away".to_owned()), "{m}");
    let hist = std::fs::read_to_string(out.join("history.csv")).unwrap();
    let lr: Vec<&str> = hist
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(2).unwrap())
        .collect();
    assert_eq!(lr.len(), 3, "{hist}");
    assert_eq!(&lr[1..], ["0.001", "0.001"], "{hist}");
}

#[test]
fn the_fft_baseline_separates_two_lattices_and_picks_a_result() {
    let d = tempfile::tempdir().unwrap();
    two_phase_256(d.path());
    let img = d.path().join("image.npy");
    let truth = d.path().join("truth.npy");
    let out = d.path().join("fft");
    let (m, _, report) = train(
        &img,
        &out,
        &["--model", "fft", "--truth", s(&truth), "--classes", "2"],
    );
    assert_eq!(m["method"], "fft");
    assert_eq!(
        m["latents"],
        serde_json::json!(["pc1", "pc2", "pc3", "pc4"])
    );
    let r = &m["result"];
    assert_eq!(r["classes"], 2);
    assert_eq!(r["classes_chosen"], false);
    // A given count is not checked for interiors or steps.
    assert!(r["classes_without_interior"].is_null(), "{r}");
    assert!(r["classes_gradual"].is_null(), "{r}");
    // Principal components have no decoder to draw boundary templates with.
    assert!(r["boundary_refinement"].is_null(), "{r}");
    assert!(r["map"].as_str().unwrap().starts_with("pc"));
    // Lattices of 12 and 14 px have different spectra: the baseline splits them.
    let ari = r["score"]["ari"].as_f64().unwrap();
    assert!(ari > 0.8, "ARI {ari}");
    // The oracle is at least as good as the pick.
    assert!(r["oracle"]["ari"].as_f64().unwrap() >= ari - 1e-12);
    assert!(out.join("result").join("labels.npy").is_file());
    assert!(report.contains("Result segmentation"));
    assert!(report.contains("classical baseline"));
}

#[test]
fn bad_result_and_baseline_settings_are_refused() {
    let d = tempfile::tempdir().unwrap();
    two_phase(d.path());
    let img = d.path().join("image.npy");
    let out = d.path().join("run");
    let o = phyvae(&["train", s(&img), "--out", s(&out), "--classes", "1"]);
    assert_eq!(o.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&o.stderr).contains("classes"));
    let o = phyvae(&["synth", "suite", "--family", "nonsense", "--out", s(&out)]);
    assert_eq!(o.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&o.stderr).contains("family"));
}

#[test]
fn suite_images_come_with_their_parameters() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("img");
    ok(&[
        "synth",
        "suite",
        "--family",
        "domains-180",
        "--seed",
        "4",
        "--size",
        "96",
        "--out",
        s(&out),
    ]);
    let p: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("params.json")).unwrap()).unwrap();
    assert_eq!(p["family"], "domains-180");
    assert_eq!(p["kind"], "domains");
    assert!(p["params"]["delta_px"].is_string(), "{p}");
    assert!(out.join("truth.npy").is_file());
}

/// Writes `pixels` (`rows x cols`, row-major) as a little-endian `f32` `.npy`.
fn write_npy_f32(path: &Path, rows: usize, cols: usize, pixels: &[f32]) {
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Magic, version and length take 10 bytes; the header ends in a newline
    // and pads the whole to a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&u16::try_from(header.len()).unwrap().to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in pixels {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

/// Uniform draws in (0, 1) from a fixed linear congruential generator
/// (Knuth's MMIX constants), so that a test image needs no random crate.
fn uniforms(seed: u64) -> impl FnMut() -> f64 {
    let mut state = seed;
    move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
}

/// An image of one phase (a square lattice of period 10 px under Gaussian
/// noise of half its amplitude) has no regions: the FFT baseline's principal
/// components are noise, and the run says so instead of presenting their
/// segmentation as phases.
#[test]
fn an_image_of_one_phase_has_no_regions() {
    let d = tempfile::tempdir().unwrap();
    let n = 192;
    // Box-Muller on a fixed generator.
    let mut uniform = uniforms(7);
    let tau = std::f64::consts::TAU;
    let pixels: Vec<f32> = (0..n * n)
        .map(|i| {
            let (y, x) = ((i / n) as f64, (i % n) as f64);
            let noise = (-2.0 * uniform().ln()).sqrt() * (tau * uniform()).cos();
            ((tau * x / 10.0).cos() + (tau * y / 10.0).cos() + 0.5 * noise) as f32
        })
        .collect();
    let img = d.path().join("one.npy");
    write_npy_f32(&img, n, n, &pixels);
    let out = d.path().join("fft");
    let o = phyvae(&["train", s(&img), "--out", s(&out), "--model", "fft"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = metrics(&out);
    assert_eq!(kinds(&m), vec!["no-regions"], "{}", m["result"]);
    assert_eq!(m["diagnosis"]["ok"], false);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("no map splits into regions"), "{stderr}");
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(report.contains("Not a result"));
}

/// A VAE on an image of one phase whose atoms differ in brightness at random
/// (Gaussian atoms of sigma 2 px on a square lattice of 10 px, amplitudes
/// uniform in [0.2, 1.8]): its content latents code each patch's brightness,
/// so they are active, but their maps are one population of noisy values.
/// The run finds no regions, trains again from scratch with the next seed and
/// half the rate, finds none again, and says so; `--retries 0` trains once.
#[test]
fn a_run_without_regions_is_trained_again_and_then_said_to_have_none() {
    let d = tempfile::tempdir().unwrap();
    let n = 224;
    let mut uniform = uniforms(4);
    let atoms: Vec<(f64, f64, f64)> = (0..=n / 10)
        .flat_map(|i| (0..=n / 10).map(move |j| ((10 * i) as f64, (10 * j) as f64)))
        .map(|(y, x)| (y, x, 0.2 + 1.6 * uniform()))
        .collect();
    let pixels: Vec<f32> = (0..n * n)
        .map(|p| {
            let (y, x) = ((p / n) as f64, (p % n) as f64);
            atoms
                .iter()
                .map(|(ay, ax, a)| a * (-((y - ay).powi(2) + (x - ax).powi(2)) / 8.0).exp())
                .sum::<f64>() as f32
        })
        .collect();
    let img = d.path().join("one.npy");
    write_npy_f32(&img, n, n, &pixels);
    let out = d.path().join("run");
    let (m, stderr, report) = train(&img, &out, &["--steps", "150"]);
    assert_eq!(kinds(&m), vec!["no-regions"], "{}", m["diagnosis"]);
    let attempts = m["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{}", m["attempts"]);
    assert_eq!(
        attempts[0]["diagnosis"]["findings"][0]["kind"],
        "no-regions"
    );
    assert!(
        stderr.contains("warning: no map splits into regions (seed 0, learning rate 0.005); training again from scratch with seed 1 and learning rate 0.0025"),
        "{stderr}"
    );
    assert!(
        report.contains("Thrown away: seed 0, learning rate 0.005: no map splits into regions")
    );
    assert!(report.contains("Not a result"));
    let once = d.path().join("once");
    let (m, _, _) = train(&img, &once, &["--steps", "150", "--retries", "0"]);
    assert_eq!(kinds(&m), vec!["no-regions"], "{}", m["diagnosis"]);
    assert!(m.get("attempts").is_none(), "{}", m["attempts"]);
}

/// A VAE stopped after 200 steps, with a narrow network, has not learned the
/// two phases of a 96 px image, yet nothing in its training looks wrong: its
/// latents vary and its maps split into regions. The classical baseline does
/// separate the phases, and the run says that the two disagree instead of
/// presenting its result as if checked (trained once: `--retries 0`).
#[test]
fn a_result_that_disagrees_with_the_baseline_gets_a_caution() {
    let d = tempfile::tempdir().unwrap();
    common::synth("two-phase", 96, 2, d.path());
    let img = d.path().join("image.npy");
    let truth = d.path().join("truth.npy");
    let out = d.path().join("a");
    let (m, stderr, report) = train(
        &img,
        &out,
        &[
            "--steps",
            "200",
            "--hidden",
            "32",
            "--retries",
            "0",
            "--truth",
            s(&truth),
        ],
    );
    assert!(m.get("attempts").is_none(), "{}", m["attempts"]);
    // The result is wrong (scored against the truth), and nothing failed.
    let ari = m["result"]["score"]["ari"].as_f64().unwrap();
    assert!(ari < 0.3, "the run learned the phases after all: ARI {ari}");
    assert!(kinds(&m).is_empty(), "{}", m["diagnosis"]);
    assert_eq!(m["diagnosis"]["ok"], true);
    // A VAE's automatic class count records the counts set aside for a
    // class without an interior (none or some of 3 and 4).
    let set_aside = m["result"]["classes_without_interior"].as_array().unwrap();
    assert!(set_aside.iter().all(|k| k == 3 || k == 4), "{set_aside:?}");
    // And those set aside because two classes meet along a gradient, never
    // a count also set aside for an interior.
    let gradual = m["result"]["classes_gradual"].as_array().unwrap();
    assert!(
        gradual
            .iter()
            .all(|k| (k == 3 || k == 4) && !set_aside.contains(k)),
        "{gradual:?}"
    );
    // A VAE's result says what its boundary refinement did: one interior
    // check per class, and no more cells moved than lie near a boundary.
    let br = &m["result"]["boundary_refinement"];
    let classes = m["result"]["classes"].as_u64().unwrap();
    assert_eq!(
        br["interior_accuracy"].as_array().unwrap().len() as u64,
        classes,
        "{br}"
    );
    let applied = br["applied"].as_bool().unwrap();
    assert_eq!(
        br["reason"].as_str().unwrap().starts_with("applied"),
        applied,
        "{br}"
    );
    let moved = br["moved"].as_u64().unwrap();
    assert!(moved <= br["band_cells"].as_u64().unwrap(), "{br}");
    assert!(applied || moved == 0, "{br}");
    assert!(report.contains("boundary cells"));
    // The baseline shows regions and disagrees with the result.
    let b = &m["result"]["baseline"];
    assert!(b["separability"].as_f64().unwrap() >= 0.72, "{b}");
    assert!(b["agreement"].as_f64().unwrap() < 0.5, "{b}");
    let cautions: Vec<&str> = m["diagnosis"]["cautions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(cautions, vec!["disagrees-with-baseline"]);
    assert!(
        stderr.contains("caution: the result disagrees with the classical baseline"),
        "{stderr}"
    );
    assert!(report.contains("Check this result"));
    assert!(report.contains("classical baseline"));
    assert!(!report.contains("Not a result"));
}

/// The trainer state (`train` settings, epochs, ...) inside a checkpoint:
/// the safetensors header (an 8-byte little-endian length, then JSON naming
/// each tensor's byte range) locates the `trainer.state_json` tensor, whose
/// bytes are JSON.
fn checkpoint_state(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap();
    let n = usize::try_from(u64::from_le_bytes(bytes[..8].try_into().unwrap())).unwrap();
    let header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let range = header["trainer.state_json"]["data_offsets"]
        .as_array()
        .unwrap();
    let at = |i: usize| 8 + n + usize::try_from(range[i].as_u64().unwrap()).unwrap();
    serde_json::from_slice(&bytes[at(0)..at(1)]).unwrap()
}

/// A short, narrow run (500 steps, width 32) on a 96 px two-phase image
/// whose first attempt (seed 0) finds the phases only in part: its result
/// agrees with the classical baseline, whose maps are clear (separability
/// 0.9 or more), at an adjusted Rand index between 0.5 and 0.85. With its
/// default retry the run trains again with the next seed and half the
/// learning rate, keeps the attempt whose result agrees more with the
/// baseline, says which it threw away, and leaves the kept attempt's
/// checkpoint.
#[test]
fn a_result_a_clear_baseline_agrees_with_in_part_trains_again_and_the_closer_attempt_is_kept() {
    let d = tempfile::tempdir().unwrap();
    common::synth("two-phase", 96, 2, d.path());
    let img = d.path().join("image.npy");
    let once = d.path().join("once");
    let short = ["--steps", "500", "--hidden", "32"];
    // The first attempt alone (--retries 0): it mostly agrees, not fully.
    let (m, stderr, _) = train(&img, &once, &[&short[..], &["--retries", "0"]].concat());
    let b = &m["result"]["baseline"];
    let first = b["agreement"].as_f64().unwrap();
    assert!(b["separability"].as_f64().unwrap() >= 0.9, "{b}");
    assert!((0.5..0.85).contains(&first), "{b}");
    assert!(m.get("attempts").is_none(), "{}", m["attempts"]);
    assert!(!stderr.contains("training again"), "{stderr}");
    // With the default retry.
    let out = d.path().join("a");
    let (m, stderr, report) = train(&img, &out, &short);
    assert!(
        stderr.contains("agrees with the classical baseline's segmentation at an adjusted Rand index of")
            && stderr.contains("training again from scratch with seed 1 and learning rate 0.0025, and keeping the attempt that agrees more"),
        "{stderr}"
    );
    let attempts = m["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{}", m["attempts"]);
    let thrown = &attempts[0];
    // Not thrown away for a failure: for agreeing less than the kept one.
    assert!(
        thrown["diagnosis"]["findings"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{thrown}"
    );
    let kept = m["result"]["baseline"]["agreement"].as_f64().unwrap();
    assert!(
        kept > thrown["agreement"].as_f64().unwrap(),
        "{kept} {thrown}"
    );
    // The kept attempt is one of the two trained: the first (whose agreement
    // the run alone measured), or the second, thrown away otherwise.
    let kept_seed = if thrown["seed"] == 0 {
        assert_eq!(thrown["lr"], 0.005);
        assert!((thrown["agreement"].as_f64().unwrap() - first).abs() < 1e-9);
        1
    } else {
        assert_eq!(
            (&thrown["seed"], &thrown["lr"]),
            (&1.into(), &0.0025.into())
        );
        assert!((kept - first).abs() < 1e-9, "{kept} {first}");
        0
    };
    assert!(
        report.contains("Thrown away: seed")
            && report.contains("agreed with the classical baseline at an adjusted Rand index of"),
        "the report does not name the thrown-away attempt"
    );
    // The checkpoint left is the kept attempt's, and none is held aside.
    let ckpt = out.join("checkpoint");
    let state = checkpoint_state(&ckpt.join("checkpoint.safetensors"));
    assert_eq!(state["train"]["seed"], kept_seed, "{}", state["train"]);
    assert!(!ckpt.join("held.safetensors").exists());
}
