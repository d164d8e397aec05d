//! End-to-end tests of `phyvae train` and `phyvae encode` on a small
//! synthetic image: every output is written, the run configuration reproduces
//! the run, an interrupted run resumes, a saved model encodes another image,
//! and bad settings give a clear error and exit code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{ok, phyvae, s};

use std::path::Path;

/// A 96 x 96 synthetic two-phase image and its truth map in `dir`.
fn synth(dir: &Path) {
    common::synth("two-phase", 96, 2, dir);
}

const SMALL: [&str; 10] = [
    "--window", "16", "--step", "8", "--hidden", "16", "--batch", "16", "--epochs", "2",
];

#[test]
fn train_writes_every_output_and_its_config_reproduces_the_run() {
    let d = tempfile::tempdir().unwrap();
    synth(d.path());
    let img = d.path().join("image.npy");
    let truth = d.path().join("truth.npy");
    let a = d.path().join("a");
    let mut args = vec!["train", s(&img), "--out", s(&a), "--truth", s(&truth)];
    args.extend(SMALL);
    args.extend(["--physics", "sl1", "--mode", "gradient"]);
    let m = ok(&args);
    assert_eq!(m["grid"], serde_json::json!([11, 11]));
    assert_eq!(m["epochs"], 2);
    for f in [
        "config.toml",
        "model.safetensors",
        "model.json",
        "latents.npy",
        "latents_sd.npy",
        "history.csv",
        "metrics.json",
        "manifold.npy",
        "manifold.png",
        "latent_hist.npy",
        "checkpoint/checkpoint.safetensors",
        "segmentation/z1/otsu.npy",
        "segmentation/dx/chanvese.npy",
    ] {
        assert!(a.join(f).is_file(), "{f} missing");
    }
    let hist = std::fs::read_to_string(a.join("history.csv")).unwrap();
    assert_eq!(hist.lines().count(), 3, "{hist}");
    let ari = &m["maps"]["z1"]["scores"]["otsu"]["ari"];
    assert!(ari.is_number(), "{m}");
    // The lattice of the image was measured and the patches registered to it.
    let cfg = std::fs::read_to_string(a.join("config.toml")).unwrap();
    let data = &cfg[cfg.find("[data]").unwrap()..cfg.find("[model]").unwrap()];
    assert!(data.contains("register = ["), "{cfg}");

    // The written configuration reproduces the run bit for bit.
    let b = d.path().join("b");
    ok(&[
        "train",
        s(&img),
        "--out",
        s(&b),
        "--config",
        s(&a.join("config.toml")),
    ]);
    for f in ["latents.npy", "model.safetensors", "config.toml"] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f} differs"
        );
    }

    // The saved model encodes an image on its own: same latents for the same image.
    let e = d.path().join("e");
    let j = ok(&["encode", s(&img), "--model", s(&a), "--out", s(&e)]);
    assert_eq!(j["grid"], serde_json::json!([11, 11]));
    assert_eq!(
        std::fs::read(a.join("latents.npy")).unwrap(),
        std::fs::read(e.join("latents.npy")).unwrap()
    );

    // --no-register keeps the paper's grid, and the patches differ.
    let c = d.path().join("c");
    let mut args = vec!["train", s(&img), "--out", s(&c), "--no-register"];
    args.extend(SMALL);
    args.extend(["--physics", "sl1", "--mode", "gradient"]);
    ok(&args);
    let cfg = std::fs::read_to_string(c.join("config.toml")).unwrap();
    let data = &cfg[cfg.find("[data]").unwrap()..cfg.find("[model]").unwrap()];
    assert!(!data.contains("register"), "{cfg}");
    assert_ne!(
        std::fs::read(a.join("latents.npy")).unwrap(),
        std::fs::read(c.join("latents.npy")).unwrap()
    );
}

