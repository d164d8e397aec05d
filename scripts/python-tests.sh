#!/usr/bin/env bash
# The Python package (crates/python): builds the wheel with maturin (release,
# in the same target folder as the rest of the build, so the workspace's
# release artifacts are reused where their features agree), installs it into
# a fresh virtual environment under the target folder, runs its pytest suite
# (with the `phyvae` binary for the bit-identity and same-numbers tests) and
# executes examples/quickstart.ipynb. Needs python3 (3.9 or newer); skipped
# with a message when PyPI cannot be reached.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
venv="$CARGO_TARGET_DIR/python-tests/venv"
wheels="$CARGO_TARGET_DIR/python-tests/wheels"
start=$SECONDS

echo "-- crates/python: Cargo.lock agrees with the workspace's"
python3 - <<'PY'
import re, sys
def versions(path):
    out = {}
    text = open(path, encoding="utf-8").read()
    for name, version in re.findall(r'\[\[package\]\]\nname = "([^"]+)"\nversion = "([^"]+)"', text):
        out.setdefault(name, set()).add(version)
    return out
ws, py = versions("Cargo.lock"), versions("crates/python/Cargo.lock")
bad = [f"{n} {sorted(v)} (workspace: {sorted(ws[n])})" for n, v in sorted(py.items())
       if n in ws and not v <= ws[n]]
if bad:
    sys.exit("crates/python/Cargo.lock differs from Cargo.lock: " + "; ".join(bad)
             + " (copy Cargo.lock over it and build again)")
print(f"{sum(1 for n in py if n in ws)} shared packages, same versions")
PY

echo "-- fresh virtual environment ($venv)"
rm -rf "$venv" "$wheels"
python3 -m venv "$venv"
if ! "$venv/bin/python" -m pip install -q --disable-pip-version-check \
    "maturin==1.16.0" "pytest==9.2.0" "numpy==2.4.6" "hyperspy==2.5.0" "tqdm==4.70.1" \
    "matplotlib==3.11.2" "nbclient==0.11.0" "nbformat==5.11.1" "ipykernel==7.4.0"; then
    echo "skipped: could not install the test tools from PyPI (network?)"
    exit 0
fi
export PYO3_PYTHON="$venv/bin/python"

echo "-- cargo fmt and clippy (crates/python)"
cargo fmt --manifest-path crates/python/Cargo.toml --check
cargo clippy --manifest-path crates/python/Cargo.toml --all-targets -- -D warnings

echo "-- the phyvae binary (bit-identity and same-numbers tests)"
cargo build --release -p phyvae-cli
export PHYVAE_BIN="$CARGO_TARGET_DIR/release/phyvae"

echo "-- wheel (maturin, release)"
t=$SECONDS
(cd crates/python && "$venv/bin/maturin" build --release --locked -o "$wheels")
echo "wheel built in $((SECONDS - t)) s"
"$venv/bin/python" -m pip install -q --force-reinstall --no-deps "$wheels"/phyvae-*.whl

echo "-- pytest (crates/python/tests)"
t=$SECONDS
(cd crates/python/tests && "$venv/bin/python" -m pytest -q -p no:cacheprovider .)
echo "pytest: $((SECONDS - t)) s"

echo "-- examples/quickstart.ipynb (nbclient)"
t=$SECONDS
"$venv/bin/python" -m ipykernel install --prefix "$venv" --name python3 >/dev/null
"$venv/bin/python" - <<'PY'
import nbformat
from nbclient import NotebookClient
nb = nbformat.read("examples/quickstart.ipynb", as_version=4)
NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": "."}}).execute()
out = "target/test-artifacts/quickstart.ipynb"
import os
os.makedirs(os.path.dirname(out), exist_ok=True)
nbformat.write(nb, out)
print(f"executed; the notebook with its outputs: {out}")
PY
echo "notebook: $((SECONDS - t)) s"
echo "python tests: $((SECONDS - start)) s in all"
