//! Running the `phyvae` binary from the CLI tests.
// Each test file uses its own subset of these helpers.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Runs `phyvae` with `args` and returns its output, whatever the exit code.
pub fn phyvae(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_phyvae"))
        .args(args)
        .output()
        .expect("run phyvae")
}

/// Runs `phyvae`, asserts success and returns stdout parsed as JSON (`Null`
/// when stdout is not JSON, for commands that print nothing).
pub fn ok(args: &[&str]) -> serde_json::Value {
    let out = phyvae(args);
    assert!(
        out.status.success(),
        "phyvae {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// A path as a command-line argument.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// `phyvae synth KIND --size SIZE --seed SEED --out DIR`: a synthetic image
/// (`DIR/image.npy`) and its truth map (`DIR/truth.npy`).
pub fn synth(kind: &str, size: u32, seed: u64, dir: &Path) {
    ok(&[
        "synth",
        kind,
        "--size",
        &size.to_string(),
        "--seed",
        &seed.to_string(),
        "--out",
        s(dir),
    ]);
}
