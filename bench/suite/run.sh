#!/usr/bin/env bash
# Benchmark suite: synthetic images of `phyvae synth suite` (eight families, a known per-pixel
# truth), each segmented by sh-VAE, phy-VAE (SL1 and SL2, gradient mode) and the FFT baseline;
# bench/suite/table.py then prints per family and model the median and worst ARI of the
# unsupervised pick, the oracle, boundary F1, Psi, diagnosis findings and run time.
#
# Usage: bench/suite/run.sh [--split train|validation|holdout] [--families "a b c"] [--models "sh sl1 sl2 fft"]
#                           [--size N] [--out DIR] [--extra "flags"] [--jobs N] [--retry-failed]
#   --split     train (seeds 1 2, the default), validation (seeds 101 102 103 104 105) or
#               holdout (seeds 201 202 203 204 205).
#               SUITE_SEEDS="101 102" runs a subset of the validation or holdout seeds.
#               Validation seeds are never used for tuning: settings are chosen on the train
#               split only, and validation is run once to report. Once validation results
#               have been used to choose between candidate defaults, holdout is the split
#               that has not: it is run once, on the chosen defaults.
#   --families  image families (default: all eight)
#   --models    sh (sh-VAE), sl1 / sl2 (phy-VAE, gradient mode), fft (classical baseline);
#               default all four
#   --size      image side in px (default 256)
#   --out       work folder (default target/suite/<split>); kept between calls
#   --extra     more `phyvae train` options for every run, e.g. "--steps 300"
#   --jobs      runs at the same time (default 1: training already uses every core)
#   --retry-failed  run again the runs recorded as failed (non-zero exit) instead of skipping them
# Environment: PHYVAE  phyvae binary (default target/release/phyvae; built when absent)
#
# Layout: OUT/img/<family>-<seed>/{image,truth}.npy + params.json (generated once),
#         OUT/runs/<model>/<family>-<seed>/ (the train folder, plus exit_code, wall_seconds,
#         stdout.json, stderr.log). A run whose metrics.json exists is skipped, so an
#         interrupted suite resumes where it stopped.
set -euo pipefail
cd "$(dirname "$0")/../.."

split=train
families="period motif grain-boundary precipitate three-phase domains-180 domains-90 antiphase"
models="sh sl1 sl2 fft"
size=256
out=
extra=
jobs=1
retry_failed=0

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2; }
need() { [ "$#" -ge 2 ] || { echo "run.sh: $1 needs a value" >&2; exit 2; }; }
while [ "$#" -gt 0 ]; do
  case "$1" in
    --split) need "$@"; split=$2; shift 2 ;;
    --families) need "$@"; families=$2; shift 2 ;;
    --models) need "$@"; models=$2; shift 2 ;;
    --size) need "$@"; size=$2; shift 2 ;;
    --out) need "$@"; out=$2; shift 2 ;;
    --extra) need "$@"; extra=$2; shift 2 ;;
    --jobs) need "$@"; jobs=$2; shift 2 ;;
    --retry-failed) retry_failed=1; shift ;;
    -h|--help) usage ;;
    *) echo "run.sh: unknown option $1" >&2; usage ;;
  esac
done

case "$split" in
  train) seeds="1 2" ;;
  validation) seeds="${SUITE_SEEDS:-101 102 103 104 105}" ;;
  holdout) seeds="${SUITE_SEEDS:-201 202 203 204 205}" ;;
  *) echo "run.sh: --split must be train, validation or holdout, not $split" >&2; exit 2 ;;
esac
[[ "$size" =~ ^[0-9]+$ ]] || { echo "run.sh: --size must be a number" >&2; exit 2; }
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --jobs must be a positive number" >&2; exit 2; }
for m in $models; do
  case "$m" in sh|sl1|sl2|fft) ;; *) echo "run.sh: unknown model $m (sh sl1 sl2 fft)" >&2; exit 2 ;; esac
done
out=${out:-target/suite/$split}

bin=${PHYVAE:-target/release/phyvae}
if [ ! -x "$bin" ]; then
  cargo build --release
fi
[ -x "$bin" ] || { echo "run.sh: no phyvae binary at $bin" >&2; exit 1; }

