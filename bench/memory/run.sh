#!/usr/bin/env bash
# run.sh [BIN] [OUTDIR]: peak resident memory and wall time of whole
# `phyvae train` commands (training, encoding, segmentation of every map,
# report) at three scales, under /usr/bin/time -v:
#   - the bundled Au image (512 x 512) with the README's main command;
#   - NiO-LSMO scale: a 1024 x 1024 synthetic two-phase image, window 48,
#     step 8 -> a 123 x 123 grid, 15 129 patches;
#   - BiFeO3 scale: a 3904 x 3904 synthetic domain image, window 48, step 8
#     -> a 483 x 483 grid, 233 289 patches; few optimiser steps (STEPS_BFO),
#     which the trainer rounds up to one whole epoch (14 581 steps of 16),
#     since the point is the memory of encoding, segmenting and reporting the
#     full grid. Expect about 45 minutes on 2 cores.
# Prints a Markdown table. BIN defaults to target/release/phyvae.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-target/release/phyvae}
OUT=${2:-target/bench-memory}
STEPS_NIO=${STEPS_NIO:-300}
STEPS_BFO=${STEPS_BFO:-100}
rm -rf "$OUT"; mkdir -p "$OUT"
"$BIN" -q synth two-phase --size 1024 --seed 1 --out "$OUT/nio" >/dev/null
"$BIN" -q synth domains --size 3904 --seed 1 --out "$OUT/bfo" >/dev/null

measure() { # name, then the train arguments (the run goes to $OUT/name)
    local name=$1; shift
    /usr/bin/time -v "$BIN" -q train "$@" --out "$OUT/$name" 2>"$OUT/$name.time" >/dev/null || {
        echo "$name failed:" >&2; tail -30 "$OUT/$name.time" >&2; exit 1; }
    local kb wall patches
    kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$OUT/$name.time")
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$OUT/$name.time")
    patches=$(grep -o '"patches": *[0-9]*' "$OUT/$name/metrics.json" | grep -o '[0-9]*$' || echo "?")
    printf '| %s | %s | %s | %.0f MB | %s |\n' "$name" "$*" "$patches" "$(echo "$kb / 1000" | bc -l)" "$wall"
}
echo "| run | arguments | patches | peak RSS | wall time |"
echo "|---|---|---|---|---|"
measure au data/au_grain_boundary_png/Grain_boundry_gold_512px.png
measure nio-lsmo-scale "$OUT/nio/image.npy" --window 48 --step 8 --steps "$STEPS_NIO"
measure bifeo3-scale "$OUT/bfo/image.npy" --window 48 --step 8 --steps "$STEPS_BFO"