/// On an image whose peaks lie on one lattice of two directions the scan
/// drift is removed by default: config.toml records it, metrics.json gives
/// the drift removed, and the saved model's `encode` removes it too;
/// `--no-dedrift` cuts the image as recorded.
#[test]
fn scan_drift_is_removed_on_one_lattice_and_can_be_left() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("img");
    ok(&[
        "synth",
        "suite",
        "--family",
        "motif",
        "--seed",
        "3",
        "--size",
        "96",
        "--out",
        s(&dir),
    ]);
    let img = dir.join("image.npy");
    let run = |name: &str, extra: &[&str]| {
        let out = d.path().join(name);
        let mut args = vec!["train", s(&img), "--out", s(&out)];
        args.extend(SMALL);
        args.extend(extra);
        let m = ok(&args);
        let cfg: toml::Value =
            toml::from_str(&std::fs::read_to_string(out.join("config.toml")).unwrap()).unwrap();
        (out, m, cfg)
    };
    let (a, m, cfg) = run("a", &[]);
    assert_eq!(
        cfg["data"]["register"].as_array().unwrap().len(),
        2,
        "{cfg}"
    );
    assert_eq!(cfg["data"]["dedrift"].as_bool(), Some(true), "{cfg}");
    let drift = &m["scan_drift"];
    let (rms, max) = (
        drift["rms_px"].as_f64().unwrap(),
        drift["max_px"].as_f64().unwrap(),
    );
    assert!(rms.is_finite() && rms <= max, "{drift}");
    let e = d.path().join("e");
    let j = ok(&["encode", s(&img), "--model", s(&a), "--out", s(&e)]);
    assert_eq!(j["scan_drift"], m["scan_drift"]);
    assert_eq!(
        std::fs::read(a.join("latents.npy")).unwrap(),
        std::fs::read(e.join("latents.npy")).unwrap()
    );

    let (_, m, cfg) = run("b", &["--no-dedrift"]);
    assert!(cfg["data"].get("dedrift").is_none(), "{cfg}");
    assert!(m.get("scan_drift").is_none(), "{m}");
    assert_eq!(
        cfg["data"]["register"].as_array().unwrap().len(),
        2,
        "{cfg}"
    );
}

/// A lattice under a tilt that dwarfs it (a topograph as recorded) is
/// levelled by a plane before the patches are cut, and says why; a flat one
/// is not; `--level` wins.
#[test]
fn a_tilted_image_is_levelled_by_a_plane_and_the_flag_wins() {
    let d = tempfile::tempdir().unwrap();
    let lattice = |r: usize, c: usize| {
        let tau = std::f32::consts::TAU;
        (tau * r as f32 / 8.0).cos() * (tau * c as f32 / 8.0).cos()
    };
    // The ramp spans 40 times the lattice's amplitude of 1: the plane
    // explains almost all of the variance.
    let tilted = ndarray::Array2::from_shape_fn((96, 96), |(r, c)| {
        lattice(r, c) + 40.0 * (r + c) as f32 / 190.0
    });
    let flat = ndarray::Array2::from_shape_fn((96, 96), |(r, c)| lattice(r, c));
    let level = |pixels: &ndarray::Array2<f32>, name: &str, extra: &[&str]| {
        let img = d.path().join(format!("{name}.npy"));
        phyvae_data::io::write_npy_f32(&img, pixels.view()).unwrap();
        let out = d.path().join(name);
        let mut args = vec!["train", s(&img), "--out", s(&out)];
        args.extend(extra);
        ok(&args);
        let cfg: toml::Value =
            toml::from_str(&std::fs::read_to_string(out.join("config.toml")).unwrap()).unwrap();
        let report = std::fs::read_to_string(out.join("report.html")).unwrap();
        (cfg["data"]["level"].as_str().unwrap().to_owned(), report)
    };
    let (vae, report) = level(&tilted, "vae", &SMALL);
    assert_eq!(vae, "plane");
    assert!(
        report.contains("a least-squares plane explains"),
        "the report gives no reason for the levelling"
    );
    assert_eq!(level(&tilted, "fft", &["--model", "fft"]).0, "plane");
    assert_eq!(level(&flat, "flat", &["--model", "fft"]).0, "none");
    let given = [&["--model", "fft", "--level", "none"][..]].concat();
    assert_eq!(level(&tilted, "given", &given).0, "none");
}

