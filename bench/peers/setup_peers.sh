#!/usr/bin/env bash
# Create one virtual environment per peer library (idempotent):
#   bench/.venvs/schnetpack   torch==2.13.0 (CPU) + schnetpack==2.1.1
#   bench/.venvs/mace         torch==2.13.0 (CPU) + mace-torch==0.3.16 (pins e3nn 0.4.4)
#   bench/.venvs/nequip       torch==2.13.0 (CPU) + nequip==0.19.1        (issue 23; run_nequip.py)
#   bench/.venvs/pyg          torch==2.13.0 (CPU) + torch_geometric==2.8.1 (issue 23; run_dimenet.py, DimeNet++)
#
# torch is installed first, then the peer with torch held at the installed
# version by a constraints file, so pip never fetches a (multi-GB) CUDA build.
# Each venv is checked by importing the package; it is only marked complete
# (.installed) once that import works, so re-running finishes a broken install.
#
# schnetpack 2.1.1 declares `sympy<=1.12`, but torch 2.13.0 needs
# `sympy>=1.13.3`, so pip refuses the pair ("ResolutionImpossible"). schnetpack
# only uses sympy.physics.wigner.clebsch_gordan (in schnetpack.nn.ops.so3), which
# sympy 1.14 still has, so we install schnetpack with --no-deps and then all of
# its other declared requirements (as in its 2.1.1 wheel metadata) ourselves.
# schnetpack 2.1.1 also does `from torch.utils.data.dataloader import T_co`, a
# private name torch 2.13 no longer has; the import check (and run_schnetpack.py)
# defines it before importing schnetpack.
#
# Usage: bash bench/peers/setup_peers.sh [schnetpack|mace|nequip|pyg ...]   (default: schnetpack mace)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENVS="$(cd "$HERE/.." && pwd)/.venvs"
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="torch==2.13.0"

SCHNETPACK_SPEC="schnetpack==2.1.1"
# schnetpack 2.1.1's Requires-Dist, minus sympy<=1.12 (see above)
SCHNETPACK_DEPS=(
  "numpy>=2.0.0" "ase>=3.21" h5py pyyaml "hydra-core>=1.1.0" "pytorch-lightning>=2.0.0"
  torchmetrics "hydra-colorlog>=1.1.0" rich fasteners dirsync torch-ema "matscipy>=1.1.0"
  "tensorboard>=2.17.1" "tensorboardX>=2.6.2.2" tqdm pre-commit black protobuf
)
MACE_SPEC="mace-torch==0.3.16"
NEQUIP_SPEC="nequip==0.19.1"
PYG_SPEC="torch_geometric==2.8.1"
PYG_STAMP="$PYG_SPEC scipy sympy ase"  # what install_pyg installs (a change reinstalls)

install_torch() {  # $1: venv; writes $1/torch-constraint.txt holding torch at what got installed
  local venv="$1"
  [[ -x "$venv/bin/python" ]] || "$PYTHON" -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install "$TORCH_SPEC"
  "$venv/bin/python" -c "import torch; print('torch==' + torch.__version__)" > "$venv/torch-constraint.txt"
}

install_schnetpack() {
  local venv="$1"
  install_torch "$venv"
  "$venv/bin/pip" install --no-deps "$SCHNETPACK_SPEC"
  "$venv/bin/pip" install -c "$venv/torch-constraint.txt" "${SCHNETPACK_DEPS[@]}"
}

install_mace() {
  local venv="$1"
  install_torch "$venv"
  "$venv/bin/pip" install -c "$venv/torch-constraint.txt" "$MACE_SPEC"
}

install_nequip() {
  local venv="$1"
  install_torch "$venv"
  "$venv/bin/pip" install -c "$venv/torch-constraint.txt" "$NEQUIP_SPEC"
}

install_pyg() {
  local venv="$1"
  install_torch "$venv"
  # DimeNet's bases need scipy and sympy; run_dimenet.py reads the split with ASE
  "$venv/bin/pip" install -c "$venv/torch-constraint.txt" "$PYG_SPEC" scipy sympy ase
}

check_nequip() {
  "$1/bin/python" - <<'EOF'
import importlib.metadata as md
import torch, nequip
print("nequip", md.version("nequip"), "torch", torch.__version__)
EOF
}

check_pyg() {
  "$1/bin/python" - <<'EOF'
import importlib.metadata as md
import torch
from torch_geometric.nn.models import DimeNetPlusPlus
print("torch_geometric", md.version("torch_geometric"), "torch", torch.__version__)
EOF
}

check_schnetpack() {
  "$1/bin/python" - <<'EOF'
import importlib.metadata as md, typing
import torch, torch.utils.data.dataloader as dl
if not hasattr(dl, "T_co"):  # schnetpack 2.1.1 imports this private name, gone from torch 2.13 (see run_schnetpack.py)
    dl.T_co = typing.TypeVar("T_co", covariant=True)
import schnetpack
print("schnetpack", md.version("schnetpack"), "torch", torch.__version__, "sympy", md.version("sympy"))
EOF
}

check_mace() {
  TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 "$1/bin/python" - <<'EOF'
import importlib.metadata as md
import e3nn, torch
from mace.modules.models import EnergyDipolesMACE
print("mace-torch", md.version("mace-torch"), "e3nn", e3nn.__version__, "torch", torch.__version__)
EOF
}

setup_one() {  # $1: schnetpack | mace
  local name="$1" venv="$VENVS/$1" spec stamp
  case "$name" in
    schnetpack) spec="$SCHNETPACK_SPEC" ;;
    mace) spec="$MACE_SPEC" ;;
    nequip) spec="$NEQUIP_SPEC" ;;
    pyg) spec="$PYG_STAMP" ;;
    *) echo "unknown peer '$name' (choose: schnetpack mace nequip pyg)" >&2; exit 2 ;;
  esac
  stamp="$TORCH_SPEC $spec"
  if [[ -f "$venv/.installed" && "$(cat "$venv/.installed")" == "$stamp" ]]; then
    echo "[$name] already installed ($stamp)"
  else
    echo "[$name] installing $stamp into $venv"
    "install_$name" "$venv"
  fi
  echo "[$name] import check:"
  "check_$name" "$venv"
  echo "$stamp" > "$venv/.installed"
}

mkdir -p "$VENVS"
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(schnetpack mace)
for t in "${targets[@]}"; do
  setup_one "$t"
done
