#!/usr/bin/env bash
# Fast regression guard for CI: a slice of the benchmark suite (bench/suite/run.sh) that finishes
# in well under 4 minutes on two slow cores. Three 128 px phase images (seed 201, outside the
# train and validation splits) through the FFT baseline, each of which must reach FFT_MIN pick
# ARI, and one sh-VAE run of SH_STEPS steps on the period image that must finish, write
# metrics.json, report.html and a diagnosis, and reach SH_MIN pick ARI. Prints one line per check and a final "N passed, M failed";
# exits non-zero when a check failed.
#
# Usage: bench/suite/ci_slice.sh
# Environment (all optional):
#   PHYVAE         phyvae binary (default target/release/phyvae; built when absent)
#   CI_SLICE_OUT   work folder (default target/ci-slice; emptied first)
set -euo pipefail
cd "$(dirname "$0")/../.."

# Thresholds and settings of the slice.
FFT_MIN=0.7                                   # FFT baseline: least pick ARI on each image
FFT_FAMILIES="period grain-boundary motif"
SH_FAMILY=period                              # image of the sh-VAE run
SH_STEPS=1000                                 # length of the sh-VAE run in optimiser steps
SH_MIN=0.6                                    # sh-VAE: least pick ARI
SH_TIMEOUT_S=180                              # the sh-VAE run is stopped (and fails) after this
SEED=201
SIZE=128

bin=${PHYVAE:-target/release/phyvae}
out=${CI_SLICE_OUT:-target/ci-slice}
if [ ! -x "$bin" ]; then
  cargo build --release
fi
[ -x "$bin" ] || { echo "ci_slice.sh: no phyvae binary at $bin" >&2; exit 1; }

passed=0
failed=0
check() { # check OK|FAIL "text"
  if [ "$1" = OK ]; then
    passed=$((passed + 1))
    echo "PASS  $2"
  else
    failed=$((failed + 1))
    echo "FAIL  $2"
  fi
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
# json FILE EXPR: a value of a JSON file (EXPR in Python on `m`), or "-" when absent/unreadable.
json() {
  python3 - "$1" "$2" <<'EOF'
import json, sys
try:
    m = json.load(open(sys.argv[1]))
    v = eval(sys.argv[2], {"m": m})
except Exception:
    v = None
print("-" if v is None else v)
EOF
}

start=$(now)
rm -rf "$out"
mkdir -p "$out/img" "$out/runs"

families=$FFT_FAMILIES
case " $families " in *" $SH_FAMILY "*) ;; *) families="$families $SH_FAMILY" ;; esac
for f in $families; do
  "$bin" synth suite --family "$f" --seed "$SEED" --size "$SIZE" --out "$out/img/$f-$SEED" --quiet >/dev/null
done

# FFT baseline: pick ARI on every image.
for f in $FFT_FAMILIES; do
  img=$out/img/$f-$SEED
  run=$out/runs/fft/$f-$SEED
  rc=0
  t0=$(now)
  "$bin" train "$img/image.npy" --out "$run" --truth "$img/truth.npy" --quiet --snapshot-every 0 \
    --model fft >/dev/null 2>"$out/fft-$f.log" || rc=$?
  t1=$(now)
  if [ "$rc" != 0 ]; then
    check FAIL "fft $f-$SEED: exit $rc ($(elapsed "$t0" "$t1") s, see $out/fft-$f.log)"
    continue
  fi
  ari=$(json "$run/metrics.json" '(m["result"].get("score") or {}).get("ari")')
  if [ "$ari" = - ]; then
    check FAIL "fft $f-$SEED: no pick score (result map $(json "$run/metrics.json" 'm["result"]["map"]'))"
  elif awk -v a="$ari" -v b="$FFT_MIN" 'BEGIN { exit !(a >= b) }'; then
    check OK "fft $f-$SEED: pick ARI $(printf '%.3f' "$ari") >= $FFT_MIN ($(elapsed "$t0" "$t1") s)"
  else
    check FAIL "fft $f-$SEED: pick ARI $(printf '%.3f' "$ari") < $FFT_MIN ($(elapsed "$t0" "$t1") s)"
  fi
done

# sh-VAE: a short run completes and writes its metrics, report and diagnosis.
img=$out/img/$SH_FAMILY-$SEED
run=$out/runs/sh/$SH_FAMILY-$SEED
limit=()
if command -v timeout >/dev/null; then limit=(timeout "$SH_TIMEOUT_S"); fi
rc=0
t0=$(now)
"${limit[@]}" "$bin" train "$img/image.npy" --out "$run" --truth "$img/truth.npy" --quiet --snapshot-every 0 \
  --steps "$SH_STEPS" >/dev/null 2>"$out/sh.log" || rc=$?
t1=$(now)
if [ "$rc" = 0 ]; then
  check OK "sh $SH_FAMILY-$SEED: completed, $SH_STEPS steps ($(elapsed "$t0" "$t1") s)"
elif [ "$rc" = 124 ] && [ "${#limit[@]}" -gt 0 ]; then
  check FAIL "sh $SH_FAMILY-$SEED: stopped after ${SH_TIMEOUT_S} s"
else
  check FAIL "sh $SH_FAMILY-$SEED: exit $rc ($(elapsed "$t0" "$t1") s, see $out/sh.log)"
fi
if [ -s "$run/metrics.json" ] && [ "$(json "$run/metrics.json" '1')" = 1 ]; then
  check OK "sh $SH_FAMILY-$SEED: metrics.json (map $(json "$run/metrics.json" 'm["result"]["map"]'))"
else
  check FAIL "sh $SH_FAMILY-$SEED: no readable metrics.json"
fi
ari=$(json "$run/metrics.json" '(m["result"].get("score") or {}).get("ari")')
if [ "$ari" = - ]; then
  check FAIL "sh $SH_FAMILY-$SEED: no pick score (the run found no informative map)"
elif awk -v a="$ari" -v b="$SH_MIN" 'BEGIN { exit !(a >= b) }'; then
  check OK "sh $SH_FAMILY-$SEED: pick ARI $(printf '%.3f' "$ari") >= $SH_MIN"
else
  check FAIL "sh $SH_FAMILY-$SEED: pick ARI $(printf '%.3f' "$ari") < $SH_MIN"
fi
if [ -s "$run/report.html" ]; then
  check OK "sh $SH_FAMILY-$SEED: report.html"
else
  check FAIL "sh $SH_FAMILY-$SEED: no report.html"
fi
diag=$(json "$run/metrics.json" '"ok=%s findings=%s" % (m["diagnosis"]["ok"], ",".join(f["kind"] for f in m["diagnosis"]["findings"]) or "none") if isinstance(m["diagnosis"]["ok"], bool) else None')
if [ "$diag" != - ]; then
  check OK "sh $SH_FAMILY-$SEED: diagnosis ($diag)"
else
  check FAIL "sh $SH_FAMILY-$SEED: no diagnosis in metrics.json"
fi

echo "slice took $(elapsed "$start" "$(now)") s"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
