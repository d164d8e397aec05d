#!/usr/bin/env bash
# Benchmarks phyvae's image processing (criterion) and scikit-image on the same
# inputs, in one run, and prints a markdown table of medians and speed-ups.
# Needs Python 3 with pip (creates target/venv-skimage the first time).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/venv-skimage
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import skimage" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "scikit-image==0.26.0" "numpy==2.4.6" "scipy==1.17.1"
fi
cargo bench -p phyvae-imaging --bench imaging -- --noplot "$@"
"$venv/bin/python" bench/compare_skimage.py --json target/bench-compare.json
