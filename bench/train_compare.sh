#!/usr/bin/env bash
# Training throughput of phyvae against the Python reference of the method
# (bench/python-reference, pyroVED-based), measured in one run on this machine, and the peak
# memory of a phyvae run at BiFeO3 scale (3904 x 3904 image, step 8, 233 289 patches).
#
# Both sides train sh-VAE and phy-VAE (SL1, SL2) with batches of 64 patches of 48 x 48 from
# the same 512 x 512 synthetic image (3 481 patches). The reference is timed per step by
# bench_step.py (median of --reps steps on one batch, forward + backward + Adam); phyvae is
# timed over one whole epoch (55 batches, the last one of 25 patches), as written in
# metrics.json. Both are reported as patches per second. The two sides run back to back in
# each of $ROUNDS rounds, so machine load affects both alike; the table gives the median
# over rounds (bench/train_compare_table.py writes the tables from the work folder).
#
# Usage: bench/train_compare.sh
# Environment (all optional):
#   VENV_REF     venv with bench/python-reference/requirements-frozen.txt
#                (default target/venv-ref; created when absent, about 6 GB)
#   PHYVAE_BIN   phyvae binary (default target/release/phyvae; built when absent)
#   OUT          work folder (default target/bench-train; emptied first)
#   THREADS      threads for both sides (default 2)
#   ROUNDS       rounds of both sides (default 2)
#   REPS         timed steps per mode per round on the Python side (default 4)
#   MEM_SIZE     side of the memory-run image in px (default 3904)
#   MEM_SECONDS  the memory run is killed after this many seconds (default 75)
#   SKIP_MEMORY  set to 1 to skip the memory run
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

venv=${VENV_REF:-target/venv-ref}
bin=${PHYVAE_BIN:-target/release/phyvae}
work=${OUT:-target/bench-train}
threads=${THREADS:-2}
rounds=${ROUNDS:-2}
reps=${REPS:-4}
mem_size=${MEM_SIZE:-3904}
mem_seconds=${MEM_SECONDS:-75}
ref_dir="$repo/bench/python-reference"

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
log() { printf '[%s] load %s: %s\n' "$(date +%H:%M:%S)" "$(loadavg)" "$*" >&2; }

# --- set-up ----------------------------------------------------------------------------------
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import torch, pyro, pyroved, skimage" 2>/dev/null; then
  log "creating $venv (python3 -m venv, pip install -r requirements-frozen.txt)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$ref_dir/requirements-frozen.txt"
fi
py=$(cd "$(dirname "$venv/bin/python")" && pwd)/python
if [ ! -x "$bin" ]; then
  if [ -n "${PHYVAE_BIN:-}" ]; then
    echo "PHYVAE_BIN=$bin is not an executable" >&2
    exit 1
  fi
  log "building phyvae (cargo build --release -p phyvae-cli)"
  cargo build --release -p phyvae-cli
fi
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)
# A private copy, so that a rebuild during the run cannot mix two binaries.
cp "$bin" "$work/phyvae"
bin="$work/phyvae"

# The same threads on both sides: torch via bench_step.py --threads; phyvae (candle's ops and
# the fused decoder, whose GEMMs run inside its rayon tasks) via rayon.
export RAYON_NUM_THREADS=$threads

{
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM"
  echo "kernel: $(uname -r)"
  echo "phyvae: $("$bin" --version)"
  echo "reference: $("$py" -c 'import sys, torch, pyro, pyroved; print("Python", sys.version.split()[0], "torch", torch.__version__, "pyro-ppl", pyro.__version__, "pyroved", pyroved.__version__)' 2>/dev/null)"
  echo "threads: $threads per side, rounds: $rounds, reference steps per mode per round: $reps"
  echo "load average at start: $(loadavg)"
} | tee "$work/machine.txt"

"$bin" synth two-phase --size 512 --seed 0 --out "$work/image512" >/dev/null

# --- throughput, both sides back to back in each round ---------------------------------------
modes=(shvae sl1-faithful sl2-faithful sl1-gradient sl2-gradient)
mode_args() {
  case $1 in
    shvae) echo "--physics none" ;;
    sl1-faithful) echo "--physics sl1 --mode faithful" ;;
    sl2-faithful) echo "--physics sl2 --mode faithful" ;;
    sl1-gradient) echo "--physics sl1 --mode gradient" ;;
    sl2-gradient) echo "--physics sl2 --mode gradient" ;;
  esac
}

