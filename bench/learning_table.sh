#!/usr/bin/env bash
# Segmentation quality of sh-VAE against phy-VAE (faithful and gradient, SL1 and SL2) on the two
# synthetic images of `phyvae synth` (512 x 512: two phases across a curved boundary; a film with
# two polarisation-domain variants on a substrate), all with the same settings, epochs and seed.
# Each run scores every segmentation of every latent map against the truth (metrics.json);
# bench/learning_table.py prints, per run, the best content-map segmentation (ARI, which map and
# method), the best segmentation over all maps, and the full-map SL1 of the content maps.
#
# Usage: bench/learning_table.sh
# Environment (all optional):
#   PHYVAE_BIN  phyvae binary (default target/release/phyvae; built when absent)
#   OUT         work folder (default target/bench-learning; emptied first)
#   SEEDS       training seeds, space-separated (default "1")
#   EPOCHS      epochs per run (default 30)
#   EXTRA       more `phyvae train` options for every run
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${PHYVAE_BIN:-target/release/phyvae}
work=${OUT:-target/bench-learning}
seeds=${SEEDS:-1}
epochs=${EPOCHS:-30}
if [ ! -x "$bin" ]; then
  cargo build --release -p phyvae-cli
fi
rm -rf "$work"
mkdir -p "$work"
"$bin" synth two-phase --size 512 --seed 0 --out "$work/two-phase" >/dev/null
"$bin" synth domains --size 512 --seed 0 --out "$work/domains" >/dev/null

# One patch holds about one unit cell (16 px window, lattices of 12-14 px); the translation
# prior lets the shift latents cover half a lattice spacing; a KL ramp from 0.05 as in the paper.
common=(--window 16 --step 8 --shift-prior 0.6 --epochs "$epochs" --lr 5e-3 --batch 16
  --beta 0.05:1 ${EXTRA:-})
# Faithful mode as the authors ran it (w = 0.1, Psi from the first epoch); gradient mode with
# its defaults (L_sh + 1 * Psi, range floor 1, Psi switched on after a third of the epochs);
# two rows that change one thing each: the paper's product in gradient mode, and the
# gradient-mode warm-up given to faithful mode.
names=(sh-vae faithful-sl1 faithful-sl2 gradient-sl1 gradient-sl2 gradient-sl1-multiply
  faithful-sl1-warmup)
declare -A runs=(
  [sh-vae]="--physics none"
  [faithful-sl1]="--physics sl1 --mode faithful"
  [faithful-sl2]="--physics sl2 --mode faithful"
  [gradient-sl1]="--physics sl1 --mode gradient"
  [gradient-sl2]="--physics sl2 --mode gradient"
  [gradient-sl1-multiply]="--physics sl1 --mode gradient --multiply"
  [faithful-sl1-warmup]="--physics sl1 --mode faithful --physics-warmup $((epochs / 3))"
)
for image in two-phase domains; do
  for seed in $seeds; do
    for name in "${names[@]}"; do
      out="$work/runs/$image/$name/seed$seed"
      mkdir -p "$(dirname "$out")"
      # shellcheck disable=SC2086
      "$bin" train "$work/$image/image.npy" --truth "$work/$image/truth.npy" --out "$out" \
        "${common[@]}" --seed "$seed" ${runs[$name]} >"$out.log" 2>&1 \
        || echo "run $image/$name/seed$seed failed (see $out.log)" >&2
      printf '%s %s seed %s done\n' "$image" "$name" "$seed" >&2
    done
  done
done
python3 bench/learning_table.py "$work/runs"
