//! Fault injection: `phyvae train` killed at points drawn from a seed (inside
//! checkpoint writes, between the run folder's files, during training,
//! encoding and the report), then resumed, ends with the same outputs as a
//! run never killed, and with no stray file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::s;
use serde_json::Value;

/// The seed the kill points are drawn from.
const SEED: u64 = 12;
/// Kill points drawn uniformly from all the points of a run.
const UNIFORM: usize = 20;
/// The run folder's name, relative to each run's working folder, so that
/// every path a run records is the same in all of them.
const RUN: &str = "run";

/// One fault point of the reference run: its number, label and file.
#[derive(Debug, Clone)]
struct Point {
    n: u64,
    label: String,
    path: String,
}

/// `phyvae -q train IMAGE --out run ...` in `cwd`, with `env` set and the
/// fault variables otherwise unset. It runs through `sh`, which sets the
/// core-file limit to 0 and then becomes phyvae (`exec`), so an abort
/// leaves no core dump behind and its signal reaches the test unchanged.
fn train(cwd: &Path, img: &Path, truth: &Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "ulimit -c 0; exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_phyvae"));
    cmd.current_dir(cwd)
        .args(["-q", "train", s(img), "--out", RUN, "--truth", s(truth)])
        .args([
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
            "--snapshot-every",
            "2",
            // A resumed run finishes the attempt in its checkpoint and is not
            // retried, so the comparison holds for one attempt.
            "--retries",
            "0",
        ])
        .args(extra)
        .env_remove("PHYVAE_FAULT_AT")
        .env_remove("PHYVAE_FAULT_TRACE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run phyvae")
}

/// The fault points a traced run printed on stderr.
fn trace(stderr: &[u8]) -> Vec<Point> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter_map(|l| l.strip_prefix("phyvae-fault-point "))
        .map(|rest| {
            let mut parts = rest.splitn(3, ' ');
            Point {
                n: parts.next().unwrap().parse().unwrap(),
                label: parts.next().unwrap().to_owned(),
                path: parts.next().unwrap_or("").to_owned(),
            }
        })
        .collect()
}

/// SplitMix64: a tiny seeded generator.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
}

/// Every file below `root`, by path relative to it.
fn files(root: &Path) -> BTreeMap<String, PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, p);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// `v` without the wall-clock fields (at any depth), and its command list
/// (`commands`, in metrics.json and the checkpoint's state) as the run never
/// killed has it: the first command without `--resume`, and no later
/// `--resume` command (each resume appends the command that made it).
fn untimed(mut v: Value) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for k in ["seconds", "training_seconds", "patches_per_second"] {
                    m.remove(k);
                }
                if let Some(Value::Array(cmds)) = m.get_mut("commands") {
                    cmds.truncate(1);
                    if let Some(Value::Array(first)) = cmds.first_mut() {
                        first.retain(|a| a != "--resume");
                    }
                }
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    v
}

/// `history.csv` without its `seconds` column.
fn untimed_csv(text: &str) -> Vec<Vec<String>> {
    let rows: Vec<Vec<String>> = text
        .lines()
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect();
    let col = rows[0].iter().position(|h| h == "seconds").unwrap();
    rows.into_iter()
        .map(|mut r| {
            r.remove(col);
            r
        })
        .collect()
}

/// The tensors of a safetensors file: name -> (dtype and shape, bytes); the
/// trainer state (JSON) without its wall-clock fields.
fn tensors(bytes: &[u8]) -> BTreeMap<String, (Value, Vec<u8>)> {
    let n = usize::try_from(u64::from_le_bytes(bytes[..8].try_into().unwrap())).unwrap();
    let header: BTreeMap<String, Value> = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    header
        .into_iter()
        .filter(|(k, _)| k != "__metadata__")
        .map(|(k, v)| {
            let off = |i: usize| usize::try_from(v["data_offsets"][i].as_u64().unwrap()).unwrap();
            let raw = &data[off(0)..off(1)];
            if k == "trainer.state_json" {
                // Its length varies with the digits of the times.
                let state = untimed(serde_json::from_slice(raw).unwrap());
                return (k, (v["dtype"].clone(), state.to_string().into_bytes()));
            }
            let meta = serde_json::json!([v["dtype"], v["shape"]]);
            (k, (meta, raw.to_vec()))
        })
        .collect()
}

