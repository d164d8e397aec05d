#!/usr/bin/env bash
# Whole-epoch training throughput of phyvae and of the Python reference, back to back in one run:
# one epoch of each side's own training loop over the same 512 x 512 synthetic image (48 x 48
# patches at step 8: 3 481 patches, batches of 64, 2 threads each). The reference runs as its
# users run it: bench/python-reference/phyvae_ref.py (pyroVED's SVItrainer for sh-VAE, the
# authors' SVI loop with the physics loss for phy-VAE). bench/train_compare.sh times the
# reference's single step on a fixed batch instead, its best case.
#
# Usage: bench/train_compare_epoch.sh
# Environment (all optional): VENV_REF (default target/venv-ref, as bench/train_compare.sh,
# which creates it), PHYVAE_BIN (default target/release/phyvae), OUT (default
# target/bench-epoch), THREADS (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV_REF:-target/venv-ref}
bin=${PHYVAE_BIN:-target/release/phyvae}
work=${OUT:-target/bench-epoch}
threads=${THREADS:-2}
if [ ! -x "$venv/bin/python" ]; then
  echo "no reference venv at $venv: run bench/train_compare.sh once (it creates it) or set VENV_REF" >&2
  exit 1
fi
if [ ! -x "$bin" ]; then
  cargo build --release -p phyvae-cli
fi
rm -rf "$work"
mkdir -p "$work"
export RAYON_NUM_THREADS=$threads
"$bin" synth two-phase --size 512 --seed 0 --out "$work/image" >/dev/null
echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| mode | reference epoch s | reference patches/s | phyvae epoch s | phyvae patches/s | phyvae / reference |"
echo "|---|---|---|---|---|---|"
for mode in shvae sl1 sl2; do
  case $mode in
    shvae) ref=(--mode shvae) ours=(--physics none) label="sh-VAE" ;;
    sl1) ref=(--mode phyvae --psi sl1) ours=(--physics sl1 --mode faithful) label="phy-VAE SL1, faithful" ;;
    sl2) ref=(--mode phyvae --psi sl2) ours=(--physics sl2 --mode faithful) label="phy-VAE SL2, faithful" ;;
  esac
  "$venv/bin/python" bench/python-reference/phyvae_ref.py --image "$work/image/image.npy" \
    --out "$work/ref-$mode" "${ref[@]}" --epochs 1 --threads "$threads" --batch-size 64 \
    --seed 0 >"$work/ref-$mode.log" 2>&1
  ref_s=$(sed -n 's/^epoch 1\/1 .* time \([0-9.]*\)s.*/\1/p' "$work/ref-$mode.log")
  "$bin" train "$work/image/image.npy" --out "$work/phyvae-$mode" --preset paper --epochs 1 --batch 64 \
    --window 48 --step 8 --seed 0 "${ours[@]}" >"$work/phyvae-$mode.log" 2>&1
  python3 - "$work/phyvae-$mode/metrics.json" "$ref_s" "$label" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
ref_s, label = float(sys.argv[2]), sys.argv[3]
n = m["patches"]
ours_s = m["training_seconds"]
print(f"| {label} | {ref_s:.1f} | {n / ref_s:.1f} | {ours_s:.1f} | {n / ours_s:.1f} | {ref_s / ours_s:.2f}x |")
PY
done
echo
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
