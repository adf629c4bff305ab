#!/usr/bin/env bash
# The GPU table in one prepared run (docs/benchmarks.md, "on GPU"), for a machine with
# CUDA PyTorch but no network: the peers and equiprop's missing dependencies come as
# wheels collected here beforehand by `bash bench/peers/gpu_wheels.sh` (into .whl/).
#
#   bash bench/gpu.sh            # on the GPU machine, from the repository root
#
# Each wheel set is installed into its own folder (/tmp/site-*), and each peer runs
# with only its own folder on PYTHONPATH (MACE 0.3.16 needs e3nn 0.4.4, equiprop 0.6),
# through a small wrapper standing in for its venv (--venvs). Then: import checks,
# bench/gpu_checks.py (CPU = GPU, the command line on cuda, throughput per batch
# size), bench/run.py --device cuda with the scaling, then bench/compile_speed.py
# (eager against torch.compile, at most 150 s). Output under $OUT (or
# bench/out/gpu): log.txt, checks.txt, benchmarks-gpu.md, jobs.tar.gz, compile.txt.
#
# Settings by environment: PY (python, default python3), WHEELS (default .whl),
# DEVICE (default cuda), BUDGET (training seconds per model, default 30), THREADS (4),
# STEPS (default "tests checks table scaling compile": which parts run; tests = the GPU
# tests, tests/test_cuda_graphs.py and tests/test_padding.py, into tests.txt), ONLY
# (comma-separated job label prefixes for bench/run.py --only; default every job).
set -u
PY="${PY:-python3}"
WHEELS="${WHEELS:-.whl}"
DEVICE="${DEVICE:-cuda}"
BUDGET="${BUDGET:-30}"
THREADS="${THREADS:-4}"
STEPS=" ${STEPS:-tests checks table scaling compile} "
ONLY="${ONLY:-}"
RESULTS="${OUT:-bench/out/gpu}"
WORK="$(mktemp -d)"
mkdir -p "$RESULTS"
export PYTHONUNBUFFERED=1

for set in equiprop schnetpack mace; do
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$WORK/site-$set" "$WHEELS/$set"/*.whl \
    || { echo "wheel install of $set failed"; exit 1; }
done
for peer in schnetpack mace; do  # a stand-in for the peer's venv: this python with the peer's folder only
  mkdir -p "$WORK/venvs/$peer/bin"
  printf '#!/bin/sh\nPYTHONPATH="%s" exec "%s" "$@"\n' "$WORK/site-$peer" "$(command -v "$PY")" > "$WORK/venvs/$peer/bin/python"
  chmod +x "$WORK/venvs/$peer/bin/python"
done
export PYTHONPATH="$PWD:$WORK/site-equiprop"
has() { case "$STEPS" in *" $1 "*) return 0 ;; esac; return 1; }

if has tests; then
  "$PY" -m pytest -q -p no:cacheprovider tests/test_cuda_graphs.py tests/test_padding.py 2>&1 | tee "$RESULTS/tests.txt"
fi
has checks && {
  date -u
  command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv
  "$PY" -c "import torch, e3nn, ase, vesin, equiprop; print('equiprop env: torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'e3nn', e3nn.__version__, 'ase', ase.__version__)"
  "$WORK/venvs/schnetpack/bin/python" -c "
import typing, torch.utils.data.dataloader as dl
dl.T_co = getattr(dl, 'T_co', typing.TypeVar('T_co', covariant=True))
import schnetpack, importlib.metadata as md; print('schnetpack env:', md.version('schnetpack'))"
  TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 "$WORK/venvs/mace/bin/python" -W ignore -c "
import e3nn, mace.modules, importlib.metadata as md; print('mace env:', md.version('mace-torch'), 'e3nn', e3nn.__version__)"
  "$PY" bench/gpu_checks.py --device "$DEVICE" --run-dir "$WORK/gpu_run"
} 2>&1 | tee "$RESULTS/checks.txt"

if has table; then
  only=(); [ -n "$ONLY" ] && { IFS=, read -r -a prefixes <<< "$ONLY"; only=(--only "${prefixes[@]}"); }
  scaling=(); has scaling && scaling=(--scaling)
  "$PY" bench/run.py --device "$DEVICE" --threads "$THREADS" --budget "$BUDGET" "${scaling[@]}" "${only[@]}" \
    --out-dir "$WORK/jobs" --venvs "$WORK/venvs" --doc "$RESULTS/benchmarks-gpu.md" 2>&1 | tee "$RESULTS/log.txt"
  tar -czf "$RESULTS/jobs.tar.gz" --exclude jobs/split -C "$WORK" jobs
fi
if has compile; then
  timeout 150 "$PY" bench/compile_speed.py --device "$DEVICE" --passes 3 2>&1 | grep -v Warning | tee "$RESULTS/compile.txt"
fi
