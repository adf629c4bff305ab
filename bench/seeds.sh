#!/usr/bin/env bash
# The default model (`equiprop train`, no --data: random + sampled shipped sets), one run per seed, one at a time
# on all cores; then each run on the held-out minima and in MD from the 8 held-out 5-8-water minima (2 ps, 300 K).
# Issue 18's numbers with seeds: docs/active-learning.md.
#   bash bench/seeds.sh OUT [SECONDS] [SEEDS...]     (defaults: 300 s, seeds 0 1 2)
#   extra train flags: TRAIN_ARGS="--data FILE" bash bench/seeds.sh ...
set -euo pipefail
OUT=${1:?usage: bash bench/seeds.sh OUT [SECONDS] [SEEDS...]}
SECONDS_EACH=${2:-300}
shift $(( $# > 1 ? 2 : 1 ))
SEEDS=${*:-0 1 2}
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$OUT"
$PY bench/heldout_starts.py "$OUT/starts.xyz"
for seed in $SEEDS; do
  # shellcheck disable=SC2086
  $PY -m equiprop train ${TRAIN_ARGS:-} --max-time "$SECONDS_EACH" --epochs 1000 --seed "$seed" \
    --out "$OUT/seed-$seed" --overwrite > "$OUT/seed-$seed.log" 2>&1
done
echo "trained: $SEEDS"
for seed in $SEEDS; do
  run=$OUT/seed-$seed
  $PY -m equiprop evaluate "$run/best.pt" --data data/heldout-minima/labelled.xyz > "$OUT/seed-$seed.heldout.md"
  $PY bench/md_safety.py "$run/best.pt" --starts "$OUT/starts.xyz" --ps 2 > "$OUT/seed-$seed.md_safety.txt" 2>&1
done
grep -H "survived" "$OUT"/*.md_safety.txt
