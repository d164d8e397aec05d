//! End-to-end tests of the HTML report: a short `phyvae train` on a small
//! synthetic image writes `report.html` with every section, every embedded
//! image decodes to the size its tag declares and is also written to
//! `figures/`; `phyvae report A B` puts two runs side by side; a folder that
//! is not a run is a clear error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{ok, phyvae, s};

use std::path::Path;

use base64::Engine as _;

const SMALL: [&str; 12] = [
    "--window",
    "16",
    "--step",
    "8",
    "--hidden",
    "16",
    "--batch",
    "16",
    "--epochs",
    "3",
    "--shift-prior",
    "0.6",
];

/// Trains a small run in `dir/name` on the synthetic image of `dir`.
fn train(dir: &Path, name: &str, extra: &[&str]) -> serde_json::Value {
    let out = dir.join(name);
    let img = dir.join("image.npy");
    let truth = dir.join("truth.npy");
    let mut args = vec![
        "train",
        s(&img),
        "--out",
        s(&out),
        "--truth",
        s(&truth),
        "-q",
    ];
    args.extend(SMALL);
    args.extend(extra);
    ok(&args)
}

/// An embedded image: its declared size and its PNG bytes.
struct Embedded {
    width: u32,
    height: u32,
    png: Vec<u8>,
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let key = format!("{name}=\"");
    let start = tag.find(&key)? + key.len();
    let end = tag[start..].find('"')? + start;
    Some(tag[start..end].to_owned())
}

fn images(html: &str) -> Vec<Embedded> {
    html.split("<img ")
        .skip(1)
        .map(|rest| {
            let tag = &rest[..rest.find('>').unwrap()];
            let src = attr(tag, "src").unwrap();
            let b64 = src
                .strip_prefix("data:image/png;base64,")
                .expect("a PNG data URI");
            Embedded {
                width: attr(tag, "width").unwrap().parse().unwrap(),
                height: attr(tag, "height").unwrap().parse().unwrap(),
                png: base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap(),
            }
        })
        .collect()
}

fn png_size(bytes: &[u8]) -> (u32, u32) {
    let reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .unwrap();
    let info = reader.info();
    (info.width, info.height)
}

#[test]
fn train_writes_a_report_with_every_section_and_decodable_images() {
    let d = tempfile::tempdir().unwrap();
    common::synth("two-phase", 96, 2, d.path());
    // A sidecar calibration: the report states the pixel size and draws axes in nm.
    std::fs::write(d.path().join("image.json"), r#"{"pixel_size_nm": 0.02}"#).unwrap();
    let m = train(d.path(), "a", &[]);
    assert_eq!(m["pixel_size"]["unit"], "nm");
    let run = d.path().join("a");
    let report = run.join("report.html");
    assert_eq!(m["report"].as_str(), Some(s(&report)));
    let html = std::fs::read_to_string(&report).unwrap();
    for id in [
        "diagnosis",
        "result",
        "run",
        "input",
        "latents",
        "segmentation",
        "manifold",
        "losses",
        "evolution",
        "scores",
    ] {
        assert!(
            html.contains(&format!("<section id=\"{id}\">")),
            "section {id} missing"
        );
    }
    // Self-contained: no external resource, no script.
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("<script"));
    let imgs = images(&html);
    // Content maps that carry information are segmented; the others are not.
    let active = m["diagnosis"]["latents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["content"] == true && l["active"] == true)
        .count();
    // The result: its map, labels and overlay, when the run names one.
    let result = if m["result"]["map"].is_string() { 3 } else { 0 };
    // 2 input + 4 latent maps + active content maps x (denoised + 4 x (own +
    // overlay)) + manifold + density + loss curves + 2 evolution strips + truth
    // vs best + the result.
    assert_eq!(imgs.len(), 2 + 4 + active * 9 + 2 + 1 + 2 + 1 + result);
    for im in &imgs {
        assert!(im.width > 0 && im.height > 0);
        assert_eq!(png_size(&im.png), (im.width, im.height));
    }
    // Every figure is also its own PNG, byte for byte.
    let mut on_disk = 0;
    for e in std::fs::read_dir(run.join("figures")).unwrap() {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        assert!(imgs.iter().any(|im| im.png == bytes));
        on_disk += 1;
    }
    assert_eq!(on_disk, imgs.len());
    // The facts of the run and the scores are in the page.
    assert!(
        html.contains("11 x 11 patches (121 in all), window 16 px, step 8 px"),
        "grid facts missing"
    );
    assert!(
        html.contains("<th>pixel size</th><td>0.02 x 0.02 nm</td>"),
        "pixel size missing"
    );
    assert!(html.contains("<th>ARI</th>"));
    assert!(html.contains("--config"));

    // `phyvae report` alone rewrites the same page from the folder.
    let again = d.path().join("again.html");
    ok(&["report", s(&run), "--out", s(&again), "-q"]);
    assert_eq!(
        images(&std::fs::read_to_string(&again).unwrap()).len(),
        imgs.len()
    );
}

#[test]
fn report_puts_two_runs_side_by_side() {
    let d = tempfile::tempdir().unwrap();
    common::synth("two-phase", 80, 3, d.path());
    train(d.path(), "shvae", &[]);
    train(
        d.path(),
        "phyvae-sl1",
        &[
            "--physics",
            "sl1",
            "--mode",
            "gradient",
            "--physics-warmup",
            "1",
        ],
    );
    let out = d.path().join("cmp.html");
    let j = ok(&[
        "report",
        s(&d.path().join("shvae")),
        s(&d.path().join("phyvae-sl1")),
        "--out",
        s(&out),
        "-q",
    ]);
    assert_eq!(j["report"].as_str(), Some(s(&out)));
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.contains("<th>shvae</th><th>phyvae-sl1</th>"));
    // Each latent-map row holds one figure per run.
    let latents = &html[html.find("<section id=\"latents\">").unwrap()..];
    let latents = &latents[..latents.find("</section>").unwrap()];
    assert_eq!(latents.matches("id=\"fig-latent_z1\"").count(), 2);
    assert_eq!(
        latents.matches("<tr>").count(),
        1 + 4,
        "header + dx, dy, z1, z2"
    );
    // The physics run shows its Psi panel caption, the sh-VAE run says Psi was 0.
    assert!(html.contains("below, the physics term Psi"));
    assert!(html.contains("Psi was 0 throughout"));
    // Each run's own page states its physics setting; without a physics term
    // the unused mode and weight are not listed.
    let page = |run: &str| std::fs::read_to_string(d.path().join(run).join("report.html")).unwrap();
    assert!(page("shvae").contains("<th>physics loss</th><td>none (ELBO only)</td>"));
    assert!(page("phyvae-sl1").contains("<th>physics loss</th><td>sl1, mode gradient, weight w"));
}

#[test]
fn a_folder_that_is_not_a_run_is_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let out = phyvae(&["report", s(d.path())]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("metrics.json"), "{err}");
}