/// `--coords lattice` gives the decoder Fourier features at the measured
/// lattice: config.toml records their frequencies, reproduces the run, and
/// the saved model encodes the image again.
#[test]
fn lattice_coordinates_are_recorded_and_reload() {
    let d = tempfile::tempdir().unwrap();
    synth(d.path());
    let img = d.path().join("image.npy");
    let a = d.path().join("a");
    let mut args = vec!["train", s(&img), "--out", s(&a), "--coords", "lattice"];
    args.extend(SMALL);
    ok(&args);
    let cfg: toml::Value =
        toml::from_str(&std::fs::read_to_string(a.join("config.toml")).unwrap()).unwrap();
    let f = cfg["model"]["coord_frequencies"].as_array().unwrap();
    assert!((1..=4).contains(&f.len()), "{f:?}");
    // Window 16: a frequency of (16 - 1) / 2 |k| cycles per unit, |k| of a
    // lattice the image shows (periods of 2 to 16 px).
    for v in f {
        let v = v.as_array().unwrap();
        let norm = v[0].as_float().unwrap().hypot(v[1].as_float().unwrap());
        assert!((7.5 / 16.0..=7.5 / 2.0).contains(&norm), "{v:?}");
    }
    let b = d.path().join("b");
    ok(&[
        "train",
        s(&img),
        "--out",
        s(&b),
        "--config",
        s(&a.join("config.toml")),
    ]);
    let e = d.path().join("e");
    ok(&["encode", s(&img), "--model", s(&a), "--out", s(&e)]);
    for dir in [&b, &e] {
        assert_eq!(
            std::fs::read(a.join("latents.npy")).unwrap(),
            std::fs::read(dir.join("latents.npy")).unwrap(),
            "{}",
            dir.display()
        );
    }
    // The raw decoder is another model: other latents.
    let r = d.path().join("r");
    let mut args = vec!["train", s(&img), "--out", s(&r), "--coords", "raw"];
    args.extend(SMALL);
    ok(&args);
    assert_ne!(
        std::fs::read(a.join("latents.npy")).unwrap(),
        std::fs::read(r.join("latents.npy")).unwrap()
    );
}

#[test]
fn resume_continues_an_interrupted_run_to_the_same_result() {
    let d = tempfile::tempdir().unwrap();
    synth(d.path());
    let img = d.path().join("image.npy");
    let full = d.path().join("full");
    let mut args = vec!["train", s(&img), "--out", s(&full)];
    args.extend(SMALL);
    ok(&args);
    // The same run stopped after epoch 1: its config says 2 epochs, its
    // checkpoint holds 1; --resume finishes it.
    let part = d.path().join("part");
    let mut args = vec!["train", s(&img), "--out", s(&part)];
    args.extend(SMALL);
    args.pop();
    args.push("1");
    ok(&args);
    let cfg = std::fs::read_to_string(part.join("config.toml")).unwrap();
    std::fs::write(
        part.join("config.toml"),
        cfg.replace("epochs = 1", "epochs = 2"),
    )
    .unwrap();
    patch_checkpoint_epochs(&part.join("checkpoint/checkpoint.safetensors"));
    // Temporary files a killed writer left are removed on resume.
    let stale = [
        part.join(".latents.npy.4242.0.tmp"),
        part.join("checkpoint/.checkpoint.safetensors.4242.1.tmp"),
    ];
    for f in &stale {
        std::fs::write(f, b"half").unwrap();
    }
    ok(&["train", s(&img), "--out", s(&part), "--resume"]);
    for f in &stale {
        assert!(!f.exists(), "{} left", f.display());
    }
    assert_eq!(
        std::fs::read(full.join("latents.npy")).unwrap(),
        std::fs::read(part.join("latents.npy")).unwrap()
    );
}