/// `report.html` without its wall-clock times (the wall time and throughput
/// facts, the seconds column of the loss table), and its list of commands as
/// the run never killed has it: `--resume` dropped, and the resuming
/// command, then the same line as the first, listed once.
fn untimed_html(html: &str) -> String {
    let mut h = html.replace(" --resume", "");
    let many = "<p class=\"note\">Commands that made this run (the first started it, each later one resumed it):</p>";
    if let Some(at) = h.find(many) {
        h.replace_range(
            at..at + many.len(),
            "<p class=\"note\">Command that made this run:</p>",
        );
        let start = at + h[at..].find("<pre>").unwrap();
        let len = h[start..].find("</pre>").unwrap() + "</pre>".len();
        let block = h[start..start + len].to_owned();
        while h[start + len..].starts_with(&block) {
            h.replace_range(start + len..start + 2 * len, "");
        }
    }
    for fact in ["wall time", "training throughput"] {
        let th = format!("<th>{fact}</th><td>");
        let start = h.find(&th).unwrap() + th.len();
        let end = start + h[start..].find("</td>").unwrap();
        h.replace_range(start..end, "");
    }
    let table = h.find("<th>seconds</th></tr>").unwrap();
    let table_end = table + h[table..].find("</table>").unwrap();
    let mut out = h[..table].to_owned();
    for row in h[table..table_end].split_inclusive("</td></tr>") {
        match row.rfind("<td>") {
            Some(i) if row.ends_with("</td></tr>") => {
                out.push_str(&row[..i]);
                out.push_str("<td></td></tr>");
            }
            _ => out.push_str(row),
        }
    }
    out + &h[table_end..]
}

/// Asserts that the run folder `got` holds the files of `want`, and only
/// those, with the same content (wall-clock times aside).
fn assert_same_run(want: &Path, got: &Path, what: &str) {
    let (w, g) = (files(want), files(got));
    assert_eq!(
        w.keys().collect::<Vec<_>>(),
        g.keys().collect::<Vec<_>>(),
        "{what}: the files differ"
    );
    for (name, wp) in &w {
        let (a, b) = (std::fs::read(wp).unwrap(), std::fs::read(&g[name]).unwrap());
        let same = match name.as_str() {
            // The pid of the last holder.
            ".phyvae.lock" => true,
            "metrics.json" => {
                untimed(serde_json::from_slice(&a).unwrap())
                    == untimed(serde_json::from_slice(&b).unwrap())
            }
            "history.csv" => {
                untimed_csv(&String::from_utf8(a).unwrap())
                    == untimed_csv(&String::from_utf8(b).unwrap())
            }
            "report.html" => {
                untimed_html(&String::from_utf8(a).unwrap())
                    == untimed_html(&String::from_utf8(b).unwrap())
            }
            "checkpoint/checkpoint.safetensors" => tensors(&a) == tensors(&b),
            _ => a == b,
        };
        assert!(same, "{what}: {name} differs");
    }
    // Nobody holds the folder any more.
    drop(phyvae_run::files::RunDir::new(got).lock().unwrap());
}

/// A kind of place in a run: whether the point at an index is one.
type Kind = Box<dyn Fn(usize, &Point) -> bool>;

