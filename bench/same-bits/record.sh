#!/usr/bin/env bash
# record.sh BIN OUTDIR: six small runs (train with SL2 gradient, train at the
# paper preset with SL1 faithful, train at the measured defaults, the FFT
# baseline, encode) whose outputs must not change under a refactoring.
# Record before and after into the same OUTDIR path (paths are written into
# config.toml and metrics.json), then compare.sh the two copies.
set -euo pipefail
BIN=$1; OUT=$2
rm -rf "$OUT"; mkdir -p "$OUT"
"$BIN" -q synth two-phase --size 128 --seed 3 --out "$OUT/tp.npy" >/dev/null
"$BIN" -q synth domains --size 128 --seed 5 --out "$OUT/dom.npy" >/dev/null
I=$OUT/tp.npy/image.npy; T=$OUT/tp.npy/truth.npy
"$BIN" -q train "$I" --out "$OUT/A" --window 16 --step 4 --epochs 3 --physics sl2 --mode gradient --seed 7 --truth "$T" >/dev/null
"$BIN" -q train "$OUT/dom.npy/image.npy" --out "$OUT/B" --preset paper --window 24 --epochs 2 --physics sl1 --mode faithful --multiply --seed 11 --truth "$OUT/dom.npy/truth.npy" >/dev/null
"$BIN" -q train "$I" --out "$OUT/C" --steps 120 --seed 5 >/dev/null
"$BIN" -q train "$I" --out "$OUT/D" --model fft --truth "$T" >/dev/null
"$BIN" -q encode --model "$OUT/A" "$OUT/dom.npy/image.npy" --out "$OUT/E" --truth "$OUT/dom.npy/truth.npy" >/dev/null