/// `--resume` continues the recorded run only: another image, or a flag that
/// contradicts its settings, is refused with what differs, and the run is
/// left as it was.
#[test]
fn resume_refuses_another_image_and_contradicting_flags() {
    let d = tempfile::tempdir().unwrap();
    synth(d.path());
    let img = d.path().join("image.npy");
    let run = d.path().join("run");
    let mut args = vec!["train", s(&img), "--out", s(&run)];
    args.extend(SMALL);
    ok(&args);
    let config = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(config.contains("fingerprint = \"fnv1a64:"), "{config}");
    let latents = std::fs::read(run.join("latents.npy")).unwrap();
    let refused = |extra: &[&str], text: &str| {
        let mut args = vec!["train", s(&img), "--out", s(&run), "--resume"];
        args.extend(extra);
        let o = phyvae(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_ne!(o.status.code(), Some(0), "{extra:?}: {err}");
        assert!(err.contains(text), "{extra:?}: {err}");
    };
    refused(&["--seed", "99"], "train.seed (0 -> 99)");
    refused(&["--window", "24"], "data.window (16 -> 24)");
    // The same values as recorded are no contradiction.
    ok(&[
        "train",
        s(&img),
        "--out",
        s(&run),
        "--resume",
        "--window",
        "16",
    ]);
    // Another image of the same size.
    let other = d.path().join("other");
    common::synth("two-phase", 96, 3, &other);
    let o = phyvae(&[
        "train",
        s(&other.join("image.npy")),
        "--out",
        s(&run),
        "--resume",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_ne!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("not the image this run was trained on"),
        "{err}"
    );
    assert_eq!(std::fs::read(run.join("latents.npy")).unwrap(), latents);
}

/// `--resume` takes more epochs and a lower rate, and records them: the lr
/// column of history.csv, config.toml (which then reproduces the resumed run
/// bit for bit), the commands in metrics.json and the report. A higher rate
/// and fewer epochs than done are refused, and the run is left as it was.
#[test]
fn resume_takes_more_epochs_and_a_lower_rate_and_records_them() {
    let d = tempfile::tempdir().unwrap();
    synth(d.path());
    let img = d.path().join("image.npy");
    let a = d.path().join("a");
    let mut args = vec!["train", s(&img), "--out", s(&a)];
    args.extend(SMALL);
    // One attempt: a collapsed one would be trained again at half the rate.
    args.extend(["--lr", "0.004", "--retries", "0"]);
    ok(&args);
    let latents = std::fs::read(a.join("latents.npy")).unwrap();
    let refused = |extra: &[&str], text: &str| {
        let mut args = vec!["train", s(&img), "--out", s(&a), "--resume"];
        args.extend(extra);
        let o = phyvae(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(4), "{extra:?}: {err}");
        assert!(err.contains(text), "{extra:?}: {err}");
        assert_eq!(std::fs::read(a.join("latents.npy")).unwrap(), latents);
        let cfg = std::fs::read_to_string(a.join("config.toml")).unwrap();
        assert!(
            !cfg.contains("lr_changes") && cfg.contains("epochs = 2"),
            "{cfg}"
        );
    };
    refused(&["--lr", "0.01"], "only a lower learning rate");
    refused(&["--lr", "0.01"], "current rate is 0.004");
    refused(&["--epochs", "1"], "1 (2 already done)");

    // Two more epochs at half the rate.
    let m = ok(&[
        "train",
        s(&img),
        "--out",
        s(&a),
        "--resume",
        "--epochs",
        "4",
        "--lr",
        "0.002",
    ]);
    assert_eq!(m["epochs"], 4);
    let hist = std::fs::read_to_string(a.join("history.csv")).unwrap();
    let lines: Vec<&str> = hist.lines().collect();
    assert!(lines[0].starts_with("epoch,beta,lr,"), "{hist}");
    let lr: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split(',').nth(2).unwrap())
        .collect();
    assert_eq!(lr, ["0.004", "0.004", "0.002", "0.002"], "{hist}");
    let cfg: toml::Table = std::fs::read_to_string(a.join("config.toml"))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(cfg["train"]["epochs"].as_integer(), Some(4));
    assert_eq!(cfg["train"]["lr"].as_float(), Some(0.004));
    let change = &cfg["train"]["lr_changes"].as_array().unwrap()[..];
    assert_eq!(change.len(), 1, "{change:?}");
    assert_eq!(change[0]["epoch"].as_integer(), Some(3));
    assert_eq!(change[0]["lr"].as_float(), Some(0.002));
    let commands = m["commands"].as_array().unwrap();
    assert_eq!(commands.len(), 2, "{m}");
    assert!(!commands[0].to_string().contains("--resume"), "{m}");
    assert!(commands[1].to_string().contains("\"--resume\""), "{m}");
    assert!(commands[1].to_string().contains("\"0.002\""), "{m}");
    let report = std::fs::read_to_string(a.join("report.html")).unwrap();
    assert!(report.contains("Commands that made this run"), "report");
    assert!(report.contains("--resume --epochs 4 --lr 0.002"), "report");

    // Its config.toml trains the same run in one go.
    let b = d.path().join("b");
    ok(&[
        "train",
        s(&img),
        "--out",
        s(&b),
        "--config",
        s(&a.join("config.toml")),
    ]);
    for f in ["latents.npy", "model.safetensors"] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f} differs"
        );
    }

    // --steps on resume: the whole epochs that cover them (11 x 11 patches
    // in batches of 16: 8 steps an epoch, so 40 steps are 5 epochs).
    let m = ok(&[
        "train",
        s(&img),
        "--out",
        s(&a),
        "--resume",
        "--steps",
        "40",
    ]);
    assert_eq!(m["epochs"], 5);
    assert_eq!(m["commands"].as_array().unwrap().len(), 3, "{m}");
    let hist = std::fs::read_to_string(a.join("history.csv")).unwrap();
    assert_eq!(
        hist.lines().last().unwrap().split(',').nth(2),
        Some("0.002")
    );
}

