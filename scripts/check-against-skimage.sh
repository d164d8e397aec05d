#!/usr/bin/env bash
# Runs scripts/crosscheck_skimage.py: phyvae's CLI against scikit-image 0.26
# on fresh random inputs. Creates a Python virtual environment under target/
# the first time. Python is optional for phyvae: when PyPI cannot be reached the
# check is skipped with a message (the Rust golden tests still run).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/venv-skimage
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import skimage" 2>/dev/null; then
  python3 -m venv "$venv"
  if ! "$venv/bin/pip" install --quiet --disable-pip-version-check \
      "scikit-image==0.26.0" "numpy==2.4.6" "scipy==1.17.1"; then
    echo "skipped: could not install scikit-image from PyPI (network?); Rust golden tests still ran"
    exit 0
  fi
fi
cargo build --release --quiet
"$venv/bin/python" scripts/crosscheck_skimage.py target/release/phyvae "$@"
