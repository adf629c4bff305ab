#!/usr/bin/env bash
# Collect, on a machine with network, the wheels bench/gpu.sh installs on a GPU machine
# without network whose image has CUDA PyTorch, numpy, scipy, sympy, h5py, matplotlib,
# pandas, pytorch-lightning, torchmetrics, rich and opt-einsum-fx but not the rest:
#   .whl/equiprop    ase, vesin, e3nn 0.6.0 (the versions equiprop is tested with)
#   .whl/schnetpack  schnetpack 2.1.1 and what it imports beyond the image
#   .whl/mace        mace-torch 0.3.16, e3nn 0.4.4 (its pin) and what it imports beyond the image
# (the import lists come from running the peer scripts in bench/.venvs and listing sys.modules).
# Usage: bash bench/peers/gpu_wheels.sh [PYTHON_VERSION]   (the GPU machine's Python, default 3.12)
set -euo pipefail
VERSION="${1:-3.12}"
DEST=.whl
download() {  # $1: set; rest: requirements
  local set="$1"; shift
  mkdir -p "$DEST/$set"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$VERSION" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any -d "$DEST/$set" "$@"
}
download equiprop ase==3.29.0 vesin==0.6.2 e3nn==0.6.0
download schnetpack schnetpack==2.1.1 ase==3.29.0 omegaconf==2.3.1 dirsync==2.2.6 fasteners==0.20 matscipy==1.3.1 torch-ema==0.3
python3 -m pip wheel -q --no-deps antlr4-python3-runtime==4.9.3 -w "$DEST/schnetpack"  # published as source only
download mace mace-torch==0.3.16 e3nn==0.4.4 ase==3.29.0 lmdb==3.0.0 orjson==3.13.0 matscipy==1.3.1 torch-ema==0.3
du -sh "$DEST"/*