model_flags() {
  case "$1" in
    sh) ;;
    sl1) echo "--physics sl1 --mode gradient" ;;
    sl2) echo "--physics sl2 --mode gradient" ;;
    fft) echo "--model fft" ;;
  esac
}

now() { date +%s.%N; }

# Images: each generated once and shared by every model.
mkdir -p "$out/img" "$out/runs"
for f in $families; do
  for s in $seeds; do
    img=$out/img/$f-$s
    if [ -f "$img/image.npy" ] && [ -f "$img/truth.npy" ] && [ -f "$img/params.json" ]; then
      have=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["size"])' "$img/params.json")
      if [ "$have" != "$size" ]; then
        echo "run.sh: $img is ${have} px, not ${size} px: use another --out" >&2
        exit 1
      fi
      continue
    fi
    rm -rf "$img"
    "$bin" synth suite --family "$f" --seed "$s" --size "$size" --out "$img" --quiet >/dev/null
    echo "image $f-$s ($size px)" >&2
  done
done

# One run: train, record exit status and wall time, log one line.
run_one() {
  local m=$1 f=$2 s=$3 tag=$4
  local img=$out/img/$f-$s run=$out/runs/$m/$f-$s
  if [ -f "$run/metrics.json" ]; then
    echo "$tag $m $f-$s: skipped (metrics.json exists)" >&2
    return 0
  fi
  if [ "$retry_failed" = 0 ] && [ -f "$run/exit_code" ] && [ "$(cat "$run/exit_code")" != 0 ]; then
    echo "$tag $m $f-$s: skipped (failed before, exit $(cat "$run/exit_code"); --retry-failed to rerun)" >&2
    return 0
  fi
  rm -rf "$run"
  mkdir -p "$run"
  local t0 t1 rc=0
  t0=$(now)
  # shellcheck disable=SC2046,SC2086
  "$bin" train "$img/image.npy" --out "$run" --truth "$img/truth.npy" --quiet --snapshot-every 0 \
    $(model_flags "$m") $extra >"$run/stdout.json" 2>"$run/stderr.log" || rc=$?
  t1=$(now)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }' >"$run/wall_seconds"
  echo "$rc" >"$run/exit_code"
  local summary
  summary=$(python3 - "$run" "$rc" <<'EOF'
import json, pathlib, sys
run, rc = pathlib.Path(sys.argv[1]), int(sys.argv[2])
wall = float((run / "wall_seconds").read_text())
parts = []
if rc != 0:
    parts.append(f"FAILED exit {rc}")
try:
    m = json.loads((run / "metrics.json").read_text())
except (OSError, ValueError):
    m = None
if m is not None and rc == 0:
    r = m.get("result") or {}
    score = r.get("score") or {}
    oracle = r.get("oracle") or {}
    pick = score.get("ari")
    parts.append(f"ARI {pick:.3f}" if pick is not None else "ARI - (no result map)")
    if oracle.get("ari") is not None:
        parts.append(f"oracle {oracle['ari']:.3f}")
    kinds = [x.get("kind", "?") for x in (m.get("diagnosis") or {}).get("findings", [])]
    if kinds:
        parts.append("findings " + ",".join(kinds))
elif m is None and rc == 0:
    parts.append("no metrics.json")
parts.append(f"{wall:.1f} s")
print(", ".join(parts))
EOF
  ) || summary="(summary unreadable)"
  echo "$tag $m $f-$s: $summary" >&2
  return 0
}

total=0
for m in $models; do for f in $families; do for s in $seeds; do total=$((total + 1)); done; done; done
echo "suite: split $split, seeds $seeds, $total runs, $size px, out $out, binary $bin, jobs $jobs" >&2

i=0
for m in $models; do
  for f in $families; do
    for s in $seeds; do
      i=$((i + 1))
      tag="[$i/$total]"
      if [ "$jobs" = 1 ]; then
        run_one "$m" "$f" "$s" "$tag"
      else
        while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
        run_one "$m" "$f" "$s" "$tag" &
      fi
    done
  done
done
wait

python3 bench/suite/table.py "$out"