for r in $(seq 1 "$rounds"); do
  rd="$work/round$r"
  mkdir -p "$rd/py/data" "$rd/py/runs"
  cp "$work/image512/image.npy" "$rd/py/data/synth512_image.npy"
  log "round $r: reference bench_step.py --threads $threads --reps $reps"
  loadavg >"$rd/py/load_before"
  if ! (cd "$rd/py" && "$py" "$ref_dir/bench_step.py" --threads "$threads" --reps "$reps" \
        >stdout.txt 2>stderr.txt); then
    echo "reference failed; see $rd/py/stderr.txt" >&2
    tail -20 "$rd/py/stderr.txt" >&2
    exit 1
  fi
  for m in "${modes[@]}"; do
    log "round $r: phyvae train, $m, one epoch"
    loadavg >"$rd/load_before_$m"
    # shellcheck disable=SC2046
    if ! "$bin" train "$work/image512/image.npy" --out "$rd/$m" --preset paper --epochs 1 --batch 64 \
          --window 48 --step 8 --seed 0 $(mode_args "$m") >"$rd/$m.log" 2>&1; then
      echo "phyvae train $m failed; see $rd/$m.log" >&2
      tail -20 "$rd/$m.log" >&2
      exit 1
    fi
  done
done
echo "load average after the throughput runs: $(loadavg)" | tee -a "$work/machine.txt"

"$py" bench/train_compare_table.py "$work" "$rounds"

# --- peak memory at BiFeO3 scale -------------------------------------------------------------
if [ "${SKIP_MEMORY:-0}" = 1 ]; then
  exit 0
fi
mem="$work/memory"
mkdir -p "$mem"
log "memory: phyvae synth domains --size $mem_size"
"$bin" synth domains --size "$mem_size" --seed 0 --out "$mem/image" >/dev/null
train=("$bin" train "$mem/image/image.npy" --out "$mem/run" --preset paper --epochs 1 --batch 64 --window 48
       --step 8 --physics sl1 --mode faithful --seed 0)
log "memory: phyvae train (SL1 faithful), killed after ${mem_seconds}s"
echo "load average before the memory run: $(loadavg)" >>"$work/machine.txt"
if [ -x /usr/bin/time ]; then
  /usr/bin/time -v -o "$mem/time.txt" timeout --foreground -s KILL "$mem_seconds" "${train[@]}" \
    >"$mem/train.log" 2>&1 &
else
  # No GNU time: report the children's peak RSS from getrusage (the same figure, in KiB).
  "$py" -c 'import resource, subprocess, sys
rc = subprocess.call(sys.argv[2:])
kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
open(sys.argv[1], "w").write(f"\tExit status: {rc}\n\tMaximum resident set size (kbytes): {kib}\n")' \
    "$mem/time.txt" timeout --foreground -s KILL "$mem_seconds" "${train[@]}" >"$mem/train.log" 2>&1 &
fi
wrapper=$!
# Sample the trainer's own high-water mark every 5 s to show when the peak is reached.
printf 'seconds\tVmHWM_kB\tVmRSS_kB\n' >"$mem/rss.tsv"
t0=$(date +%s)
while kill -0 "$wrapper" 2>/dev/null; do
  sleep 5
  for tp in $(pgrep -P "$wrapper" 2>/dev/null || true); do
    for p in $(pgrep -P "$tp" 2>/dev/null || true) "$tp"; do
      if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = phyvae ]; then
        awk -v t=$(($(date +%s) - t0)) '/VmHWM/ {h=$2} /VmRSS/ {r=$2} END {if (h) printf "%d\t%d\t%d\n", t, h, r}' \
          "/proc/$p/status" >>"$mem/rss.tsv" 2>/dev/null || true
      fi
    done
  done
done
wait "$wrapper" || true
peak=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$mem/time.txt")
echo
echo "Peak memory, phyvae train on a ${mem_size} x ${mem_size} image (step 8, SL1 faithful),"
echo "killed after ${mem_seconds} s: Maximum resident set size ${peak} kB ($(awk -v k="$peak" 'BEGIN {printf "%.0f MiB", k/1024}'))"
echo "High-water mark of the trainer over time ($mem/rss.tsv):"
column -t "$mem/rss.tsv" 2>/dev/null || cat "$mem/rss.tsv"
echo "load average at the end: $(loadavg)"
