#!/usr/bin/env bash
# Does a ZBL floor for O-O pairs (equiprop train --repulsion O-O:2.3) keep MD out of the holes, and what does it cost?
# Issue 18 item 7; docs/active-learning.md "A floor under the model" has the numbers.
#   bash bench/floor.sh OUT [SECONDS]
# For each data set (the random placements alone, where MD fails; the default data), trains SO3Net with and
# without the floor side by side (one CPU thread each, the same seconds), then on each model:
# evaluate on data/heldout-minima and on its own test split, and bench/md_safety.py from the 8 held-out
# minima of 5-8 waters (isomer ranks 0 and 1), 2 ps at 300 K.
set -euo pipefail
OUT=${1:?usage: bash bench/floor.sh OUT [SECONDS]}
SECONDS_EACH=${2:-300}
PY=${PYTHON:-.venv/bin/python}
mkdir -p "$OUT"
RANDOM_SET=$($PY -c "from equiprop.datasets import water_pbe0_path; print(water_pbe0_path())")
$PY bench/heldout_starts.py "$OUT/starts.xyz"
for data in random default; do
  args=()
  [ "$data" = random ] && args=(--data "$RANDOM_SET")
  for floor in none oo; do
    extra=()
    [ "$floor" = oo ] && extra=(--repulsion O-O:2.3)
    OMP_NUM_THREADS=1 $PY -m equiprop train "${args[@]}" "${extra[@]}" --max-time "$SECONDS_EACH" \
      --out "$OUT/$data-$floor" --overwrite > "$OUT/$data-$floor.log" 2>&1 &
  done
  wait
done
for run in "$OUT"/*-none "$OUT"/*-oo; do
  name=$(basename "$run")
  $PY -m equiprop evaluate "$run/best.pt" --data data/heldout-minima/labelled.xyz > "$OUT/$name.heldout.md"
  $PY bench/md_safety.py "$run/best.pt" --starts "$OUT/starts.xyz" --ps 2 > "$OUT/$name.md_safety.txt" 2>&1
done
grep -H "epoch\|survived" "$OUT"/*.log "$OUT"/*.md_safety.txt | tail -n 40