/// The kill points: `UNIFORM` drawn uniformly from all of `points`, then one
/// more from each kind of place not yet drawn.
fn draw(points: &[Point]) -> Vec<&Point> {
    let trained = points
        .iter()
        .position(|p| p.label == "run.trained")
        .unwrap();
    let config = points
        .iter()
        .position(|p| p.label == "write.renamed" && p.path.ends_with("config.toml"))
        .unwrap();
    let kinds: [(&str, Kind); 7] = [
        ("before config.toml", Box::new(move |i, _| i < config)),
        (
            "inside a checkpoint write",
            Box::new(|_, p: &Point| {
                p.path.ends_with("checkpoint.safetensors") && p.label != "write.renamed"
            }),
        ),
        (
            "between the run's files",
            Box::new(|_, p: &Point| p.label == "write.renamed"),
        ),
        (
            "during training",
            Box::new(|_, p: &Point| p.label.starts_with("train.")),
        ),
        (
            "during the final encoding",
            Box::new(move |i, p: &Point| i > trained && p.label == "encode.batch"),
        ),
        (
            "during segmentation",
            Box::new(|_, p: &Point| p.path.contains("/segmentation/")),
        ),
        (
            "during the report",
            Box::new(|_, p: &Point| {
                p.label.starts_with("report.")
                    || p.path.contains("/figures/")
                    || p.path.ends_with("report.html")
            }),
        ),
    ];
    let mut rng = Rng(SEED);
    let mut chosen: Vec<usize> = Vec::new();
    while chosen.len() < UNIFORM {
        let i = rng.below(points.len());
        if !chosen.contains(&i) {
            chosen.push(i);
        }
    }
    for (kind, is) in &kinds {
        let of_kind: Vec<usize> = (0..points.len()).filter(|&i| is(i, &points[i])).collect();
        assert!(!of_kind.is_empty(), "a run has no point {kind}");
        if !chosen.iter().any(|i| of_kind.contains(i)) {
            chosen.push(of_kind[rng.below(of_kind.len())]);
        }
    }
    chosen.sort_unstable();
    chosen.iter().map(|&i| &points[i]).collect()
}

#[test]
fn a_run_killed_anywhere_resumes_to_the_same_outputs_and_no_stray_file() {
    let d = tempfile::tempdir().unwrap();
    common::synth("two-phase", 64, 3, d.path());
    let (img, truth) = (d.path().join("image.npy"), d.path().join("truth.npy"));

    let reference = d.path().join("reference");
    std::fs::create_dir(&reference).unwrap();
    let out = train(
        &reference,
        &img,
        &truth,
        &[],
        &[("PHYVAE_FAULT_TRACE", "1")],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let points = trace(&out.stderr);
    assert!(
        points.iter().enumerate().all(|(i, p)| p.n == i as u64 + 1),
        "{err}"
    );
    let kills = draw(&points);
    assert!(kills.len() >= UNIFORM, "{kills:?}");

    for p in kills {
        let place = format!("{} {}", p.label, p.path);
        let what = format!(
            "killed at point {} of {} ({})",
            p.n,
            points.len(),
            place.trim_end()
        );
        eprintln!("{what}");
        let cwd = d.path().join(format!("kill-{}", p.n));
        std::fs::create_dir(&cwd).unwrap();
        let n = p.n.to_string();
        let killed = train(&cwd, &img, &truth, &[], &[("PHYVAE_FAULT_AT", &n)]);
        let err = String::from_utf8_lossy(&killed.stderr);
        assert!(!killed.status.success(), "{what}: it was not killed");
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(killed.status.signal(), Some(6), "{what}: {err}");
        }
        let abort = format!("phyvae-fault-abort {} {}", p.n, p.label);
        assert!(err.contains(&abort), "{what}: {err}");
        // A folder without config.toml holds no run: the same command again
        // starts it; otherwise --resume finishes it.
        let resume: &[&str] = if cwd.join(RUN).join("config.toml").is_file() {
            &["--resume"]
        } else {
            &[]
        };
        let again = train(&cwd, &img, &truth, resume, &[]);
        assert!(
            again.status.success(),
            "{what}: {resume:?} failed: {}",
            String::from_utf8_lossy(&again.stderr)
        );
        assert_same_run(&reference.join(RUN), &cwd.join(RUN), &what);
        std::fs::remove_dir_all(&cwd).unwrap();
    }
}