/// The work of a step is split by patch and by fixed blocks, never by
/// thread: a run on one thread and the same run on two give the same bits.
/// (Window 20: 400 pixel rows per patch, two of the decoder's row blocks.)
#[test]
fn one_thread_and_two_threads_train_to_the_same_bits() {
    let d = tempfile::tempdir().unwrap();
    synth(d.path());
    let img = d.path().join("image.npy");
    let run = |threads: &str| {
        let out = d.path().join(format!("t{threads}"));
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_phyvae"))
            .args(["--quiet", "train", s(&img), "--out", s(&out)])
            .args(["--window", "20", "--step", "8", "--hidden", "16"])
            .args(["--batch", "16", "--epochs", "2", "--physics", "sl2"])
            .args(["--mode", "gradient"])
            .env("RAYON_NUM_THREADS", threads)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "train with {threads} thread(s) failed");
        out
    };
    let (one, two) = (run("1"), run("2"));
    for f in ["latents.npy", "model.safetensors"] {
        assert_eq!(
            std::fs::read(one.join(f)).unwrap(),
            std::fs::read(two.join(f)).unwrap(),
            "{f} differs between 1 and 2 threads"
        );
    }
}

/// Rewrites `"epochs":1` to `"epochs":2` in the trainer state stored in a
/// checkpoint (same length, so the safetensors layout is unchanged): the
/// state of a 2-epoch run killed after its first epoch.
fn patch_checkpoint_epochs(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let needle = b"\"epochs\":1,";
    let pos = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("trainer state in checkpoint");
    bytes[pos + needle.len() - 2] = b'2';
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn bad_settings_are_clear_errors() {
    let d = tempfile::tempdir().unwrap();
    synth(d.path());
    let img = d.path().join("image.npy");
    let out = d.path().join("o");
    let run = |extra: &[&str]| {
        let mut args = vec!["train", s(&img), "--out", s(&out)];
        args.extend(extra);
        phyvae(&args)
    };
    for (extra, code, text) in [
        (
            &["--physics", "sl1", "--batch", "50"][..],
            4,
            "perfect square",
        ),
        (&["--weight", "0.7", "--physics", "sl2"][..], 4, "[0, 0.5]"),
        (&["--model", "wobble"][..], 2, "invalid value 'wobble'"),
        (&["--window", "200"][..], 4, "window"),
        (&["--lr", "0"][..], 4, "lr"),
        (&["--seed", "9223372036854775808"][..], 4, "seed"),
        (&["--n-latent", "100000"][..], 4, "n_latent"),
        (&["--hidden", "1000000"][..], 4, "hidden"),
        (&["--shift-prior", "2"][..], 4, "translation_prior"),
        (
            &["--model", "vanilla", "--coords", "lattice"][..],
            4,
            "coord_frequencies",
        ),
        (
            &["--model", "fft", "--coords", "lattice"][..],
            4,
            "no decoder",
        ),
        (
            &["--device", "gpu"][..],
            1,
            "expected auto, cpu, cuda or cuda:N",
        ),
        (
            &["--physics", "sl1", "--epochs", "2", "--physics-warmup", "2"][..],
            4,
            "warm-up",
        ),
        (
            &["--physics", "sl1", "--range-floor", "0"][..],
            4,
            "range_floor",
        ),
        (
            &["--physics", "sl1", "--multiply", "--add-lambda", "1"][..],
            2,
            "cannot be used with",
        ),
    ] {
        let o = run(extra);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(code), "{extra:?}: {err}");
        assert!(err.contains(text), "{extra:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        // A rejected run leaves no folder behind.
        assert!(!out.exists(), "{extra:?} left {}", out.display());
    }
    let o = phyvae(&[
        "train",
        s(&img),
        "--out",
        s(&d.path().join("r")),
        "--resume",
    ]);
    assert_ne!(o.status.code(), Some(0));
    assert!(!d.path().join("r").exists());
    let o = phyvae(&["encode", s(&img), "--model", s(d.path()), "--out", s(&out)]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A batch larger than the image has patches trains on all of them at once
/// (one batch per epoch), instead of allocating the batch asked for.
#[test]
fn a_batch_larger_than_the_patch_count_is_one_batch_of_every_patch() {
    let d = tempfile::tempdir().unwrap();
    synth(d.path());
    let img = d.path().join("image.npy");
    let out = d.path().join("o");
    let m = ok(&[
        "train",
        s(&img),
        "--out",
        s(&out),
        "--window",
        "16",
        "--step",
        "8",
        "--hidden",
        "16",
        "--epochs",
        "2",
        "--batch",
        "100000000",
    ]);
    // 11 x 11 patches: each epoch is one optimiser step.
    assert_eq!(m["patches"], 121);
    assert_eq!(m["steps"], 2, "{m}");
}

/// Ctrl-C stops training after a batch with exit code 130, keeps the last
/// whole epoch's checkpoint and says how to resume; the resumed run ends
/// with the same bits as a run never interrupted.
#[cfg(unix)]
#[test]
fn ctrl_c_keeps_the_checkpoint_and_the_run_resumes_to_the_same_bits() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let d = tempfile::tempdir().unwrap();
    synth(d.path());
    let img = d.path().join("image.npy");
    let long = [
        "--window", "16", "--step", "8", "--hidden", "16", "--batch", "16", "--epochs", "300",
    ];
    let run = d.path().join("run");
    let child = Command::new(env!("CARGO_BIN_EXE_phyvae"))
        .args(["-q", "train", s(&img), "--out", s(&run)])
        .args(long)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ckpt = run.join("checkpoint/checkpoint.safetensors");
    let start = Instant::now();
    while !ckpt.is_file() && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(ckpt.is_file(), "no checkpoint within 60 s");
    // The shell's own `kill`: no procps needed.
    let killed = Command::new("sh")
        .args(["-c", &format!("kill -INT {}", child.id())])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("--resume"), "{err}");
    assert!(
        !run.join("latents.npy").exists(),
        "an interrupted run draws no maps"
    );
    ok(&["train", s(&img), "--out", s(&run), "--resume"]);
    let full = d.path().join("full");
    let mut args = vec!["train", s(&img), "--out", s(&full)];
    args.extend(long);
    ok(&args);
    assert_eq!(
        std::fs::read(full.join("latents.npy")).unwrap(),
        std::fs::read(run.join("latents.npy")).unwrap()
    );
}

/// Two processes never write into one run folder: while one holds it,
/// another `train` into it fails (exit code 5) naming the holder.
#[test]
fn a_run_folder_in_use_is_refused() {
    let d = tempfile::tempdir().unwrap();
    synth(d.path());
    let img = d.path().join("image.npy");
    let out = d.path().join("run");
    std::fs::create_dir(&out).unwrap();
    let held = phyvae_run::files::RunDir::new(&out).lock().unwrap();
    let mut args = vec!["train", s(&img), "--out", s(&out)];
    args.extend(SMALL);
    let o = phyvae(&args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(5), "{err}");
    assert!(
        err.contains("in use by another phyvae process (pid"),
        "{err}"
    );
    assert!(!out.join("config.toml").exists());
    drop(held);
    ok(&args);
}

/// A folder that holds a run is not trained into again by accident: without
/// `--resume` or `--overwrite` the command is refused and the run is left as
/// it was; `--overwrite` replaces the run's files and nothing else, so no
/// file of the old run survives into the new one.
#[test]
fn a_folder_holding_a_run_needs_overwrite_and_keeps_no_stale_file() {
    let d = tempfile::tempdir().unwrap();
    synth(d.path());
    let img = d.path().join("image.npy");
    let out = d.path().join("run");
    let mut args = vec!["train", s(&img), "--out", s(&out), "--snapshot-every", "1"];
    args.extend(SMALL);
    ok(&args);
    assert!(out.join("snapshots/latents_epoch_0002.npy").is_file());
    std::fs::write(out.join("notes.txt"), b"mine").unwrap();
    let config = std::fs::read(out.join("config.toml")).unwrap();
    let mut again = vec!["train", s(&img), "--out", s(&out)];
    again.extend(SMALL);
    again.pop();
    again.push("1");
    let o = phyvae(&again);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(err.contains("already holds a run"), "{err}");
    assert_eq!(std::fs::read(out.join("config.toml")).unwrap(), config);
    again.push("--overwrite");
    ok(&again);
    assert!(!out.join("snapshots/latents_epoch_0002.npy").exists());
    assert!(out.join("notes.txt").is_file());
    let hist = std::fs::read_to_string(out.join("history.csv")).unwrap();
    assert_eq!(hist.lines().count(), 2, "{hist}");
}

/// Settings whose buffers no machine holds are refused before any folder is
/// created: 45 x 45 = 2025 patches of 256 x 256 px (the batch of 4000 clamped
/// to them) at hidden width 4096 need 2025 x 3 x 65536 x 4096 floats of
/// decoder activations alone, 6.5 TB.
#[test]
fn settings_needing_more_memory_than_available_are_refused() {
    let d = tempfile::tempdir().unwrap();
    common::synth("two-phase", 300, 2, d.path());
    let img = d.path().join("image.npy");
    let out = d.path().join("r");
    let o = phyvae(&[
        "train",
        s(&img),
        "--out",
        s(&out),
        "--window",
        "256",
        "--step",
        "1",
        "--batch",
        "4000",
        "--hidden",
        "4096",
        "--epochs",
        "1",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(err.contains("need an estimated"), "{err}");
    assert!(err.contains(" TB of memory"), "{err}");
    assert!(err.contains("available"), "{err}");
    assert!(
        err.contains("batch 2025 patches")
            && err.contains("window 256 px")
            && err.contains("hidden 4096"),
        "{err}"
    );
    assert!(!out.exists(), "a refused run created {}", out.display());
}

/// A write that fails for lack of room exits 5 and names the file. The shell
/// limits the size of any file the process writes (`ulimit -f`, in 512-byte
/// blocks) and ignores SIGXFSZ, which the binary inherits: a write past the
/// limit then fails with EFBIG, as on a full disk. 64 blocks (32 KiB) hold
/// `config.toml` but not the first checkpoint (about 1 MB: the weights of a
/// window-16, hidden-128 model with its Adam state).
#[test]
fn a_write_that_fails_for_lack_of_room_exits_5_naming_the_file() {
    let d = tempfile::tempdir().unwrap();
    synth(d.path());
    let img = d.path().join("image.npy");
    let out = d.path().join("r");
    let o = std::process::Command::new("sh")
        .args(["-c", r#"trap "" XFSZ; ulimit -f 64; exec "$0" "$@""#])
        .arg(env!("CARGO_BIN_EXE_phyvae"))
        .args([
            "train",
            s(&img),
            "--out",
            s(&out),
            "--window",
            "16",
            "--step",
            "8",
        ])
        .args(["--batch", "16", "--epochs", "1", "--hidden", "128"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(5), "{err}");
    assert!(err.contains("checkpoint.safetensors"), "{err}");
}

/// Trains on `pixels` with a 16 px window every 4 px and checks that the run
/// ends with its metrics, its result and its report, and that every map holds
/// each multi-Otsu segmentation or says why it was skipped.
fn trains_to_the_end(pixels: ndarray::Array2<f32>, what: &str) {
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("image.npy");
    phyvae_data::io::write_npy_f32(&img, pixels.view()).unwrap();
    let out = d.path().join("run");
    let m = ok(&[
        "train",
        s(&img),
        "--out",
        s(&out),
        "--window",
        "16",
        "--step",
        "4",
        "--hidden",
        "16",
        "--epochs",
        "2",
    ]);
    assert!(out.join("report.html").is_file(), "{what}: no report");
    assert!(m["result"].is_object(), "{what}: no result entry");
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    let active = |name: &str| {
        m["diagnosis"]["latents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["name"] == name && l["active"] == true)
    };
    let mut skipped = 0;
    for (name, entry) in m["maps"].as_object().unwrap() {
        for k in ["multiotsu3", "multiotsu4"] {
            let file = out.join("segmentation").join(name).join(format!("{k}.npy"));
            let why = entry["skipped"][k].as_str();
            assert!(
                file.is_file() != why.is_some(),
                "{what}: {name}/{k}: file {} and reason {why:?}",
                file.is_file()
            );
            if let Some(why) = why {
                assert!(why.contains("distinct histogram levels"), "{why}");
                skipped += 1;
                // The report segments active content maps only, and says
                // when one of their segmentations was skipped.
                if name.starts_with('z') && active(name) {
                    assert!(report.contains(&format!("of {name}: skipped (")), "{what}");
                }
            }
        }
    }
    assert!(skipped > 0, "{what}: nothing was skipped: {}", m["maps"]);
}

#[test]
fn a_grid_of_four_patches_ends_with_metrics_and_a_report() {
    // A 20 x 20 image, 16 px windows every 4 px: a 2 x 2 grid, so each
    // latent map has at most four distinct values, too few for some
    // multi-Otsu class counts.
    let pixels =
        ndarray::Array2::from_shape_fn((20, 20), |(r, c)| ((r * 7 + c * 13) % 17) as f32 / 17.0);
    trains_to_the_end(pixels, "2 x 2 grid");
}

#[test]
fn a_nearly_uniform_image_ends_with_metrics_and_a_report() {
    // 64 x 64 px of 1.0 but one pixel 1e-6 higher: after scaling, one patch
    // in many differs, so the maps hold very few distinct levels.
    let mut pixels = ndarray::Array2::from_elem((64, 64), 1.0_f32);
    pixels[[3, 3]] = 1.0 + 1e-6;
    trains_to_the_end(pixels, "nearly uniform image");
}
