#!/usr/bin/env bash
# Reconstruction and segmentation against the number of lattice periods per window: the
# spectral-bias probe of the spatial decoder (BENCHMARKS.md, "Fourier features at the lattice").
#
# Usage: bench/suite/windows.sh [--out DIR] [--windows "16 24 32 48"] [--steps N] [--extra "flags"]
#   Trains the sh-VAE on the train-split images period-1, period-2, motif-1, motif-2 (generated
#   with `phyvae synth suite`) at each window, N optimiser steps (default 3000), then prints
#   bench/suite/windows.py's table. Runs whose metrics.json exists are skipped.
# Environment: PHYVAE  phyvae binary (default target/release/phyvae; built when absent)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=target/suite/windows
windows="16 24 32 48"
steps=3000
extra=
while [ "$#" -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --windows) windows=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --extra) extra=$2; shift 2 ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
done
bin=${PHYVAE:-target/release/phyvae}
[ -x "$bin" ] || cargo build --release -p phyvae-cli
for name in period-1 period-2 motif-1 motif-2; do
  family=${name%-*}; seed=${name##*-}
  img=$out/img/$name
  [ -f "$img/image.npy" ] || "$bin" -q synth suite --family "$family" --seed "$seed" --size 256 --out "$img" >/dev/null
  for w in $windows; do
    run=$out/runs/w$w/$name
    [ -f "$run/metrics.json" ] && continue
    # shellcheck disable=SC2086
    "$bin" -q train "$img/image.npy" --out "$run" --overwrite --truth "$img/truth.npy" \
      --window "$w" --steps "$steps" $extra >/dev/null
  done
done
python3 bench/suite/windows.py "$out"
